"""minicnn.summary: the per-layer table, its totals, and receptive fields.

Receptive fields are checked against an independent measurement: the input pixels on
which one output unit depends are exactly where the gradient of that unit is non-zero
(random weights, no ReLU or max-pool to zero parts of the gradient), so the bounding box
of that gradient's support must match size, jump and start.
"""
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
import minicnn.nn as nn
from minicnn.nn import blocks
from minicnn.summary import ReceptiveField, Summary, receptive_field, summary


# ----------------------------------------------------------------------------- helpers
def conv_stack(n, rng=0):
    """n stacked 3x3 stride-1 pad-1 convs (CS231n: three of them see 7x7)."""
    layers = []
    for i in range(n):
        layers += [nn.Conv2d(2 if i == 0 else 4, 4, 3, padding=1, rng=rng), nn.ReLU()]
    return nn.Sequential(*layers)


def measured_field(model, input_shape, seed=0):
    """Bounding box (rows, cols) of the input pixels that the middle output unit depends on.

    Parameters and input are made positive so that every ReLU passes everything (only the
    geometry is under test); the upstream gradient has random signs over the channels.
    Returns ((row_lo, row_hi), (col_lo, col_hi), (i, j)), the output position used.
    """
    rng = np.random.default_rng(seed)
    model.to(np.float64).eval()
    for p in model.parameters():
        p.data[...] = np.abs(p.data) + 0.1
    x = np.abs(rng.standard_normal((1,) + tuple(input_shape))) + 0.1
    out = model(x)
    i, j = out.shape[2] // 2, out.shape[3] // 2
    dout = np.zeros_like(out)
    dout[0, :, i, j] = rng.standard_normal(out.shape[1])
    dx = model.backward(dout)
    support = np.abs(dx[0]).sum(axis=0) > 0
    rows, cols = np.nonzero(support.any(axis=1))[0], np.nonzero(support.any(axis=0))[0]
    return (rows.min(), rows.max()), (cols.min(), cols.max()), (i, j)


def field_vs_gradient(model, input_shape, layer=None):
    """(predicted box, measured box, fits): the box receptive_field gives for the middle
    output unit, the box its gradient covers, and whether the predicted box lies inside the
    image (the measurement is clipped by the image, so only then are they comparable)."""
    rf = summary(model, input_shape).receptive_field(layer)
    rows, cols, (i, j) = measured_field(model, input_shape)
    predicted = []
    for axis, pos in ((0, i), (1, j)):
        centre = rf.start[axis] + pos * rf.jump[axis]
        half = (rf.size[axis] - 1) / 2
        predicted.append((centre - half, centre + half))
    fits = all(lo >= 0 and hi <= n - 1 for (lo, hi), n in zip(predicted, input_shape[1:]))
    return predicted, [rows, cols], fits


# ----------------------------------------------------------------------------- the table
def test_rows_shapes_params_and_mult_adds_of_a_small_net():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=1, padding=2, rng=0),  # 28x28x8
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),                                 # 14x14x8
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False, rng=0),  # 7x7x16
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10, rng=0),
    )
    s = summary(model, (3, 28, 28))
    assert [r.name for r in s.rows] == ["0", "1", "2", "3", "4", "5", "6"]
    assert [r.output_shape for r in s.rows] == [(1, 8, 28, 28)] * 3 + [(1, 8, 14, 14), (1, 16, 7, 7),
                                                                        (1, 784), (1, 10)]
    assert [r.params for r in s.rows] == [8 * 3 * 25 + 8, 16, 0, 0, 16 * 2 * 9, 0, 7850]
    # Conv: OH*OW*F*(C/groups)*KH*KW, bias not counted; Linear: in*out; everything else 0.
    assert [r.mult_adds for r in s.rows] == [28 * 28 * 8 * 3 * 25, 0, 0, 0, 7 * 7 * 16 * 2 * 9, 0, 7840]
    assert s.total_params == sum(p.data.size for p in model.parameters()) == 608 + 16 + 288 + 7850
    assert s.total_mult_adds == 470400 + 14112 + 7840
    assert s.total_activations == sum(r.activations for r in s.rows) == 3 * 6272 + 1568 + 784 + 784 + 10
    assert s.output_shape == (1, 10) and s.input_shape == (1, 3, 28, 28)
    assert s.rows[0].layer == "Conv2d(3->8, 5x5, s1, p2)"
    assert s.rows[4].layer == "Conv2d(8->16, 3x3, s2, p1, g4)"
    assert s.rows[3].layer == "MaxPool2d(2x2, s2)"


