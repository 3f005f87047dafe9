# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""ReLU written out in C, the CPU kernels behind ``minicnn.functional.activations``.

Arrays are passed flattened (1-d, C-contiguous, float32 or float64; mask uint8, the bytes
of a NumPy bool array)::

    x, out, dout, dx    (size,)
    mask                (size,)    1 where x > 0, else 0

Why a kernel: the plain path's backward, ``where(mask, dout, 0)``, branches on every
element, and after batch norm about half of the mask is 1 in no pattern a branch
predictor can follow: 7 ns per element here, 16 ms for one 8 MB activation of ResNet-20.
These loops pick without a branch (so the compiler vectorises them), and
the forward pass writes out and the mask in one pass over x.

Semantics are the plain path's: out = maximum(x, 0) keeps a NaN a NaN; the mask is
x > 0 (False for NaN); dx = dout where the mask is set, else exactly 0 (even if dout is
inf or NaN there, as where() gives and PyTorch's threshold_backward).

The flat range is cut into blocks shared out over OpenMP threads with ``prange``.
"""
from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t

ctypedef fused floating:
    float
    double

# Below this many elements a call runs on the calling thread alone: waking and joining the
# OpenMP team costs tens of microseconds (far more on a busy machine) and would eat the gain.
cdef Py_ssize_t PARALLEL_MIN = 1 << 17
PARALLEL_THRESHOLD = PARALLEL_MIN   # visible from Python, for the tests
cdef Py_ssize_t BLOCK = 1 << 14     # elements per parallel work item


cdef void _relu_block(const floating* x, floating* out, unsigned char* mask,
                      Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    for i in range(lo, hi):
        v = x[i]
        out[i] = 0 if v <= 0 else v       # NaN <= 0 is false: a NaN passes through
        mask[i] = v > 0


cdef void _relu_backward_block(const floating* dout, const unsigned char* mask, floating* dx,
                               Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """dx = dout & (all ones if mask else 0), bit for bit: `dout if mask else 0` compiled to a
    branch (15 ms for 2M elements, as slow as where()), the AND of the bits has none and is
    exactly the select (0 bits are +0.0; an inf or NaN dout under a 0 mask gives 0)."""
    cdef Py_ssize_t i
    cdef const uint32_t* d32
    cdef uint32_t* x32
    cdef const uint64_t* d64
    cdef uint64_t* x64
    if floating is float:
        d32 = <const uint32_t*>dout
        x32 = <uint32_t*>dx
        for i in range(lo, hi):
            x32[i] = d32[i] & (<uint32_t>0 - <uint32_t>(mask[i] != 0))
    else:
        d64 = <const uint64_t*>dout
        x64 = <uint64_t*>dx
        for i in range(lo, hi):
            x64[i] = d64[i] & (<uint64_t>0 - <uint64_t>(mask[i] != 0))


def relu_forward(const floating[::1] x, floating[::1] out, unsigned char[::1] mask):
    """out = maximum(x, 0) and mask = (x > 0), in one pass.

    Inputs: x (size,) float32/float64; out (size,) x's dtype and mask (size,) uint8,
    both overwritten.  Returns None.
    """
    cdef Py_ssize_t n = x.shape[0], b, nblocks
    if out.shape[0] != n or mask.shape[0] != n:
        raise ValueError(f"relu_forward: expected out and mask of size {n}, received "
                         f"{out.shape[0]} and {mask.shape[0]}")
    if n == 0:
        return
    nblocks = (n + BLOCK - 1) // BLOCK
    cdef const floating* px = &x[0]
    cdef floating* po = &out[0]
    cdef unsigned char* pm = &mask[0]
    for b in prange(nblocks, nogil=True, schedule="dynamic", use_threads_if=n >= PARALLEL_MIN):
        _relu_block(px, po, pm, b * BLOCK, min(n, (b + 1) * BLOCK))


cdef void _add_relu_block(const floating* a, const floating* b, floating* out, unsigned char* mask,
                          Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    for i in range(lo, hi):
        v = a[i] + b[i]
        out[i] = 0 if v <= 0 else v
        mask[i] = v > 0


def add_relu_forward(const floating[::1] a, const floating[::1] b, floating[::1] out,
                     unsigned char[::1] mask):
    """out = maximum(a + b, 0) and mask = (a + b > 0), in one pass: a residual block's
    relu(branch + shortcut) without storing the sum (bit for bit what a + b then
    relu_forward give).

    Inputs: a, b (size,) float32/float64; out (size,) their dtype and mask (size,) uint8,
    both overwritten (out may be a or b itself).  Returns None.
    """
    cdef Py_ssize_t n = a.shape[0], blk, nblocks
    if b.shape[0] != n or out.shape[0] != n or mask.shape[0] != n:
        raise ValueError(f"add_relu_forward: expected b, out and mask of size {n}, received "
                         f"{b.shape[0]}, {out.shape[0]} and {mask.shape[0]}")
    if n == 0:
        return
    nblocks = (n + BLOCK - 1) // BLOCK
    cdef const floating* pa = &a[0]
    cdef const floating* pb = &b[0]
    cdef floating* po = &out[0]
    cdef unsigned char* pm = &mask[0]
    for blk in prange(nblocks, nogil=True, schedule="dynamic", use_threads_if=n >= PARALLEL_MIN):
        _add_relu_block(pa, pb, po, pm, blk * BLOCK, min(n, (blk + 1) * BLOCK))


def relu_backward(const floating[::1] dout, const unsigned char[::1] mask, floating[::1] dx):
    """dx = dout where mask, else 0.

    Inputs: dout (size,) float32/float64 (not modified); mask (size,) uint8 from
    relu_forward; dx (size,) dout's dtype, overwritten.  Returns None.
    """
    cdef Py_ssize_t n = dout.shape[0], b, nblocks
    if mask.shape[0] != n or dx.shape[0] != n:
        raise ValueError(f"relu_backward: expected mask and dx of size {n}, received "
                         f"{mask.shape[0]} and {dx.shape[0]}")
    if n == 0:
        return
    nblocks = (n + BLOCK - 1) // BLOCK
    cdef const floating* pd = &dout[0]
    cdef const unsigned char* pm = &mask[0]
    cdef floating* px = &dx[0]
    for b in prange(nblocks, nogil=True, schedule="dynamic", use_threads_if=n >= PARALLEL_MIN):
        _relu_backward_block(pd, pm, px, b * BLOCK, min(n, (b + 1) * BLOCK))
