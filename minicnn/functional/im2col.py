"""im2col and col2im: turn sliding windows into columns of a matrix, and back.

A convolution is a dot product of the filter with every window of the input.  Copy
every window into a column and the whole convolution becomes one matrix product
(a GEMM), which BLAS runs near the machine's peak.  ``col2im`` is the adjoint:
it adds each column back onto the window it came from (windows that overlap add
up), which is exactly what the backward pass of im2col needs.

Layout (per image, so that the GEMM output is already NCHW and needs no transpose)::

    x    (N, C, H, W)
    col  (N, C, KH, KW, OH, OW)  ==  (N, C*KH*KW, OH*OW) as a matrix per image

Two implementations, checked against each other in the tests:

* the plain xp version below: one strided-slice copy per kernel tap (KH*KW slices
  of the whole batch, as Chainer does).  It is NumPy/CuPy-generic -- the path CuPy
  runs -- and needs neither ``np.add.at`` nor Python loops over pixels;
* the Cython kernels in ``minicnn/_ext/im2col.pyx`` (used on the CPU when built):
  the same loops written out in C, padding handled inside (no padded copy), and
  run in parallel over the batch with OpenMP.

The CPU convolution (``conv_im2col.forward``) calls the Cython kernels' batch-inside
variants ``im2col_t`` / ``col2im_t`` directly: layout (C, KH, KW, n, OH, OW) for a chunk of
n images, so that the chunk is one GEMM per group.  ``im2col`` / ``col2im`` here keep the
per-image layout, which the whole-batch conv (CuPy, or the kernels switched off) and the
exercises use.
"""
from minicnn import backend


def im2col(x, kh, kw, stride, pad, out=None):
    """Copy every (kh, kw) window of x into a column.

    Inputs:
    - x: (N, C, H, W)
    - kh, kw: window height and width; stride, pad: ints
    - out: optional (N, C, KH, KW, OH, OW) array of x's dtype to write into (a reused
      workspace); a new one is made if None
    Returns col: (N, C, KH, KW, OH, OW), OH = (H + 2*pad - kh) // stride + 1 (and OW likewise).
    """
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (w + 2 * pad - kw) // stride + 1
    if out is None:
        out = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    kernels = backend.cython_kernels(xp, "im2col")
    if kernels is not None:
        kernels.im2col(xp.ascontiguousarray(x), kh, kw, stride, pad, out)
        return out
    return im2col_xp(x, kh, kw, stride, pad, out)


def im2col_xp(x, kh, kw, stride, pad, out):
    """The plain NumPy/CuPy im2col: one strided slice of the padded batch per kernel tap."""
    xp = backend.get_array_module(x)
    oh, ow = out.shape[4], out.shape[5]
    if pad > 0:
        x = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    for i in range(kh):
        i_end = i + stride * oh
        for j in range(kw):
            out[:, :, i, j] = x[:, :, i:i_end:stride, j:j + stride * ow:stride]
    return out


def col2im(col, x_shape, stride, pad, out=None):
    """Add every column back onto the window it came from: the adjoint of im2col.

    Inputs:
    - col: (N, C, KH, KW, OH, OW)
    - x_shape: (N, C, H, W) of the image the columns were taken from
    - stride, pad: as given to im2col
    - out: optional (N, C, H, W) array to write into (overwritten, not accumulated)
    Returns dx: (N, C, H, W); entries covered by several windows receive the sum.
    """
    xp = backend.get_array_module(col)
    n, c, h, w = x_shape
    if out is None:
        out = xp.empty((n, c, h, w), dtype=col.dtype)
    kernels = backend.cython_kernels(xp, "im2col")
    if kernels is not None:
        kernels.col2im(xp.ascontiguousarray(col), stride, pad, out)
        return out
    return col2im_xp(col, stride, pad, out)


def col2im_xp(col, stride, pad, out):
    """The plain NumPy/CuPy col2im: one strided-slice addition per kernel tap."""
    xp = backend.get_array_module(col)
    n, c, kh, kw, oh, ow = col.shape
    h, w = out.shape[2], out.shape[3]
    # Accumulate into the padded image (every tap's slice fits in it), then crop.
    padded = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=col.dtype)
    for i in range(kh):
        i_end = i + stride * oh
        for j in range(kw):
            padded[:, :, i:i_end:stride, j:j + stride * ow:stride] += col[:, :, i, j]
    out[...] = padded[:, :, pad:pad + h, pad:pad + w]
    return out