def test_table_text_shows_lecture_shapes_and_totals():
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2, 2))
    text = str(summary(model, (3, 16, 16)))
    assert "16x16x64" in text and "8x8x64" in text       # H x W x C, as in the lecture
    assert "Total params:       1,792" in text
    assert f"Total mult-adds:    {16 * 16 * 64 * 27:,}" in text
    assert "bias additions not counted" in text
    assert repr(summary(model, (3, 16, 16))) == text


def test_counts_scale_with_the_batch_but_params_do_not():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Flatten(), nn.Linear(2 * 6 * 6, 3, rng=0))
    one, four = summary(model, (1, 8, 8)), summary(model, (1, 8, 8), batch_size=4)
    assert four.total_params == one.total_params
    assert four.total_mult_adds == 4 * one.total_mult_adds
    assert four.total_activations == 4 * one.total_activations
    assert four.rows[0].output_shape == (4, 2, 6, 6)
    assert "4 x 6x6x2" in str(four)


def test_summary_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.BatchNorm2d(4), nn.Dropout(0.5, rng=0))
    model.train()
    model[2].eval()          # a mixed state must come back exactly
    before = model.state_dict()
    summary(model, (3, 9, 9))
    assert [m.training for m in model.modules()] == [True, True, True, False]
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # running stats untouched


def test_a_pending_backward_survives_a_summary():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, rng=0), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2, rng=0)).to(np.float64)
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((2, 2))
    model(x)
    expected = model.backward(dout)
    model(x)
    summary(model, (2, 6, 6))       # a forward of another input, in between
    np.testing.assert_array_equal(model.backward(dout), expected)
    fresh = nn.Sequential(nn.Conv2d(2, 3, 3, rng=0))
    summary(fresh, (2, 6, 6))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        fresh.backward(np.zeros((1, 3, 4, 4), dtype=np.float32))   # no cache left behind


def test_float64_model_runs_in_float64():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=0)).to(np.float64)
    s = summary(model, (3, 6, 6))
    assert s.dtype == np.float64 and "float64" in str(s)
    with pytest.raises(ValueError, match="float32 or float64"):
        summary(model, (3, 6, 6), dtype=np.int32)


class Twice(nn.Module):
    """Applies one shared conv twice: its parameters count once, its work twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, rng=0)

    def forward(self, x):
        return self.conv(self.conv(x))


class WithUnusedHead(nn.Module):
    """A body that runs and a head that the forward never calls (like an off aux head)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(4, 4, 1, rng=0)
        self.aux = nn.Linear(10, 3, rng=0)
        self.scale = nn.Parameter(np.ones(4, dtype=np.float32))  # a composite's own parameter

    def forward(self, x):
        return self.body(x) * self.scale.data.reshape(1, -1, 1, 1)


def test_shared_layer_counts_parameters_once_and_mult_adds_per_call():
    s = summary(Twice(), (4, 5, 5))
    assert [r.name for r in s.rows] == ["conv", "conv"]
    assert [r.params for r in s.rows] == [148, 0]
    assert s.total_mult_adds == 2 * 5 * 5 * 4 * 4 * 9
    assert s.receptive_field("conv").size == (5, 5)   # the larger of its two calls


def test_uncalled_modules_and_own_parameters_still_count():
    model = WithUnusedHead()
    s = summary(model, (4, 3, 3))
    assert s.total_params == sum(p.data.size for p in model.parameters()) == 20 + 33 + 4
    aux = s.row("aux")
    assert aux.output_shape is None and aux.params == 33 and "(not called)" in str(s)
    assert s.row("").params == 4   # the model's own `scale`


# ------------------------------------------------------------------ calling conventions
def test_minicnn_summary_is_callable_even_after_importing_the_submodule():
    import minicnn.summary as module
    assert sys.modules["minicnn.summary"] is module
    assert minicnn.summary is module          # the attribute is the module ...
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0))
    s = minicnn.summary(model, (1, 5, 5))     # ... and calling it runs summary()
    assert isinstance(s, Summary) and s.total_params == 20
    assert minicnn.summary(model, "1x5x5").total_mult_adds == s.total_mult_adds


