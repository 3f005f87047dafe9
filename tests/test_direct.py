"""The direct-convolution kernels (minicnn/_ext/direct_conv.h: the conv and its weight
gradient) against the definition, for every instruction set this CPU can run (AVX-512 and
AVX2 are both tried where AVX-512 is there), over hypothesis-drawn layers: non-square
kernels, unequal padding, rows that are not a whole number of vectors, filter counts that
are not a whole number of blocks, one image; the filters-in-lanes kernel (16 filters, short
rows) the same way; then the conv path that uses them (forward, dW, and the backward's dx by
the flipped filters) against the plain path.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn import backend, runtime
from minicnn.functional import conv, conv_direct

try:
    from minicnn._ext import direct
except ImportError:
    direct = None

ISAS = [] if direct is None or not backend.cython_available() else list(range(1, direct.isa() + 1))
pytestmark = pytest.mark.skipif(not ISAS, reason="no direct kernel on this build or CPU")


@st.composite
def layers(draw, max_channels=12):
    """(n, c, f, h, w, kh, kw, pad_h, pad_w) of a stride-1 conv with an output of at least 1x1."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pad_h, pad_w = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h = max(1, kh - 2 * pad_h) + draw(st.integers(0, 9))
    w = max(1, kw - 2 * pad_w) + draw(st.integers(0, 40))
    return (draw(st.integers(1, 3)), draw(st.integers(1, max_channels)),
            draw(st.integers(1, max_channels)), h, w, kh, kw, pad_h, pad_w)


def reference(x, wt, b, pad_h, pad_w):
    """The definition in float64, padding each axis by its own amount."""
    xpad = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    out, _ = F.conv2d_forward_naive(xpad, wt.astype(np.float64),
                                    None if b is None else b.astype(np.float64), 1, 0)
    return out


def run_kernel(isa, x, wt, b, pad_h, pad_w):
    n, c, h, w = x.shape
    f, _, kh, kw = wt.shape
    oh, ow = h + 2 * pad_h - kh + 1, w + 2 * pad_w - kw + 1
    out = np.full((n, f, oh, ow), np.nan, dtype=np.float32)     # a missed entry shows as NaN
    scratch = np.full(direct.scratch_len(isa, c, oh, ow, kh, kw), np.nan, dtype=np.float32)
    direct.conv(x, direct.pack_weights(wt, isa), f, pad_h, pad_w, b, out, scratch, isa)
    return out


