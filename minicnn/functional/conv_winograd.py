"""Winograd F(2x2, 3x3) as the CPU runs it: chunks of images, shared out over the cores.

The algorithm -- transform the input tiles (V) and the filters (U), 16 GEMMs
M[xi] = U[xi] @ V[xi], transform back -- is ``minicnn/functional/winograd.py`` in plain
NumPy (read that first).  Here the transforms are the Cython kernels of
``minicnn/_ext/winograd.pyx``, and a batch is cut into chunks whose Winograd-domain
buffers fit the core's cache, as the chunked im2col conv does (``conv_im2col.py``).

The chunk loops are written below in Python (``images`` in forward and backward); where
NumPy's BLAS can be called from C, each thread runs the same loop in one call into C
instead (``forward_chunks``, ``backward_chunks``; see C_LOOPS for why).
"""
import numpy as np

from minicnn import backend, runtime
from minicnn.functional import winograd

# Winograd F(2x2, 3x3) for 3x3 stride-1 layers with at least this many input and output
# channels.  Its 16 GEMMs have C as their inner dimension and its tile transforms cost about
# as much as the GEMMs, so the 2.25x fewer multiplies only pay on wide enough layers.
# Measured first on a Zen3 (alternating runs in one process, batch 128, 2 cores), im2col ->
# Winograd fwd / bwd ms: 64->64 8x8 4.9 -> 3.7 / 10.5 -> 8.1; 32->32 16x16 8.0 -> 6.5 /
# 15.0 -> 13.9; VGG 128->256 56x56 (N4) 60 -> 28 / 85 -> 85; but 16->16 32x32 10.5 -> 12.6 /
# 22.6 -> 24.1, so the bound was 32.  Since the Winograd path stopped looking up its
# workspace per chunk and writes V^T by rows of tiles, 16-channel layers gain too (Intel
# Xeon VM, float32, direct kernel off): 16->16 32x32 8.1 -> 5.9 / 15.0 -> 13.1; 16->16 16x16
# 2.7 -> 1.8 / 4.2 -> 3.4; 24->24 16x16 3.8 -> 2.8 / 6.8 -> 5.5; float64 16->16 32x32
# 13.7 -> 8.4 / 26 -> 21; SqueezeNet's 16->64 55x55 (N16) even.  (Thin float32 layers go to
# the direct kernel first, where the CPU has AVX2: see conv_direct.py.)
MIN_CHANNELS = 16
# A chunk's Winograd-domain input V (16 values per 2x2 output tile and channel) is kept about this size.
CHUNK_BYTES = 256 << 10
# ... but a layer whose transformed filters U (16 * F * C values) are at least one image's V
# gets chunks of at least this many tiles, so that its 16 GEMMs do not spend their time
# re-reading U (runtime.images_per_chunk).  Measured (2 cores), fwd / bwd ms by images per
# chunk: ResNet-18's 512->512 7x7 (16 tiles per image, U 16 MB, batch 32) 1: 46 / 144,
# 4: 38 / 86, 8: 35 / 68, 16: 35 / 76; 256->256 14x14 (49 tiles, U 4 MB) 1: 25 / 50,
# 4: 20 / 39, 8: 19 / 42; the CIFAR ResNet's 64->64 8x8 (16 tiles, U 256 KB, batch 128)
# 2: 3.0 / 6.2, 4: 2.5 / 4.8, 8: 2.3 / 4.4, 16: 3.1 / 5.9.
MIN_TILES = 128
# Elements of padding between the 16 matrices of a Winograd-domain buffer: the transforms
# touch all 16 for every tile, and 16 streams a multiple of 4 KB apart thrash the L1 cache
# (see minicnn/_ext/winograd.pyx).
GAP = 32


def applies(w_shape, stride, groups):
    """True if conv2d_forward should run this layer by Winograd (the kernels being built)."""
    f, cg, kh, kw = w_shape
    return (kh == kw == 3 and stride == 1 and groups == 1
            and min(f, cg) >= MIN_CHANNELS and backend.cython_kernels(np, "winograd") is not None)