@pytest.mark.parametrize("bad", [(), (3, 0, 4), (3.0, 4, 4), "3xax4", 7, (True, 4, 4)])
def test_bad_input_shape_is_refused(bad):
    with pytest.raises(ValueError, match="summary: expected input_shape"):
        summary(nn.Sequential(nn.ReLU()), bad)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="expected a minicnn.nn.Module"):
        summary(lambda x: x, (3, 4, 4))
    with pytest.raises(ValueError, match="batch_size"):
        summary(nn.Sequential(nn.ReLU()), (3, 4, 4), batch_size=0)


def test_too_small_an_input_names_the_last_layer_that_ran():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.MaxPool2d(2), nn.Conv2d(4, 4, 5, rng=0))
    with pytest.raises(ValueError, match=r"failed after layer '1'"):
        summary(model, (3, 8, 8))


def test_unknown_layer_name_is_refused():
    s = summary(conv_stack(2), (2, 8, 8))
    with pytest.raises(ValueError, match="receptive_field: expected the name of a layer"):
        s.receptive_field("nope")


# --------------------------------------------------------------------- receptive fields
def test_three_stacked_3x3_convs_see_7x7():
    model = conv_stack(3)
    assert receptive_field(model, (2, 16, 16), "4") == ReceptiveField((7, 7), (1, 1), (0.0, 0.0))
    s = summary(model, (2, 16, 16))
    assert [s.receptive_field(str(i)).size[0] for i in range(6)] == [3, 3, 5, 5, 7, 7]
    assert s.receptive_field() == s.receptive_field("5")   # the model's output


def test_field_grows_with_pooling_jumps():
    # conv3 (rf 3) -> pool2/2 (rf 4, jump 2) -> conv3 (rf 4 + 2*2 = 8) -> fc over 2x2 map
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.MaxPool2d(2),
                          nn.Conv2d(2, 2, 3, padding=1, rng=0), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8, 3, rng=0))
    s = summary(model, (1, 8, 8))
    assert s.receptive_field("1") == ReceptiveField((4, 4), (2, 2), (0.5, 0.5))
    assert s.receptive_field("2").size == (8, 8)
    assert s.receptive_field("3") == ReceptiveField((10, 10), (4, 4), (1.5, 1.5))
    assert s.receptive_field("4").size == (10, 10)           # Flatten changes nothing
    assert s.receptive_field("5").size == (14, 14)           # fc: a window of the 2x2 map


def test_global_pool_sees_the_whole_map():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, rng=0), nn.GlobalAvgPool2d())
    s = summary(model, (1, 11, 11))                          # conv: 5x5 map, rf 3, jump 2
    assert s.receptive_field("1").size == (3 + 4 * 2, 3 + 4 * 2)


layer_specs = st.lists(
    st.one_of(
        st.tuples(st.just("conv"), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3),
                  st.integers(0, 2)),
        st.tuples(st.just("avg"), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
                  st.integers(0, 1))),
    min_size=1, max_size=4)


