"""Build script: the package, plus the optional compiled extensions.

``BLAZEWS_NO_EXTENSIONS=1`` builds pure Python only. A failed compile also falls back
to pure Python (with a warning), so the package installs without a compiler.

The native kernels (``src/blazews/_native``) are one C file per instruction-set level,
each compiled with its own flags and linked into ``blazews._native._kernels``, which
picks a level at import by CPU detection. ``BLAZEWS_NOASM=1`` compiles no SIMD level
at all (scalar C only). A SIMD level the compiler cannot build is left out, with a
warning, and the others still build.

The compiled modules carry no debug information: CPython's own CFLAGS have ``-g``,
which made them more than five times their size. With GCC or Clang every file is compiled
with ``-g0`` and linked with the debug sections stripped (``-Wl,--strip-debug`` on
Linux, ``-Wl,-S`` on macOS); the symbol tables stay, so profilers still name the
functions. ``BLAZEWS_DEBUG_BUILD=1`` (or ``build_ext --debug``) keeps the debug
information, for profiling down to source lines (callgrind, perf) or a debugger. MSVC
writes none in a release build anyway.
"""

from __future__ import annotations

import glob
import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PACKAGE = os.path.join("src", "blazews")
NATIVE = os.path.join(PACKAGE, "_native")
SANSIO = os.path.join(PACKAGE, "sansio")

# Plain Python modules that Cython also compiles (pure-Python mode): each source
# ``_x_py.py`` is built as the extension module ``_x_c``, typed by ``_x_c.pxd`` (Cython
# finds the augmenting .pxd by the module's name). One source, two builds, and nothing
# importable under the compiled name but the extension: ``blazews._impl.select``
# relies on it to tell which runs.
PURE_MODULES = [
    ("blazews.sansio._events_c", os.path.join(SANSIO, "_events_py.py")),
    ("blazews.sansio._sending_c", os.path.join(SANSIO, "_sending_py.py")),
    ("blazews.sansio._protocol_c", os.path.join(SANSIO, "_protocol_py.py")),
    ("blazews.sync._frame_reader_c", os.path.join(PACKAGE, "sync", "_frame_reader_py.py")),
    ("blazews._buffers_c", os.path.join(PACKAGE, "_buffers_py.py")),
    ("blazews.asyncio._readpath_c", os.path.join(PACKAGE, "asyncio", "_readpath_py.py")),
    ("blazews.asyncio._queued_c", os.path.join(PACKAGE, "asyncio", "_queued_py.py")),
]


def _pxd_of(name: str) -> str:
    """The .pxd that types the extension module ``name``."""
    return os.path.join("src", *name.split(".")) + ".pxd"

# Compiler flags per SIMD level, for GCC/Clang ("unix") and MSVC.
SIMD_FLAGS = {
    "unix": {
        "sse2": ["-msse2"],
        "avx2": ["-mavx2"],
        "avx512": ["-mavx512f", "-mavx512bw"],
        "neon": [],
    },
    "msvc": {
        "sse2": [],
        "avx2": ["/arch:AVX2"],
        "avx512": ["/arch:AVX512"],
        "neon": [],
    },
}


_KERNEL_SOURCES = ["kernel_sse2.c", "kernel_avx2.c", "kernel_avx512.c", "kernel_neon.c"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _no_extensions() -> bool:
    return _flag("BLAZEWS_NO_EXTENSIONS")


def _warn(message: str) -> None:
    print(f"WARNING: blazews: {message}", file=sys.stderr)


def _simd_levels() -> list[str]:
    """The SIMD levels to compile for the machine we build on."""
    if _flag("BLAZEWS_NOASM"):
        return []
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "x64", "i386", "i486", "i586", "i686", "x86"):
        return ["sse2", "avx2", "avx512"]
    if machine in ("aarch64", "arm64"):
        return ["neon"]
    return []


