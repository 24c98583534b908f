"""What a compiled kernel library would do when it is loaded, read from its ELF file (no loading).

The replay process loads a candidate's libraries before it shuts the door on opening files; any
code that ran during that load (a constructor, an ``ifunc`` resolver) could load torch first. So a
library is refused when it has load-time code — ``DT_INIT``/``DT_INIT_ARRAY``/``DT_PREINIT_ARRAY``
(and their ``FINI`` twins, for symmetry), ``R_X86_64_IRELATIVE`` relocations or ``STT_GNU_IFUNC``
symbols — when it needs a library other than the C, math and OpenMP runtimes, or when it carries a
run path (``DT_RPATH``/``DT_RUNPATH``, which could point those names at other files). Standard
library only.
"""

from __future__ import annotations

import struct
from pathlib import Path

#: libraries a kernel may need (resolved to the copies the replay process loaded itself)
ALLOWED_NEEDED = frozenset({"libc.so.6", "libm.so.6", "libgomp.so.1", "libmvec.so.1"})

_DT_NEEDED, _DT_INIT, _DT_FINI, _DT_RPATH, _DT_RUNPATH = 1, 12, 13, 15, 29
_DT_INIT_ARRAY, _DT_FINI_ARRAY, _DT_PREINIT_ARRAY = 25, 26, 32
_LOAD_TIME = {
    _DT_INIT: "DT_INIT (code run at load)",
    _DT_FINI: "DT_FINI (code run at unload)",
    _DT_INIT_ARRAY: "a constructor (DT_INIT_ARRAY: code run at load)",
    _DT_FINI_ARRAY: "a destructor (DT_FINI_ARRAY)",
    _DT_PREINIT_ARRAY: "DT_PREINIT_ARRAY (code run at load)",
    _DT_RPATH: "a run path (DT_RPATH)",
    _DT_RUNPATH: "a run path (DT_RUNPATH)",
}
_SHT_SYMTAB, _SHT_RELA, _SHT_DYNAMIC, _SHT_DYNSYM = 2, 4, 6, 11
_R_X86_64_IRELATIVE, _STT_GNU_IFUNC = 37, 10


class ElfError(ValueError):
    """The file is not an ELF shared library this checker understands."""


def load_time_problems(path: Path) -> list[str]:
    """Why loading ``path`` could run code or pull in other libraries; empty when it cannot."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ElfError(f"{path.name} is not a little-endian 64-bit ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, _shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    problems: list[str] = []
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if kind == _SHT_DYNAMIC:
            strtab = sections[link]
            for at in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, at)
                if tag == 0:
                    break
                if tag == _DT_NEEDED:
                    name = _string(data, strtab[4] + value)
                    if name not in ALLOWED_NEEDED:
                        problems.append(f"needs {name} (a kernel may link only libc, libm and libgomp)")
                elif tag in _LOAD_TIME:
                    problems.append(f"has {_LOAD_TIME[tag]}")
        elif kind == _SHT_RELA and entsize:
            for at in range(offset, offset + size, entsize):
                _where, info, _addend = struct.unpack_from("<QQq", data, at)
                if info & 0xFFFFFFFF == _R_X86_64_IRELATIVE:
                    problems.append("has an ifunc relocation (code run at load)")
                    break
        elif kind in (_SHT_SYMTAB, _SHT_DYNSYM) and entsize:
            for at in range(offset, offset + size, entsize):
                info = data[at + 4]
                if info & 0xF == _STT_GNU_IFUNC:
                    problems.append("defines an ifunc symbol (a resolver runs at load)")
                    break
    return list(dict.fromkeys(problems))


def _string(data: bytes, at: int) -> str:
    end = data.index(b"\0", at)
    return data[at:end].decode(errors="replace")
