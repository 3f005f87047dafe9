"""Winograd's minimal filtering F(2x2, 3x3): a 3x3, stride-1 convolution in 2.25x fewer multiplies.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016).  A 2x2
block of outputs of a 3x3 filter g depends on a 4x4 tile d of the input; instead of
2*2*9 = 36 multiplies, compute it as

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, on 4x4 matrices)

16 multiplies.  The transforms are small fixed matrices of 0, 1, -1 and 1/2 (below).
For a layer, the elementwise product summed over input channels becomes, for each of
the 16 positions xi of the 4x4 "Winograd domain", one matrix product:

    M[xi] (F, T) = U[xi] (F, C) @ V[xi] (C, T)

where U = G g G^T for every (filter, channel), V = B^T d B for every (channel, tile) and T
is the number of 2x2 output tiles of the batch.  So a conv is: transform the input tiles
(V), 16 GEMMs, transform back (Y).  The GEMMs do 16*F*C*T multiply-adds against the
im2col GEMM's 9*F*C*4T: 2.25x less work, and V is 4x the input (16 values per 2x2 outputs)
where im2col's columns are 9x.

The backward pass is the transpose of each step (the transforms are linear):

    dM[xi] = A dY A^T                       the output gradient, transformed
    dU[xi] = dM[xi] @ V[xi]^T   -> dw = G^T dU G        (summed over tiles)
    dV[xi] = U[xi]^T @ dM[xi]   -> dd = B dV B^T, added back onto the overlapping tiles of dx

Tiles overlap by 2 rows and columns (a 4x4 input tile for each 2x2 output block), and
tiles that stick out of the output (odd OH or OW) read zeros and have their extra
outputs dropped, so every output size works.  Float32 results differ from the im2col
GEMM's in the last few bits (a different order of additions, and the 1/2s in G); the
tests hold them to float32 tolerance and gradient-check the float64 version.

This module is the plain NumPy version, written for reading and as the reference the
Cython kernels (``minicnn/_ext/winograd.pyx``) are tested against.  On the CPU,
``conv_winograd.py`` runs the same steps with those kernels, chunk by chunk over the cores,
for the layers where it measured faster than im2col (``conv.choose_algorithm`` says which).

Shapes::

    x   (N, C, H, W)         w  (F, C, 3, 3)        out, dout  (N, F, OH, OW)
    OH = H + 2*pad - 2,  OW = W + 2*pad - 2,  tiles  TH = ceil(OH / 2) by TW = ceil(OW / 2)
    U, dU  (16, F, C)        V, dV  (16, C, N*TH*TW)        M, dM  (16, F, N*TH*TW)
"""
import numpy as np

# The F(2x2, 3x3) transforms (Lavin & Gray, Sec. 4.1).
BT = np.array([[1, 0, -1, 0],
               [0, 1, 1, 0],
               [0, -1, 1, 0],
               [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0],
               [0, 1, -1, -1]], dtype=np.float64)


def tiles_of(oh, ow):
    """(TH, TW): the 2x2 output tiles that cover an OH x OW output."""
    return (oh + 1) // 2, (ow + 1) // 2


def transform_filter(w):
    """U = G g G^T for every (filter, channel): w (F, C, 3, 3) -> U (16, F, C)."""
    f, c = w.shape[:2]
    g = G.astype(w.dtype)
    return np.ascontiguousarray(np.einsum("ap,fcpq,eq->aefc", g, w, g).reshape(16, f, c))


def filter_grad(du, dtype):
    """dw = G^T dU G: the adjoint of transform_filter.  dU (16, F, C) -> dw (F, C, 3, 3)."""
    f, c = du.shape[1:]
    g = G.astype(du.dtype)
    return np.einsum("ap,aefc,eq->fcpq", g, du.reshape(4, 4, f, c), g).astype(dtype, copy=False)


def _padded(x, pad, th, tw):
    """x zero-padded to the (2*TH + 2, 2*TW + 2) plane every tile reads from (cropped if larger)."""
    n, c, h, w = x.shape
    hp, wp = 2 * th + 2, 2 * tw + 2
    xpad = np.zeros((n, c, hp, wp), dtype=x.dtype)
    rows, cols = min(h, hp - pad), min(w, wp - pad)
    xpad[:, :, pad:pad + rows, pad:pad + cols] = x[:, :, :rows, :cols]
    return xpad


