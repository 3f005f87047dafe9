"""The blocks of the efficient networks: MobileNet v2's inverted residual and ShuffleNet v2's
unit (with channel split and concat).  Gradients against numeric ones (float64, training mode: BatchNorm on batch
statistics), at stride 1 (with the shortcut / the channel split) and stride 2; inputs whose
activations sit near a kink (ReLU's 0, ReLU6's 0 and 6) are skipped, since a centred
difference across a kink measures half a slope.  Then the two models: parameter counts,
torchvision's key names, forward + backward at CIFAR size, summary at 224x224.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn import models, summary
from minicnn.gradcheck import check_module
from minicnn.nn import InvertedResidual, ReLU, ReLU6, ShuffleUnit
from minicnn.nn.shuffle import channel_concat, channel_split
from minicnn.nn.module import forward_hook

TOL, FLOOR, KINK_MARGIN = 1e-5, 1e-3, 1e-3


def _nearest_kink(module, x):
    nearest = [np.inf]

    def hook(m, inp, out):
        if isinstance(m, ReLU):
            nearest.append(float(np.abs(inp).min()))
        elif isinstance(m, ReLU6):
            nearest.append(float(min(np.abs(inp).min(), np.abs(inp - 6).min())))
    with forward_hook(hook):
        module(x)
    return min(nearest)


def _assert_gradients(module, x):
    module.to(np.float64)
    assume(_nearest_kink(module, x) > KINK_MARGIN)
    report = check_module(module, x, rng=0, floor=FLOOR)
    worst = max(report, key=report.get)
    assert report[worst] < TOL, f"{type(module).__name__}: {worst} rel error {report[worst]!r}"


@settings(max_examples=8, deadline=None)
@given(case=st.sampled_from([(4, 4, 1, 1), (3, 3, 1, 2), (3, 5, 1, 3), (3, 4, 2, 2), (2, 3, 2, 1)]),
       seed=st.integers(0, 2**31 - 1))
def test_inverted_residual_gradients(case, seed):
    cin, cout, stride, t = case
    block = InvertedResidual(cin, cout, stride, t, rng=seed)
    assert block.use_res_connect == (stride == 1 and cin == cout)
    x = np.random.default_rng(seed).standard_normal((2, cin, 5, 5))
    _assert_gradients(block, x)


def test_inverted_residual_has_torchvisions_layout():
    names = [k for k in InvertedResidual(8, 8, 1, 6, rng=0).state_dict() if k.endswith("weight")]
    assert names == ["conv.0.0.weight", "conv.0.1.weight", "conv.1.0.weight", "conv.1.1.weight",
                     "conv.2.weight", "conv.3.weight"]
    names = [k for k in InvertedResidual(8, 4, 2, 1, rng=0).state_dict() if k.endswith("weight")]
    assert names == ["conv.0.0.weight", "conv.0.1.weight", "conv.1.weight", "conv.2.weight"]
    with pytest.raises(ValueError, match="InvertedResidual: expected stride 1 or 2, received 3"):
        InvertedResidual(8, 8, 3, 6)
    with pytest.raises(ValueError, match=r"InvertedResidual: expected x of shape \(N, 8, H, W\)"):
        InvertedResidual(8, 8, 1, 6, rng=0)(np.zeros((1, 4, 3, 3), np.float32))


@settings(max_examples=8, deadline=None)
@given(case=st.sampled_from([(4, 4, 1), (6, 6, 1), (3, 4, 2), (4, 6, 2)]), seed=st.integers(0, 2**31 - 1))
def test_shuffle_unit_gradients(case, seed):
    cin, cout, stride = case
    block = ShuffleUnit(cin, cout, stride, rng=seed)
    x = np.random.default_rng(seed).standard_normal((2, cin, 5, 5))
    _assert_gradients(block, x)


def test_shuffle_unit_keeps_half_the_channels_untouched_at_stride_1():
    """The split's first half is the shortcut: after the shuffle it sits in the even channels."""
    block = ShuffleUnit(6, 6, 1, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 6, 4, 4)).astype(np.float32)
    out = block(x)
    np.testing.assert_array_equal(out[:, 0::2], x[:, :3])
    d = np.zeros_like(out)
    d[:, 0::2] = 1.0                                   # gradient on the untouched half only
    np.testing.assert_array_equal(block.backward(d), np.concatenate([np.ones((2, 3, 4, 4)),
                                                                      np.zeros((2, 3, 4, 4))], axis=1))


def test_channel_split_and_concat_undo_each_other():
    x = np.arange(2 * 6 * 2 * 2, dtype=np.float32).reshape(2, 6, 2, 2)
    a, b = channel_split(x)
    assert a.shape == b.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(channel_concat(a, b), x)


def test_shuffle_unit_layout_and_errors():
    keys = [k for k in ShuffleUnit(24, 116, 2, rng=0).state_dict() if k.endswith("weight")]
    assert keys[:4] == ["branch1.0.weight", "branch1.1.weight", "branch1.2.weight", "branch1.3.weight"]
    assert keys[-1] == "branch2.6.weight"
    assert not any(k.startswith("branch1") for k in ShuffleUnit(8, 8, 1, rng=0).state_dict())
    with pytest.raises(ValueError, match="ShuffleUnit: expected an even out_channels, equal to "
                                         "in_channels at stride 1, received in_channels=4, out_channels=6"):
        ShuffleUnit(4, 6, 1)
    with pytest.raises(ValueError, match="ShuffleUnit: expected an even out_channels"):
        ShuffleUnit(4, 5, 2)
    with pytest.raises(ValueError, match="ShuffleUnit: expected stride 1 or 2"):
        ShuffleUnit(4, 4, 3)


# ------------------------------------------------------------------------- the models
EFFICIENT = {"mobilenet_v2": 3_504_872, "shufflenet_v2_x1_0": 2_278_604}


@pytest.mark.parametrize("name", sorted(EFFICIENT))
def test_published_parameter_counts(name):
    assert models.num_parameters(name) == EFFICIENT[name]


@pytest.mark.parametrize("name", sorted(EFFICIENT))
def test_forward_backward_at_cifar_size(name):
    model = models.create(name, num_classes=7, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = model(x)
    assert out.shape == (2, 7) and np.isfinite(out).all()
    dx = model.backward(np.ones_like(out))
    assert dx.shape == x.shape and np.isfinite(dx).all()
    assert all(p.grad is not None and np.isfinite(p.grad).all() for p in model.parameters())


def test_mobilenet_v2_summary_at_224():
    s = summary(models.create("mobilenet_v2", rng=0), (3, 224, 224))
    assert s.total_params == 3_504_872
    assert s.row("features.1.conv.2").output_shape[1:] == (16, 112, 112)
    assert s.row("features.18.2").output_shape[1:] == (1280, 7, 7)
    assert s.total_mult_adds == 300_774_272     # the paper's 300M; torchvision's 0.301 GFLOPS


def test_shufflenet_v2_summary_at_224():
    s = summary(models.create("shufflenet_v2_x1_0", rng=0), (3, 224, 224))
    assert s.total_params == 2_278_604
    assert s.row("maxpool").output_shape[1:] == (24, 56, 56)       # the paper's Table 5
    assert s.row("conv5.0").output_shape[1:] == (1024, 7, 7)
    assert s.total_mult_adds == 144_907_992                         # torchvision's 0.14 GFLOPS