@pytest.mark.parametrize("isa", ISAS)
@settings(max_examples=60, deadline=None)
@given(layers(), st.integers(0, 2 ** 16), st.booleans())
def test_kernel_is_the_convolution(isa, layer, seed, bias):
    n, c, f, h, w, kh, kw, pad_h, pad_w = layer
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32) if bias else None
    x_before = x.copy()
    out = run_kernel(isa, x, wt, b, pad_h, pad_w)
    np.testing.assert_allclose(out, reference(x, wt, b, pad_h, pad_w), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("isa", ISAS)
def test_kernel_resnet_layer(isa):
    """The layer it was written for (CIFAR ResNet 16 -> 16, 32x32, pad 1), several images."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 16, 32, 32)).astype(np.float32)
    wt = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    np.testing.assert_allclose(run_kernel(isa, x, wt, b, 1, 1), reference(x, wt, b, 1, 1),
                               rtol=1e-4, atol=1e-4)


def reference_grad_w(x, dout, kh, kw, pad_h, pad_w):
    """dw of the definition in float64, padding each axis by its own amount."""
    xpad = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    w0 = np.zeros((dout.shape[1], x.shape[1], kh, kw))
    _, cache = F.conv2d_forward_naive(xpad, w0, None, 1, 0)
    return F.conv2d_backward_naive(dout.astype(np.float64), cache)[1]


@pytest.mark.parametrize("isa", ISAS)
@settings(max_examples=60, deadline=None)
@given(layers(), st.integers(0, 2 ** 16))
def test_grad_w_kernel_is_the_weight_gradient(isa, layer, seed):
    """dw += sum over images and output positions; the kernel adds to what dw holds."""
    n, c, f, h, w, kh, kw, pad_h, pad_w = layer
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    oh, ow = h + 2 * pad_h - kh + 1, w + 2 * pad_w - kw + 1
    dout = rng.standard_normal((n, f, oh, ow)).astype(np.float32)
    start = rng.standard_normal((f, c, kh, kw)).astype(np.float32)
    dw = start.copy()
    scratch = np.full(direct.grad_w_scratch_len(isa, n, c, f, oh, ow, kh, kw), np.nan, dtype=np.float32)
    before = x.copy(), dout.copy()
    direct.grad_w(x, dout, pad_h, pad_w, dw, scratch, isa)
    np.testing.assert_allclose(dw, start + reference_grad_w(x, dout, kh, kw, pad_h, pad_w),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(dout, before[1])


def test_grad_w_kernel_rejects_bad_arguments():
    isa = ISAS[-1]
    x = np.zeros((2, 3, 8, 8), np.float32)
    dout = np.zeros((2, 4, 8, 8), np.float32)
    dw = np.zeros((4, 3, 3, 3), np.float32)
    scratch = np.zeros(direct.grad_w_scratch_len(isa, 2, 3, 4, 8, 8, 3, 3), np.float32)
    with pytest.raises(ValueError, match="not one stride-1 conv"):
        direct.grad_w(x, dout, 0, 0, dw, scratch, isa)                   # dout is for pad 1
    with pytest.raises(ValueError, match="not one stride-1 conv"):
        direct.grad_w(x, dout[:1], 1, 1, dw, scratch, isa)
    with pytest.raises(ValueError, match="scratch"):
        direct.grad_w(x, dout, 1, 1, dw, scratch[:10], isa)
    with pytest.raises(RuntimeError, match="cannot run"):
        direct.grad_w(x, dout, 1, 1, dw, scratch, direct.isa() + 1)


def test_kernel_rejects_bad_arguments():
    isa = ISAS[-1]
    x = np.zeros((2, 3, 8, 8), np.float32)
    wt = np.zeros((4, 3, 3, 3), np.float32)
    wpk = direct.pack_weights(wt, isa)
    scratch = np.zeros(direct.scratch_len(isa, 3, 8, 8, 3, 3), np.float32)
    out = np.zeros((2, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        direct.conv(x, wpk, 4, 0, 0, None, out, scratch, isa)              # out is for pad 1
    with pytest.raises(ValueError, match="packed weights"):
        direct.conv(np.zeros((2, 2, 8, 8), np.float32), wpk, 4, 1, 1, None, out, scratch, isa)
    with pytest.raises(ValueError, match="scratch"):
        direct.conv(x, wpk, 4, 1, 1, None, out, scratch[:10], isa)
    with pytest.raises(ValueError, match=r"b of shape \(4,\)"):
        direct.conv(x, wpk, 4, 1, 1, np.zeros(3, np.float32), out, scratch, isa)
    with pytest.raises(RuntimeError, match="cannot run"):
        direct.conv(x, wpk, 4, 1, 1, None, out, scratch, direct.isa() + 1)


LANES_ISAS = [isa for isa in ISAS if direct.lanes_fit(isa, 16, 1)]


@st.composite
def lanes_layers(draw):
    """(n, c, h, w, kh, kw, pad_h, pad_w) of a 16-filter stride-1 conv with rows the
    filters-in-lanes kernel takes (at most 12 outputs), odd sizes and unequal padding."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pad_h, pad_w = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h = max(1, kh - 2 * pad_h) + draw(st.integers(0, 9))
    w = max(1, kw - 2 * pad_w) + draw(st.integers(0, 11 - max(0, 2 * pad_w - kw + 1)))
    return draw(st.integers(1, 3)), draw(st.integers(1, 16)), h, w, kh, kw, pad_h, pad_w


@pytest.mark.skipif(not LANES_ISAS, reason="no filters-in-lanes kernel on this CPU")
@settings(max_examples=60, deadline=None)
@given(lanes_layers(), st.integers(0, 2 ** 16), st.booleans())
def test_lanes_kernel_is_the_convolution(layer, seed, bias):
    """Weights packed in blocks of LANES: direct.conv runs the filters-in-lanes kernel."""
    n, c, h, w, kh, kw, pad_h, pad_w = layer
    isa = LANES_ISAS[-1]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((16, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32) if bias else None
    oh, ow = h + 2 * pad_h - kh + 1, w + 2 * pad_w - kw + 1
    assert direct.lanes_fit(isa, 16, ow)
    out = np.full((n, 16, oh, ow), np.nan, dtype=np.float32)    # a missed entry shows as NaN
    scratch = np.full(direct.scratch_len(isa, c, oh, ow, kh, kw), np.nan, dtype=np.float32)
    x_before = x.copy()
    wpk = direct.pack_weights(wt, isa, direct.LANES)
    assert wpk.shape == (1, c, kh, kw, 16)
    direct.conv(x, wpk, 16, pad_h, pad_w, b, out, scratch, isa)
    np.testing.assert_allclose(out, reference(x, wt, b, pad_h, pad_w), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.skipif(not LANES_ISAS, reason="no filters-in-lanes kernel on this CPU")
def test_lanes_kernel_fits_and_rejects():
    """16 filters, rows of at most 12, AVX-512 only: weights packed for it and a layer it does
    not take are a ValueError, as are mismatched arguments."""
    isa = LANES_ISAS[-1]
    assert direct.lanes_fit(isa, 16, 12) and not direct.lanes_fit(isa, 16, 13)
    assert not direct.lanes_fit(isa, 8, 10) and not direct.lanes_fit(1, 16, 10)
    x = np.zeros((2, 3, 8, 8), np.float32)
    wpk = direct.pack_weights(np.zeros((16, 3, 3, 3), np.float32), isa, direct.LANES)
    scratch = np.zeros(direct.scratch_len(isa, 3, 8, 8, 3, 3), np.float32)
    out = np.zeros((2, 16, 8, 8), np.float32)
    with pytest.raises(ValueError, match="does not fit x"):
        direct.conv(x, wpk, 16, 0, 0, None, out, scratch, isa)              # out is for pad 1
    with pytest.raises(ValueError, match="do not fit x with 3 channels"):
        direct.conv(x, wpk[:, :2].copy(), 16, 1, 1, None, out, scratch, isa)
    with pytest.raises(ValueError, match="does not take 12 filters"):
        direct.conv(x, direct.pack_weights(np.zeros((12, 3, 3, 3), np.float32), isa, direct.LANES), 12,
                    1, 1, None, np.zeros((2, 12, 8, 8), np.float32), scratch, isa)
    with pytest.raises(ValueError, match="scratch"):
        direct.conv(x, wpk, 16, 1, 1, None, out, scratch[:10], isa)
    with pytest.raises(ValueError, match=r"b of shape \(16,\)"):
        direct.conv(x, wpk, 16, 1, 1, np.zeros(3, np.float32), out, scratch, isa)


@pytest.mark.skipif(not LANES_ISAS, reason="no filters-in-lanes kernel on this CPU")
@pytest.mark.parametrize("h, k, pad", [(14, 5, 0), (8, 3, 1), (11, 3, 1), (5, 1, 0), (13, 3, 1)])
def test_conv_path_packs_for_the_lanes_kernel_for_16_filters_and_short_rows(h, k, pad):
    """LeNet-5's second conv and its kind (rows of <= 12) go to the filters-in-lanes kernel,
    a row of 13 to the other; both match the plain path."""
    rng = np.random.default_rng(h)
    x = rng.standard_normal((7, 6, h, h)).astype(np.float32)
    wt = rng.standard_normal((16, 6, k, k)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    blocks = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(direct, "conv", lambda *a: blocks.append(a[1].shape[4]) or conv_kernel(*a))
        out, _ = F.conv2d_forward(x, wt, b, 1, pad)
    assert set(blocks) == {direct.LANES if h + 2 * pad - k + 1 <= 12 else 8}
    with backend.use_cython(False):
        ref, _ = F.conv2d_forward(x, wt, b, 1, pad)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


conv_kernel = direct.conv if direct is not None else None


# ----------------------------------------------------------------------------- the conv path

@st.composite
def conv_layers(draw):
    """(n, c, f, h, w, kh, kw, pad) that the conv path sends to the direct kernel."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pad = draw(st.integers(0, min(kh, kw) - 1))
    h = max(1, kh - 2 * pad) + draw(st.integers(0, 9))
    w = max(1, kw - 2 * pad) + draw(st.integers(0, 20))
    c = draw(st.integers(1, conv_direct.MAX_CHANNELS))
    f = draw(st.integers(1, conv_direct.MAX_CHANNELS))
    return draw(st.integers(1, 5)), c, f, h, w, kh, kw, pad


@pytest.mark.parametrize("isa", ISAS)
@settings(max_examples=40, deadline=None)
@given(conv_layers(), st.integers(0, 2 ** 16), st.booleans(), st.booleans())
def test_conv_direct_path_matches_plain(isa, layer, seed, bias, need_dx):
    n, c, f, h, w, kh, kw, pad = layer
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32) if bias else None
    with backend.use_cython(False):
        ref, ref_cache = F.conv2d_forward(x, wt, b, 1, pad)
        dout = rng.standard_normal(ref.shape).astype(np.float32)
        ref_grads = F.conv2d_backward(dout, ref_cache, need_dx=need_dx)
    dout_before = dout.copy()
    ran = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_direct, "ISA", isa)
        mp.setattr(runtime, "PARALLEL_MIN_MACS", 0)                   # chunks over threads
        mp.setattr(runtime, "cpu_count", lambda: 3)
        forward = conv_direct.forward
        mp.setattr(conv_direct, "forward", lambda *a: ran.append(a[1].shape) or forward(*a))
        out, cache = F.conv2d_forward(x, wt, b, 1, pad)
        grads = F.conv2d_backward(dout, cache, need_dx=need_dx)
    # the forward, and the backward's dx where the layer has channels enough for it
    dx_direct = need_dx and c >= conv_direct.MIN_DX_CHANNELS
    assert ran == [wt.shape] + ([(c, f, kh, kw)] if dx_direct else [])
    assert out.dtype == np.float32 and all(g is None or g.dtype == np.float32 for g in grads)
    np.testing.assert_array_equal(dout, dout_before)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    for got, expected in zip(grads, ref_grads):
        if expected is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_direct_is_used_only_where_it_applies():
    """float32, stride 1, no groups, <= conv_direct.MAX_CHANNELS channels, pad < kernel size."""
    x = np.zeros((2, 16, 8, 8), np.float32)
    w = np.zeros((16, 16, 3, 3), np.float32)
    assert conv_direct.best_isa() == direct.isa()
    assert conv_direct.applies(x, w, 1, 1, 1)
    assert conv.choose_algorithm(np, x, w, 1, 1, 1) == "direct"
    assert not conv_direct.applies(x.astype(np.float64), w.astype(np.float64), 1, 1, 1)
    assert not conv_direct.applies(x, w, 2, 1, 1)
    assert not conv_direct.applies(x, w[:, :8], 1, 1, 2)
    assert not conv_direct.applies(x, w, 1, 3, 1)                  # pad > KH - 1
    wide = conv_direct.MAX_CHANNELS + 1
    assert not conv_direct.applies(np.zeros((2, wide, 8, 8), np.float32),
                                   np.zeros((16, wide, 3, 3), np.float32), 1, 1, 1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_direct, "ISA", 0)
        assert not conv_direct.applies(x, w, 1, 1, 1)
        assert conv.choose_algorithm(np, x, w, 1, 1, 1) == "winograd"
    with pytest.MonkeyPatch.context() as mp:           # the environment caps the instruction set
        for name, level in [("none", 0), ("AVX2", 1), ("avx512", 2), ("", 2)]:
            mp.setenv("MINICNN_DIRECT_ISA", name)
            assert conv_direct.best_isa() == min(level, direct.isa())
        mp.setenv("MINICNN_DIRECT_ISA", "sse9")
        with pytest.raises(ValueError, match="MINICNN_DIRECT_ISA: expected one of none, avx2, avx512, received 'sse9'"):
            F.conv2d_forward(x, w, None, 1, 1)
    with backend.use_cython(False):
        assert conv.choose_algorithm(np, x, w, 1, 1, 1) == "batched"
        out, _ = F.conv2d_forward(x, w, None, 1, 1)       # the plain path, no kernel asked
        assert out.shape == (2, 16, 8, 8)


@pytest.mark.parametrize("winograd_dw", [True, False])
def test_default_settings_take_the_direct_kernel_for_a_resnet_layer(winograd_dw):
    """A CIFAR ResNet 16 -> 16 layer goes direct and matches plain; its dW comes from the
    Winograd path (WINOGRAD_DW, as shipped) or from the direct kernel."""
    from minicnn.functional import conv_winograd
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 16, 32, 32)).astype(np.float32)
    w = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
    assert conv.choose_algorithm(np, x, w, 1, 1, 1) == "direct"
    assert conv_direct.WINOGRAD_DW
    out, cache = F.conv2d_forward(x, w, None, 1, 1)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    ran = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_direct, "WINOGRAD_DW", winograd_dw)
        backward = conv_winograd.backward
        mp.setattr(conv_winograd, "backward", lambda *a, **kw: ran.append(kw) or backward(*a, **kw))
        grads = F.conv2d_backward(dout, cache)
    assert ran == ([{"need_dx": False}] if winograd_dw else [])
    with backend.use_cython(False):
        ref, ref_cache = F.conv2d_forward(x, w, None, 1, 1)
        ref_grads = F.conv2d_backward(dout, ref_cache)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    for got, expected in zip(grads[:2], ref_grads[:2]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
