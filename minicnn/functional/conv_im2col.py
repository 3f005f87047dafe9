"""im2col + GEMM as the CPU runs it: a few images at a time, chunks shared out over the cores.

The algebra is the textbook one of ``conv.conv2d_forward_batched`` (read that first):
the windows of the input become the columns of a matrix and the layer is one matrix
product per group.  What differs is how the work is cut:

* a few images at a time -- a chunk whose columns fit the core's cache, in a reused
  workspace buffer.  The whole batch's columns are KH*KW times the size of x (75 MB for
  a CIFAR ResNet layer at batch 128), fall out of the cache between im2col and the GEMM,
  and a fresh array that large costs a page fault per 4 KB;
* the chunk's images side by side, so that each group is ONE wide GEMM.  N small
  per-image GEMMs, each split over threads by BLAS, waste most of a small machine's time
  in fork/join; BLAS runs wide products near its peak;
* chunks are independent, so one thread per core takes them as it comes free, each with
  its own workspace and a single-threaded GEMM (``minicnn.runtime``).

The column layout is batch-inside, (C, KH, KW, m, OH, OW) for a chunk of m images: the
(Cg*KH*KW, m*OH*OW) matrix of all m images' windows side by side, written by the Cython
kernel ``im2col_t`` (``minicnn/_ext/im2col.pyx``).

The chunk loops are written below in Python (``images`` and ``pointwise``); where NumPy's
BLAS can be called from C, each thread runs the same loop in one call into C instead
(``forward_chunks``, ``backward_chunks`` in im2col.pyx; see conv_winograd.C_LOOPS for why).
A 1x1 layer's loop, which needs no columns, then runs on OpenMP's threads, in one call
(``pointwise_forward``, ``pointwise_backward``: im2col.pyx says why).
"""
import numpy as np

from minicnn import backend, runtime

# A chunk's column matrix is kept about this size (bytes): small enough to still be in the
# core's L2 cache when the GEMM reads it right after im2col wrote it (measured on Zen3:
# LeNet conv1 ran ~2x faster with 0.3 MB chunks than with 2 MB ones).  Tests shrink it to
# force many chunks on small inputs.
CHUNK_BYTES = 512 << 10
# ... but a layer whose weights outweigh an image's columns gets chunks of at least this many
# columns, so that its GEMMs do not spend their time re-reading the weights
# (runtime.images_per_chunk).
# Measured on ResNet-18's 256->512 3x3 stride-2 layer (49 positions per image, batch 32,
# 2 cores), fwd / bwd ms by images per chunk: 1 (the byte budget) 21.9 / 57.9; 4 16.4 / 42.3;
# 8 15.4 / 40.5; 16 17.3 / 42.0.
MIN_COLUMNS = 256


