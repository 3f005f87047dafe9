"""The ReLU Cython kernels (minicnn/_ext/activations.pyx) against the plain xp path.

Outputs, masks and gradients must be bit-for-bit the plain path's (there is no arithmetic
to round), including NaN and inf in x and in dout and signed zeros, on odd shapes in
float32 and float64, contiguous or not, and on both sides of the threading threshold.

Skipped as a whole when the extension was not built (the plain path is then the only one).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("minicnn._ext.activations", reason="the Cython extension is not built")

import minicnn.functional as F  # noqa: E402
from minicnn import backend  # noqa: E402
from minicnn._ext import activations as act_ext  # noqa: E402
from minicnn.testing import strategies as mst  # noqa: E402

DTYPES = [np.float32, np.float64]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45]


def _both(x, dout):
    """(out, mask, dx) from the kernel path and from the plain path; dout checked unchanged."""
    results = []
    for cython in (True, False):
        keep = dout.copy()
        with backend.use_cython(cython):
            out, mask = F.relu_forward(x)
            dx = F.relu_backward(dout, mask)
        np.testing.assert_array_equal(dout, keep, err_msg="backward wrote into dout")
        results.append((out, mask, dx))
    return results


def _assert_identical(got, want):
    for name, a, b in zip(("out", "mask", "dx"), got, want):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        # Bytes equal: NaN payloads and the sign of zero included.
        assert a.tobytes() == b.tobytes(), name


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=mst.seeds(),
       specials=st.booleans())
def test_relu_kernel_matches_plain_path(dtype, shape, seed, specials):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    if specials:
        flat_x, flat_d = x.reshape(-1), dout.reshape(-1)
        idx = rng.integers(0, x.size, size=min(x.size, 5))
        flat_x[idx] = rng.choice(SPECIAL, size=idx.size)
        flat_d[rng.permutation(idx)] = rng.choice(SPECIAL, size=idx.size)
    got, want = _both(x, dout)
    _assert_identical(got, want)
    assert got[0].dtype == dtype and got[2].dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_kernel_special_values(dtype):
    x = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, -1, 1, 2], dtype)
    dout = np.array([5, 5, 5, np.nan, np.inf, np.nan, -0.0, np.inf], dtype)
    got, want = _both(x, dout)
    _assert_identical(got, want)
    out, mask, dx = got
    assert np.isnan(out[0]) and not mask[0]             # NaN stays NaN, gets no gradient
    assert dx[4] == 0 and dx[5] == 0                    # inf / NaN upstream under a 0 mask -> 0
    assert np.signbit(dx[6]) and dx[7] == np.inf        # passed through bit for bit


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_kernel_non_contiguous_and_large(dtype):
    rng = np.random.default_rng(1)
    n = act_ext.PARALLEL_THRESHOLD // (3 * 9 * 10) + 1          # above the threading threshold
    x = rng.standard_normal((n, 3, 9, 20)).astype(dtype)[:, :, :, ::2]
    dout = rng.standard_normal((n, 3, 9, 20)).astype(dtype)[:, :, :, 1::2]
    got, want = _both(x, dout)
    _assert_identical(got, want)
    # A mask that is not contiguous (a slice of a cache) takes the plain path, same answer.
    mask = want[1][:, :, :, ::2]
    d = np.ascontiguousarray(dout[:, :, :, ::2])
    np.testing.assert_array_equal(F.relu_backward(d, mask), np.where(mask, d, 0))


def test_relu_kernel_rejects_mismatched_sizes():
    x = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="relu_forward"):
        act_ext.relu_forward(x, np.empty(4, np.float32), np.empty(5, np.uint8))
    with pytest.raises(ValueError, match="relu_backward"):
        act_ext.relu_backward(x, np.empty(5, np.uint8), np.empty(6, np.float32))


# ------------------------------------------------------------- relu(a + b) of residual blocks

from minicnn.functional.activations import add_relu_forward  # noqa: E402


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cython", [True, False], ids=["cython", "plain"])
@settings(max_examples=20)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=mst.seeds(),
       specials=st.booleans())
def test_add_relu_is_relu_of_the_sum(dtype, cython, shape, seed, specials):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    if specials:
        a.reshape(-1)[rng.integers(0, a.size)] = rng.choice(SPECIAL)
        b.reshape(-1)[rng.integers(0, b.size)] = rng.choice(SPECIAL)
    keep_a, keep_b = a.copy(), b.copy()
    with backend.use_cython(cython), np.errstate(invalid="ignore"):   # inf + -inf on purpose
        got = add_relu_forward(a, b)
        want = F.relu_forward(a + b)
    _assert_identical(got + (got[0],), want + (want[0],))
    np.testing.assert_array_equal(a, keep_a)
    np.testing.assert_array_equal(b, keep_b)


def test_add_relu_large_and_non_contiguous():
    rng = np.random.default_rng(2)
    n = act_ext.PARALLEL_THRESHOLD // (4 * 9 * 9) + 1
    a = rng.standard_normal((n, 4, 9, 18)).astype(np.float32)[:, :, :, ::2]
    b = rng.standard_normal((n, 4, 9, 9)).astype(np.float32)
    got, want = add_relu_forward(a, b), F.relu_forward(a + b)
    _assert_identical(got + (got[0],), want + (want[0],))


def test_add_relu_rejects_mixed_dtypes_and_shapes():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="add_relu_forward"):
        add_relu_forward(a, np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="add_relu_forward"):
        add_relu_forward(a, np.zeros((3, 2), np.float32))
