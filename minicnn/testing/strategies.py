"""Hypothesis strategies for checking layers -- minicnn's own and yours.

    from hypothesis import given
    from minicnn.testing import strategies as mst

    @given(g=mst.conv_geometries(), x_seed=mst.seeds())
    def test_my_conv(g, x_seed): ...

Shapes are kept small (gradient checks cost two forward passes per input entry)
and geometries always valid: the kernel fits in the padded input, groups divide
the channels, pooling pads at most half a window.  Arrays come from a drawn seed
through a numpy Generator, so a failing example is reproducible from its seed.

Inputs to nonlinear ops must stay away from their kinks, or a correct backward
"fails" the check: ``kink_free_array`` keeps every |x| >= a margin (ReLU at 0) and
``tie_free_array`` makes all values distinct by at least a margin (ties in a max
pool make the numeric gradient split between the tied entries).
"""
import numpy as np
from hypothesis import strategies as st

__all__ = ["seeds", "float_dtypes", "conv_geometries", "pool_geometries", "kink_free_array",
           "tie_free_array", "random_array"]


def seeds():
    """Integer seeds for numpy Generators."""
    return st.integers(min_value=0, max_value=2 ** 32 - 1)


def float_dtypes():
    """float32 or float64."""
    return st.sampled_from([np.float32, np.float64])


@st.composite
def conv_geometries(draw, max_batch=2, max_channels=4, max_size=7, max_kernel=4, max_stride=3,
                    max_pad=2, groups=True):
    """A valid conv2d geometry: dict with N, C, H, W, F, KH, KW, stride, pad, groups, OH, OW.

    Kernels may be non-square (KH != KW), inputs non-square, stride > 1 with overlap or gaps.
    """
    g = draw(st.integers(1, 3)) if groups else 1
    c = g * draw(st.integers(1, max(1, max_channels // g)))
    f = g * draw(st.integers(1, max(1, max_channels // g)))
    kh = draw(st.integers(1, max_kernel))
    kw = draw(st.integers(1, max_kernel))
    pad = draw(st.integers(0, max_pad))
    h = draw(st.integers(max(1, kh - 2 * pad), max(max_size, kh)))
    w = draw(st.integers(max(1, kw - 2 * pad), max(max_size, kw)))
    stride = draw(st.integers(1, max_stride))
    n = draw(st.integers(1, max_batch))
    return dict(N=n, C=c, H=h, W=w, F=f, KH=kh, KW=kw, stride=stride, pad=pad, groups=g,
                OH=(h + 2 * pad - kh) // stride + 1, OW=(w + 2 * pad - kw) // stride + 1)


@st.composite
def pool_geometries(draw, max_batch=2, max_channels=3, max_size=8, max_kernel=4, max_stride=3):
    """A valid pooling geometry: dict with N, C, H, W, KH, KW, stride, pad, OH, OW (pad <= K // 2)."""
    kh = draw(st.integers(1, max_kernel))
    kw = draw(st.integers(1, max_kernel))
    pad = draw(st.integers(0, min(kh, kw) // 2))
    h = draw(st.integers(max(1, kh - 2 * pad), max(max_size, kh)))
    w = draw(st.integers(max(1, kw - 2 * pad), max(max_size, kw)))
    stride = draw(st.integers(1, max_stride))
    n = draw(st.integers(1, max_batch))
    c = draw(st.integers(1, max_channels))
    return dict(N=n, C=c, H=h, W=w, KH=kh, KW=kw, stride=stride, pad=pad,
                OH=(h + 2 * pad - kh) // stride + 1, OW=(w + 2 * pad - kw) // stride + 1)


def random_array(shape, seed, dtype=np.float64, scale=1.0):
    """Standard-normal values times ``scale`` from a seeded Generator."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def kink_free_array(shape, seed, dtype=np.float64, margin=0.1):
    """Random values with |x| >= margin, random signs: no entry near ReLU's kink at 0.

    Also safe for anything with a kink at 0 only; the numeric step h must be << margin.
    """
    rng = np.random.default_rng(seed)
    mag = margin + rng.exponential(1.0, size=shape)
    return (mag * rng.choice([-1.0, 1.0], size=shape)).astype(dtype)


def tie_free_array(shape, seed, dtype=np.float64, spacing=0.05):
    """Distinct values, any two at least ``spacing`` apart and none within spacing/2 of 0.

    A shuffled evenly spaced grid: no ties for max pooling, no ReLU kink, and the order
    of values in every window random.
    """
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape)) if len(shape) else 1
    grid = (np.arange(size) - size // 2 + 0.5) * spacing
    return rng.permutation(grid).reshape(shape).astype(dtype)
