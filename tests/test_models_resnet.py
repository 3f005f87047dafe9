"""The ResNet family: resnet18..152, CIFAR resnet20..110 and plain twins, preact_resnet18,
wide_resnet / wrn16_4, resnext50_32x4d, se_resnet50.

Exact parameter counts (torchvision's for the ImageNet models), multiply-adds against
the ResNet paper's Table 1, torchvision state_dict names, forward + backward of every
model on a small batch, and state_dict round trips.
"""
import numpy as np
import pytest

import minicnn
from minicnn import models
from minicnn.models.cifar_resnet import CifarResNet
from minicnn.models.preact_resnet import PreActResNet
from minicnn.models.resnet import TABLE_1, ResNet
from minicnn.nn.layers import BatchNorm2d, Conv2d, Linear
from minicnn.nn.module import forward_hook
from minicnn.nn.residual import BasicBlock, Bottleneck, PreActBlock, SEBottleneck, ZeroPadShortcut

PARAMS = {
    # torchvision's counts (num_classes=1000)
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904,
    # ResNet-50 + 2 C^2/16 + C/16 + C per bottleneck (Hu et al.: 28.1M)
    "se_resnet50": 28_088_024,
    # CIFAR, num_classes=10 (He et al. 2016: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M)
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
    "resnet110": 1_727_962,
    "plain20": 269_722, "plain32": 464_154, "plain44": 658_586, "plain56": 853_018,
    "plain110": 1_727_962,
    "preact_resnet18": 11_172_170,
    "wide_resnet": 36_479_194,  # WRN-28-10 (paper: 36.5M)
    "wrn16_4": 2_748_890,       # (paper: 2.7M)
}
IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
            "se_resnet50"]
CIFAR = [n for n in PARAMS if n not in IMAGENET]

_cache = {}


@pytest.fixture(scope="module", autouse=True)
def _free_models():
    # The cached models hold ~2 GB of weights and gradients: release them after this file.
    yield
    _cache.clear()


def model(name):
    """One instance per name for the whole file (building resnet152 takes a second or two)."""
    if name not in _cache:
        _cache[name] = models.create(name, rng=0)
    return _cache[name]


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_all_registered():
    assert set(PARAMS) <= set(models.names())


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts_exact(name):
    assert model(name).num_parameters() == PARAMS[name]


def test_table_1_block_counts():
    assert {k: (b.__name__, n) for k, (b, n) in TABLE_1.items()} == {
        "resnet18": ("BasicBlock", [2, 2, 2, 2]), "resnet34": ("BasicBlock", [3, 4, 6, 3]),
        "resnet50": ("Bottleneck", [3, 4, 6, 3]), "resnet101": ("Bottleneck", [3, 4, 23, 3]),
        "resnet152": ("Bottleneck", [3, 8, 36, 3])}
    for name, (block, counts) in TABLE_1.items():
        m = model(name)
        assert [len(getattr(m, f"layer{i}")) for i in range(1, 5)] == counts
        assert all(type(b) is block for i in range(1, 5) for b in getattr(m, f"layer{i}"))
        # weighted layers: 18 = 1 + 2*8 + 1, 50 = 1 + 3*16 + 1, ... (downsample convs not counted)
        convs = sum(isinstance(mod, Conv2d) and ".downsample." not in n
                    for n, mod in m.named_modules())
        assert convs + 1 == int(name[6:])


# ----------------------------------------------------------------- multiply-adds
def conv_fc_mult_adds(m, shape):
    """(conv, fc) multiply-adds of one image, summed over every Conv2d and Linear by hooks."""
    total = {"conv": 0, "fc": 0}

    def hook(mod, x, out):
        if isinstance(mod, Conv2d):
            kh, kw = mod.kernel_size
            total["conv"] += out[0].size * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, Linear):
            total["fc"] += mod.weight.data.size

    m.eval()
    with forward_hook(hook):
        m(_x(shape))
    return total["conv"], total["fc"]


def mult_adds_224(m):
    """Multiply-adds at 224x224, measured at 64x64: every map of a ResNet at 64x64 is 2/7 of
    its size at 224 (32/112, 16/56, ..., 2/7), so the conv part scales by exactly (7/2)^2
    and the fc part not at all (checked against a real 224 run in the test below)."""
    conv, fc = conv_fc_mult_adds(m, (1, 3, 64, 64))
    assert conv * 49 % 4 == 0
    return conv * 49 // 4 + fc


