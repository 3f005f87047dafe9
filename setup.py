"""Build the Cython kernels in minicnn/_ext.

Everything else about the package lives in pyproject.toml; this file exists only
because extension modules need code to configure.  OpenMP is used when the compiler
accepts it (the kernels then run in parallel over the batch) and left out otherwise,
giving a clean serial build.  The extension is optional: if it cannot be built at
all, minicnn still installs and runs on its pure-NumPy path (with one warning).
"""
import os
import shutil
import subprocess
import sys
import tempfile
from glob import glob

import numpy
from setuptools import Extension, setup
from Cython.Build import cythonize


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or ([], []) if the compiler lacks it."""
    if os.environ.get("MINICNN_NO_OPENMP"):
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    cc = os.environ.get("CC", "cc")
    flags = ["-Xpreprocessor", "-fopenmp"] if sys.platform == "darwin" else ["-fopenmp"]
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "t.c")
        with open(path, "w") as f:
            f.write(src)
        cmd = [cc, *flags, path, "-o", os.path.join(tmp, "t"), *(["-lomp"] if sys.platform == "darwin" else ["-fopenmp"])]
        ok = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        ok = False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        print("minicnn: compiler has no OpenMP; building the kernels serial", file=sys.stderr)
        return [], []
    return flags, (["-lomp"] if sys.platform == "darwin" else ["-fopenmp"])


compile_omp, link_omp = openmp_flags()
# -fno-math-errno: sqrt may then compile to the vector square root; with errno it is a call
# that may set errno, and a loop holding it is not vectorised (the LRN kernel's power by
# square roots: 2x).  No kernel reads errno, and every result is the same.
extra_compile = ["-O3", "-fno-math-errno"] if sys.platform != "win32" else ["/O2"]

extensions = [
    Extension(
        "minicnn._ext." + os.path.splitext(os.path.basename(pyx))[0],
        [pyx],
        # The C headers and Cython includes: a change to them must rebuild the module.
        depends=sorted(glob(os.path.join("minicnn", "_ext", "*.h")) + glob(os.path.join("minicnn", "_ext", "*.pxi"))),
        include_dirs=[numpy.get_include()],
        extra_compile_args=extra_compile + compile_omp,
        extra_link_args=link_omp,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        optional=True,
    )
    for pyx in sorted(glob(os.path.join("minicnn", "_ext", "*.pyx")))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
