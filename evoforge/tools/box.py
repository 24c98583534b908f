"""The box every child that reads untrusted text runs in: tools and candidates alike.

A boxed child gets, on top of :func:`evoforge.tools.process.run`'s limits and group kill:

* **its own user.** When the verifier runs as root, the child runs as an unprivileged uid chosen for
  its scratch directory (``SANDBOX_UID_BASE`` + a hash of the path), so ``RLIMIT_NPROC`` and the other
  rlimits bind (they do not bind uid 0) and two boxes never share a process budget. The scratch
  directory is handed to that uid before the run.
* **only what it needs of the file system** (bubblewrap): the system's ``/usr`` (interpreter,
  compilers, EDA tools) and a handful of ``/etc`` files the dynamic linker and compilers read, the
  Python installation and its packages, the evoforge package itself — all read-only — plus its
  scratch directory read-write and the extra read-only paths the caller names (``reads``). Never the
  store, the data directory, home, ``/etc/shadow`` or another process's files: ``/proc`` is the box's
  own, ``/tmp`` a private tmpfs.
* **no network, its own PID/IPC/UTS namespaces**, a new session (no terminal injection), and death
  with its parent.
* **a scrubbed environment** (no API keys; ``HOME``/``TMPDIR`` in the scratch directory;
  ``PYTHONSAFEPATH`` so the scratch directory is never put on a Python child's import path).

What this machine allows is probed once (:func:`isolation_report`). Where a mechanism is missing the
box degrades — bubblewrap as root with ``setpriv`` → bubblewrap in a user namespace → ``unshare -n``
→ limits only — and logs a warning saying what a child can now reach. Inside a box (the kernel
harness starting ``nvcc``), children run with limits only: the outer box already holds them.

``evoforge.verifiers.sandbox`` is the candidate-facing API on top of this module.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evoforge.tools import process
from evoforge.tools.process import Limits, ProcessResult

log = logging.getLogger(__name__)

#: uids (and gids) of boxed children when the verifier is root: one per scratch directory
SANDBOX_UID_BASE = 2_000_000_000
SANDBOX_UID_RANGE = 1 << 24
#: set in every boxed child's environment: a tool started inside a box runs with limits only
INSIDE_MARKER = "EVOFORGE_IN_SANDBOX"

#: limits of an external tool (iverilog, yosys, verilator, OpenSTA, nvcc …) reading user text; the
#: CPU limit is the call's own timeout when that is lower
TOOL_LIMITS = Limits(
    cpu_seconds=600,
    memory_bytes=4 << 30,
    file_bytes=64 << 20,
    processes=64,
    open_files=512,
    output_bytes=64 << 20,
)

#: size of the box's private /tmp and /dev/shm (memory the rlimits do not count)
TMPFS_BYTES = 256 << 20
_SYSTEM_DIRS = ("/usr",)
_TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: /etc files a child may read: the dynamic linker's cache, alternatives (cc → gcc), perl's config
_ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/perl",
)
_SECRET_DIRS = ("/root", "/home", "/etc", "/var", "/run", "/srv", "/mnt", "/media", "/opt")


@dataclass(frozen=True)
class Isolation:
    """What a boxed child is kept from here (the answer of :func:`isolation_report`)."""

    level: str  # "filesystem+network" | "network" | "limits-only"
    mechanism: str  # how, in words
    unprivileged: bool  # the child runs as a non-root uid, so process limits bind
    warnings: tuple[str, ...]  # what is missing and what that lets a child do


def inside_box() -> bool:
    """True in a boxed child (set by the box itself; a candidate cannot unset it for its parent)."""
    return os.environ.get(INSIDE_MARKER) == "1"


def uid_for(workdir: Path) -> int:
    """The unprivileged uid (= gid) a box in ``workdir`` runs as when the verifier is root."""
    digest = hashlib.sha256(str(workdir).encode()).digest()
    return SANDBOX_UID_BASE + int.from_bytes(digest[:8], "big") % SANDBOX_UID_RANGE


def _is_root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------------------------------------
# What a child sees


def _package_dir() -> Path:
    return Path(__file__).resolve().parents[1]


def _python_roots() -> list[Path]:
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    roots |= {Path(sys.executable).resolve().parents[1]}
    return sorted(roots)


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _executable_roots(argv0: str) -> list[Path]:
    """What a program outside the usual roots needs: its install prefix (``/opt/x/bin/yosys`` →
    ``/opt/x``), and the directory of the name it is started by (a link on a PATH of links).
    Never ``/``, a home directory or a system directory such as ``/etc``: a program that lives
    directly in one of those is not shown (it fails to start, loudly)."""
    exe = Path(argv0)
    if not exe.is_absolute():
        return []
    real = exe.resolve()
    system = [Path(d) for d in _SYSTEM_DIRS]
    prefix = real.parent.parent if real.parent.name == "bin" else real.parent
    too_wide = {Path("/"), *map(Path, _SECRET_DIRS), Path.home(), Path.home().parent}
    roots = []
    for root in (exe.parent, prefix if prefix not in too_wide else real.parent):
        if root not in too_wide and not _under(root.resolve(), system) and root not in roots:
            roots.append(root)
    return roots


@functools.cache
def _null_writable() -> bool:
    writable = bool(os.stat("/dev/null").st_mode & stat.S_IWOTH)
    if not writable:
        log.warning(
            "/dev/null is not writable by other users on this machine: boxed children get an empty "
            "file in their scratch directory as /dev/null instead"
        )
    return writable


def _null_file(workdir: Path) -> Path:
    null = workdir / ".dev-null"
    if not null.exists():
        null.touch()
        null.chmod(0o666)  # whichever uid the box runs as
    return null


def _gpu_devices() -> list[str]:
    return sorted(glob.glob("/dev/nvidia*"))


def bwrap_args(workdir: Path, reads: Sequence[Path], argv0: str | None = None) -> list[str]:
    """The bubblewrap options (without the program) that show a child only what it needs."""
    args = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session"]
    made = {Path("/")}

    def bind(kind: str, source: str | Path, dest: str | Path) -> None:
        # bubblewrap makes missing parents 0700 (as root): make them 0755 so the box user can pass
        for parent in reversed(Path(dest).parents):
            if parent not in made:
                args.extend(["--perms", "0755", "--dir", str(parent)])
                made.add(parent)
        args.extend([kind, str(source), str(dest)])
        made.add(Path(dest))

    for d in _SYSTEM_DIRS:
        bind("--ro-bind", d, d)
    for link in _TOP_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            bind("--ro-bind", link, link)
    for path in _ETC:
        if os.path.exists(path):
            bind("--ro-bind", path, path)
    args += ["--dev", "/dev", "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm"]
    args += ["--proc", "/proc", "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    made |= {Path("/dev"), Path("/dev/shm"), Path("/proc"), Path("/tmp")}
    if not _null_writable():  # tools write to /dev/null: give the box user a file it may write
        args += ["--bind", str(_null_file(workdir)), "/dev/null"]
    gpus = _gpu_devices()
    for dev in gpus:
        args += ["--dev-bind", dev, dev]
    if gpus:  # the CUDA driver reads PCI topology from /sys (untested here: no GPU on this machine)
        bind("--ro-bind", "/sys", "/sys")
    shown = [Path(d) for d in _SYSTEM_DIRS]
    for root in [*_python_roots(), _package_dir()]:
        if not _under(root, shown):
            bind("--ro-bind", root, root)
            shown.append(root)
    for extra in _executable_roots(argv0) if argv0 else []:
        if not _under(extra, shown):
            bind("--ro-bind", extra.resolve(), extra)
            shown.append(extra)
    # a read above the scratch directory is bound first (it must not cover the scratch directory);
    # the others after it, so inputs inside the scratch directory are read-only too
    above = [r for r in reads if _under(workdir, [Path(r).absolute(), Path(r).resolve()])]
    for read in [*above, None, *[r for r in reads if r not in above]]:
        if read is None:
            bind("--bind", workdir, workdir)
            continue
        where = Path(read).absolute()
        if where.exists():
            for dest in dict.fromkeys((where, where.resolve())):  # by the name given and the real one
                bind("--ro-bind", where.resolve(), dest)
    args += ["--chdir", str(workdir)]
    return args


def _setpriv(uid: int) -> list[str]:
    found = shutil.which("setpriv")  # the real file: a PATH of links is not in the box
    setpriv = os.path.realpath(found) if found else "setpriv"
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--"]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# What works here (probed once)


def _works(build: Callable[[Path], list[str]], *, run_as: tuple[int, int] | None = None) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="evoforge-probe-") as tmp:
        work = Path(tmp)
        full = build(work)
        if run_as is not None:
            for path in (work, *work.iterdir()):
                os.chown(path, *run_as)
        try:
            result = process.run(full, timeout=20, cwd=work, run_as=run_as, env=process.scrubbed_env())
        except OSError as exc:
            return False, str(exc)
        return result.ok, (result.stderr.strip() or result.stdout.strip())[-300:]


def _true() -> str:
    found = shutil.which("true")
    return os.path.realpath(found) if found else "/bin/true"


def _bwrap() -> str | None:
    found = shutil.which("bwrap")
    return os.path.realpath(found) if found else None


@functools.cache
def _mode() -> str:
    """``bwrap-root`` | ``bwrap-userns`` | ``unshare`` | ``limits``; warns once for what is missing."""
    bwrap = _bwrap()
    probe_uid = SANDBOX_UID_BASE + SANDBOX_UID_RANGE  # outside the per-directory range
    reasons: list[str] = []
    if bwrap is None:
        reasons.append("bubblewrap (bwrap) is not installed")
    else:
        if _is_root() and shutil.which("setpriv"):
            ok, why = _works(lambda w: [bwrap, *bwrap_args(w, ()), "--", *_setpriv(probe_uid), _true()])
            if ok:
                return "bwrap-root"
            reasons.append(f"bwrap as root failed: {why}")
        user = ["--unshare-user", "--uid", str(probe_uid), "--gid", str(probe_uid)]
        ok, why = _works(
            lambda w: [bwrap, *user, *bwrap_args(w, ()), "--", _true()],
            run_as=(probe_uid, probe_uid) if _is_root() else None,
        )
        if ok:
            return "bwrap-userns"
        reasons.append(f"bwrap in a user namespace failed: {why}")
    unshare = shutil.which("unshare")
    if unshare is not None:
        prefix = [unshare, "-n", "--", *_setpriv(probe_uid)] if _is_root() else [unshare, "-r", "-n", "--"]
        ok, why = _works(lambda _: [*prefix, _true()])
        if ok:
            _warn("network", reasons)
            return "unshare"
        reasons.append(f"unshare -n failed: {why}")
    _warn("limits-only", reasons)
    return "limits"


_CONSEQUENCES = {
    "network": "children can READ THE WHOLE FILE SYSTEM their user can read and write outside their "
    "scratch directory; they have no network",
    "limits-only": "children can READ THE WHOLE FILE SYSTEM their user can read, write outside their "
    "scratch directory and use the network; only resource limits and the scrubbed environment apply",
}


def _warnings(level: str, reasons: Sequence[str]) -> tuple[str, ...]:
    if level == "filesystem+network":
        return ()
    return (
        f"sandbox degraded to {level}: {'; '.join(reasons) or 'no isolation tool works'} — "
        f"{_CONSEQUENCES[level]}. Install bubblewrap and allow user namespaces (or run as root) "
        "to restore it.",
    )


_REASONS: list[str] = []


def _warn(level: str, reasons: Sequence[str]) -> None:
    _REASONS[:] = reasons
    for message in _warnings(level, reasons):
        log.warning("%s", message)


_LEVELS = {
    "bwrap-root": "filesystem+network",
    "bwrap-userns": "filesystem+network",
    "unshare": "network",
    "limits": "limits-only",
}
_MECHANISMS = {
    "bwrap-root": "bubblewrap (mount/pid/net namespaces as root), then setpriv to a per-directory uid",
    "bwrap-userns": "bubblewrap in an unprivileged user namespace",
    "unshare": "unshare -n (network namespace only)",
    "limits": "resource limits and a scrubbed environment only",
}


def isolation_report() -> Isolation:
    """What boxed children are kept from on this machine, and what is missing (probed once)."""
    mode = _mode()
    level = _LEVELS[mode]
    mechanism = _MECHANISMS[mode]
    if _is_root():
        mechanism += "; runs as an unprivileged uid"
    return Isolation(level, mechanism, True, _warnings(level, _REASONS))


def isolation() -> str:
    """``filesystem+network`` (bubblewrap), ``network`` (unshare) or ``limits-only``."""
    return _LEVELS[_mode()]


def reset_probe() -> None:
    """Forget what was probed (tests that make a mechanism disappear)."""
    _mode.cache_clear()
    _REASONS.clear()


# ---------------------------------------------------------------------------------------------
# Running


def _hand_over(workdir: Path, uid: int) -> None:
    """Make ``workdir`` the box user's: what we wrote there, and what earlier boxes left.

    Never follows links and never touches a file with other hard links (it could be someone
    else's file linked in), nor anything owned by a user other than us or a box.
    """

    def claim(path: Path) -> None:
        try:
            st = path.lstat()
        except OSError:
            return
        ours = (
            st.st_uid == os.geteuid() or SANDBOX_UID_BASE <= st.st_uid <= SANDBOX_UID_BASE + SANDBOX_UID_RANGE
        )
        if not ours or (stat.S_ISREG(st.st_mode) and st.st_nlink > 1) or st.st_uid == uid:
            return
        os.chown(path, uid, uid, follow_symlinks=False)

    claim(workdir)
    for root, dirs, files in os.walk(workdir):
        for name in (*dirs, *files):
            claim(Path(root) / name)


def _let_read(reads: Sequence[Path]) -> None:
    """The box user reads ``reads`` by their own permissions: open our own files to others' reading
    (a file the verifier wrote with a private umask); others' files are left as they are."""
    for read in reads:
        try:
            st = os.stat(read)
        except OSError:
            continue
        wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
        if st.st_uid == os.geteuid() and st.st_mode & wanted != wanted:
            os.chmod(read, stat.S_IMODE(st.st_mode) | wanted)


def child_env(workdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The scrubbed environment of a boxed child (no secrets; home and temp in its directory)."""
    path = os.environ.get("PATH", "")
    return process.scrubbed_env(
        {
            # the service's PATH may name directories the box does not show: the system's come last
            "PATH": os.pathsep.join(p for p in (path, "/usr/local/bin:/usr/bin:/bin") if p),
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "PYTHONSAFEPATH": "1",
            "PYTHONNOUSERSITE": "1",
            **(extra or {}),
            INSIDE_MARKER: "1",
        }
    )


def run_boxed(
    argv: Sequence[str | os.PathLike[str]],
    *,
    workdir: Path,
    timeout: float,
    limits: Limits,
    env: Mapping[str, str] | None = None,
    reads: Sequence[Path] = (),
    stdin_text: str | None = None,
) -> ProcessResult:
    """Run ``argv`` in ``workdir`` inside the strongest box this machine allows (see module doc).

    ``reads`` are extra files or directories the child may read (bound read-only at the same path).
    Raises ``FileNotFoundError`` when there is no such program.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [str(a) for a in argv]
    if not args:
        raise ValueError("run_boxed needs a program to run")
    exe = args[0] if os.path.isabs(args[0]) else shutil.which(args[0])
    if exe is None:
        raise FileNotFoundError(f"no such program: {args[0]}")
    args[0] = exe
    child = child_env(workdir, env)
    if inside_box():  # the outer box holds this process already
        return process.run(
            args, timeout=timeout, cwd=workdir, env=child, limits=limits, stdin_text=stdin_text
        )
    mode = _mode()
    uid = uid_for(workdir) if _is_root() else None
    if uid is not None:
        _hand_over(workdir, uid)
        _let_read(reads)
    run_as = (uid, uid) if uid is not None and mode in ("bwrap-userns", "limits") else None
    bwrap = _bwrap()
    if mode == "bwrap-root" and bwrap is not None and uid is not None:
        full = [bwrap, *bwrap_args(workdir, reads, exe), "--", *_setpriv(uid), *args]
    elif mode == "bwrap-userns" and bwrap is not None:
        user = ["--unshare-user"] + (["--uid", str(uid), "--gid", str(uid)] if uid is not None else [])
        full = [bwrap, *user, *bwrap_args(workdir, reads, exe), "--", *args]
    elif mode == "unshare":
        unshare = shutil.which("unshare") or "unshare"
        prefix = [unshare, "-n", "--", *_setpriv(uid)] if uid is not None else [unshare, "-r", "-n", "--"]
        full = [*prefix, *args]
    else:
        full = args
    return process.run(
        full, timeout=timeout, cwd=workdir, env=child, limits=limits, stdin_text=stdin_text, run_as=run_as
    )