def test_mult_adds_scaling_rule_matches_a_224_run():
    conv, fc = conv_fc_mult_adds(model("resnet18"), (1, 3, 224, 224))
    assert conv + fc == mult_adds_224(model("resnet18")) == 1_814_073_344


PAPER_GMACS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6,
               "resnet152": 11.3}


@pytest.mark.parametrize("name", list(PAPER_GMACS))
def test_mult_adds_match_the_paper(name):
    # v1 (stride in the first 1x1, the paper's layout) within 5% of Table 1.
    v1 = model(name) if name in ("resnet18", "resnet34") else \
        models.create(name, rng=0, stride_in_1x1=True)
    assert abs(mult_adds_224(v1) / 1e9 / PAPER_GMACS[name] - 1) < 0.05
    # v1.5 (torchvision, the default): resnet50 4.09 G is 7.6% above the paper's 3.8 G,
    # the price of the stride in the 3x3; the deeper ones stay within 5%.
    expected_v15 = {"resnet18": 1_814_073_344, "resnet34": 3_663_761_408,
                    "resnet50": 4_089_184_256, "resnet101": 7_801_405_440,
                    "resnet152": 11_513_626_624}[name]
    assert mult_adds_224(model(name)) == expected_v15


def test_mult_adds_resnext_and_se():
    assert abs(mult_adds_224(model("resnext50_32x4d")) / 1e9 - 4.2) < 0.05 * 4.2  # Xie et al.
    se = mult_adds_224(model("se_resnet50"))   # v1 like the paper's: 3.87 G
    base = mult_adds_224(models.create("resnet50", rng=0, stride_in_1x1=True))
    assert abs(se / 1e9 - 3.87) < 0.05 * 3.87
    assert 0 < se - base < 0.01 * base          # SE adds < 1% of the computation


def test_summary_agrees():
    s = minicnn.summary(model("resnet20"), (3, 32, 32))
    assert s.total_params == PARAMS["resnet20"]
    conv, fc = conv_fc_mult_adds(model("resnet20"), (1, 3, 32, 32))
    assert s.total_mult_adds == conv + fc  # ~41 M (the paper does not list it)


# ---------------------------------------------------------------- forward/backward
def _forward_backward(m, x, num_classes, min_fraction=0.9):
    m.train()
    out = m(x)
    assert out.shape == (x.shape[0], num_classes) and out.dtype == np.float32
    assert np.isfinite(out).all()
    m.zero_grad()
    dx = m.backward(_x(out.shape, 1))
    assert dx.shape == x.shape and dx.dtype == np.float32 and np.isfinite(dx).all()
    grads = [p.grad for p in m.parameters()]
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in grads)
    # every parameter receives a gradient (fc, the stem and each block are all connected)
    assert m.conv1.weight.grad.any() and m.fc.weight.grad.any()
    assert sum(bool(g.any()) for g in grads) >= min_fraction * len(grads)


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_models_forward_backward_on_cifar_size(name):
    # 32x32 is the smallest size the stem + four stages allow (the last stage is 1x1).
    _forward_backward(model(name), _x((2, 3, 32, 32)), 1000)