def chunk_size(n, c, th, tw, itemsize, f=0):
    """Images per chunk: as many as fit CHUNK_BYTES of V (16 values per tile and channel), at
    least 1 -- or at least MIN_TILES tiles when U (16 * f * c values) outweighs an image's V."""
    return runtime.images_per_chunk(n, 16 * c * th * tw * itemsize, th * tw, 16 * f * c * itemsize,
                                    CHUNK_BYTES, MIN_TILES)


def _domain_buffer(name, rows, t, most, dtype):
    """A (16, rows, t) workspace view whose 16 matrices lie GAP elements apart
    (room for up to ``most`` columns, so every chunk of a layer reuses the same memory)."""
    stride = rows * most + GAP
    buf = runtime.workspace(name, (16 * stride,), dtype)
    return buf.reshape(16, stride)[:, :rows * t].reshape(16, rows, t)


def _domain_buffers(most, dtype, **rows):
    """buffers(t) -> one _domain_buffer view per keyword (name=rows), t columns each.

    A full chunk (t == most) gets views made once: with 4-image chunks the two or three
    workspace lookups per chunk cost ~10% of the 64->64 8x8 layer's time.
    """
    def views(t):
        return tuple(_domain_buffer(name, r, t, most, dtype) for name, r in rows.items())
    full = views(most)
    return lambda t: full if t == most else views(t)


# Run each thread's share of the chunks as one call into C (kernels.forward_chunks and
# backward_chunks: the loops below, GEMMs included) where NumPy's BLAS can be called from C.
# A Python loop of short calls on two threads spends its time handing the GIL back and
# forth (minicnn/_ext/blas_gemm.h).  Measured on the 2-core Xeon (alternating in one
# process, 2 threads), fwd / bwd ms, Python loops -> C loops: 32->32 16x16 (batch 128)
# 3.0-3.7 / 5.9-6.8 -> 2.1-2.2 / 4.3 (one thread: 4.4 / 9.5, so two had gained only
# 1.4x); 64->64 8x8 2.3 / 4.2-4.3 -> 2.1 / 3.7; batch 32: 256->256 14x14 17.7 / 35 -> 17.6 /
# 33, 512->512 7x7 23 / 54 -> 23 / 47 (dU summed by the GEMM itself); 128->256 56x56 (batch 4)
# the same.  ResNet-20 training 493 -> 540 images/s.  False: always the Python loops (the
# tests compare both).
C_LOOPS = True


def _c_loops(kernels):
    """True if the chunk loops run in C: C_LOOPS, and the kernels can call BLAS."""
    return C_LOOPS and runtime.gemm_in_c(kernels)


def forward(x, w, b, pad, oh, ow):
    """out (N, F, OH, OW) of a 3x3 stride-1 conv by Winograd F(2x2, 3x3), a chunk at a time.

    Per chunk of m images: V = the input tiles transformed (16, C, m*T), then the 16
    GEMMs M[xi] = U[xi] @ V[xi] in one batched matmul, then the output transform writes
    the chunk's NCHW output (bias added).  U, the transformed filters, is made once.
    """
    kernels = backend.cython_kernels(np, "winograd")
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    f = w.shape[0]
    th, tw = winograd.tiles_of(oh, ow)
    u = np.empty((16, f, c), dtype=x.dtype)
    kernels.filter_transform(np.ascontiguousarray(w), u)               # U = G g G^T
    out = runtime.empty_output((n, f, oh, ow), x.dtype)       # recycled memory: runtime.py
    step = chunk_size(n, c, th, tw, x.itemsize, f)

    def images(chunks):
        buffers = _domain_buffers(step * th * tw, x.dtype, winograd_v=c, winograd_m=f)
        for n0 in chunks:
            m = min(step, n - n0)
            v, mm = buffers(m * th * tw)
            kernels.input_transform(x[n0:n0 + m], pad, v)
            np.matmul(u, v, out=mm)
            kernels.output_transform(mm, b, out[n0:n0 + m])

    fn = _forward_in_c(kernels, x, u, b, pad, out, step * th * tw, step) if _c_loops(kernels) else images
    runtime.run_chunks(fn, n, step, n * f * c * th * tw * 16)
    return out


