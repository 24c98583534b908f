"""How the kernel verifier's processes talk: framed JSON messages over a Unix socket, and shared memory.

The supervisor (the trusted harness process) owns every buffer that decides a verdict; the worker
(the candidate's Python) and the replay process (the candidate's compiled kernels alone) see only
the buffers handed to them. A :class:`Channel` carries one JSON object per message, with file
descriptors attached when a message hands over memory. An :class:`Arena` is anonymous shared memory
(``memfd_create``): it has no name in the file system, so another process reaches it only if it
was given the descriptor. Standard library only: the replay process imports nothing else.
"""

from __future__ import annotations

import array  # noqa: F401  (socket.recv_fds imports it lazily: a filtered process cannot load it later)
import contextlib
import ctypes
import json
import mmap
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

_HEADER = struct.Struct("<Q")
_memcmp = ctypes.CDLL(None).memcmp
_memcmp.restype = ctypes.c_int
_memcmp.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)
#: madvise(2): fault every page in for writing, contents unchanged (Linux 5.14)
MADV_POPULATE_WRITE = 23
MAX_MESSAGE_BYTES = 64 << 20
MAX_FDS = 16


class ChannelClosed(ConnectionError):
    """The other end went away (it died, or was killed)."""


class Channel:
    """One end of a ``socketpair``: ``send(message, fds)`` and ``recv() -> (message, fds)``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, socket.socket]:
        """Our end, and the other end's socket (to pass to a child by its descriptor)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(ours), theirs

    @classmethod
    def from_fd(cls, fd: int) -> Channel:
        return cls(socket.socket(fileno=fd))

    def send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        payload = json.dumps(message, separators=(",", ":")).encode()
        data = _HEADER.pack(len(payload)) + payload
        if fds:
            sent = socket.send_fds(self.sock, [data[:1]], list(fds))
            data = data[sent:]
        self.sock.sendall(data)

    def recv(self) -> tuple[dict[str, Any], list[int]]:
        first, fds, _flags, _addr = socket.recv_fds(self.sock, 1, MAX_FDS)
        if not first:
            raise ChannelClosed("the other process closed its end")
        head = first + self._exactly(_HEADER.size - 1)
        (length,) = _HEADER.unpack(head)
        if length > MAX_MESSAGE_BYTES:
            raise ChannelClosed(f"a message of {length} bytes (limit {MAX_MESSAGE_BYTES})")
        return json.loads(self._exactly(length)), list(fds)

    def request(self, message: dict[str, Any], fds: Sequence[int] = ()) -> tuple[dict[str, Any], list[int]]:
        self.send(message, fds)
        return self.recv()

    def _exactly(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = self.sock.recv(min(size, 1 << 20))
            if not chunk:
                raise ChannelClosed("the other process closed its end mid-message")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


class Arena:
    """Shared memory: ``nbytes`` bytes behind a descriptor, mapped read-write in this process."""

    def __init__(self, fd: int, nbytes: int) -> None:
        self.fd = fd
        self.nbytes = nbytes
        self.map = mmap.mmap(fd, max(nbytes, 1), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._anchor = ctypes.c_char.from_buffer(self.map) if nbytes else None

    @classmethod
    def create(cls, nbytes: int, name: str = "evoforge") -> Arena:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(fd, max(nbytes, 1))
        return cls(fd, nbytes)

    @property
    def address(self) -> int:
        """The address of byte 0 in this process (for C calls)."""
        return ctypes.addressof(self._anchor) if self._anchor is not None else 0

    def prefault(self) -> None:
        """Map every page into this process now, writable, without changing a byte: a later call
        on this memory takes no page fault (a first touch costs ~1 µs a page here, unevenly)."""
        if not self.nbytes:
            return
        try:
            self.map.madvise(MADV_POPULATE_WRITE)
        except OSError:  # an older kernel: read one byte a page (shared memory is mapped writable)
            view = (ctypes.c_char * self.nbytes).from_address(self.address)
            for offset in range(0, self.nbytes, mmap.PAGESIZE):
                view[offset]

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.map[offset : offset + len(data)] = data

    def read(self, offset: int, size: int) -> bytes:
        return self.map[offset : offset + size]

    def holds(self, offset: int, data: bytes) -> bool:
        """Whether the bytes at ``offset`` are ``data`` (compared in place: no copy of either)."""
        if offset < 0 or offset + len(data) > self.nbytes:
            return False
        return not data or _memcmp(self.address + offset, data, len(data)) == 0

    def fill(self, offset: int, size: int, pattern: bytes) -> None:
        """``size`` bytes from ``offset`` set to ``pattern`` repeated (doubling copies: fast)."""
        if size <= 0:
            return
        if len(pattern) == 1:
            ctypes.memset(self.address + offset, pattern[0], size)
            return
        first = min(len(pattern), size)
        self.map[offset : offset + first] = pattern[:first]
        done = first
        while done < size:
            step = min(done, size - done)
            ctypes.memmove(self.address + offset + done, self.address + offset, step)
            done += step

    def close(self) -> None:
        self._anchor = None
        with contextlib.suppress(BufferError):  # a view still exists; the mapping ends with the process
            self.map.close()
        os.close(self.fd)


def aligned(offset: int, alignment: int = 4096) -> int:
    return (offset + alignment - 1) // alignment * alignment