class BuildExt(build_ext):
    """build_ext that compiles each kernel level with its own flags, and never fails.

    Any compiler or linker error leaves the package pure Python, with a warning.
    """

    def run(self) -> None:
        self._failed: list[str] = []
        try:
            super().run()
        except Exception as exc:  # no compiler at all, for one
            if not self._failed:  # else already said, and this is its aftermath
                _warn(f"building the extensions failed ({exc}); using pure Python")

    def build_extension(self, ext: Extension) -> None:
        try:
            self._strip_debug_info(ext)  # first: the SIMD objects take its compile args
            if ext.name == "blazews._native._kernels":
                self._add_simd_objects(ext)
            super().build_extension(ext)
        except Exception as exc:
            self._failed.append(ext.name)
            _warn(f"building {ext.name} failed ({exc}); using pure Python")
            stale = self.get_ext_fullpath(ext.name)  # from an earlier build, if any
            if os.path.exists(stale):
                os.remove(stale)

    def _strip_debug_info(self, ext: Extension) -> None:
        """Compile ``ext`` without debug information and link it stripped of any.

        GCC and Clang only (MSVC writes none in a release build); the flags go after
        CPython's CFLAGS, so ``-g0`` overrides their ``-g``. Kept with
        ``BLAZEWS_DEBUG_BUILD=1`` or ``build_ext --debug``.
        """
        if self.debug or _flag("BLAZEWS_DEBUG_BUILD") or self.compiler.compiler_type != "unix":
            return
        if "-g0" not in ext.extra_compile_args:  # once, however many passes
            ext.extra_compile_args.append("-g0")
        if sys.platform.startswith("linux"):
            strip = "-Wl,--strip-debug"  # GNU ld, gold, lld and mold alike
        elif sys.platform == "darwin":
            strip = "-Wl,-S"  # ld64 has no --strip-debug
        else:
            return  # another linker: -g0 alone
        if strip not in ext.extra_link_args:
            ext.extra_link_args.append(strip)

    def _add_simd_objects(self, ext: Extension) -> None:
        if any(name.startswith("BWS_HAVE_") for name, _ in ext.define_macros):
            return  # already done by an earlier pass over this Extension
        flags = SIMD_FLAGS["msvc" if self.compiler.compiler_type == "msvc" else "unix"]
        built: list[str] = []
        for level in _simd_levels():
            if level == "avx512" and "avx2" not in built:
                continue  # its table reuses the AVX2 mask
            source = os.path.join(NATIVE, f"kernel_{level}.c")
            try:
                objects = self.compiler.compile(
                    [source],
                    output_dir=self.build_temp,
                    include_dirs=[NATIVE],
                    debug=self.debug,
                    extra_postargs=list(ext.extra_compile_args) + flags[level],
                    depends=[os.path.join(NATIVE, "kernel.h")],
                )
            except Exception as exc:
                _warn(f"the {level} kernels did not compile ({exc}); leaving them out")
                continue
            built.append(level)
            ext.extra_objects.extend(objects)
            ext.define_macros.append((f"BWS_HAVE_{level.upper()}", "1"))


def _remove_inplace_builds() -> None:
    """Remove a compiled kernel module left beside the sources by an earlier build.

    An editable install builds it in place; without this, a later pure build would
    leave it there and it would still be imported.
    """
    stale = glob.glob(os.path.join(NATIVE, "_kernels.*"))
    for name, _ in PURE_MODULES:
        stale += glob.glob(_pxd_of(name)[: -len(".pxd")] + ".*")
    for path in stale:
        if path.endswith((".so", ".pyd")):
            os.remove(path)
            _warn(f"removed {path} (BLAZEWS_NO_EXTENSIONS)")


def _extensions() -> list[Extension]:
    if _no_extensions():
        _remove_inplace_builds()
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not installed; using pure Python")
        return []
    kernels = Extension(
        "blazews._native._kernels",
        sources=[os.path.join(NATIVE, "_kernels.pyx"), os.path.join(NATIVE, "kernel.c")],
        include_dirs=[NATIVE],
        # Every source, the .pyx too (cythonize swaps it for the generated C), so
        # that an sdist carries them all.
        depends=[
            os.path.join(NATIVE, name)
            for name in ["kernel.h", "done.h", "ready.h", "_kernels.pyx", "_kernels.pxd"]
            + _KERNEL_SOURCES
        ],
    )
    # The protocol core (its events, cimported by the state machine, as is the
    # kernels' mask_inplace), the frame reader, the buffer pool and the asyncio read
    # path (which cimports the core): each pure module _x_py.py compiled as _x_c,
    # with the C types of _x_c.pxd.
    pure = [
        Extension(
            name,
            sources=[source],
            depends=[
                _pxd_of(name),
                os.path.join(SANSIO, "_events_c.pxd"),
                os.path.join(SANSIO, "_sending_c.pxd"),  # the core derives from Writer
                os.path.join(SANSIO, "_protocol_c.pxd"),  # the read path cimports the core
                os.path.join(PACKAGE, "asyncio", "_readpath_c.pxd"),  # _queued cimports it
                os.path.join(NATIVE, "_kernels.pxd"),  # the core cimports mask_inplace
            ],
        )
        for name, source in PURE_MODULES
    ]
    kernels_ext = cythonize(
        [kernels],
        build_dir=os.path.join("build", "cython"),
        compiler_directives={"language_level": "3"},
        quiet=True,
    )
    pure_ext = cythonize(
        pure,
        build_dir=os.path.join("build", "cython"),
        compiler_directives={
            "language_level": "3",
            "annotation_typing": False,  # the .pxd gives the types, not the hints
            "boundscheck": False,
            "wraparound": False,
        },
        quiet=True,
    )
    return list(kernels_ext) + list(pure_ext)


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExt},
    # The C and Cython sources go in the sdist, not beside the built module.
    exclude_package_data={"blazews._native": ["*.c", "*.h", "*.pyx"]},
)
