"""Optional Cython kernels for the CPU: im2col / col2im (``im2col.pyx``), max pooling
(``pool.pyx``), spatial batch norm and its fused ReLU (``batchnorm.pyx``), ReLU and the
residual add + ReLU (``activations.pyx``), cross-channel LRN (``lrn.pyx``), the
transforms of the Winograd F(2x2, 3x3) convolution (``winograd.pyx``), and a direct
stride-1 convolution and its weight gradient for thin layers (``direct.pyx`` around the C
of ``direct_conv.h``: AVX-512 or AVX2 code, chosen when it runs by asking the CPU).

They are built by ``pip install`` when a C compiler is present (in parallel with OpenMP
when the compiler supports it) and are called only through ``minicnn.backend.cython_kernels``
by the ops in ``minicnn.functional``: the convolution's by ``conv_im2col.py`` (im2col_t /
col2im_t), ``conv_winograd.py`` and ``conv_direct.py``, which ``conv.choose_algorithm``
picks between; pooling, batch norm, ReLU and LRN by their ops.  Each kernel computes
exactly what the plain NumPy path next to its caller computes; ``tests/test_kernels.py``, ``test_batchnorm_kernel.py``,
``test_relu_kernel.py``, ``test_lrn_kernel.py``, ``test_winograd.py`` and ``test_direct.py``
check the two against each other (the Winograd transforms against
``minicnn/functional/winograd.py``, the direct kernels against the naive conv).
"""
import os

# The kernels' OpenMP threads and OpenBLAS's threads take turns on the same cores: a conv
# is im2col (OpenMP) then GEMM (OpenBLAS) then col2im (OpenMP).  By default libgomp keeps
# its idle threads spinning for a while after each parallel loop, and on a small machine
# those spinning threads starve the GEMM that follows (measured: a 256^3 GEMM after an
# im2col took 8 ms instead of 0.2 ms on 2 cores).  Idle threads that sleep cost a few
# microseconds to wake instead.  libgomp reads this when it is loaded, i.e. when the first
# kernel module below is imported; a value the user set is left alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