def transform_input(x, pad, th, tw):
    """V = B^T d B for every (channel, tile): x (N, C, H, W) -> V (16, C, N*TH*TW).

    Tile (t, s) of an image is its padded input's rows 2t .. 2t+3 and columns 2s .. 2s+3.
    """
    n, c = x.shape[:2]
    xpad = _padded(x, pad, th, tw)
    d = np.lib.stride_tricks.sliding_window_view(xpad, (4, 4), axis=(2, 3))[:, :, ::2, ::2]
    bt = BT.astype(x.dtype)
    v = np.einsum("ab,nctsbd,ed->aecnts", bt, d[:, :, :th, :tw], bt)
    return np.ascontiguousarray(v.reshape(16, c, n * th * tw))


def transform_output(m, n, oh, ow):
    """Y = A^T M A for every (filter, tile), assembled into NCHW: M (16, F, N*TH*TW) -> (N, F, OH, OW)."""
    f = m.shape[1]
    th, tw = tiles_of(oh, ow)
    at = AT.astype(m.dtype)
    y = np.einsum("ia,aefnts,je->nftisj", at, m.reshape(4, 4, f, n, th, tw), at)
    return np.ascontiguousarray(y.reshape(n, f, 2 * th, 2 * tw)[:, :, :oh, :ow])


def transform_output_grad(dout, th, tw):
    """dM = A dY A^T, the adjoint of transform_output: dout (N, F, OH, OW) -> dM (16, F, N*TH*TW)."""
    n, f, oh, ow = dout.shape
    dy = np.zeros((n, f, 2 * th, 2 * tw), dtype=dout.dtype)   # outputs past OH, OW: gradient 0
    dy[:, :, :oh, :ow] = dout
    at = AT.astype(dout.dtype)
    dm = np.einsum("ia,nftisj,je->aefnts", at, dy.reshape(n, f, th, 2, tw, 2), at)
    return np.ascontiguousarray(dm.reshape(16, f, n * th * tw))


def transform_input_grad(dv, x_shape, pad):
    """dx from dV: dd = B dV B^T per tile, added onto the tile's 4x4 window (the adjoint of
    transform_input).  dV (16, C, N*TH*TW) -> dx (N, C, H, W)."""
    n, c, h, w = x_shape
    th, tw = tiles_of(h + 2 * pad - 2, w + 2 * pad - 2)
    bt = BT.astype(dv.dtype)
    dd = np.einsum("ab,aecnts,ed->nctsbd", bt, dv.reshape(4, 4, c, n, th, tw), bt)
    dxpad = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=dv.dtype)
    for b in range(4):                  # 16 strided adds: overlapping tiles accumulate
        for e in range(4):
            dxpad[:, :, b:b + 2 * th:2, e:e + 2 * tw:2] += dd[..., b, e]
    dx = np.zeros(x_shape, dtype=dv.dtype)
    rows, cols = min(h, dxpad.shape[2] - pad), min(w, dxpad.shape[3] - pad)
    dx[:, :, :rows, :cols] = dxpad[:, :, pad:pad + rows, pad:pad + cols]
    return dx


def conv3x3_forward(x, w, b, pad):
    """out = conv2d(x, w, b, stride=1, pad) by F(2x2, 3x3).  x (N, C, H, W), w (F, C, 3, 3) -> (N, F, OH, OW)."""
    n, c, h, wd = x.shape
    oh, ow = h + 2 * pad - 2, wd + 2 * pad - 2
    th, tw = tiles_of(oh, ow)
    m = np.matmul(transform_filter(w), transform_input(x, pad, th, tw))   # 16 GEMMs (F, C) @ (C, T)
    out = transform_output(m, n, oh, ow)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def conv3x3_backward(dout, x, w, pad):
    """(dx, dw) of conv3x3_forward.  dout (N, F, OH, OW) -> dx (N, C, H, W), dw (F, C, 3, 3)."""
    th, tw = tiles_of(*dout.shape[2:])
    dm = transform_output_grad(dout, th, tw)                  # (16, F, T)
    v = transform_input(x, pad, th, tw)                       # (16, C, T), recomputed
    dw = filter_grad(np.matmul(dm, v.swapaxes(1, 2)), w.dtype)
    dv = np.matmul(transform_filter(w).swapaxes(1, 2), dm)    # (16, C, T)
    return transform_input_grad(dv, x.shape, pad), dw
