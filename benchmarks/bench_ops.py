"""The hot ops, Cython kernels vs the plain NumPy path: ``minicnn bench`` from the source tree.

The code is ``minicnn/bench.py`` (it ships with the package, so an installed minicnn can
time itself); see there and benchmarks/README.md.  Run it with the BLAS environment as
the user's:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_ops.py
"""
import sys

from minicnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