@settings(max_examples=25)
@given(specs=layer_specs)
def test_field_matches_the_gradient_support_of_random_stacks(specs):
    """size, jump and start (non-square kernels, strides, padding) vs. the measured field."""
    layers, c = [], 2
    for kind, kh, kw, s, p in specs:
        p = min(p, (min(kh, kw) - 1) // 2 if kind == "avg" else p)  # pooling pads < half a window
        if kind == "conv":
            layers.append(nn.Conv2d(c, 3, (kh, kw), stride=s, padding=p, rng=0))
            c = 3
        else:
            layers.append(nn.AvgPool2d((kh, kw), stride=s, padding=p))
    model = nn.Sequential(*layers)
    try:
        predicted, measured, fits = field_vs_gradient(model, (2, 40, 40))
    except ValueError:
        assume(False)  # the stack shrank the input below a kernel
    assume(fits)
    assert [tuple(b) for b in predicted] == [tuple(b) for b in measured]


def test_inception_field_is_the_largest_branch():
    block = blocks.Inception(4, 2, 2, 3, 2, 3, 2, rng=0)
    s = summary(block, (4, 12, 12))
    assert s.receptive_field("branch1").size == (1, 1)
    assert s.receptive_field("branch2").size == (3, 3)
    assert s.receptive_field("branch3").size == (5, 5)
    assert s.receptive_field("branch4").size == (3, 3)
    assert s.receptive_field().size == (5, 5)
    predicted, measured, fits = field_vs_gradient(block, (4, 12, 12))
    assert fits and [tuple(b) for b in predicted] == [tuple(b) for b in measured]


def test_dense_block_field_follows_the_longest_path():
    # Each DenseLayer adds a 1x1 and a 3x3 conv on top of the concatenation of all earlier
    # features, so three layers see 7x7 (max over the shorter paths through the concat).
    block = blocks.DenseBlock(3, 4, bn_size=1, growth_rate=2, rng=0)
    s = summary(block, (4, 12, 12))
    assert [s.receptive_field(f"denselayer{i}").size[0] for i in (1, 2, 3)] == [3, 5, 7]
    assert s.receptive_field().size == (7, 7)
    predicted, measured, fits = field_vs_gradient(block, (4, 12, 12))
    assert fits and [tuple(b) for b in predicted] == [tuple(b) for b in measured]


def test_residual_block_field_is_that_of_the_conv_path():
    from minicnn.nn.residual import BasicBlock, Bottleneck
    cases = [(BasicBlock(4, 6, stride=2, shortcut="A", rng=0), 7),   # 3x3/2 (3, jump 2), 3x3: 3 + 2*2
             (BasicBlock(4, 6, stride=2, shortcut="B", rng=0), 7),
             (Bottleneck(8, 2, stride=2, rng=0), 3),                  # v1.5: 1x1, 3x3/2, 1x1
             (Bottleneck(8, 2, stride=2, stride_in_1x1=True, rng=0), 5)]  # v1: 1x1/2, 3x3: 1 + 2*2
    for block, size in cases:
        s = summary(block, (block.in_channels, 13, 13))
        assert s.receptive_field().size == (size, size), type(block).__name__
        predicted, measured, fits = field_vs_gradient(block, (block.in_channels, 13, 13))
        assert fits and [tuple(b) for b in predicted] == [tuple(b) for b in measured]


def test_squeeze_excitation_sees_the_whole_map():
    from minicnn.nn.residual import SqueezeExcitation
    s = summary(SqueezeExcitation(8, reduction=4, rng=0), (8, 6, 5))
    assert s.receptive_field().size == (6, 5)


# ------------------------------------------------------------- the published numbers
# Independent of the model code: the multiply-adds that the architectures' tables imply.
VGG = {"vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
       "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M"]}


def vgg_table(cfg, size=224):
    """[(H, W, C) of every CONV/POOL output, then the three FC sizes], mult-adds."""
    shapes, mult_adds, c = [], 0, 3
    for v in cfg:
        if v == "M":
            size //= 2
            shapes.append((size, size, c))
        else:
            mult_adds += size * size * v * c * 9
            c = v
            shapes.append((size, size, c))
    return shapes + [4096, 4096, 1000], mult_adds + 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000


def resnet_mult_adds(blocks, bottleneck, stride_in_1x1=False):
    """Table 1 of He et al. (2016) at 224x224, counted conv by conv (+ the fc)."""
    total, h, c = 112 * 112 * 64 * 3 * 49, 56, 64       # conv1 7x7/2, then the 3x3/2 max pool
    for stage, n in enumerate(blocks):
        w = 64 * 2 ** stage
        out = 4 * w if bottleneck else w
        for b in range(n):
            s = 2 if stage > 0 and b == 0 else 1
            ho = h // s
            if bottleneck:
                h1 = ho if stride_in_1x1 else h             # where the 1x1 reduce runs
                total += h1 * h1 * w * c + ho * ho * w * w * 9 + ho * ho * out * w
            else:
                total += ho * ho * w * c * 9 + ho * ho * w * w * 9
            if s != 1 or c != out:
                total += ho * ho * out * c                  # projection shortcut
            c, h = out, ho
    return total + c * 1000


def model_summary(name, shape, **kw):
    return summary(minicnn.models.create(name, rng=0, **kw), shape)


