"""System-call filters for the processes that run candidate code (seccomp, installed by the process itself).

A filter is installed by trusted start-up code *before* any candidate code runs in that process and
cannot be removed afterwards (the kernel keeps it for the life of the process and its threads):

* ``WORKER`` — the process that imports a C candidate's Python: no new programs or processes
  (``execve``, ``fork``, ``clone`` without ``CLONE_THREAD``), no reaching other processes
  (``ptrace``, ``process_vm_*``, ``pidfd_getfd``), no kernel interfaces that bypass the rest
  (io_uring, bpf, userfaultfd, namespaces, mounts, modules), no changing its CPU affinity.
* ``REPLAY`` — the process that runs only a candidate's compiled C kernels, once they are loaded:
  everything ``WORKER`` forbids, plus opening files (so no library can be loaded — torch's
  included) and mapping memory executable (so no code can be generated).

Denied calls fail with ``EPERM`` (``clone3`` with ``ENOSYS``, so that the C library falls back to
``clone``, which the filter can inspect); a call from another architecture's ABI kills the
process. Implemented for x86-64 only: :func:`available` says whether this machine has it, and the
verifier records when it does not. Standard library only (``ctypes``): the replay process imports
nothing else.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

#: x86-64 system-call numbers (arch/x86/entry/syscalls/syscall_64.tbl)
_X86_64 = {
    "open": 2, "mmap": 9, "mprotect": 10, "shmat": 30, "socket": 41, "connect": 42, "accept": 43,
    "bind": 49, "listen": 50, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "creat": 85,
    "ptrace": 101, "uselib": 134, "personality": 135, "pivot_root": 155, "chroot": 161, "mount": 165,
    "umount2": 166, "init_module": 175, "delete_module": 176, "sched_setaffinity": 203,
    "remap_file_pages": 216, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "openat": 257, "unshare": 272, "accept4": 288, "perf_event_open": 298, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "finit_module": 313, "sched_setattr": 314, "memfd_create": 319, "kexec_file_load": 320, "bpf": 321,
    "execveat": 322, "userfaultfd": 323, "pkey_mprotect": 329, "pidfd_send_signal": 424,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
    "openat2": 437, "pidfd_getfd": 438, "process_madvise": 440, "memfd_secret": 447,
}  # fmt: skip
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000

#: calls no candidate process may make
_ALWAYS = (
    "fork", "vfork", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev",
    "pidfd_getfd", "pidfd_send_signal", "process_madvise", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "bpf", "userfaultfd", "perf_event_open", "unshare", "setns", "mount",
    "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
    "fspick", "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "sched_setaffinity", "sched_setattr", "personality", "uselib", "add_key", "request_key", "keyctl",
    "socket", "connect", "bind", "listen", "accept", "accept4", "name_to_handle_at",
    "open_by_handle_at", "remap_file_pages",
)  # fmt: skip
#: calls the replay process may not make once the kernels are loaded
_REPLAY_ONLY = ("open", "openat", "openat2", "creat", "memfd_create", "memfd_secret", "shmat")

WORKER = "worker"
REPLAY = "replay"

# classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h)
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
_OFF_NR, _OFF_ARCH = 0, 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index  # the low 32 bits of args[index] (little-endian)


_CLONE_THREAD = 0x00010000
_PROT_EXEC = 0x4
_SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC = 1, 1
_NR_SECCOMP_X86_64 = 317
_PR_SET_NO_NEW_PRIVS = 38


class SeccompError(OSError):
    """The filter could not be installed."""


def available() -> bool:
    """True where :func:`install` works (Linux on x86-64)."""
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def program(profile: str) -> list[tuple[int, int, int, int]]:
    """The BPF program of ``profile`` as (code, jt, jf, k) instructions."""
    if profile not in (WORKER, REPLAY):
        raise ValueError(f"unknown seccomp profile {profile!r}; known: {WORKER}, {REPLAY}")
    eperm = _RET_ERRNO | errno.EPERM
    denied = list(_ALWAYS) + (list(_REPLAY_ONLY) if profile == REPLAY else [])
    prog = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _OFF_NR),
        (_JGE_K, 0, 1, _X32_BIT),
        (_RET_K, 0, 0, eperm),
        (_JEQ_K, 0, 1, _X86_64["clone3"]),
        (_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
    ]
    for name in denied:
        prog += [(_JEQ_K, 0, 1, _X86_64[name]), (_RET_K, 0, 0, eperm)]
    # clone: threads only (the flags are its first argument on x86-64)
    prog += [
        (_JEQ_K, 0, 4, _X86_64["clone"]),
        (_LD_W_ABS, 0, 0, _arg_low(0)),
        (_JSET_K, 0, 1, _CLONE_THREAD),
        (_RET_K, 0, 0, _RET_ALLOW),
        (_RET_K, 0, 0, eperm),
    ]
    if profile == REPLAY:  # no executable mappings: the protection is the third argument of each
        for name in ("mmap", "mprotect", "pkey_mprotect"):
            prog += [
                (_JEQ_K, 0, 4, _X86_64[name]),
                (_LD_W_ABS, 0, 0, _arg_low(2)),
                (_JSET_K, 1, 0, _PROT_EXEC),
                (_RET_K, 0, 0, _RET_ALLOW),
                (_RET_K, 0, 0, eperm),
            ]
    prog.append((_RET_K, 0, 0, _RET_ALLOW))
    return prog


def install(profile: str) -> None:
    """Install ``profile``'s filter on every thread of this process (irrevocable)."""
    if not available():
        raise SeccompError(f"seccomp filters are implemented for Linux x86-64, not {platform.machine()}")
    prog = program(profile)
    raw = b"".join(struct.pack("<HBBI", *ins) for ins in prog)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("<H6xQ", len(prog), ctypes.addressof(buffer))
    fprog_buffer = ctypes.create_string_buffer(fprog, len(fprog))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    done = libc.syscall(
        _NR_SECCOMP_X86_64,
        _SECCOMP_SET_MODE_FILTER,
        _SECCOMP_FILTER_FLAG_TSYNC,
        ctypes.c_void_p(ctypes.addressof(fprog_buffer)),
    )
    if done != 0:
        raise SeccompError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")