def chunk_size(n, k, p, itemsize, f=0, groups=1):
    """Images per chunk: as many as fit CHUNK_BYTES of columns (k rows, p per image), at least
    1 -- or at least MIN_COLUMNS columns when the weights (f filters of k / groups taps)
    outweigh an image's columns."""
    weight_bytes = f * (k // groups) * itemsize
    return runtime.images_per_chunk(n, k * p * itemsize, p, weight_bytes, CHUNK_BYTES, MIN_COLUMNS)


# Each thread's share of the chunks in one call into C (kernels.forward_chunks and
# backward_chunks: the loops below, GEMMs included), where NumPy's BLAS can be called from
# C -- as conv_winograd.py does (see C_LOOPS there).  False: always the Python loops.
C_LOOPS = True


# In C, a float32 1x1 layer's forward GEMMs run by minicnn's own AVX-512 kernel
# (_ext/pointwise_gemm.h, which says why and what it measured) where the CPU has it and
# conv_direct.best_isa() allows it.  False: BLAS always (the tests compare both).
POINTWISE_KERNEL = True


def _c_loops(kernels):
    """True if the chunk loops run in C: C_LOOPS, and the kernels can call BLAS."""
    return C_LOOPS and runtime.gemm_in_c(kernels)


def _is_pointwise(kh, kw, stride, pad):
    # 1x1, stride 1, no padding: each image's columns are the image itself, so the GEMMs
    # read x and write out directly, with no im2col and no transpose.
    return kh == kw == 1 and stride == 1 and pad == 0


def _pointwise_kernel(kernels, x):
    """True if pointwise_forward should run this 1x1 layer's GEMMs by pointwise_gemm.h."""
    if not (POINTWISE_KERNEL and x.dtype == np.float32):
        return False
    from minicnn.functional import conv_direct      # imported here: conv_direct imports this module
    return conv_direct.best_isa() >= 2 and kernels.pointwise_ready()


def forward(x, w, b, stride, pad, groups, oh, ow):
    """out (N, F, OH, OW) of conv2d_forward, a chunk of images per GEMM.

    For a chunk of m images:

        out_chunk (F/G, m*OH*OW) = W_g (F/G, Cg*KH*KW) @ col_g (Cg*KH*KW, m*OH*OW)

    then the chunk's output (F, m, OH*OW) is copied into NCHW order with the bias added in
    the same pass.  Arguments already checked by conv2d_forward.
    """
    kernels = backend.cython_kernels(np, "im2col")
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    k, p = cg * kh * kw, oh * ow
    w_mat = w.reshape(groups, f // groups, k)
    out = runtime.empty_output((n, f, oh, ow), x.dtype)       # recycled memory: runtime.py
    step = chunk_size(n, c * kh * kw, p, x.itemsize, f, groups)

    def pointwise(chunks):
        for n0 in chunks:
            m = min(step, n - n0)
            dst = out[n0:n0 + m].reshape(m, groups, f // groups, p)
            np.matmul(w_mat, x[n0:n0 + m].reshape(m, groups, cg, p), out=dst)
            if b is not None:
                dst += b.reshape(1, groups, f // groups, 1)

    def images(chunks):
        col_buf = runtime.workspace("conv_col", (c * kh * kw * step * p,), x.dtype)
        out_buf = runtime.workspace("conv_out", (f * step * p,), x.dtype)
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

    fn = pointwise if _is_pointwise(kh, kw, stride, pad) else images
    if _c_loops(kernels) and fn is pointwise:
        with runtime.threads_for_c_loop(n, n * f * k * p) as threads:
            kernels.pointwise_forward(x, np.ascontiguousarray(w_mat), b, out, threads,
                                      _pointwise_kernel(kernels, x))
        return out
    if _c_loops(kernels):
        fn = _forward_in_c(kernels, x, w_mat, b, kh, kw, stride, pad, out, step)
    runtime.run_chunks(fn, n, step, n * f * k * p)
    return out


def _forward_in_c(kernels, x, w_mat, b, kh, kw, stride, pad, out, step):
    """forward's chunk loop ``images`` as one call into C per thread."""
    next_image = np.zeros(1, dtype=np.int64)          # the threads' shared chunk counter
    w_mat = np.ascontiguousarray(w_mat)
    p = out.shape[2] * out.shape[3]
    cols, outs = x.shape[1] * kh * kw * step * p, out.shape[1] * step * p

    def chunks_in_c(chunks):                          # the iterator is unused: C takes next_image
        col_buf = runtime.workspace("conv_col", (cols,), x.dtype)
        out_buf = runtime.workspace("conv_out", (outs,), x.dtype)
        kernels.forward_chunks(x, w_mat, b, kh, kw, stride, pad, out, col_buf, out_buf, step, next_image)
    return chunks_in_c


def backward(dout, x, w, stride, pad, groups, need_dx=True, need_dw=True):
    """(dx, dw) of forward, chunk by chunk with the same batch-inside layout.

    Per chunk of m images: dout_chunk is copied to (F, m*OH*OW); the columns are
    recomputed into the workspace; dW += dout_g @ col_g^T (one GEMM per group); then the
    column buffer, no longer needed, receives dcol = W_g^T @ dout_g, which col2im_t adds
    back onto the chunk's images of dx.  Each worker thread sums its own dW over a fixed
    share of the chunks, added up in a fixed order (``runtime.sum_over_chunks``).
    ``need_dx=False`` / ``need_dw=False`` skip dx / dW (returned as None).
    """
    kernels = backend.cython_kernels(np, "im2col")
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    oh, ow = dout.shape[2:]
    k, p, fg = cg * kh * kw, oh * ow, f // groups
    w_t = w.reshape(groups, fg, k).swapaxes(1, 2)                     # (G, K, F/G) view
    dx = runtime.empty_output(x.shape, x.dtype) if need_dx else None
    step = chunk_size(n, c * kh * kw, p, x.itemsize, f, groups)

    def pointwise(chunks):
        part = runtime.workspace("conv_dw", (step, groups, k, fg), x.dtype)
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
        col_buf = runtime.workspace("conv_col", (c * kh * kw * step * p,), x.dtype)
        dout_buf = runtime.workspace("conv_out", (f * step * p,), x.dtype)
        dw_part = runtime.workspace("conv_dw", (groups, k, fg), x.dtype)
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

    fn = pointwise if _is_pointwise(kh, kw, stride, pad) else images
    if _c_loops(kernels) and fn is pointwise:
        dw_t = _pointwise_backward_in_c(kernels, dout, x, w.reshape(groups, fg, k), dx, need_dw)
    else:
        if _c_loops(kernels):
            fn = _backward_in_c(kernels, dout, x, w.reshape(groups, fg, k), kh, kw, stride, pad, dx,
                                need_dw, step)
        dw_t = runtime.sum_over_chunks(fn, n, step, n * f * k * p)
    if not need_dw:
        return dx, None
    return dx, np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(w.shape)


def _pointwise_backward_in_c(kernels, dout, x, w_mat, dx, need_dw):
    """backward's ``pointwise`` loop in one call into C, on OpenMP threads: dW^T (G, K, F/G),
    the sum of the threads' fixed shares' parts (the same bits every call), or None without dW."""
    groups, fg, k = w_mat.shape
    n = x.shape[0]
    with runtime.threads_for_c_loop(n, n * groups * fg * k * x.shape[2] * x.shape[3]) as threads:
        parts = np.zeros((threads, groups, k, fg), dtype=x.dtype) if need_dw else None
        kernels.pointwise_backward(x, np.ascontiguousarray(dout), np.ascontiguousarray(w_mat), dx, parts, threads)
    return None if parts is None else parts.sum(axis=0)


def _backward_in_c(kernels, dout, x, w_mat, kh, kw, stride, pad, dx, need_dw, step):
    """backward's chunk loop ``images`` as one call into C per thread: the
    thread's fixed share of the chunks, its dW^T (G, K, F/G) returned (None without dW)."""
    dout, w_mat = np.ascontiguousarray(dout), np.ascontiguousarray(w_mat)
    groups, fg, k = w_mat.shape
    p = dout.shape[2] * dout.shape[3]
    cols, douts = x.shape[1] * kh * kw * step * p, dout.shape[1] * step * p

    def chunks_in_c(chunks):                          # chunks: range(first, n, every), see share_out
        col_buf = runtime.workspace("conv_col", (cols,), x.dtype)
        dout_buf = runtime.workspace("conv_out", (douts,), x.dtype)
        dw_t = np.zeros((groups, k, fg), dtype=x.dtype) if need_dw else None
        kernels.backward_chunks(x, dout, w_mat, kh, kw, stride, pad, dx, dw_t, col_buf, dout_buf,
                                step, chunks.start // step, chunks.step // step)
        return dw_t
    return chunks_in_c
