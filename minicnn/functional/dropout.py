"""Inverted dropout (Srivastava et al. 2014; AlexNet's FC layers, p = 0.5).

In training each activation is zeroed with probability ``p`` and the survivors are
scaled by 1 / (1 - p), so the expected activation is unchanged and evaluation is
the identity (no rescaling at test time -- that is what "inverted" means).

Shapes: x any; out and dx have x's shape.
"""
import numpy as np

from minicnn import backend
from minicnn.checks import as_generator, check_prob
from minicnn.functional._validate import check_float_array, check_shape


def _uniform(xp, rng, shape):
    """Uniform [0, 1) float64 numbers from an explicit numpy Generator, on x's backend.

    Always float64, so that one seed drops the same units in float32 and float64.
    """
    if xp is np:
        return rng.random(shape)
    # On the GPU draw on the device, seeded from the caller's Generator: still reproducible.
    return xp.random.default_rng(int(rng.integers(2 ** 63))).random(shape)


def dropout_forward(x, p, training, rng):
    """Inverted dropout.

    Inputs:
    - x: any shape, float32/float64
    - p: probability of dropping, 0 <= p <= 1 (p = 1 drops everything)
    - training: bool; in evaluation the op is the identity
    - rng: numpy.random.Generator (or an int seed >= 0, or None) drawing the mask
    Returns (out, cache); out has x's shape.
    """
    op = "dropout_forward"
    xp = backend.get_array_module(x=x, op=op)
    check_float_array(op, "x", x)
    p = check_prob(op, "p", p)           # the probability of dropping
    if not training or p == 0:
        return x.copy(), None
    if p == 1:
        mask = xp.zeros(x.shape, dtype=x.dtype)
    else:
        keep = _uniform(xp, as_generator(rng, op=op), x.shape) >= p
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dout, cache):
    """dx = dout * mask (the same kept units, the same 1 / (1 - p) scale); identity in evaluation.

    Inputs: dout of x's shape; cache.  Returns dx.
    """
    mask = cache
    op = "dropout_backward"
    check_float_array(op, "dout", dout)
    if mask is None:
        return dout.copy()
    backend.get_array_module(dout=dout, mask=mask, op=op)
    check_shape(op, "dout", dout, mask.shape)
    return dout * mask
