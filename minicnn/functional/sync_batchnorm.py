"""Synchronized batch normalisation: one batch spread over several processes, normalised as one.

In data-parallel training (``minicnn.distributed``) each process sees only its share of the
batch.  Plain batch norm (``batchnorm.py``, next to this file) then normalises with the
statistics of that share, so N processes compute something slightly different from one
process with the whole batch.  The synchronized version exchanges the few per-channel sums
that the statistics are made of, and every process normalises with the statistics of the
*whole* batch:

    forward:   m, sum(x), sum(x^2)     summed over the processes -> the batch mean and variance
    backward:  sum(dout), sum(dout * xhat)  summed likewise -> the two terms that couple the images

Everything else is the plain formula: with the sums of the whole batch, the code below is
``batchnorm_forward`` / ``batchnorm_backward`` line for line.  The exchange is done by the
``allreduce`` argument, a function that takes a float64 NumPy vector and returns the sum of
every process's vector (``minicnn.distributed`` passes MPI's Allreduce; with a single
process it is the identity, and these functions equal the plain ones).  This module knows
nothing about MPI.

The per-process sums are float64 whatever x's dtype, so that sum(x^2) - m * mean^2 does not
lose the variance to cancellation in float32.

The gradients dgamma and dbeta returned are *this process's share* (its own images' sums):
the training loop adds the shares up with the other parameter gradients.  A process may
hold no images at all (the last, small batch of an epoch): it still calls ``allreduce``,
contributing zeros, so that the others do not wait for it forever.

Shapes: x (N, D) or (N, C, H, W), N >= 0 here; gamma, beta, running_mean, running_var (D,) / (C,).
"""
import numpy as np

from minicnn import backend
from minicnn.functional.batchnorm import (_axes_and_shape, _check_forward, _update_running,
                                          batchnorm_backward, batchnorm_forward)


def sync_batchnorm_forward(x, gamma, beta, running_mean, running_var, training, allreduce,
                           momentum=0.1, eps=1e-5):
    """Batch normalisation with the statistics of the batch of every process.

    Arguments as ``batchnorm_forward``, plus ``allreduce(vector) -> sum over processes``.
    In evaluation mode nothing is exchanged: this is ``batchnorm_forward``.
    Returns (out, cache).
    """
    if not training:
        out, cache = batchnorm_forward(x, gamma, beta, running_mean, running_var, False,
                                       momentum, eps)
        return out, ("plain", cache)
    # training=False: the "two values per channel" rule applies to the whole batch, checked below.
    xp = _check_forward("sync_batchnorm_forward", x, gamma, beta, running_mean, running_var,
                        False, momentum)
    axes, vshape = _axes_and_shape(x)
    c, dt = x.shape[1], x.dtype.type
    x64 = x.astype(np.float64)
    local = np.concatenate([[x.size // c], backend.asnumpy(x64.sum(axis=axes)),
                            backend.asnumpy((x64 * x64).sum(axis=axes))])
    total = allreduce(local)
    m = int(round(total[0]))
    if m < 2:
        raise ValueError(f"sync_batchnorm_forward: expected more than 1 value per channel in the "
                         f"whole batch when training, received {m} (x of shape {tuple(x.shape)} here)")
    mean = total[1:c + 1] / m
    var = np.maximum(total[c + 1:] / m - mean * mean, 0.0)   # biased: the batch is normalised with it
    mean, var = xp.asarray(mean.astype(x.dtype)), xp.asarray(var.astype(x.dtype))
    _update_running(running_mean, running_var, mean, var, m, momentum)
    inv_std = 1 / xp.sqrt(var + dt(eps))
    xhat = (x - mean.reshape(vshape)) * inv_std.reshape(vshape)
    out = xhat * gamma.reshape(vshape) + beta.reshape(vshape)
    return out, ("sync", (xhat, gamma, inv_std, m, allreduce))


def sync_batchnorm_backward(dout, cache):
    """Backward of ``sync_batchnorm_forward`` -> (dx, dgamma, dbeta).

    dx is ``batchnorm_backward``'s formula with the sums over the whole batch:
        dx = gamma * inv_std * (dout - (sum(dout) + xhat * sum(dout * xhat)) / m)
    dgamma, dbeta are this process's shares (sums over its own images).
    """
    kind, cache = cache
    if kind == "plain":
        return batchnorm_backward(dout, cache)
    xhat, gamma, inv_std, m, allreduce = cache
    op = "sync_batchnorm_backward"
    xp = backend.get_array_module(dout=dout, xhat=xhat, op=op)
    if dout.shape != xhat.shape or dout.dtype != xhat.dtype:
        raise ValueError(f"{op}: expected dout of shape {tuple(xhat.shape)} and dtype {xhat.dtype} "
                         f"(the forward's x), received {tuple(dout.shape)} {dout.dtype}")
    axes, vshape = _axes_and_shape(dout)
    c = dout.shape[1]
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    local = np.concatenate([backend.asnumpy(dbeta).astype(np.float64),
                            backend.asnumpy(dgamma).astype(np.float64)])
    total = allreduce(local)
    dt = dout.dtype.type
    all_dbeta = xp.asarray(total[:c].astype(dout.dtype))
    all_dgamma = xp.asarray(total[c:].astype(dout.dtype))
    g = (gamma * inv_std).reshape(vshape)
    dx = g * (dout - (all_dbeta.reshape(vshape) + xhat * all_dgamma.reshape(vshape)) * dt(1.0 / m))
    return dx, dgamma, dbeta
