"""2-D convolution (cross-correlation, as every deep-learning library computes it).

    out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, g*Cg + c, i*S + p, j*S + q]

where ``g`` is the group of filter ``f``: with ``groups=G`` the C input channels and
F filters are split into G independent convolutions of C/G -> F/G channels each
(AlexNet's two-GPU split, ResNeXt's cardinality; G = C is a depthwise conv).

Shapes::

    x    (N, C, H, W)
    w    (F, C // G, KH, KW)
    b    (F,) or None
    out  (N, F, OH, OW),  OH = (H + 2*pad - KH) // stride + 1,  OW likewise

Four versions, each checked against the first in the tests:

* ``conv2d_forward_naive`` / ``conv2d_backward_naive`` -- a loop over output positions,
  one window at a time: slow, but it is the definition, and the tests' reference;
* ``_forward_batched`` / ``_backward_batched`` -- im2col + GEMM for the whole batch at
  once.  The windows of each image become the columns of a (C*KH*KW, OH*OW) matrix, and
  the layer is one batched matrix product per group,
  ``(G, F/G, Cg*KH*KW) @ (N, G, Cg*KH*KW, OH*OW) -> (N, G, F/G, OH*OW)``, already the NCHW
  output (grouped convolution is the same matmul with a group axis, never a Python loop
  over groups).  The textbook form; ``conv2d_forward`` runs it for CuPy arrays and with
  the Cython kernels switched off;
* ``_forward_chunked`` / ``_backward_chunked`` -- the same algebra as the CPU runs it:
  a few images at a time (a chunk whose columns fit the core's cache, in a reused
  workspace buffer), the chunk's images side by side so that each group is one wide
  GEMM, chunks shared out over the cores.  Why: the whole batch's columns are KH*KW
  times the size of x (75 MB for a CIFAR ResNet layer at batch 128), fall out of the
  cache between im2col and the GEMM, and a fresh array that large costs a page fault per
  4 KB; and N small per-image GEMMs, each split over threads by BLAS, waste most of a
  small machine's time in fork/join.  The docstrings of the two functions give details;
* ``_forward_winograd`` / ``_backward_winograd`` -- 3x3 stride-1 layers with at least
  WINOGRAD_MIN_CHANNELS channels on the CPU: Winograd's F(2x2, 3x3), 2.25x fewer
  multiplies, chunked and threaded the same way (the algorithm, in plain NumPy, is
  ``minicnn/functional/winograd.py``);
* ``_forward_direct`` / ``_backward_direct`` -- stride-1 float32 layers with at most
  DIRECT_MAX_CHANNELS channels, on CPUs with AVX2 or AVX-512: the naive loops' algebra
  again, but a register block of filters x output positions at a time with vector FMAs
  (``minicnn/_ext/direct_conv.h``), where im2col's GEMMs would be too thin for BLAS.

``conv2d_forward`` / ``conv2d_backward`` are the public pair; they pick the version.
The cache keeps x rather than its columns, and the backward pass recomputes them
(as PyTorch does): one copy of each activation in memory instead of KH*KW.
"""
import os

import numpy as np

from minicnn import backend
from minicnn.functional import winograd, workspace
from minicnn.functional._validate import check_float_array, check_int, check_shape, output_size
from minicnn.functional.im2col import col2im, im2col


def _conv_geometry(op, x, w, b, stride, pad, groups):
    """Validate conv arguments; return (stride, pad, groups, OH, OW)."""
    check_float_array(op, "x", x, ndim=4)
    check_float_array(op, "w", w, ndim=4, dtype=x.dtype)
    stride = check_int(op, "stride", stride, 1)
    pad = check_int(op, "pad", pad, 0)
    groups = check_int(op, "groups", groups, 1)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    if c % groups or f % groups:
        raise ValueError(f"{op}: expected input channels ({c}) and filters ({f}) divisible by "
                         f"groups, received groups={groups}")
    if cg * groups != c:
        raise ValueError(f"{op}: expected w of shape (F, C // groups, KH, KW) = ({f}, {c // groups}, "
                         f"{kh}, {kw}) for x with C={c} channels, received w of shape {tuple(w.shape)}")
    if kh < 1 or kw < 1 or f < 1:
        raise ValueError(f"{op}: expected a non-empty w, received shape {tuple(w.shape)}")
    if b is not None:
        check_float_array(op, "b", b, ndim=1, dtype=x.dtype)
        check_shape(op, "b", b, (f,))
    oh, ow = output_size(op, h, wd, kh, kw, stride, pad)
    return stride, pad, groups, oh, ow


