"""Batch normalisation (Ioffe & Szegedy 2015), for fully connected and convolutional layers.

Statistics are per feature for x of shape (N, D) and per *channel* for x of shape
(N, C, H, W) -- pooled over the batch and every spatial position, so that a
convolution's weight sharing is respected (not per (C, H, W) position: a classic bug).

    train:  xhat = (x - mean_batch) / sqrt(var_batch + eps);   out = gamma * xhat + beta
    eval:   the same with running_mean / running_var

Conventions (both PyTorch's):
- ``momentum`` is the weight of the *new* batch statistic:
  ``running = (1 - momentum) * running + momentum * batch``, default 0.1.
  CS231n's assignment writes ``momentum=0.9`` for the weight of the *old* value;
  its 0.9 is our 0.1.
- The batch is normalised with the biased variance (divide by m), but the running
  variance is updated with the unbiased one (divide by m - 1), m = N (or N*H*W).

Shapes: x (N, D) or (N, C, H, W); gamma, beta, running_mean, running_var (D,) or (C,).

The plain version below is NumPy/CuPy-generic (the path CuPy runs).  On the CPU, spatial
batch norm (N, C, H, W) runs the Cython kernels in ``minicnn/_ext/batchnorm.pyx`` instead:
one thread per channel, sums in double, no temporaries.  They keep x and two per-channel
scalars instead of xhat for the backward pass, so -- as for conv2d -- x must not be
changed between the forward and the backward pass.  ``batchnorm_relu_forward`` /
``batchnorm_relu_backward`` run BN followed by a ReLU (the blocks' bn1 -> relu1) in the
same single pass.
"""
import numpy as np

from minicnn import backend
from minicnn.functional.activations import relu_backward, relu_forward
from minicnn.functional._validate import check_float_array, check_shape


def _axes_and_shape(x):
    """Reduction axes and the broadcast shape of per-channel vectors for x."""
    if x.ndim == 2:
        return (0,), (1, x.shape[1])
    return (0, 2, 3), (1, x.shape[1], 1, 1)


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Batch normalisation, train or eval.

    Inputs:
    - x: (N, D) or (N, C, H, W) float32/float64
    - gamma, beta: (D,) / (C,) scale and shift, x's dtype
    - running_mean, running_var: (D,) / (C,), updated IN PLACE when training
    - training: bool; momentum in [0, 1]; eps > 0
    Returns (out, cache); out has x's shape.
    """
    op = "batchnorm_forward"
    xp = _check_forward(op, x, gamma, beta, running_mean, running_var, training, momentum)
    kernels = backend.cython_kernels(xp, "batchnorm") if x.ndim == 4 else None
    if kernels is not None:
        return _forward_kernel(kernels, x, gamma, beta, running_mean, running_var, training,
                               momentum, eps)
    axes, vshape = _axes_and_shape(x)
    dt = x.dtype.type
    if training:
        m = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        xc = x - mean.reshape(vshape)
        var = (xc * xc).mean(axis=axes)
        _update_running(running_mean, running_var, mean, var, m, momentum)
    else:
        xc = x - running_mean.reshape(vshape)
        var = running_var
    inv_std = 1 / xp.sqrt(var + dt(eps))
    xhat = xc * inv_std.reshape(vshape)
    out = xhat * gamma.reshape(vshape) + beta.reshape(vshape)
    return out, (None, None, xhat, gamma, inv_std, training)


def _check_forward(op, x, gamma, beta, running_mean, running_var, training, momentum):
    """Validate batchnorm_forward's arguments; return the array module."""
    xp = backend.get_array_module(x=x, gamma=gamma, beta=beta, running_mean=running_mean,
                                  running_var=running_var, op=op)
    check_float_array(op, "x", x, ndim=(2, 4))
    ch = x.shape[1]
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        check_float_array(op, name, v, dtype=x.dtype)
        check_shape(op, name, v, (ch,))
    if not 0 <= momentum <= 1:
        raise ValueError(f"{op}: expected momentum in [0, 1] (PyTorch's convention), received {momentum!r}")
    if training and x.size // ch < 2:
        raise ValueError(f"{op}: expected more than 1 value per channel when training, received "
                         f"x of shape {tuple(x.shape)}")
    return xp


def _update_running(running_mean, running_var, mean, var, m, momentum):
    """running = (1 - momentum) * running + momentum * batch, in place; var made unbiased."""
    dt = running_mean.dtype.type
    running_mean *= dt(1 - momentum)
    running_mean += dt(momentum) * mean
    running_var *= dt(1 - momentum)
    running_var += dt(momentum * m / (m - 1)) * var


def _forward_kernel(kernels, x, gamma, beta, running_mean, running_var, training, momentum, eps,
                    relu_mask=None):
    """batchnorm_forward of a NumPy (N, C, H, W) x by the Cython kernels (arguments checked).

    The cache holds x itself (contiguous) with the float64 mean and inv_std in place of xhat.
    With ``relu_mask`` (a bool array of x's shape) a ReLU is fused in: out is relu'd and the
    mask written, as relu_forward would.
    """
    n, c, h, w = x.shape
    dt = x.dtype.type
    x = np.ascontiguousarray(x)
    x3 = x.reshape(n, c, h * w)
    gamma, beta = np.ascontiguousarray(gamma), np.ascontiguousarray(beta)
    out = np.empty(x3.shape, dtype=x.dtype)
    mask3 = None if relu_mask is None else relu_mask.reshape(x3.shape).view(np.uint8)
    if training:
        mean, var, inv_std = np.empty(c), np.empty(c), np.empty(c)
        kernels.forward_train(x3, gamma, beta, float(eps), out, mean, var, inv_std, mask3)
        _update_running(running_mean, running_var, mean.astype(x.dtype), var.astype(x.dtype),
                        n * h * w, momentum)
    else:
        # The same inv_std as the plain path (in x's dtype), copies: the buffers may change later.
        mean = running_mean.astype(np.float64)
        inv_std = (1 / np.sqrt(running_var + dt(eps))).astype(np.float64)
        kernels.forward_eval(x3, gamma, beta, mean, inv_std, out, mask3)
    return out.reshape(x.shape), (x, mean, None, gamma, inv_std, training)


def batchnorm_backward(dout, cache):
    """Backward of batch normalisation.

    In training the mean and variance depend on every x, which adds two terms:
        dx = inv_std / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),  dxhat = dout * gamma
    (sums over the batch, and over H, W for spatial BN).  In eval the statistics are
    constants and dx = dout * gamma * inv_std.

    Inputs: dout of x's shape; cache.  Returns (dx, dgamma, dbeta).
    """
    return _backward(dout, cache, None)


def _backward(dout, cache, relu_mask):
    """batchnorm_backward; with a contiguous bool ``relu_mask`` of a fused ReLU (kernel cache only)
    dout is the gradient of relu(out) and is masked on the fly."""
    x, mean, xhat, gamma, inv_std, training = cache
    op = "batchnorm_backward"
    if xhat is None:
        # Forward ran the Cython kernels: x is a contiguous NumPy (N, C, H, W) array, mean and
        # inv_std float64 (C,).
        backend.get_array_module(dout=dout, x=x, op=op)
        check_float_array(op, "dout", dout, dtype=x.dtype)
        check_shape(op, "dout", dout, x.shape)
        n, c, h, w = x.shape
        kernels = backend.cython_kernels(np, "batchnorm")
        if kernels is None:   # switched off after the forward pass: rebuild the plain cache
            vshape = (1, c, 1, 1)
            xhat = ((x - mean.reshape(vshape)) * inv_std.reshape(vshape)).astype(x.dtype)
            inv_std = inv_std.astype(x.dtype)
            if relu_mask is not None:
                dout = relu_backward(dout, relu_mask)
        else:
            dx = np.empty((n, c, h * w), dtype=x.dtype)
            dgamma, dbeta = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
            kernels.backward(np.ascontiguousarray(dout).reshape(n, c, h * w), x.reshape(n, c, h * w),
                             gamma, mean, inv_std, bool(training), dx, dgamma, dbeta,
                             None if relu_mask is None else relu_mask.reshape(n, c, h * w).view(np.uint8))
            return dx.reshape(x.shape), dgamma, dbeta
    backend.get_array_module(dout=dout, xhat=xhat, op=op)
    check_float_array(op, "dout", dout, dtype=xhat.dtype)
    check_shape(op, "dout", dout, xhat.shape)
    axes, vshape = _axes_and_shape(dout)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    g = (gamma * inv_std).reshape(vshape)
    if not training:
        return dout * g, dgamma, dbeta
    m = dout.size // dout.shape[1]
    dt = dout.dtype.type
    # With dxhat = dout * gamma the sums above are gamma * dbeta and gamma * dgamma.
    dx = g * (dout - (dbeta.reshape(vshape) + xhat * dgamma.reshape(vshape)) * dt(1.0 / m))
    return dx, dgamma, dbeta


def batchnorm_relu_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """relu(batchnorm(x)): the conv -> BN -> ReLU of most CNNs, in one pass over memory on the CPU.

    Arguments as batchnorm_forward.  Returns (out, (bn_cache, mask)): ``bn_cache`` is what
    batchnorm_forward returns and ``mask`` what relu_forward returns for its output, so the
    two backward passes may also be run one after the other.  On the Cython path (NumPy
    (N, C, H, W)) the normalised x is never stored: the kernel writes the ReLU's output and
    mask directly, saving a write and a read of one activation.  Elsewhere this is just
    relu_forward(batchnorm_forward(...)).
    """
    op = "batchnorm_forward"
    xp = _check_forward(op, x, gamma, beta, running_mean, running_var, training, momentum)
    kernels = backend.cython_kernels(xp, "batchnorm") if x.ndim == 4 else None
    if kernels is None:
        out, bn_cache = batchnorm_forward(x, gamma, beta, running_mean, running_var, training,
                                          momentum, eps)
        out, mask = relu_forward(out)
        return out, (bn_cache, mask)
    mask = np.empty(x.shape, dtype=bool)
    out, bn_cache = _forward_kernel(kernels, x, gamma, beta, running_mean, running_var, training,
                                    momentum, eps, relu_mask=mask)
    return out, (bn_cache, mask)


def batchnorm_relu_backward(dout, cache):
    """Backward of batchnorm_relu_forward: batchnorm_backward(relu_backward(dout, mask), bn_cache),
    on the Cython path in one pass (dout is masked as it is read).

    Inputs: dout of x's shape (the gradient of the ReLU's output); cache.
    Returns (dx, dgamma, dbeta).
    """
    bn_cache, mask = cache
    if bn_cache[2] is None and getattr(mask, "dtype", None) == np.bool_ and mask.flags.c_contiguous:
        check_shape("relu_backward", "dout", dout, mask.shape)
        return _backward(dout, bn_cache, mask)
    return batchnorm_backward(relu_backward(dout, mask), bn_cache)