def test_vgg16_reproduces_the_cs231n_walkthrough():
    s = model_summary("vgg16", (3, 224, 224))
    assert s.total_params == 138_357_544
    shapes, mult_adds = vgg_table(VGG["vgg16"])
    lecture = [r for r in s.rows if r.layer.split("(")[0] in ("Conv2d", "MaxPool2d", "Linear")]
    got = [(r.output_shape[2], r.output_shape[3], r.output_shape[1]) if len(r.output_shape) == 4
           else r.output_shape[1] for r in lecture]
    assert got == shapes                 # 224x224x64, ..., 7x7x512, FC 4096, 4096, 1000
    convs = [r for r in lecture if r.layer.startswith("Conv2d")]
    assert convs[0].params == 3 * 3 * 3 * 64 + 64 and convs[-1].params == 3 * 3 * 512 * 512 + 512
    assert s.total_mult_adds == mult_adds == 15_470_264_320       # "~15.5 G"
    # The lecture's memory column counts CONV/POOL/FC outputs (ReLU is in place): 15.1M
    # values per image (its "24M" total is an arithmetic slip).
    assert sum(r.activations for r in lecture) == 15_087_080
    assert s.receptive_field("features.30") == ReceptiveField((212, 212), (32, 32), (15.5, 15.5))


@pytest.mark.slow
def test_vgg19_mult_adds():
    s = model_summary("vgg19", (3, 224, 224))
    assert s.total_mult_adds == vgg_table(VGG["vgg19"])[1]
    assert abs(s.total_mult_adds / 19.6e9 - 1) < 0.01              # "19.6 billion FLOPs"


def test_alexnet_conv1_and_pool1():
    s = model_summary("alexnet", (3, 227, 227))
    assert s.total_params == 62_378_344
    conv1, pool1 = s.row("features.0"), next(r for r in s.rows if r.layer.startswith("MaxPool2d"))
    assert conv1.output_shape == (1, 96, 55, 55) and conv1.params == 34_944
    assert pool1.output_shape == (1, 96, 27, 27) and pool1.params == 0
    assert "55x55x96" in str(s) and "27x27x96" in str(s)


