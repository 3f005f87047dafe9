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
"""
from minicnn import backend
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
    axes, vshape = _axes_and_shape(x)
    dt = x.dtype.type
    if training:
        m = x.size // ch
        if m < 2:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, received "
                             f"x of shape {tuple(x.shape)}")
        mean = x.mean(axis=axes)
        xc = x - mean.reshape(vshape)
        var = (xc * xc).mean(axis=axes)
        running_mean *= dt(1 - momentum)
        running_mean += dt(momentum) * mean
        running_var *= dt(1 - momentum)
        running_var += dt(momentum * m / (m - 1)) * var
    else:
        xc = x - running_mean.reshape(vshape)
        var = running_var
    inv_std = 1 / xp.sqrt(var + dt(eps))
    xhat = xc * inv_std.reshape(vshape)
    out = xhat * gamma.reshape(vshape) + beta.reshape(vshape)
    return out, (xhat, gamma, inv_std, training)


def batchnorm_backward(dout, cache):
    """Backward of batch normalisation.

    In training the mean and variance depend on every x, which adds two terms:
        dx = inv_std / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),  dxhat = dout * gamma
    (sums over the batch, and over H, W for spatial BN).  In eval the statistics are
    constants and dx = dout * gamma * inv_std.

    Inputs: dout of x's shape; cache.  Returns (dx, dgamma, dbeta).
    """
    xhat, gamma, inv_std, training = cache
    op = "batchnorm_backward"
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
