"""The textbook NumPy path: CS231n's im2col_indices / col2im_indices and the layers built on
them, the approach of its convolution assignment -- ``np.pad`` + fancy-index im2col, one GEMM
for the whole batch, ``np.add.at`` col2im.

benchmarks/run.py times it beside minicnn (its "textbook" column) to show what the kernels
buy; tests/test_benchmarks.py checks that these functions compute what minicnn computes, so
the column compares like with like.  Each function does forward and backward in one call
(the benchmark times the pair) and works in any float dtype.
"""
import numpy as np


def _indices(x_shape, kh, kw, pad, stride):
    n, c, h, w = x_shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    i0 = np.tile(np.repeat(np.arange(kh), kw), c)
    i1 = stride * np.repeat(np.arange(oh), ow)
    j0 = np.tile(np.arange(kw), kh * c)
    j1 = stride * np.tile(np.arange(ow), oh)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(c), kh * kw).reshape(-1, 1)
    return k, i, j, oh, ow


def tb_im2col(x, kh, kw, pad, stride):
    """x (N, C, H, W) -> cols (C*KH*KW, OH*OW*N)."""
    k, i, j, _, _ = _indices(x.shape, kh, kw, pad, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = xp[:, k, i, j]
    return cols.transpose(1, 2, 0).reshape(kh * kw * x.shape[1], -1)


def tb_col2im(cols, x_shape, kh, kw, pad, stride):
    n, c, h, w = x_shape
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    k, i, j, _, _ = _indices(x_shape, kh, kw, pad, stride)
    cols = cols.reshape(c * kh * kw, -1, n).transpose(2, 0, 1)
    np.add.at(xp, (slice(None), k, i, j), cols)
    return xp[:, :, pad:pad + h, pad:pad + w] if pad else xp


def tb_conv(x, w, b, stride, pad, dout):
    """Convolution forward and backward: x (N, C, H, W), w (F, C, KH, KW), b (F,), dout
    (N, F, OH, OW) -> (out, dx, dw, db)."""
    f, _, kh, kw = w.shape
    n = x.shape[0]
    oh, ow = (x.shape[2] + 2 * pad - kh) // stride + 1, (x.shape[3] + 2 * pad - kw) // stride + 1
    cols = tb_im2col(x, kh, kw, pad, stride)
    out = (w.reshape(f, -1) @ cols + b.reshape(-1, 1)).reshape(f, oh, ow, n).transpose(3, 0, 1, 2)
    d = dout.transpose(1, 2, 3, 0).reshape(f, -1)
    db = d.sum(axis=1)
    dw = (d @ cols.T).reshape(w.shape)
    dx = tb_col2im(w.reshape(f, -1).T @ d, x.shape, kh, kw, pad, stride)
    return out, dx, dw, db


def tb_max_pool(x, k, stride, dout):
    """Max pooling k x k / stride, forward and backward, as im2col of every channel alone
    (argmax-first on ties, as minicnn) -> (out, dx)."""
    n, c, h, w = x.shape
    xr = x.reshape(n * c, 1, h, w)
    cols = tb_im2col(xr, k, k, 0, stride)
    idx = np.argmax(cols, axis=0)
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = cols[idx, np.arange(idx.size)].reshape(oh, ow, n, c).transpose(2, 3, 0, 1)
    dcols = np.zeros_like(cols)
    dcols[idx, np.arange(idx.size)] = dout.transpose(2, 3, 0, 1).ravel()
    dx = tb_col2im(dcols, (n * c, 1, h, w), k, k, 0, stride).reshape(x.shape)
    return out, dx


def tb_lrn(x, size, alpha, beta, k, dout):
    """Caffe/PyTorch LRN across channels, forward and backward, by padded channel sums."""
    c = x.shape[1]
    half = size // 2
    sq = np.pad(x * x, ((0, 0), (half, size - 1 - half), (0, 0), (0, 0)))
    s = sum(sq[:, d:d + c] for d in range(size))
    scale = k + alpha / size * s
    out = x * scale ** -beta
    t = dout * x * scale ** (-beta - 1)
    tp = np.pad(t, ((0, 0), (size - 1 - half, half), (0, 0), (0, 0)))
    win = sum(tp[:, d:d + c] for d in range(size))
    dx = dout * scale ** -beta - 2 * alpha * beta / size * x * win
    return out, dx


def tb_batchnorm(x, gamma, beta, dout, eps=1e-5):
    """CS231n's spatial batch norm: transpose to (N*H*W, C), vanilla batch norm, back."""
    n, c, h, w = x.shape
    xf = x.transpose(0, 2, 3, 1).reshape(-1, c)
    mu = xf.mean(axis=0)
    var = xf.var(axis=0)
    xhat = (xf - mu) / np.sqrt(var + eps)
    out = (gamma * xhat + beta).reshape(n, h, w, c).transpose(0, 3, 1, 2)
    d = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dbeta, dgamma = d.sum(axis=0), (d * xhat).sum(axis=0)
    dxhat = d * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / np.sqrt(var + eps)
    return out, dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta
