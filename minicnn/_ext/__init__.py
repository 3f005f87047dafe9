"""Optional Cython kernels for the CPU: im2col / col2im (``im2col.pyx``) and max pooling (``pool.pyx``).

They are built by ``pip install`` when a C compiler is present (in parallel with OpenMP
when the compiler supports it) and are called only through ``minicnn.backend.cython_kernels``
by the ops in ``minicnn.functional``.  Each kernel computes exactly what the plain NumPy
path next to its caller computes; ``tests/test_kernels.py`` checks the two against each other.
"""