# A chunk's column matrix is kept about this size (bytes): small enough to still be in the
# core's L2 cache when the GEMM reads it right after im2col wrote it (measured on Zen3:
# LeNet conv1 ran ~2x faster with 0.3 MB chunks than with 2 MB ones).  Tests shrink it to
# force many chunks on small inputs.
CHUNK_BYTES = 512 << 10
# Below this many multiply-adds a layer runs on the calling thread: handing chunks to
# worker threads costs tens of microseconds.
PARALLEL_MIN_MACS = 4 << 20


def _chunk_size(n, k, p, itemsize):
    """Images per chunk: as many as fit CHUNK_BYTES of columns (k rows, p per image), at least 1."""
    return max(1, min(n, CHUNK_BYTES // max(1, k * p * itemsize)))


def _run(fn, n, step, macs, fixed_shares=False):
    """fn(chunks) on worker threads (BLAS single-threaded meanwhile), or on the calling thread.

    ``chunks`` is an iterator over the first image of every chunk, range(0, n, step); fn
    processes the chunks it takes from it and returns its partial result (a list of
    them is returned, one per thread).  With several threads they share ONE iterator,
    taking the next chunk as they come free: the cores stay busy to the last chunk, even
    when another process slows one of them down.  (Fixed shares -- 4 ranges of images
    per core before this -- left a core idle for up to a range's time at the end; measured
    at load ~1.4, fwd+bwd of the CIFAR ResNet 64->64 8x8 layer went 17.4 -> 16.1 ms, of
    the 16->16 32x32 one 31.6 -> 30.0 ms.)  Taking from a range iterator is atomic under
    the GIL.

    ``fixed_shares=True``: thread t takes chunks t, t + T, t + 2T, ... instead.  The backward
    pass needs that: each thread sums dW over its chunks, and float addition is not
    associative, so chunks taken as threads come free would make dW -- and a training run
    -- differ in the last bits from run to run (a resumed run would no longer end
    bit-identical to an uninterrupted one).
    """
    starts = range(0, n, step)
    threads = min(len(starts), workspace.cpu_count())
    if threads < 2 or macs < PARALLEL_MIN_MACS or workspace.blas_threads() is None:
        return [fn(iter(starts))]
    if fixed_shares:
        shares = [iter(starts[t::threads]) for t in range(threads)]
    else:
        shares = [iter(starts)] * threads
    with workspace.single_threaded_blas():
        futures = [workspace.thread_pool().submit(fn, chunks) for chunks in shares]
        return [f.result() for f in futures]


def conv2d_forward(x, w, b, stride=1, pad=0, groups=1):
    """Convolution by im2col + GEMM.

    Inputs:
    - x: (N, C, H, W) float32 or float64
    - w: (F, C // groups, KH, KW), same dtype;  b: (F,) or None
    - stride, pad, groups: ints (stride >= 1, pad >= 0, groups divides C and F)
    Returns (out, cache); out: (N, F, OH, OW).

    The cache holds x, not its columns: the backward pass recomputes them (as PyTorch
    does), which keeps a network's memory at one copy of each activation instead of
    KH*KW copies.  So x must not be modified in place before conv2d_backward.
    """
    op = "conv2d_forward"
    xp = backend.get_array_module(x=x, w=w, b=b, op=op)
    stride, pad, groups, oh, ow = _conv_geometry(op, x, w, b, stride, pad, groups)
    kernels = backend.cython_kernels(xp, "im2col")
    isa = _direct_isa(x, w, stride, pad, groups) if kernels is not None else 0
    if kernels is None:
        out = _forward_batched(xp, x, w, b, stride, pad, groups, oh, ow)
    elif isa:
        out = _forward_direct(backend.cython_kernels(xp, "direct"), isa, x, w, b, pad, pad)
    elif _use_winograd(x.shape, w.shape, stride, pad, groups):
        out = _forward_winograd(backend.cython_kernels(xp, "winograd"), x, w, b, pad, oh, ow)
    else:
        out = _forward_chunked(kernels, x, w, b, stride, pad, groups, oh, ow)
    return out, (x, w, b is not None, stride, pad, groups)


def _forward_batched(xp, x, w, b, stride, pad, groups, oh, ow):
    """The whole batch at once: im2col of every image, then one batched matmul.

    ``(G, F/G, Cg*KH*KW) @ (N, G, Cg*KH*KW, OH*OW) -> (N, G, F/G, OH*OW)``, which is already
    the NCHW output.  Simple and backend-generic (CuPy runs it), but on a CPU it makes a
    column matrix KH*KW times the size of x and runs N small GEMMs, one per image.
    """
    n = x.shape[0]
    f, cg, kh, kw = w.shape
    col = im2col(x, kh, kw, stride, pad).reshape(n, groups, cg * kh * kw, oh * ow)
    out = xp.matmul(w.reshape(groups, f // groups, cg * kh * kw), col).reshape(n, f, oh, ow)
    if b is not None:
        out += b.reshape(1, f, 1, 1)
    return out


def _forward_chunked(kernels, x, w, b, stride, pad, groups, oh, ow):
    """The CPU path: a few images at a time, each chunk one GEMM per group.

    For a chunk of m images the columns are laid out batch-inside, (C, KH, KW, m, OH, OW):
    the (Cg*KH*KW, m*OH*OW) matrix of all m images' windows side by side.  Then

        out_chunk (F/G, m*OH*OW) = W_g (F/G, Cg*KH*KW) @ col_g (Cg*KH*KW, m*OH*OW)

    is one wide GEMM per group (BLAS runs wide products near its peak; N tiny ones per
    layer it does not).  Why chunks rather than the whole batch: the whole batch's
    columns (75 MB for a CIFAR ResNet layer at batch 128) leave the cache between im2col
    and the GEMM and cost page faults when freshly allocated; a chunk of ~CHUNK_BYTES in
    a reused workspace buffer is read back from cache.  The chunk's output (F, m, OH*OW)
    is copied into NCHW order with the bias added in the same pass.

    Chunks are independent, so the cores share them out (one thread per core, each
    with its own workspace and a single-threaded GEMM): see ``_run``.
    """
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    k, p = cg * kh * kw, oh * ow
    w_mat = w.reshape(groups, f // groups, k)
    out = np.empty((n, f, oh, ow), dtype=x.dtype)
    step = _chunk_size(n, c * kh * kw, p, x.itemsize)

    def pointwise(chunks):
        # 1x1, stride 1, no padding: each image's columns are the image itself, so the
        # GEMMs read x and write out directly, with no im2col and no transpose.
        for n0 in chunks:
            m = min(step, n - n0)
            dst = out[n0:n0 + m].reshape(m, groups, f // groups, p)
            np.matmul(w_mat, x[n0:n0 + m].reshape(m, groups, cg, p), out=dst)
            if b is not None:
                dst += b.reshape(1, groups, f // groups, 1)

    def images(chunks):
        col_buf = workspace.get("conv_col", (c * kh * kw * step * p,), x.dtype)
        out_buf = workspace.get("conv_out", (f * step * p,), x.dtype)
        for n0 in chunks:
            m = min(step, n - n0)
            col = col_buf[:c * kh * kw * m * p].reshape(c, kh, kw, m, oh, ow)
            kernels.im2col_t(x[n0:n0 + m], kh, kw, stride, pad, col)
            if m == 1:
                # One image (large layers): its GEMM output is already NCHW, so the GEMM
                # writes straight into out, no copy.
                dst = out[n0].reshape(groups, f // groups, p)
                np.matmul(w_mat, col.reshape(groups, k, p), out=dst)
                if b is not None:
                    dst += b.reshape(groups, f // groups, 1)
                continue
            y = out_buf[:f * m * p].reshape(groups, f // groups, m * p)
            np.matmul(w_mat, col.reshape(groups, k, m * p), out=y)
            y = y.reshape(f, m, p).transpose(1, 0, 2)                    # (m, F, P) view
            dst = out[n0:n0 + m].reshape(m, f, p)
            if b is None:
                np.copyto(dst, y)
            else:
                np.add(y, b.reshape(1, f, 1), out=dst)

    is_pointwise = kh == kw == 1 and stride == 1 and pad == 0
    _run(pointwise if is_pointwise else images, n, step, n * f * k * p)
    return out


def conv2d_backward(dout, cache, need_dx=True):
    """Backward pass of conv2d_forward.

    Inputs:
    - dout: (N, F, OH, OW) upstream gradient (never modified)
    - cache: from conv2d_forward
    - need_dx: False skips the input gradient (dx is then None): a network's first conv
      reads the images, whose gradient nothing uses, and dx is about half its backward
    Returns (dx, dw, db): (N, C, H, W), (F, C // groups, KH, KW), (F,) (db is None without bias).

    With X the columns of x (im2col) and Y = W X the output (per group):
        dW = dY X^T   (summed over images)        dX = W^T dY, then col2im(dX) -> dx
    """
    x, w, has_bias, stride, pad, groups = cache
    op = "conv2d_backward"
    xp = backend.get_array_module(dout=dout, w=w, op=op)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    check_float_array(op, "dout", dout, dtype=w.dtype)
    check_shape(op, "dout", dout, (n, f, oh, ow))
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    kernels = backend.cython_kernels(xp, "im2col")
    need_dx = bool(need_dx)
    isa = _direct_isa(x, w, stride, pad, groups) if kernels is not None else 0
    if kernels is None:
        dx, dw = _backward_batched(xp, dout, x, w, stride, pad, groups, need_dx)
    elif isa:
        dx, dw = _backward_direct(kernels, backend.cython_kernels(xp, "direct"), isa, dout, x, w, pad,
                                  need_dx)
    elif _use_winograd(x.shape, w.shape, stride, pad, groups):
        dx, dw = _backward_winograd(backend.cython_kernels(xp, "winograd"), dout, x, w, pad, need_dx)
    else:
        dx, dw = _backward_chunked(kernels, dout, x, w, stride, pad, groups, need_dx)
    return dx, dw, db


def _backward_batched(xp, dout, x, w, stride, pad, groups, need_dx=True):
    """Backward of _forward_batched: N small GEMMs per product, the whole batch at once."""
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    oh, ow = dout.shape[2:]
    col = im2col(x, kh, kw, stride, pad).reshape(n, groups, cg * kh * kw, oh * ow)
    dout_mat = dout.reshape(n, groups, f // groups, oh * ow)
    w_mat = w.reshape(groups, f // groups, cg * kh * kw)
    # dW = sum over images of dout_n @ col_n^T; the transpose is a view BLAS reads directly.
    dw = xp.matmul(dout_mat, col.swapaxes(2, 3)).sum(axis=0).reshape(w.shape)
    if not need_dx:
        return None, dw
    # dcol = W^T @ dout per image and group; col2im adds each column back onto its window.
    dcol = xp.matmul(w_mat.swapaxes(1, 2), dout_mat).reshape(n, c, kh, kw, oh, ow)
    return col2im(dcol, x.shape, stride, pad), dw


def _backward_chunked(kernels, dout, x, w, stride, pad, groups, need_dx=True, need_dw=True):
    """Backward of _forward_chunked, chunk by chunk with the same batch-inside layout.

    Per chunk of m images: dout_chunk is copied to (F, m*OH*OW); the columns are
    recomputed into the workspace; dW += dout_g @ col_g^T (one GEMM per group); then the
    column buffer, no longer needed, receives dcol = W_g^T @ dout_g, which col2im_t adds
    back onto the chunk's images of dx.  Each worker thread sums its own dW over a fixed
    share of the chunks; the partial sums are added at the end, in thread order, so dW is
    the same bits on every call (see _run).  ``need_dw=False`` skips dW (returned as None).
    """
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    oh, ow = dout.shape[2:]
    k, p, fg = cg * kh * kw, oh * ow, f // groups
    w_t = w.reshape(groups, fg, k).swapaxes(1, 2)                     # (G, K, F/G) view
    dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
    step = _chunk_size(n, c * kh * kw, p, x.itemsize)

    def pointwise(chunks):
        # 1x1, stride 1, no padding: the columns are the images (see _forward_chunked).
        part = workspace.get("conv_dw", (step, groups, k, fg), x.dtype)
        dw_t = np.zeros((groups, k, fg), dtype=x.dtype)
        for n0 in chunks:
            m = min(step, n - n0)
            d = dout[n0:n0 + m].reshape(m, groups, fg, p)
            if need_dw:
                np.matmul(x[n0:n0 + m].reshape(m, groups, k, p), d.swapaxes(2, 3), out=part[:m])
                dw_t += part[:m].sum(axis=0)
            if need_dx:
                np.matmul(w_t, d, out=dx[n0:n0 + m].reshape(m, groups, k, p))
        return dw_t

    def images(chunks):
        col_buf = workspace.get("conv_col", (c * kh * kw * step * p,), x.dtype)
        dout_buf = workspace.get("conv_out", (f * step * p,), x.dtype)
        dw_part = workspace.get("conv_dw", (groups, k, fg), x.dtype)
        dw_t = np.zeros((groups, k, fg), dtype=x.dtype)
        for n0 in chunks:
            m = min(step, n - n0)
            if m == 1:
                d = dout[n0].reshape(groups, fg, p)           # already (F, OH*OW): no copy
            else:
                d = dout_buf[:f * m * p].reshape(f, m, p)
                np.copyto(d, dout[n0:n0 + m].reshape(m, f, p).transpose(1, 0, 2))
                d = d.reshape(groups, fg, m * p)
            col = col_buf[:c * kh * kw * m * p].reshape(c, kh, kw, m, oh, ow)
            if need_dw:
                kernels.im2col_t(x[n0:n0 + m], kh, kw, stride, pad, col)
                # dW^T = col_g @ dout_g^T: the same product as dout_g @ col_g^T, but BLAS runs it
                # ~1.5x faster when F/G is small (a tall, thin result instead of a wide, flat one).
                np.matmul(col.reshape(groups, k, m * p), d.swapaxes(1, 2), out=dw_part)
                dw_t += dw_part
            if not need_dx:
                continue
            col = col.reshape(groups, k, m * p)
            np.matmul(w_t, d, out=col)                                 # dcol overwrites col
            # The _scratch variant may overwrite dcol (it zeroes the entries that fell in the
            # padding, so that "same" 3x3 layers add each tap in one pass, not row by row).
            kernels.col2im_t_scratch(col.reshape(c, kh, kw, m, oh, ow), stride, pad, dx[n0:n0 + m])
        return dw_t

    is_pointwise = kh == kw == 1 and stride == 1 and pad == 0
    parts = _run(pointwise if is_pointwise else images, n, step, n * f * k * p, fixed_shares=True)
    if not need_dw:
        return dx, None
    dw_t = parts[0]
    for part in parts[1:]:
        dw_t += part
    return dx, np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(w.shape)


# Direct convolution (minicnn/_ext/direct_conv.h: vector FMAs on a register block of filters
# x output columns, AVX-512 or AVX2 code picked at run time) for stride-1 float32 layers with
# at most this many input and output channels.  There im2col's GEMMs are 16 rows tall and BLAS
# runs them at a fraction of its peak.  Measured (one core, CIFAR ResNet 16->16 32x32, per image,
# AVX-512): forward 79 us by im2col + GEMM, 20 us direct; dW 50 -> 30 us.  Whole layers (batch
# 128, 2 cores, alternating runs), im2col -> direct fwd / bwd ms: that layer 5.8 -> 1.6 / 10.5 -> 4.2
# (AVX2: 3.6 / 8.0 before the dW kernel); LeNet-5's 6->16 5x5 0.65 -> 0.37 / 1.22 -> 1.04.  Wider
# layers gain less and keep Winograd (32->32 16x16: 2.3 -> 1.9 / 5.0 -> 4.6 with AVX-512, but
# 2.4 -> 3.3 / 5.1 -> 6.3 with AVX2) and 8-wide rows lose (64->64 8x8: 1.4 -> 3.7 fwd).
DIRECT_MAX_CHANNELS = 16
# The weight-gradient kernel takes a chunk of images per call, their padded copies about this
# many bytes (kept in the core's L2 cache while every block of filters and taps reads them).
DIRECT_GRAD_CHUNK_BYTES = 512 << 10
# The backward pass computes dx by the direct kernel only for layers with at least this many
# input channels: dx's conv has them as its filters, and the kernel works on blocks of 8 filters
# (LeNet-5's first conv, 1 -> 6: backward 1.2 ms by col2im, 1.7 ms direct).
DIRECT_MIN_DX_CHANNELS = 8
# The kernel's instruction set: None = the best this CPU has (direct.isa()), or the cap set by
# $MINICNN_DIRECT_ISA; 0 = never use the direct kernel; 1 = AVX2 + FMA, 2 = AVX-512 (the tests
# force each one they can run).
DIRECT_ISA = None
# $MINICNN_DIRECT_ISA caps it for a process -- to see how minicnn runs on a CPU without AVX-512,
# as ONEDNN_MAX_CPU_ISA does for oneDNN.
DIRECT_ISA_NAMES = {"none": 0, "avx2": 1, "avx512": 2}


def _direct_isa_cap():
    if DIRECT_ISA is not None:
        return DIRECT_ISA
    name = os.environ.get("MINICNN_DIRECT_ISA", "").strip().lower()
    if not name:
        return 2
    if name not in DIRECT_ISA_NAMES:
        raise ValueError(f"MINICNN_DIRECT_ISA: expected one of {', '.join(DIRECT_ISA_NAMES)}, "
                         f"received {name!r}")
    return DIRECT_ISA_NAMES[name]


def _direct_isa(x, w, stride, pad, groups):
    """The instruction set to run this layer's direct kernel with, or 0 (not this layer)."""
    f, cg, kh, kw = w.shape
    if (x.dtype != np.float32 or stride != 1 or groups != 1 or max(f, cg) > DIRECT_MAX_CHANNELS
            or pad > min(kh, kw) - 1):       # the backward pass's dx conv pads by k - 1 - pad
        return 0
    direct = backend.cython_kernels(np, "direct")
    if direct is None:
        return 0
    return min(_direct_isa_cap(), direct.isa())


def _forward_direct(direct, isa, x, w, b, pad_h, pad_w):
    """Stride-1 conv by the direct kernel, a chunk of images per call, chunks over the cores.

    Also the backward pass's dx (a stride-1 conv of dout with the flipped, transposed
    filters, padded by k - 1 - pad).  Returns out (N, F, OH, OW).
    """
    x = np.ascontiguousarray(x)
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = h + 2 * pad_h - kh + 1, wd + 2 * pad_w - kw + 1
    wpk = direct.pack_weights(w, isa)
    out = np.empty((n, f, oh, ow), dtype=np.float32)
    scratch = direct.scratch_len(isa, c, oh, ow, kh, kw)
    # A few images per call: the padding is zeroed once per call, and the chunks are still
    # small enough to share out evenly between the cores.
    step = max(1, min(8, n // (4 * workspace.cpu_count())))

    def images(chunks):
        buf = workspace.get("direct_pad", (scratch,), np.float32)
        for n0 in chunks:
            m = min(step, n - n0)
            direct.conv(x[n0:n0 + m], wpk, f, pad_h, pad_w, b, out[n0:n0 + m], buf, isa)

    _run(images, n, step, n * f * c * kh * kw * oh * ow)
    return out


def _backward_direct(kernels, direct, isa, dout, x, w, pad, need_dx=True):
    """Backward of _forward_direct, both gradients by the direct kernels.

    dW: ``direct.grad_w`` (a register block of filters x kernel taps, each a vector of sums
    over output positions), a chunk of images per call, summed per thread over fixed shares
    of the chunks and the shares added in thread order (the same bits on every call, see
    _run).  dx: the forward kernel again,

        dx[n, c, y, z] = sum_{f,p,q} w[f, c, KH-1-p, KW-1-q] * dout_pad[n, f, y + p, z + q]

    -- the stride-1 conv of dout, padded by KH-1-pad (KW-1-pad), with the filters flipped in
    both spatial axes and their in/out channels swapped.  Layers with few input channels
    (they are dx's filters, and the kernel works in blocks of 8) take col2im for dx instead.
    """
    f, c, kh, kw = w.shape
    dout = np.ascontiguousarray(dout)
    if need_dx and c < DIRECT_MIN_DX_CHANNELS:
        dx, _ = _backward_chunked(kernels, dout, x, w, 1, pad, 1, need_dw=False)
    elif need_dx:
        w_flip = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]                 # (C, F, KH, KW)
        dx = _forward_direct(direct, isa, dout, w_flip, None, kh - 1 - pad, kw - 1 - pad)
    else:
        dx = None
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    oh, ow = dout.shape[2:]
    per_image = direct.grad_w_scratch_len(isa, 1, c, f, oh, ow, kh, kw)
    step = max(1, min(n, DIRECT_GRAD_CHUNK_BYTES // (4 * per_image)))

    def images(chunks):
        scratch = workspace.get("direct_grad", (per_image * step,), np.float32)
        dw = np.zeros(w.shape, dtype=np.float32)
        for n0 in chunks:
            direct.grad_w(x[n0:n0 + step], dout[n0:n0 + step], pad, pad, dw, scratch, isa)
        return dw

    parts = _run(images, n, step, n * f * c * kh * kw * oh * ow, fixed_shares=True)
    dw = parts[0]
    for part in parts[1:]:
        dw += part
    return dx, dw


# Winograd F(2x2, 3x3) (see minicnn/functional/winograd.py) for 3x3 stride-1 layers with at
# least this many input and output channels.  Its 16 GEMMs have C as their inner dimension
# and its tile transforms cost about as much as the GEMMs, so the 2.25x fewer multiplies only
# pay on wide enough layers.  Measured first on a Zen3 (alternating runs in one process,
# batch 128, 2 cores), im2col -> Winograd fwd / bwd ms: 64->64 8x8 4.9 -> 3.7 / 10.5 -> 8.1;
# 32->32 16x16 8.0 -> 6.5 / 15.0 -> 13.9; VGG 128->256 56x56 (N4) 60 -> 28 / 85 -> 85; but
# 16->16 32x32 10.5 -> 12.6 / 22.6 -> 24.1, so the bound was 32.  Since the Winograd path
# stopped looking up its workspace per chunk and writes V^T by rows of tiles, 16-channel
# layers gain too (Intel Xeon VM, float32, direct kernel off): 16->16 32x32 8.1 -> 5.9 /
# 15.0 -> 13.1; 16->16 16x16 2.7 -> 1.8 / 4.2 -> 3.4; 24->24 16x16 3.8 -> 2.8 / 6.8 -> 5.5;
# float64 16->16 32x32 13.7 -> 8.4 / 26 -> 21; SqueezeNet's 16->64 55x55 (N16) even.  (Thin
# float32 layers go to the direct kernel first, where the CPU has AVX2: see _direct_isa.)
WINOGRAD_MIN_CHANNELS = 16
# A chunk's Winograd-domain input V (16 values per 2x2 output tile and channel) is kept about this size.
WINOGRAD_CHUNK_BYTES = 256 << 10


def _use_winograd(x_shape, w_shape, stride, pad, groups):
    f, cg, kh, kw = w_shape
    return (kh == kw == 3 and stride == 1 and groups == 1
            and min(f, cg) >= WINOGRAD_MIN_CHANNELS and backend.cython_kernels(np, "winograd") is not None)


# Elements of padding between the 16 matrices of a Winograd-domain buffer: the transforms
# touch all 16 for every tile, and 16 streams a multiple of 4 KB apart thrash the L1 cache
# (see minicnn/_ext/winograd.pyx).
WINOGRAD_GAP = 32


def _winograd_chunk(n, c, th, tw, itemsize):
    return max(1, min(n, WINOGRAD_CHUNK_BYTES // max(1, 16 * c * th * tw * itemsize)))


def _winograd_buffer(name, rows, t, most, dtype):
    """A (16, rows, t) workspace view whose 16 matrices lie WINOGRAD_GAP elements apart
    (room for up to ``most`` columns, so every chunk of a layer reuses the same memory)."""
    stride = rows * most + WINOGRAD_GAP
    buf = workspace.get(name, (16 * stride,), dtype)
    return buf.reshape(16, stride)[:, :rows * t].reshape(16, rows, t)


def _winograd_buffers(most, dtype, **rows):
    """buffers(t) -> one _winograd_buffer view per keyword (name=rows), t columns each.

    A full chunk (t == most) gets views made once: with 4-image chunks the two or three
    workspace lookups per chunk cost ~10% of the 64->64 8x8 layer's time.
    """
    def views(t):
        return tuple(_winograd_buffer(name, r, t, most, dtype) for name, r in rows.items())
    full = views(most)
    return lambda t: full if t == most else views(t)


def _forward_winograd(kernels, x, w, b, pad, oh, ow):
    """3x3 stride-1 conv by Winograd F(2x2, 3x3), a chunk of images at a time.

    Per chunk of m images: V = the input tiles transformed (16, C, m*T), then the 16
    GEMMs M[xi] = U[xi] @ V[xi] in one batched matmul, then the output transform writes
    the chunk's NCHW output (bias added).  U, the transformed filters, is made once.
    """
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    f = w.shape[0]
    th, tw = winograd.tiles_of(oh, ow)
    u = np.empty((16, f, c), dtype=x.dtype)
    kernels.filter_transform(np.ascontiguousarray(w), u)               # U = G g G^T
    out = np.empty((n, f, oh, ow), dtype=x.dtype)
    step = _winograd_chunk(n, c, th, tw, x.itemsize)

    def images(chunks):
        buffers = _winograd_buffers(step * th * tw, x.dtype, winograd_v=c, winograd_m=f)
        for n0 in chunks:
            m = min(step, n - n0)
            v, mm = buffers(m * th * tw)
            kernels.input_transform(x[n0:n0 + m], pad, v)
            np.matmul(u, v, out=mm)
            kernels.output_transform(mm, b, out[n0:n0 + m])

    _run(images, n, step, n * f * c * th * tw * 16)
    return out


def _backward_winograd(kernels, dout, x, w, pad, need_dx=True):
    """Backward of _forward_winograd, chunk by chunk (see winograd.py for the algebra).

    Per chunk: dM = the output gradient transformed; V^T recomputed from x; dU += dM @ V^T;
    then dV = U^T @ dM, which the input-gradient transform adds back onto the chunk's
    images of dx.  dU is summed per thread over fixed shares of the
    chunks, the shares added in thread order (the same bits on every call, see _run).
    """
    x = np.ascontiguousarray(x)
    dout = np.ascontiguousarray(dout)
    n, c = x.shape[:2]
    f = w.shape[0]
    th, tw = winograd.tiles_of(*dout.shape[2:])
    dx = u_t = None
    if need_dx:                                  # U is needed only for dV = U^T @ dM
        dx = np.empty(x.shape, dtype=x.dtype)
        u = np.empty((16, f, c), dtype=x.dtype)
        kernels.filter_transform(np.ascontiguousarray(w), u)
        u_t = u.swapaxes(1, 2)                                        # (16, C, F) view
    step = _winograd_chunk(n, max(c, f), th, tw, x.itemsize)

    def images(chunks):
        du_part = workspace.get("winograd_du", (16, f, c), x.dtype)
        du = np.zeros((16, f, c), dtype=x.dtype)
        # dV's buffer only when dx is wanted (a training step's first layer skips it).
        buffers = _winograd_buffers(step * th * tw, x.dtype, winograd_m=f, winograd_vt=c,
                                    **({"winograd_v": c} if need_dx else {}))
        for n0 in chunks:
            m = min(step, n - n0)
            t = m * th * tw
            views = buffers(t)                  # dM, V^T (and dV)
            dm, vt = views[0], views[1]
            kernels.output_grad_transform(dout[n0:n0 + m], dm)
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

    parts = _run(images, n, step, n * f * c * th * tw * 16, fixed_shares=True)
    du = parts[0]
    for part in parts[1:]:
        du += part
    dw = np.empty(w.shape, dtype=x.dtype)
    kernels.filter_grad_transform(du, dw)                             # dw = G^T dU G
    return dx, dw


def conv2d_forward_naive(x, w, b, stride=1, pad=0, groups=1):
    """Convolution as its definition: for every output position, a window times the filters.

    Same inputs, outputs and errors as conv2d_forward; written for reading and as the
    tests' reference, not for speed.
    """
    op = "conv2d_forward_naive"
    xp = backend.get_array_module(x=x, w=w, b=b, op=op)
    stride, pad, groups, oh, ow = _conv_geometry(op, x, w, b, stride, pad, groups)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = xp.zeros((n, f, oh, ow), dtype=x.dtype)
    for g in range(groups):
        w_g = w[g * fg:(g + 1) * fg]                                 # (F/G, Cg, KH, KW)
        for i in range(oh):
            for j in range(ow):
                window = xpad[:, g * cg:(g + 1) * cg,
                              i * stride:i * stride + kh, j * stride:j * stride + kw]  # (N, Cg, KH, KW)
                out[:, g * fg:(g + 1) * fg, i, j] = xp.tensordot(window, w_g, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        out += b.reshape(1, f, 1, 1)
    return out, (x, w, b is not None, stride, pad, groups)


def conv2d_backward_naive(dout, cache):
    """Backward of conv2d_forward_naive, window by window: each output's gradient flows
    back to the window (dx) and the filter (dw) that produced it.

    Returns (dx, dw, db) with the shapes of x, w and b.
    """
    x, w, has_bias, stride, pad, groups = cache
    xp = backend.get_array_module(dout=dout, x=x, op="conv2d_backward_naive")
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    oh, ow = dout.shape[2:]
    check_shape("conv2d_backward_naive", "dout", dout, (n, f, oh, ow))
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxpad = xp.zeros_like(xpad)
    dw = xp.zeros_like(w)
    for g in range(groups):
        cs, fs = slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)
        for i in range(oh):
            for j in range(ow):
                hs, ws = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
                d = dout[:, fs, i, j]                                              # (N, F/G)
                dxpad[:, cs, hs, ws] += xp.tensordot(d, w[fs], axes=([1], [0]))    # (N, Cg, KH, KW)
                dw[fs] += xp.tensordot(d, xpad[:, cs, hs, ws], axes=([0], [0]))     # (F/G, Cg, KH, KW)
    dx = dxpad[:, :, pad:pad + h, pad:pad + wd]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