def _forward_in_c(kernels, x, u, b, pad, out, most, step):
    """forward's ``images`` loop as one call into C per thread (``most``: a chunk's columns)."""
    next_image = np.zeros(1, dtype=np.int64)          # the threads' shared chunk counter
    c, f = u.shape[2], u.shape[1]

    def chunks_in_c(chunks):                          # the iterator is unused: C takes next_image
        v, mm = _domain_buffers(most, x.dtype, winograd_v=c, winograd_m=f)(most)
        kernels.forward_chunks(x, u, b, pad, out, v, mm, step, next_image)
    return chunks_in_c


def backward(dout, x, w, pad, need_dx=True, need_dw=True):
    """(dx, dw) of forward, chunk by chunk (see winograd.py for the algebra).

    Per chunk: dM = the output gradient transformed; V^T recomputed from x; dU += dM @ V^T;
    then dV = U^T @ dM, which the input-gradient transform adds back onto the chunk's
    images of dx.  dU is summed per thread over fixed shares of the chunks, added up in a
    fixed order (``runtime.sum_over_chunks``).  ``need_dx=False`` / ``need_dw=False`` skip
    dx / dw (None).
    """
    kernels = backend.cython_kernels(np, "winograd")
    x = np.ascontiguousarray(x)
    dout = np.ascontiguousarray(dout)
    n, c = x.shape[:2]
    f = w.shape[0]
    th, tw = winograd.tiles_of(*dout.shape[2:])
    dx = u = u_t = None
    if need_dx:                                  # U is needed only for dV = U^T @ dM
        dx = runtime.empty_output(x.shape, x.dtype)
        u = np.empty((16, f, c), dtype=x.dtype)
        kernels.filter_transform(np.ascontiguousarray(w), u)
        u_t = u.swapaxes(1, 2)                                        # (16, C, F) view
    step = chunk_size(n, max(c, f), th, tw, x.itemsize, f)

    def images(chunks):
        du_part = runtime.workspace("winograd_du", (16, f, c), x.dtype)
        du = np.zeros((16, f, c), dtype=x.dtype)
        # dV's buffer only when dx is wanted (a training step's first layer skips it).
        buffers = _domain_buffers(step * th * tw, x.dtype, winograd_m=f, winograd_vt=c,
                                  **({"winograd_v": c} if need_dx else {}))
        for n0 in chunks:
            m = min(step, n - n0)
            t = m * th * tw
            views = buffers(t)                  # dM, V^T (and dV)
            dm, vt = views[0], views[1]
            kernels.output_grad_transform(dout[n0:n0 + m], dm)
            if need_dw:
                # V recomputed, transposed: NumPy's matmul ran dU = dM @ V^T 2x faster from a
                # contiguous V^T than from a transposed view (64->64 8x8, 4 images: 157 -> 58 us).
                vt = vt.reshape(16, t, c)
                kernels.input_transform(x[n0:n0 + m], pad, vt, channels_last=True)
                np.matmul(dm, vt, out=du_part)
                du += du_part
            if not need_dx:
                continue
            dv = views[2]
            np.matmul(u_t, dm, out=dv)
            kernels.input_grad_transform(dv, pad, dx[n0:n0 + m])
        return du

    if _c_loops(kernels):
        images = _backward_in_c(kernels, dout, x, pad, u, dx, f, need_dw, step * th * tw, step)
    du = runtime.sum_over_chunks(images, n, step, n * f * c * th * tw * 16)
    if not need_dw:
        return dx, None
    dw = np.empty(w.shape, dtype=x.dtype)
    kernels.filter_grad_transform(du, dw)                             # dw = G^T dU G
    return dx, dw


def _backward_in_c(kernels, dout, x, pad, u, dx, f, need_dw, most, step):
    """backward's ``images`` loop as one call into C per thread: the thread's fixed share of
    the chunks, its dU returned (None without dw).  u: U (None without dx)."""
    c = x.shape[1]

    def chunks_in_c(chunks):                          # chunks: range(first, n, every), see share_out
        du = np.zeros((16, f, c), dtype=x.dtype) if need_dw else None
        views = _domain_buffers(most, x.dtype, winograd_m=f, winograd_vt=c,
                                **({"winograd_v": c} if dx is not None else {}))(most)
        kernels.backward_chunks(x, dout, pad, u, dx, du, views[0], views[1],
                                views[2] if dx is not None else None, step, chunks.start // step,
                                chunks.step // step)
        return du
    return chunks_in_c
