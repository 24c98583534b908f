"""The replay process: a C candidate's compiled kernels, called alone on the supervisor's buffers.

``python -I -m evoforge.verifiers.kernel.replay FD CPUS``, started by the supervisor once the worker
(the candidate's Python) has been killed. Start-up is trusted: :func:`procs.harden`, then the
libraries the supervisor compiled and checked (no code runs when they load: see ``elf``) are
loaded, then the system-call filter is installed (no files can be opened, so no library — torch
included — can be loaded any more; no executable memory; no processes), and only then does any
candidate code run: the launches of a plan, on shared memory the supervisor handed over. This
process imports the standard library only: there is no torch, no numpy, no candidate Python here.

Requests: ``arena`` (map shared memory), ``load`` (a call: fills and launches, resolved to
addresses once, outside any timing), ``go`` (run a loaded call; the supervisor's clock measures
this request) and ``exit``.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from typing import Any

from evoforge.verifiers.kernel import ipc, procs, seccomp

#: libraries loaded by name before any kernel library (a kernel's DT_NEEDED resolves to these)
PRELOAD = ("libm.so.6", "libgomp.so.1")


class Call:
    """A loaded call: fills to perform, then C functions with their converted arguments."""

    def __init__(self, fills: list[tuple[int, int, bytes]], launches: list[tuple[Any, list[Any]]]) -> None:
        self.fills = fills
        self.launches = launches

    def run(self) -> None:
        for address, size, pattern in self.fills:
            _fill(address, size, pattern)
        for function, args in self.launches:
            function(*args)


def _fill(address: int, size: int, pattern: bytes) -> None:
    if size <= 0:
        return
    if len(set(pattern)) == 1:
        ctypes.memset(address, pattern[0], size)
        return
    first = min(len(pattern), size)
    ctypes.memmove(address, pattern, first)
    done = first
    while done < size:
        step = min(done, size - done)
        ctypes.memmove(address + done, address, step)
        done += step


class Replayer:
    def __init__(self, channel: ipc.Channel, libraries: dict[str, ctypes.CDLL]) -> None:
        self.channel = channel
        self.libraries = libraries
        self.arenas: dict[int, ipc.Arena] = {}
        self.calls: dict[int, Call] = {}

    def arena(self, msg: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        arena = ipc.Arena(fds[0], int(msg["nbytes"]))
        arena.prefault()  # no call is timed with first touches of its memory (the reference's neither)
        self.arenas[int(msg["id"])] = arena
        return {"ok": True}

    def load(self, msg: dict[str, Any], _fds: list[int]) -> dict[str, Any]:
        fills = [
            (self._address(f["arena"], f["offset"]), int(f["size"]), bytes.fromhex(f["pattern"]))
            for f in msg["fills"]
        ]
        launches = []
        for launch in msg["launches"]:
            library = self.libraries.get(launch["library"])
            if library is None:
                return {"ok": False, "detail": f"library {launch['library']} was not loaded"}
            try:
                function = getattr(library, launch["function"])
            except AttributeError:
                return {
                    "ok": False,
                    "detail": f"the compiled C source defines no function {launch['function']!r}",
                }
            function.restype = None
            launches.append((function, [self._argument(a) for a in launch["args"]]))
        self.calls[int(msg["call"])] = Call(fills, launches)
        return {"ok": True}

    def go(self, msg: dict[str, Any], _fds: list[int]) -> dict[str, Any]:
        self.calls.pop(int(msg["call"])).run()  # a call runs once: nothing piles up between calls
        return {"ok": True}

    def _address(self, arena: int, offset: int) -> int:
        return self.arenas[int(arena)].address + int(offset)

    def _argument(self, arg: dict[str, Any]) -> Any:
        if "int" in arg:
            return ctypes.c_int64(int(arg["int"]))
        if "float" in arg:
            return ctypes.c_double(float(arg["float"]))
        if "pointers" in arg:  # an array of addresses (the roofline kernel's buffer lists)
            values = [self._address(a, o) for a, o in arg["pointers"]]
            return (ctypes.c_void_p * max(1, len(values)))(*values)
        if "int64s" in arg:
            values = [int(v) for v in arg["int64s"]]
            return (ctypes.c_int64 * max(1, len(values)))(*values)
        return ctypes.c_void_p(self._address(arg["arena"], arg["offset"]))


def main() -> None:
    fd, cpus = int(sys.argv[1]), sys.argv[2]
    procs.harden([int(c) for c in cpus.split(",") if c])
    channel = ipc.Channel.from_fd(fd)
    init, _ = channel.recv()
    for name in PRELOAD:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    libraries = {key: ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL) for key, path in init["libraries"].items()}
    filtered = False
    if seccomp.available():
        seccomp.install(seccomp.REPLAY)
        filtered = True
    replayer = Replayer(channel, libraries)
    # no collector pauses: the supervisor counts this process's CPU between calls as hidden work, and
    # a cyclic collection of the ctypes objects loads leave behind costs milliseconds
    gc.collect()
    gc.freeze()
    gc.disable()
    channel.send({"op": "ready", "seccomp": filtered, "pid": os.getpid()})
    handlers = {"arena": replayer.arena, "load": replayer.load, "go": replayer.go}
    while True:
        try:
            msg, fds = channel.recv()
        except ipc.ChannelClosed:
            os._exit(0)
        if msg.get("op") == "exit":
            os._exit(0)
        try:
            reply = handlers[msg["op"]](msg, fds)
        except Exception as exc:
            reply = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:2000]}
        channel.send(reply)


if __name__ == "__main__":
    main()
