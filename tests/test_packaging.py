"""The compiled modules ship without debug information.

CPython's CFLAGS carry ``-g``, which once made the wheel 3.4 MB and the installed
package 9.5 MB, most of it DWARF. ``setup.py`` compiles with ``-g0`` and links with
the debug sections stripped unless ``BLAZEWS_DEBUG_BUILD=1``. The check reads each
extension module's ELF section names with the small reader below (no ``readelf``
needed) and wants no ``.debug_*`` section, but the dynamic symbol table that the
import needs (``PyInit_*``) still there.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest

import blazews

PACKAGE = Path(blazews.__file__).resolve().parent


def elf_section_names(path: Path) -> list[str]:
    """The section names of the ELF file at ``path`` (32 or 64-bit, either byte order)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF file")
    wide = {1: False, 2: True}[data[4]]  # EI_CLASS: ELFCLASS32, ELFCLASS64
    order = {1: "<", 2: ">"}[data[5]]  # EI_DATA: little or big endian
    # The ELF header's e_shoff, then e_shentsize, e_shnum and e_shstrndx.
    if wide:
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        entsize, count, names_index = struct.unpack_from(order + "HHH", data, 0x3A)
        header = order + "IIQQQQIIQQ"  # Elf64_Shdr
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        entsize, count, names_index = struct.unpack_from(order + "HHH", data, 0x2E)
        header = order + "IIIIIIIIII"  # Elf32_Shdr

    def section(index: int) -> tuple[int, ...]:
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, ...
        return struct.unpack_from(header, data, shoff + index * entsize)

    if shoff == 0:
        return []
    first = section(0)
    if count == 0:  # more than 0xff00 sections: the count is section 0's sh_size
        count = first[5]
    if names_index == 0xFFFF:  # SHN_XINDEX: the index is section 0's sh_link
        names_index = first[6]
    names = section(names_index)
    table = data[names[4] : names[4] + names[5]]
    result = []
    for index in range(count):
        start = section(index)[0]
        result.append(table[start : table.index(b"\0", start)].decode("ascii"))
    return result


def extension_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.so"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF: Linux only")
@pytest.mark.skipif(blazews.IMPLEMENTATION == "python", reason="pure-Python build")
@pytest.mark.skipif(
    os.environ.get("BLAZEWS_DEBUG_BUILD", "") not in ("", "0"),
    reason="BLAZEWS_DEBUG_BUILD keeps the debug information",
)
def test_extension_modules_carry_no_debug_information() -> None:
    modules = extension_modules()
    assert modules, f"no compiled module under {PACKAGE}"
    with_debug = {}
    for path in modules:
        sections = elf_section_names(path)
        assert ".text" in sections and ".dynsym" in sections, (path, sections)
        debug = [name for name in sections if name.startswith((".debug", ".zdebug"))]
        if debug:
            with_debug[path.relative_to(PACKAGE).as_posix()] = debug
    assert not with_debug, (
        f"built with debug information: {with_debug} (a build from before setup.py "
        "stripped it? rebuild: pip install -e .)"
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF: Linux only")
def test_elf_reader_reads_this_interpreter() -> None:
    """The reader itself, on a file that is there whatever the build: the interpreter."""
    sections = elf_section_names(Path(os.path.realpath(sys.executable)))
    assert sections[0] == ""  # section 0 is the null section, with no name
    assert ".text" in sections and ".shstrtab" in sections
