"""The classic and later models other than the ResNet family: LeNet-5, AlexNet, ZFNet, VGG,
NiN, GoogLeNet, DenseNet-121, SqueezeNet 1.0, MobileNet v1, FractalNet.

* parameter counts equal the published / torchvision ones (models built with a cheap
  zero init: the count depends on shapes only, and VGG16's He init alone takes ~10 s);
* every registered model runs forward + backward on a small batch (the big ImageNet
  models at CIFAR size, which their global pooling allows; AlexNet/ZFNet/VGG through
  their teaching-width CIFAR variants) with the right shapes and finite values;
* AlexNet's first layers have the lecture's shapes on a real 227x227 image;
* state_dict round trip with torchvision's key names; a wrong shape is refused by key.
"""
import numpy as np
import pytest

from minicnn import models
from minicnn.nn import init
from minicnn.nn.layers import Conv2d, Dropout, LocalResponseNorm
from minicnn.nn.module import forward_hook

MINE = ["lenet5", "alexnet", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
        "vgg16_bn", "vgg19_bn", "nin", "googlenet", "densenet121", "squeezenet1_0", "mobilenet_v1",
        "fractalnet"]


@pytest.fixture
def cheap_init(monkeypatch):
    """Zero weights instead of He-normal draws: shapes (and so counts) are unchanged."""
    monkeypatch.setattr(init, "he_normal", lambda shape, fan_in=None, rng=None, dtype=np.float32:
                        np.zeros(shape, dtype))


def test_all_registered():
    assert set(MINE) <= set(models.names())


# -------------------------------------------------------------------- parameter counts
def _conv(cin, cout, k, bias=True):
    return cout * cin * k * k + (cout if bias else 0)


def _fc(cin, cout):
    return cout * cin + cout