def test_imagenet_model_at_64_and_num_classes():
    m = models.create("resnet18", num_classes=7, rng=0)
    _forward_backward(m, _x((1, 3, 64, 64)), 7)
    shapes = {}
    with forward_hook(lambda mod, x, out: shapes.update({id(mod): out.shape})):
        m(_x((1, 3, 224, 224)).astype(np.float32))
    # The paper's Table 1 output sizes.
    assert shapes[id(m.conv1)] == (1, 64, 112, 112) and shapes[id(m.maxpool)] == (1, 64, 56, 56)
    assert [shapes[id(getattr(m, f"layer{i}"))] for i in range(1, 5)] == [
        (1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_models_forward_backward(name):
    # CIFAR's 32x32 for the shallow nets; the deep and wide ones at 16x16 (global pooling
    # takes any size) to keep the suite fast.
    x = _x((2, 3, 32, 32) if name[-2:] in ("20", "32") else (2, 3, 16, 16))
    _forward_backward(model(name), x, 10)


def test_cifar_num_classes_and_other_sizes():
    m = models.create("resnet20", num_classes=100, rng=0)
    _forward_backward(m, _x((2, 3, 24, 24)), 100)
    _forward_backward(models.create("wrn16_4", num_classes=5, rng=0), _x((2, 3, 8, 8)), 5)


def test_wide_resnet_depth_width():
    m = models.create("wide_resnet", depth=16, width=2, rng=0)
    assert [len(getattr(m, f"layer{i}")) for i in (1, 2, 3)] == [2, 2, 2]
    assert m.layer3[0].conv1.out_channels == 128
    assert m.layer1[0].downsample is not None  # 16 -> 32 channels: projection
    with pytest.raises(ValueError, match="depth = 6n \\+ 4"):
        models.create("wide_resnet", depth=27)
    m = models.create("wrn16_4", dropout=0.3, rng=0)
    assert m.layer1[0].dropout.p == 0.3


# ------------------------------------------------------------------- CIFAR specifics
@pytest.mark.parametrize("depth,n", [(20, 3), (32, 5), (44, 7), (56, 9), (110, 18)])
def test_cifar_depth_is_6n_plus_2(depth, n):
    for prefix in ("resnet", "plain"):
        m = model(f"{prefix}{depth}")
        weighted = [mod for _, mod in m.named_modules() if isinstance(mod, (Conv2d, Linear))]
        assert len(weighted) == depth and [len(m.layer1), len(m.layer2), len(m.layer3)] == [n] * 3


def test_cifar_option_a_and_plain():
    res, plain = model("resnet20"), model("plain20")
    pads = [n for n, mod in res.named_modules() if isinstance(mod, ZeroPadShortcut)]
    assert pads == ["layer2.0.downsample", "layer3.0.downsample"]
    assert all(b.residual for s in (res.layer1, res.layer2, res.layer3) for b in s)
    assert not any(b.residual for s in (plain.layer1, plain.layer2, plain.layer3) for b in s)
    assert list(res.state_dict()) == list(plain.state_dict())
    shapes = {}
    with forward_hook(lambda mod, x, out: shapes.update({id(mod): out.shape})):
        res(_x((1, 3, 32, 32)))
    assert [shapes[id(getattr(res, f"layer{i}"))][1:] for i in (1, 2, 3)] == [
        (16, 32, 32), (32, 16, 16), (64, 8, 8)]
    # option B on request
    b = models.create("resnet20", shortcut="B", rng=0)
    assert b.layer2[0].downsample[0].weight.shape == (32, 16, 1, 1)
    with pytest.raises(ValueError, match="plain20: a plain network has no shortcut"):
        models.create("plain20", shortcut="A")


def test_same_seed_same_model():
    a, b = models.create("resnet20", rng=3), models.create("resnet20", rng=3)
    c = models.create("resnet20", rng=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert not np.array_equal(sa["conv1.weight"], sc["conv1.weight"])


# ----------------------------------------------------------------- state dicts
def test_state_dict_names_are_torchvision():
    sd = model("resnet18").state_dict()
    # torchvision's 122 keys minus its 20 num_batches_tracked
    assert len(sd) == 102
    assert list(sd)[:10] == [
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
        "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias",
        "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var"]
    assert list(sd)[-2:] == ["fc.weight", "fc.bias"]
    expected = {"layer1.0.conv1.weight": (64, 64, 3, 3), "layer2.0.conv1.weight": (128, 64, 3, 3),
                "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                "layer2.0.downsample.1.running_var": (128,), "layer4.1.bn2.bias": (512,),
                "fc.weight": (1000, 512)}
    assert {k: sd[k].shape for k in expected} == expected
    assert "layer1.0.downsample.0.weight" not in sd  # identity shortcut in resnet18's stage 1

    sd50 = model("resnet50").state_dict()
    assert len(sd50) == 320 - 53  # torchvision: 320 keys, 53 BatchNorms
    expected = {"layer1.0.conv3.weight": (256, 64, 1, 1), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
                "layer2.0.conv2.weight": (128, 128, 3, 3), "layer3.5.bn3.weight": (1024,),
                "layer4.2.conv1.weight": (512, 2048, 1, 1), "fc.weight": (1000, 2048)}
    assert {k: sd50[k].shape for k in expected} == expected
    assert model("resnet50").layer2[0].conv2.stride == 2  # v1.5: stride in the 3x3
    assert model("resnet50").layer2[0].conv1.stride == 1
    assert model("resnext50_32x4d").state_dict()["layer1.0.conv2.weight"].shape == (128, 4, 3, 3)
    assert model("se_resnet50").state_dict()["layer1.0.se.fc1.weight"].shape == (16, 256)


# Small members of each family (same classes as the registered models, fewer blocks)
# keep the round trips fast; resnet18 checks a full registered model.
ROUND_TRIP = {
    "resnet18": lambda rng: models.create("resnet18", rng=rng),
    "se_resnet": lambda rng: ResNet(SEBottleneck, [1, 1, 1, 1], rng=rng),
    "resnext": lambda rng: ResNet(Bottleneck, [1, 1, 1, 1], groups=8, width_per_group=4, rng=rng),
    "resnet20": lambda rng: models.create("resnet20", rng=rng),
    "preact": lambda rng: PreActResNet([1, 1, 1, 1], rng=rng),
    "wrn": lambda rng: models.create("wide_resnet", depth=10, width=2, dropout=0.3, rng=rng),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_state_dict_round_trip(name):
    shape = (2, 3, 32, 32) if name in ("resnet18", "se_resnet", "resnext") else (2, 3, 16, 16)
    src = ROUND_TRIP[name](1)
    src.train()
    src(_x(shape, 5))  # move the BN running statistics away from their initial values
    dst = ROUND_TRIP[name](2)
    x = _x(shape, 6)
    assert not np.allclose(src.eval()(x), dst.eval()(x))
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(src(x), dst(x))


def test_wrong_shape_refused_with_key():
    sd = models.create("resnet20", num_classes=100, rng=0).state_dict()
    with pytest.raises(ValueError, match="fc.weight"):
        model("resnet20").load_state_dict(sd)


def test_block_types():
    assert isinstance(model("resnet18").layer1[0], BasicBlock)
    assert isinstance(model("resnet152").layer3[35], Bottleneck)
    assert isinstance(model("preact_resnet18").layer2[0], PreActBlock)
    assert isinstance(model("wide_resnet").layer3[3], PreActBlock)
    assert isinstance(model("resnet110"), CifarResNet)
    assert model("se_resnet50").layer1[0].se.fc1.weight.shape == (16, 256)


def test_zero_init_residual_option():
    m = models.create("resnet50", zero_init_residual=True, rng=0)
    assert all(not b.bn3.weight.data.any() for s in (m.layer1, m.layer4) for b in s)
    assert all(b.bn3.weight.data.all() for b in model("resnet50").layer1)  # off by default


def test_batchnorm_count():
    assert sum(isinstance(mod, BatchNorm2d) for mod in model("resnet50").modules()) == 53


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="need a Bottleneck block"):
        models.create("resnet18", stride_in_1x1=True)
    with pytest.raises(ValueError, match="CifarResNet: expected num_classes >= 1, received 0"):
        models.create("resnet20", num_classes=0)
    with pytest.raises(ValueError, match="expected shortcut in"):
        models.create("resnet20", shortcut="C")
    with pytest.raises(ValueError, match=r"ResNet: expected x of shape \(N, 3, H, W\)"):
        model("resnet18")(np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"WideResNet: expected width \(k\) >= 1, received 0"):
        models.create("wide_resnet", width=0)
    with pytest.raises(ValueError, match=r"ResNet: expected layers\[2\] to be an int >= 1"):
        ResNet(Bottleneck, [3, 4, 6.0, 3])


def test_stochastic_depth_models():
    m = models.create("resnet56", survival_prob=0.5, rng=0)
    probs = [b.survival_prob for s in (m.layer1, m.layer2, m.layer3) for b in s]
    assert len(probs) == 27 and probs[-1] == 0.5 and probs == sorted(probs, reverse=True)
    assert m.num_parameters() == PARAMS["resnet56"]
    x = _x((2, 3, 16, 16))
    _forward_backward(m, x, 10, min_fraction=0.2)  # the blocks dropped this step get none
    m.eval()
    np.testing.assert_array_equal(m(x), m(x))  # evaluation is deterministic: nothing dropped
    r = models.create("resnet18", survival_prob=0.8, rng=0)
    assert r.layer4[1].survival_prob == pytest.approx(0.8)
    _forward_backward(r, _x((2, 3, 32, 32)), 1000, min_fraction=0.2)