# name, blocks per stage, bottleneck, torchvision's parameter count, the paper's mult-adds
RESNETS = [("resnet18", (2, 2, 2, 2), False, 11_689_512, 1.8e9),
           ("resnet34", (3, 4, 6, 3), False, 21_797_672, 3.6e9),
           ("resnet50", (3, 4, 6, 3), True, 25_557_032, 3.8e9),
           pytest.param("resnet101", (3, 4, 23, 3), True, 44_549_160, 7.6e9, marks=pytest.mark.slow),
           pytest.param("resnet152", (3, 8, 36, 3), True, 60_192_808, 11.3e9, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name, blocks, bottleneck, params, paper", RESNETS)
def test_resnet_params_and_mult_adds(name, blocks, bottleneck, params, paper):
    s = model_summary(name, (3, 224, 224))
    assert s.total_params == params
    # The default models stride in the 3x3 conv (torchvision, "v1.5"), exactly counted:
    assert s.total_mult_adds == resnet_mult_adds(blocks, bottleneck)
    if name == "resnet50":
        # ... which costs 4.09 G for resnet50: 7.6% above the paper's 3.8 G, because the
        # paper (v1) strides in the first 1x1 and so runs it on the smaller map.
        assert abs(s.total_mult_adds / 4.09e9 - 1) < 0.005
    else:
        assert abs(s.total_mult_adds / paper - 1) < 0.05
    if name == "resnet18":
        # stem 7, pool 11 (jump 4); each 3x3 adds 2*jump: 43, 99, 211, 435 after layer1..4
        assert [s.receptive_field(f"layer{i}").size[0] for i in (1, 2, 3, 4)] == [43, 99, 211, 435]


def test_resnet50_v1_matches_the_paper():
    s = model_summary("resnet50", (3, 224, 224), stride_in_1x1=True)
    assert s.total_params == 25_557_032          # where the stride goes changes no weight
    assert s.total_mult_adds == resnet_mult_adds((3, 4, 6, 3), True, stride_in_1x1=True)
    assert abs(s.total_mult_adds / 3.8e9 - 1) < 0.05                # 3.86 G


@pytest.mark.parametrize("name, shape, params", [
    # Global pooling makes the parameter count independent of the input: a small one is cheap.
    ("squeezenet1_0", (3, 96, 96), 1_248_424),
    ("densenet121", (3, 64, 64), 7_978_856),
    ("resnext50_32x4d", (3, 64, 64), 25_028_904),
])
def test_parameter_counts_of_later_architectures(name, shape, params):
    model = minicnn.models.create(name, rng=0)
    s = summary(model, shape)
    assert s.total_params == params == sum(p.data.size for p in model.parameters())


@pytest.mark.parametrize("name, paper", [("resnet20", 0.27e6), ("resnet110", 1.7e6)])
def test_cifar_resnets_have_the_papers_parameter_counts(name, paper):
    s = model_summary(name, (3, 32, 32))
    assert abs(s.total_params / paper - 1) < 0.02                  # Table 6 of He et al.
    assert s.rows[-1].output_shape == (1, 10)
    s.receptive_field()   # known through the zero-padding shortcuts (a stride, no kernel)


def test_unknown_row_name_is_refused():
    with pytest.raises(ValueError, match=r"Summary.row: expected the name of a leaf layer \('0'"):
        summary(conv_stack(1), (2, 5, 5)).row("conv")


# ------------------------------------------------------------------------- blocks (depth)
def test_depth_collapses_blocks_to_rows_with_their_outputs():
    """Issue 19: an Inception module's concatenated output (28x28x256 after 3a) and a
    residual sum never appeared as rows; --depth shows them, with the blocks' totals."""
    s = summary(minicnn.models.create("googlenet", rng=0), (3, 224, 224), depth=1)
    rows = {r.name: r for r in s.rows_at(1)}
    a3 = rows["inception3a"]
    assert a3.output_shape == (1, 256, 28, 28) and a3.layer.startswith("Inception(192->256) [")
    inside = [r for r in s.rows if r.name.startswith("inception3a.")]
    assert a3.params == sum(r.params for r in inside) == 163_696
    assert a3.mult_adds == sum(r.mult_adds for r in inside)
    assert rows["inception5b"].output_shape == (1, 1024, 7, 7)
    assert "inception3a  Inception(192->256)" in str(s) and "inception3a.branch1" not in str(s)
    assert s.rows_at() == s.rows


def test_residual_blocks_at_depth_two_and_the_totals_at_every_depth():
    model = minicnn.models.create("resnet20", rng=0)
    s = summary(model, (3, 32, 32), depth=2)
    rows = {r.name: r for r in s.rows_at(2)}
    assert rows["layer2.0"].output_shape == (1, 32, 16, 16)        # the sum, after the last ReLU
    assert rows["layer2.0"].layer.startswith("BasicBlock(16->32)")
    assert "layer2.0.conv1" not in rows and rows["fc"].output_shape == (1, 10)
    for depth in range(4):
        shown = s.rows_at(depth)
        assert sum(r.params for r in shown) == s.total_params
        assert sum(r.mult_adds for r in shown) == s.total_mult_adds == 40_551_040
        assert sum(r.activations for r in shown) == s.total_activations
    whole = s.rows_at(0)
    assert len(whole) == 1 and whole[0].output_shape == (1, 10)
    assert "layer2.0  BasicBlock(16->32) [" in str(s) and "blocks 2 levels deep" in str(s)
    with pytest.raises(ValueError, match="depth"):
        s.rows_at(-1)
    with pytest.raises(ValueError, match="depth"):
        summary(model, (3, 32, 32), depth=1.5)


def test_blocks_the_forward_never_called_are_one_row():
    model = WithUnusedHead()
    s = summary(model, (4, 3, 3))
    shown = s.rows_at(0)
    assert sum(r.params for r in shown) == s.total_params == 57
    assert [r.output_shape for r in shown] == [(1, 4, 3, 3), None]


def test_the_table_says_what_parameters_count():
    text = str(summary(nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.BatchNorm2d(4)), (3, 6, 6)))
    assert "Params count every weight and bias, BatchNorm's scale and shift included" in text


@pytest.mark.parametrize("text, channels, layout, shape", [
    ("3x224x224", 3, None, (3, 224, 224)),
    ("224x224x3", 3, None, (3, 224, 224)),      # the slides' H x W x C
    ("32x32x1", 1, None, (1, 32, 32)),
    ("3x32x3", 3, "hwc", (3, 3, 32)),
    ("3x32x3", 3, "chw", (3, 32, 3)),
    ("3x5x7", None, None, (3, 5, 7)),           # no model to ask: C x H x W
])
def test_parse_input_reads_both_orders(text, channels, layout, shape):
    from minicnn.summary import parse_input
    assert parse_input(text, channels, layout) == shape


def test_parse_input_refuses_what_it_cannot_tell():
    from minicnn.summary import parse_input
    with pytest.raises(ValueError, match="ambiguous"):
        parse_input("3x3x3", 3)
    with pytest.raises(ValueError, match="3 input channels first"):
        parse_input("5x224x224", 3)
    with pytest.raises(ValueError, match="layout"):
        parse_input("3x4x4", 3, "nhwc")