def _googlenet_count(num_classes=1000):
    """The paper's Table 1, summed by hand (convs with bias, 5x5 in the third branch)."""
    table = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64),
             (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
             (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
             (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
             (832, 384, 192, 384, 48, 128, 128)]
    total = _conv(3, 64, 7) + _conv(64, 64, 1) + _conv(64, 192, 3) + _fc(1024, num_classes)
    for cin, c1, r3, c3, r5, c5, pp in table:
        total += (_conv(cin, c1, 1) + _conv(cin, r3, 1) + _conv(r3, c3, 3) + _conv(cin, r5, 1)
                  + _conv(r5, c5, 5) + _conv(cin, pp, 1))
    return total


EXACT = {
    # Published / torchvision counts.
    "alexnet": 62_378_344,          # the CS231n lecture's AlexNet (ungrouped)
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "densenet121": 7_978_856,
    "squeezenet1_0": 1_248_424,
    "mobilenet_v1": 4_231_976,      # the trainable parameters of Keras' MobileNet(alpha=1.0)
    # Hand-summed from the layer tables in the docstrings.
    "lenet5": 61_706,               # 156 + 2,416 + 48,120 + 10,164 + 850
    "nin": (_conv(3, 192, 5) + _conv(192, 160, 1) + _conv(160, 96, 1) + _conv(96, 192, 5)
            + 2 * _conv(192, 192, 1) + _conv(192, 192, 3) + _conv(192, 192, 1) + _conv(192, 10, 1)),
    "googlenet": _googlenet_count(),
    "zfnet": (_conv(3, 96, 7) + _conv(96, 256, 5) + _conv(256, 512, 3) + _conv(512, 1024, 3)
              + _conv(1024, 512, 3) + _fc(6 * 6 * 512, 4096) + _fc(4096, 4096) + _fc(4096, 1000)),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_parameter_counts(name, cheap_init):
    assert models.create(name, rng=0).num_parameters() == EXACT[name]


def test_alexnet_layer_parameters(cheap_init):
    f = models.create("alexnet", rng=0).features
    convs = [m for m in f if isinstance(m, Conv2d)]
    assert [m.weight.size + m.bias.size for m in convs] == [34_944, 614_656, 885_120, 1_327_488,
                                                            884_992]
    lrn = f[3]
    assert isinstance(lrn, LocalResponseNorm)
    # The paper's n=5, alpha=1e-4 (no 1/n), beta=0.75, k=2 in the alpha/n convention.
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, 0.75, 2.0)


def test_alexnet_conv1_and_pool1_shapes_on_a_227_image():
    model = models.create("alexnet", rng=0)
    x = np.random.default_rng(0).standard_normal((1, 3, 227, 227)).astype(np.float32)
    shapes = []
    with forward_hook(lambda m, inp, out: shapes.append((type(m).__name__, out.shape[1:]))):
        model.features[:4](x)   # CONV1, ReLU, MAX POOL1, NORM1
    assert shapes[:4] == [("Conv2d", (96, 55, 55)), ("ReLU", (96, 55, 55)),
                          ("MaxPool2d", (96, 27, 27)), ("LocalResponseNorm", (96, 27, 27))]


def test_vgg_configurations_are_the_papers_table():
    from minicnn.models.vgg import cfgs
    convs = {k: sum(1 for v in cfg if v != "M") for k, cfg in cfgs.items()}
    assert convs == {"A": 8, "B": 10, "D": 13, "E": 16}   # + 3 FC = 11, 13, 16, 19 layers
    assert all(cfg.count("M") == 5 for cfg in cfgs.values())


def test_teaching_widths(cheap_init):
    assert models.create("alexnet", width=0.25, cifar=True, rng=0).features[0].out_channels == 24
    vgg = models.create("vgg16", width=0.25, cifar=True, num_classes=10, rng=0)
    assert vgg.features[0].out_channels == 16 and vgg.classifier[0].in_features == 128
    assert models.create("vgg16", input_size=64, rng=0).classifier[0].in_features == 512 * 4
    assert models.create("mobilenet_v1", width=0.5, rng=0).classifier.in_features == 512
    with pytest.raises(ValueError, match="multiple of 32"):
        models.create("vgg11", input_size=100)
    with pytest.raises(ValueError, match="VGG: expected width .*> 0, received 0"):
        models.create("vgg11", width=0)
    with pytest.raises(ValueError, match="AlexNet: expected width"):
        models.create("alexnet", width=True)


# ---------------------------------------------------------------- forward + backward
SMALL = [
    ("lenet5", dict(), (2, 1, 32, 32)),
    ("lenet5", dict(in_channels=3), (2, 3, 32, 32)),
    ("alexnet", dict(width=0.25, cifar=True), (2, 3, 32, 32)),
    ("zfnet", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
    ("vgg11", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
    ("vgg13", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
    ("vgg16", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
    ("vgg19", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
    ("vgg11_bn", dict(width=0.125, input_size=64), (2, 3, 64, 64)),
    ("vgg13_bn", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
    ("vgg16_bn", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
    ("vgg19_bn", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
    ("nin", dict(), (2, 3, 32, 32)),
    ("googlenet", dict(), (2, 3, 32, 32)),
    ("densenet121", dict(), (2, 3, 32, 32)),
    ("squeezenet1_0", dict(), (2, 3, 32, 32)),
    ("mobilenet_v1", dict(), (2, 3, 32, 32)),
    ("mobilenet_v1", dict(width=0.25), (2, 3, 40, 40)),
    ("fractalnet", dict(channels=(4, 8, 8, 8, 8), global_prob=0.0), (2, 3, 32, 32)),
]


def _ids(case):
    name, kw, _ = case
    return name + "".join(f"-{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("case", SMALL, ids=[_ids(c) for c in SMALL])
def test_forward_backward(case):
    name, kw, shape = case
    model = models.create(name, num_classes=7, rng=0, **kw)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    seen = set()
    with forward_hook(lambda m, inp, out: seen.add(id(m))):
        out = model(x)
    assert out.shape == (shape[0], 7) and out.dtype == np.float32
    assert np.isfinite(out).all()
    # Every layer ran through __call__, so summary's hooks see it.
    assert {id(m) for m in model.modules()} <= seen
    model.zero_grad()
    dx = model.backward(rng.standard_normal(out.shape).astype(np.float32))
    assert dx.shape == x.shape and dx.dtype == np.float32 and np.isfinite(dx).all()
    assert np.abs(dx).sum() > 0
    for pname, p in model.named_parameters():
        assert p.grad.dtype == np.float32 and np.isfinite(p.grad).all(), pname
    # The first and last layers are reached by the gradient.
    params = list(model.parameters())
    assert np.abs(params[0].grad).sum() > 0 and np.abs(params[-1].grad).sum() > 0


def test_cifar_classifier_reads_the_final_1x1_map():
    model = models.create("vgg11", width=0.25, cifar=True, num_classes=10, rng=0)
    shapes = []
    with forward_hook(lambda m, inp, out: shapes.append(out.shape)):
        model.features(np.zeros((1, 3, 32, 32), np.float32))
    assert shapes[-1] == (1, 128, 1, 1)


def test_fixed_size_models_name_the_size_they_expect():
    with pytest.raises(ValueError, match="227"):
        models.create("alexnet", width=0.125, rng=0)(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="32, 32"):
        models.create("vgg11", width=0.125, cifar=True, rng=0)(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="LeNet5"):
        models.create("lenet5", rng=0)(np.zeros((1, 3, 32, 32), np.float32))


def test_eval_is_deterministic_and_training_drops():
    model = models.create("alexnet", width=0.125, cifar=True, num_classes=5, rng=0)
    assert any(isinstance(m, Dropout) for m in model.modules())
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert not np.array_equal(model(x), model(x))          # dropout masks differ
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))


def test_fractalnet_drop_path_global_and_local():
    kw = dict(num_classes=3, channels=(3, 3), columns=3)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    a, b = models.create("fractalnet", rng=5, **kw), models.create("fractalnet", rng=5, **kw)
    columns_used = []
    for _ in range(12):
        np.testing.assert_array_equal(a(x), b(x))            # one seed, one sequence of paths
        columns_used.append(a.block1.column)
        assert a.block2.column == a.block1.column             # global: one column everywhere
    assert None in columns_used and set(columns_used) - {None}  # both kinds occur
    a.eval()
    np.testing.assert_array_equal(a(x), a(x))
    assert a.block1.column is None                            # evaluation: every column joins
    a.column = 1                                              # the extracted shallow column
    x64 = x.astype(np.float64)
    a.to(np.float64)
    h = x64
    for i in (1, 2):
        h = getattr(a, f"pool{i}")(getattr(a, f"block{i}").column1_1(h))
    np.testing.assert_allclose(a(x64), a.fc(a.avgpool(h)))


# ---------------------------------------------------------------------- GoogLeNet aux
def test_googlenet_aux_heads_off_by_default(cheap_init):
    model = models.create("googlenet", rng=0)
    assert not any(k.startswith("aux") for k in model.state_dict())
    assert "inception3a.branch3.2.weight" in model.state_dict()
    assert model.inception3a.branch3[2].weight.shape == (32, 16, 5, 5)   # the paper's 5x5


def test_googlenet_aux_gradients_add_at_the_taps():
    # 80x80: inception4a/4d see 5x5 maps, the smallest the heads' 5x5 pool takes.
    model = models.create("googlenet", num_classes=4, aux_logits=True, input_size=80, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 80, 80)).astype(np.float32)
    out = model(x)
    a1, a2 = model.aux_outputs
    assert out.shape == a1.shape == a2.shape == (2, 4)
    rng = np.random.default_rng(1)
    dout, d1, d2 = (rng.standard_normal((2, 4)).astype(np.float32) for _ in range(3))
    # backward is linear in its upstream gradients: the aux paths add to the trunk's.
    model.zero_grad()
    dx_main = model.backward(dout)
    assert all(np.all(p.grad == 0) for p in model.aux1.parameters())
    dx_aux = model.backward(np.zeros_like(dout), aux_douts=(d1, d2))
    assert np.abs(model.aux1[1].weight.grad).sum() > 0
    assert np.abs(model.aux2[1].weight.grad).sum() > 0
    dx_all = model.backward(dout, aux_douts=(d1, d2))
    np.testing.assert_allclose(dx_all, dx_main + dx_aux, rtol=1e-4, atol=1e-6)
    model.eval()
    model(x)
    assert model.aux_outputs is None
    with pytest.raises(ValueError, match="aux_douts"):
        model.backward(dout, aux_douts=(d1, d2))


# ------------------------------------------------------------------------ state dicts
# torchvision's key names (AlexNet: the same features.N / classifier.N scheme, its own indices).
TORCHVISION_KEYS = {
    "alexnet": ["features.0.weight", "features.12.weight", "classifier.0.weight",
                "classifier.3.bias", "classifier.6.weight"],
    "vgg16": ["features.0.weight", "features.28.bias", "classifier.0.weight", "classifier.3.weight",
              "classifier.6.bias"],
    "vgg16_bn": ["features.1.running_var", "features.41.weight", "classifier.6.weight"],
    "densenet121": ["features.conv0.weight", "features.norm0.running_mean",
                    "features.denseblock1.denselayer1.norm1.weight",
                    "features.denseblock1.denselayer1.conv2.weight",
                    "features.transition1.conv.weight",
                    "features.denseblock4.denselayer16.conv2.weight",
                    "features.norm5.bias", "classifier.weight"],
    "squeezenet1_0": ["features.0.weight", "features.3.squeeze.weight",
                      "features.12.expand3x3.bias",
                      "classifier.1.weight"],
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_KEYS))
def test_torchvision_key_names(name, cheap_init):
    keys = models.create(name, rng=0).state_dict()
    for k in TORCHVISION_KEYS[name]:
        assert k in keys, k
    assert not any(k.endswith("num_batches_tracked") for k in keys)


@pytest.mark.parametrize("name, kw, shape", [
    ("lenet5", dict(), (2, 1, 32, 32)),
    ("squeezenet1_0", dict(), (2, 3, 32, 32)),
    ("mobilenet_v1", dict(width=0.25), (2, 3, 32, 32)),
    ("fractalnet", dict(channels=(4, 4, 4, 4, 4), columns=2), (2, 3, 32, 32)),
    ("vgg11_bn", dict(width=0.125, cifar=True), (2, 3, 32, 32)),
])
def test_state_dict_round_trip(name, kw, shape):
    a = models.create(name, num_classes=6, rng=0, **kw)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    a(x)                                     # training step: running statistics move
    a.eval()
    b = models.create(name, num_classes=6, rng=1, **kw).eval()
    assert not np.array_equal(a(x), b(x))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x), b(x))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)


def test_wrong_shape_is_refused_naming_the_key():
    model = models.create("squeezenet1_0", num_classes=10, rng=0)
    sd = models.create("squeezenet1_0", num_classes=1000, rng=0).state_dict()
    with pytest.raises(ValueError, match="classifier.1.weight"):
        model.load_state_dict(sd)


def test_a_seed_reproduces_the_model():
    a = models.create("nin", rng=3).state_dict()
    b = models.create("nin", rng=3).state_dict()
    c = models.create("nin", rng=4).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["features.0.weight"], c["features.0.weight"])


@pytest.mark.parametrize("name,kw", [("small_cnn", {}), ("resnet20", {}), ("resnet56", {}),
                                     ("fractalnet", {}), ("lenet5", {"in_channels": 3}),
                                     ("mobilenet_v1", {"width": 0.25})])
def test_untrained_loss_is_near_ln_k(name, kw):
    """The sanity check `minicnn train` prints: an untrained classifier scores about ln(K).

    With He init in the final Linear, ResNet-56 started at 7.1 and ResNet-20 at 3.0
    (final_linear scales it by 0.1)."""
    from minicnn.data import load_sample
    from minicnn.train import initial_loss
    x, y = load_sample()[:2]
    x = x[:16].astype(np.float32)
    x = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    model = models.create(name, num_classes=10, rng=0, **kw)
    loss, ln_k = initial_loss(model, x, y[:16])
    assert abs(loss - ln_k) < 0.3, (loss, ln_k)
