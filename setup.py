"""Build script: declares the compiled (Cython) kernels of ``minidl.kernels.cpu``.

All metadata lives in ``pyproject.toml``; this file only exists because C extensions
need code to be declared.  The extension list is empty until the compiled-kernel issue
adds ``.pyx`` files; the build works either way.

Environment variables
---------------------
MINIDL_NO_EXT=1        skip the compiled kernels (the NumPy references run instead)
MINIDL_MARCH_NATIVE=1  compile with ``-march=native`` (faster, but the wheel is not portable)
"""

import glob
import os
import sys

from setuptools import setup


def openmp_flags():
    """Compiler and linker flags for OpenMP on this platform."""
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang needs libomp from Homebrew; without it we build single-threaded.
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


def extensions():
    sources = sorted(glob.glob(os.path.join("minidl", "kernels", "cpu", "*.pyx")))
    if not sources or os.environ.get("MINIDL_NO_EXT") == "1":
        return []
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError:
        print("minidl: Cython or NumPy missing at build time; compiled kernels skipped")
        return []
    from setuptools import Extension

    compile_args, link_args = openmp_flags()
    compile_args = ["-O3", *compile_args]
    if os.environ.get("MINIDL_MARCH_NATIVE") == "1":
        compile_args.append("-march=native")
    exts = [
        Extension(
            name=src[:-4].replace(os.sep, "."),
            sources=[src],
            include_dirs=[numpy.get_include()],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for src in sources
    ]
    return cythonize(exts, compiler_directives={"language_level": "3"})


setup(ext_modules=extensions())
