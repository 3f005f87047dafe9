"""The ops of the efficient networks: ReLU6 (MobileNet v2) and channel shuffle (ShuffleNet v2).

Gradients against numeric ones in float64 (hypothesis), kink-free inputs for ReLU6 (a
centred difference across a kink measures half a slope), known answers, and errors.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.gradcheck import compare, numeric_gradient

TOL, FLOOR = 1e-6, 1e-3


# ------------------------------------------------------------------------------ ReLU6
def _away_from_kinks(x, margin=1e-2):
    """Move entries within ``margin`` of 0 or 6 off the kink, so a step of 1e-5 never crosses it."""
    for kink in (0.0, 6.0):
        near = np.abs(x - kink) < margin
        x[near] = kink + np.where(x[near] >= kink, margin, -margin)
    return x


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**31 - 1))
def test_relu6_gradient_matches_numeric(shape, seed):
    rng = np.random.default_rng(seed)
    x = _away_from_kinks(rng.uniform(-3, 9, size=shape))
    dout = rng.standard_normal(shape)
    out, cache = F.relu6_forward(x)
    dx = F.relu6_backward(dout, cache)
    assert compare(dx, numeric_gradient(lambda v: F.relu6_forward(v)[0], x, dout), floor=FLOOR) < TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu6_known_answers_and_kinks(dtype):
    x = np.array([-1.0, 0.0, 0.5, 6.0, 7.5, np.nan], dtype)
    out, cache = F.relu6_forward(x)
    np.testing.assert_array_equal(out[:5], [0, 0, 0.5, 6, 6])
    assert out.dtype == dtype and np.isnan(out[5])        # divergence stays visible
    # Gradient 1 strictly inside (0, 6); both kinks and both flat parts get 0 (PyTorch's hardtanh).
    np.testing.assert_array_equal(F.relu6_backward(np.ones_like(x), cache), [0, 0, 1, 0, 0, 0])


def test_relu6_errors():
    with pytest.raises(ValueError, match="relu6_forward"):
        F.relu6_forward(np.arange(3))
    _, cache = F.relu6_forward(np.zeros(3))
    with pytest.raises(ValueError, match="relu6_backward"):
        F.relu6_backward(np.zeros(4), cache)


# ---------------------------------------------------------------------- channel shuffle
@st.composite
def shuffle_cases(draw):
    groups = draw(st.integers(1, 4))
    per_group = draw(st.integers(1, 5))          # odd channel counts: 3 groups of 3, 1 x 5, ...
    shape = (draw(st.integers(1, 2)), groups * per_group, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return shape, groups


@settings(max_examples=40, deadline=None)
@given(case=shuffle_cases(), seed=st.integers(0, 2**31 - 1))
def test_channel_shuffle_gradient_is_the_inverse_permutation(case, seed):
    shape, groups = case
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    out, cache = F.channel_shuffle_forward(x, groups)
    dx = F.channel_shuffle_backward(dout, cache)
    num = numeric_gradient(lambda v: F.channel_shuffle_forward(v, groups)[0], x, dout, h=1e-3)
    assert compare(dx, num, floor=FLOOR) < TOL
    # A permutation: the values are x's, and backward undoes forward.
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(x, axis=1))
    np.testing.assert_array_equal(F.channel_shuffle_backward(out, cache), x)


def test_channel_shuffle_known_answer():
    x = np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1)
    out, _ = F.channel_shuffle_forward(x, 2)
    np.testing.assert_array_equal(out.ravel(), [0, 3, 1, 4, 2, 5])
    out, _ = F.channel_shuffle_forward(x, 3)
    np.testing.assert_array_equal(out.ravel(), [0, 2, 4, 1, 3, 5])
    assert out.dtype == np.float32


def test_channel_shuffle_errors():
    x = np.zeros((1, 6, 2, 2))
    with pytest.raises(ValueError, match=r"channel_shuffle_forward: expected a channel count divisible "
                                         r"by groups=4, received x of shape \(1, 6, 2, 2\)"):
        F.channel_shuffle_forward(x, 4)
    with pytest.raises(ValueError, match="channel_shuffle_forward"):
        F.channel_shuffle_forward(x, 0)
    with pytest.raises(ValueError, match="channel_shuffle_forward"):
        F.channel_shuffle_forward(np.zeros((6, 2, 2)), 2)
    _, cache = F.channel_shuffle_forward(x, 2)
    with pytest.raises(ValueError, match=r"channel_shuffle_backward: expected dout of shape \(1, 6, 2, 2\)"):
        F.channel_shuffle_backward(np.zeros((1, 6, 2, 3)), cache)
