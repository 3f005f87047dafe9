"""Checks of the architecture questions: numbers compared with minicnn's own computation.

Every reference answer comes from ``minicnn.summary`` run on minicnn's layers and blocks
built with the asked configuration (VGG-16 on the lecture's case is minicnn's vgg16), so
the questions and the library can never disagree.  Each question is checked on the
lecture's case first, then on hypothesis-drawn configurations: an answer copied from the
slides fails on the second case.

A mistake is recognised by computing, with the same reference, what the mistake would
answer (e.g. 2x the multiply-adds, or the parameters without biases) on the lecture's case
and on a drawn one, and comparing with what the student's function answered.
"""
import functools

import numpy as np
from hypothesis import strategies as st

from minicnn import models, nn
from minicnn.exercises.checker import Mismatch, call, close, expect
from minicnn.exercises.checks._common import attempt, check
from minicnn.models.vgg import cfgs, make_layers
from minicnn.summary import summary


# ------------------------------------------------------------------ the machinery
def _flat(answer):
    """(96, (55, 55)) -> array([96., 55., 55.]); None if it is not made of numbers."""
    try:
        parts = [np.ravel(np.asarray(a, dtype=np.float64)) for a in
                 (answer if isinstance(answer, (tuple, list)) else (answer,))]
        return np.concatenate(parts)
    except (TypeError, ValueError):
        return None


def _compare(name, labels, got, want, case):
    """Raise Mismatch unless the answer ``got`` equals ``want`` (a tuple when len(labels) > 1)."""
    if len(labels) > 1:
        if not isinstance(got, (tuple, list)) or len(got) != len(labels):
            kind = f"{len(got)} values" if isinstance(got, (tuple, list)) else type(got).__name__
            raise Mismatch(f"{name} should return ({', '.join(labels)}), returned {kind}")
    else:
        got, want = (got,), (want,)
    err = 0.0
    for label, g, w in zip(labels, got, want):
        err = max(err, expect(label, g, w, case))
    return err


def _case_text(args):
    return ", ".join(repr(a) for a in args)


DIAGNOSE_CASES = {}   # question name -> a second (not the lecture's) case for recognising mistakes


def _gives(wrong):
    """A mistake's test: the answer equals what ``wrong(*args)`` computes."""
    return lambda got, args: close(got, _flat(wrong(*args)), 1e-9)


def question(name, strategy, lecture, labels, reference, mistakes=(), recognise=()):
    """Register the check of question ``name``.

    - strategy: hypothesis strategy of argument tuples; lecture: the lecture's arguments
    - labels: names of the returned values; reference(*args) -> the right answer
    - mistakes: (hint id, wrong(*args) -> what that mistake answers)
    - recognise: (hint id, test(answer, args) -> True if the answer shows that mistake)
    """
    tests = [(hint, _gives(wrong)) for hint, wrong in mistakes] + list(recognise)

    def diagnose(mod):
        found = []
        for args in (lecture, DIAGNOSE_CASES.get(name, lecture)):
            got = _flat(attempt(getattr(mod, name), *args))
            if got is not None:
                found += [hint for hint, test in tests if test(got, args)]
        return found

    def body(mod, args, notes):
        return _compare(name, labels, call(getattr(mod, name), *args), reference(*args),
                        f"{name}({_case_text(args)})")

    check(name, st.tuples(*strategy) if isinstance(strategy, tuple) else strategy, lecture, diagnose,
          max_examples=8, typical=0.0)(body)


class Build:
    """``Build(nn.Conv2d, 3, 96, 11, stride=4)()`` builds the module; equal configurations
    are equal keys, so that _summary computes each one once."""

    def __init__(self, factory, *args, **kwargs):
        self.factory, self.args, self.kwargs = factory, args, kwargs
        self.key = (factory, args, tuple(sorted(kwargs.items())))

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, Build) and other.key == self.key

    def __call__(self):
        return self.factory(*self.args, **self.kwargs)


@functools.lru_cache(maxsize=256)
def _summary(build, input_shape):
    """summary() of the module ``build()`` (cached: a check asks several times)."""
    return summary(build(), input_shape)


def _conv(c, f, k, stride=1, pad=0, **kw):
    return Build(nn.Conv2d, c, f, k, stride=stride, padding=pad, rng=0, **kw)


def _params(build, input_shape):
    return _summary(build, tuple(input_shape)).total_params


def _mult_adds(build, input_shape):
    return _summary(build, tuple(input_shape)).total_mult_adds


def _out(build, input_shape):
    return _summary(build, tuple(input_shape)).output_shape[1:]


small = st.integers(1, 6)


# ------------------------------------------------------------- one layer's numbers
@st.composite
def conv_configs(draw):
    k = draw(st.integers(1, 5))
    pad = draw(st.integers(0, k // 2 + 1))
    h = draw(st.integers(max(1, k - 2 * pad), 12))
    return ((draw(small), h, draw(st.integers(max(1, k - 2 * pad), 12))), draw(small), k,
            draw(st.integers(1, 3)), pad)


def conv_shape(input_shape, f, k, stride, pad):
    return _out(_conv(input_shape[0], f, k, stride, pad), input_shape)


def _with_pad(pad_of):
    """conv_shape with the padding replaced (the mistakes of the output size)."""
    def wrong(input_shape, f, k, stride, pad):
        c, h, w = input_shape
        size = [(n + pad_of(pad) - k) // stride + 1 for n in (h, w)]
        return (f, *size)
    return wrong


def _ceil_shape(input_shape, f, k, stride, pad):
    return (f, *[-(-(n + 2 * pad - k) // stride) + 1 for n in input_shape[1:]])


ALEXNET_CONV1 = ((3, 227, 227), 96, 11, 4, 0)
question("conv_output_shape", conv_configs(), ALEXNET_CONV1, ("out_shape",), conv_shape, [
    ("size_pad_forgotten", _with_pad(lambda p: 0)),
    ("conv_out_size_pad", _with_pad(lambda p: p)),
    ("out_size_floor", _ceil_shape),
    ("shape_order", lambda s, *a: tuple(np.roll(conv_shape(s, *a), -1))),
    ("depth_is_filters", lambda s, *a: (s[0],) + tuple(conv_shape(s, *a)[1:])),
])
DIAGNOSE_CASES["conv_output_shape"] = ((4, 8, 9), 6, 3, 2, 1)


def conv_params_reference(c, f, k):
    return _params(_conv(c, f, k), (c, k, k))


question("conv_params", (small, small, st.integers(1, 5)), (3, 96, 11), ("params",), conv_params_reference, [
    ("params_bias", lambda c, f, k: k * k * c * f),
    ("params_in_channels", lambda c, f, k: (k * k + 1) * f),
])
DIAGNOSE_CASES["conv_params"] = (4, 6, 3)


@st.composite
def pool_configs(draw):
    size = draw(st.integers(1, 3))
    return (draw(small), draw(st.integers(size, 8)), draw(st.integers(size, 8))), size, draw(st.integers(1, 3))


def pool_params_reference(input_shape, size, stride):
    return _params(Build(nn.MaxPool2d, size, stride=stride), input_shape)


question("pool_params", pool_configs(), ((96, 55, 55), 3, 2), ("params",), pool_params_reference,
         recognise=[("pool_no_params", lambda got, args: bool(np.any(got != 0)))])


# ------------------------------------------------------------------------- VGG
def _vgg(config, input_shape, fc):
    """A VGG-style Sequential (minicnn's make_layers) with its fc layers."""
    c, h, w = input_shape
    pools = config.count("M")
    channels = [v for v in config if v != "M"]
    width = (channels[-1] if channels else c) * (h >> pools) * (w >> pools)
    layers = [make_layers(list(config), in_channels=c, rng=0), nn.Flatten()]
    for i, out in enumerate(fc):
        layers += [nn.Linear(width, out, rng=0)] + ([nn.ReLU()] if i < len(fc) - 1 else [])
        width = out
    return nn.Sequential(*layers)


VGG16 = (tuple(cfgs["D"]), (3, 224, 224), (4096, 4096, 1000))


def _vgg_summary(config, input_shape, fc):
    if (tuple(config), tuple(input_shape), tuple(fc)) == VGG16:
        build = Build(models.create, "vgg16")    # the lecture's case is minicnn's own VGG-16
    else:
        build = Build(_vgg, tuple(config), tuple(input_shape), tuple(fc))
    return _summary(build, tuple(input_shape))


def _counted(s, kinds=("Conv2d", "MaxPool2d", "Linear")):
    """The input plus the outputs of the rows of these kinds of layer."""
    return int(np.prod(s.input_shape)) + sum(r.activations for r in s.rows if r.layer.split("(")[0] in kinds)


def vgg_reference(config, input_shape, fc):
    s = _vgg_summary(config, input_shape, fc)
    return _counted(s), s.total_params


def _vgg_biases(config, fc):
    return sum(v for v in config if v != "M") + sum(fc)


@st.composite
def vgg_configs(draw):
    config = draw(st.lists(st.sampled_from([2, 3, 4, "M"]), min_size=1, max_size=5))
    pools = config.count("M")
    side = draw(st.integers(1, 3)) * 2 ** pools
    fc = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    return tuple(config), (draw(st.integers(1, 3)), side, side), fc


question("vgg_memory", vgg_configs(), VGG16, ("activations", "params"), vgg_reference, [
    ("vgg_relu_counted", lambda *a: (_counted(_vgg_summary(*a), ("Conv2d", "MaxPool2d", "Linear", "ReLU")),
                                     vgg_reference(*a)[1])),
    ("vgg_input_forgotten", lambda c, s, fc: (vgg_reference(c, s, fc)[0] - int(np.prod(s)),
                                              vgg_reference(c, s, fc)[1])),
    ("params_bias", lambda c, s, fc: (vgg_reference(c, s, fc)[0], vgg_reference(c, s, fc)[1] - _vgg_biases(c, fc))),
])
DIAGNOSE_CASES["vgg_memory"] = ((2, "M", 3), (2, 4, 4), (3, 2))


# --------------------------------------------------------- receptive field, 3x3 stacks
def _stack(num_layers, k, c):
    return nn.Sequential(*[nn.Conv2d(c, c, k, bias=False, rng=0) for _ in range(num_layers)])


def stack_reference(num_layers, k, c):
    side = num_layers * k          # large enough for the stack's whole receptive field
    s = _summary(Build(_stack, num_layers, k, c), (c, side, side))
    rf = s.receptive_field().size[0]
    return rf, s.total_params, _params(_conv(c, c, rf, bias=False), (c, rf, rf))


question("stacked_convs", (st.integers(1, 4), st.integers(1, 5), small), (3, 3, 64),
         ("receptive_field", "stack_params", "single_params"), stack_reference, [
    ("rf_sum_kernels", lambda n, k, c: (n * k, stack_reference(n, k, c)[1], (n * k) ** 2 * c * c)),
    ("params_in_channels", lambda n, k, c: (stack_reference(n, k, c)[0], n * k * k * c,
                                            stack_reference(n, k, c)[0] ** 2 * c)),
    ("params_bias", lambda n, k, c: (stack_reference(n, k, c)[0], stack_reference(n, k, c)[1] + n * c,
                                     stack_reference(n, k, c)[2] + c)),
])
DIAGNOSE_CASES["stacked_convs"] = (2, 5, 3)


# -------------------------------------------------------------------------- Inception
def _naive_inception(c, ch1x1, ch3x3, ch5x5):
    return nn.ParallelConcat(nn.Conv2d(c, ch1x1, 1, rng=0), nn.Conv2d(c, ch3x3, 3, padding=1, rng=0),
                             nn.Conv2d(c, ch5x5, 5, padding=2, rng=0), nn.MaxPool2d(3, stride=1, padding=1))


def naive_reference(input_shape, ch1x1, ch3x3, ch5x5):
    s = _summary(Build(_naive_inception, input_shape[0], ch1x1, ch3x3, ch5x5), tuple(input_shape))
    return s.output_shape[1:], s.total_mult_adds


def bottleneck_reference(input_shape, *widths):
    s = _summary(Build(nn.Inception, input_shape[0], *widths, rng=0), tuple(input_shape))
    return s.output_shape[1:], s.total_mult_adds


def _twice_the_ops(reference):
    """The answer in FLOPs: every multiply-add counted as two operations."""
    return lambda *a: (reference(*a)[0], 2 * reference(*a)[1])


naive_configs = st.tuples(st.tuples(small, st.integers(1, 6), st.integers(1, 6)), small, small, small)
bottleneck_configs = st.tuples(st.tuples(small, st.integers(1, 6), st.integers(1, 6)),
                               small, small, small, small, small, small)

question("inception_naive", naive_configs, ((256, 28, 28), 128, 192, 96), ("out_shape", "mult_adds"),
         naive_reference, [
             ("ops_flops_2x", _twice_the_ops(naive_reference)),
             ("inception_pool_depth", lambda s, a, b, c: ((a + b + c,) + tuple(s[1:]),
                                                          naive_reference(s, a, b, c)[1])),
         ])
DIAGNOSE_CASES["inception_naive"] = ((3, 4, 5), 2, 3, 4)

GOOGLENET_3A = ((192, 28, 28), 64, 96, 128, 16, 32, 32)
question("inception_bottleneck", bottleneck_configs, GOOGLENET_3A, ("out_shape", "mult_adds"),
         bottleneck_reference, [
             ("ops_flops_2x", _twice_the_ops(bottleneck_reference)),
             ("inception_concat_reduce", lambda s, a, r3, b, r5, c, p: ((a + r3 + b + r5 + c + p,) + tuple(s[1:]),
                                                                        bottleneck_reference(s, a, r3, b, r5, c, p)[1])),
         ])
DIAGNOSE_CASES["inception_bottleneck"] = ((3, 4, 5), 2, 3, 4, 2, 3, 2)


# --------------------------------------------------------------- ResNet blocks, GAP
def residual_reference(channels, bottleneck):
    block = Build(nn.Bottleneck, channels, channels // 4, rng=0) if bottleneck else \
        Build(nn.BasicBlock, channels, channels, rng=0)
    return _params(block, (channels, 3, 3))


def _bn_params(channels, bottleneck):
    return 2 * (channels // 4 * 2 + channels) if bottleneck else 2 * 2 * channels


def _conv_biases(channels, bottleneck):
    return channels // 4 * 2 + channels if bottleneck else 2 * channels


@st.composite
def residual_configs(draw):
    bottleneck = draw(st.booleans())
    return draw(st.integers(1, 6)) * (4 if bottleneck else 1), bottleneck


question("residual_params", residual_configs(), (256, True), ("params",), residual_reference, [
    ("resnet_bn_params", lambda c, b: residual_reference(c, b) - _bn_params(c, b)),
    ("resnet_conv_bias", lambda c, b: residual_reference(c, b) + _conv_biases(c, b)),
])
DIAGNOSE_CASES["residual_params"] = (8, False)


def gap_reference(input_shape, num_outputs):
    gap = _summary(Build(nn.GlobalAvgPool2d), tuple(input_shape))
    c, h, w = input_shape
    fc = _params(Build(nn.Linear, c * h * w, num_outputs, rng=0), (c * h * w,))
    return gap.output_shape[1:], gap.total_params, fc


question("gap_vs_fc", st.tuples(st.tuples(small, small, small), small), ((1024, 7, 7), 1000),
         ("gap_shape", "gap_params", "fc_params"), gap_reference, [
             ("params_bias", lambda s, n: gap_reference(s, n)[:2] + (gap_reference(s, n)[2] - n,)),
             ("gap_keeps_hw", lambda s, n: ((s[0], 1, 1),) + gap_reference(s, n)[1:]),
         ], recognise=[("gap_no_params", lambda got, args: len(got) >= 3 and got[-2] != 0)])
DIAGNOSE_CASES["gap_vs_fc"] = ((3, 2, 4), 5)


# ------------------------------------------------------- MobileNet, SE, DenseNet
def _separable(c, f, stride):
    return nn.Sequential(nn.Conv2d(c, c, 3, stride=stride, padding=1, groups=c, rng=0), nn.Conv2d(c, f, 1, rng=0))


def separable_reference(input_shape, f, stride):
    c = input_shape[0]
    return (_mult_adds(_conv(c, f, 3, stride, 1), input_shape),
            _mult_adds(Build(_separable, c, f, stride), input_shape))


def _depthwise_as_full(input_shape, f, stride):
    """The mistake: the depthwise conv counted as a full 3x3 conv C -> C."""
    c = input_shape[0]
    standard, separable = separable_reference(input_shape, f, stride)
    _, oh, ow = _out(_conv(c, f, 3, stride, 1), input_shape)
    return standard, separable + oh * ow * 9 * c * (c - 1)


question("depthwise_separable_cost", st.tuples(st.tuples(st.integers(2, 6), small, small), small, st.integers(1, 2)),
         ((32, 112, 112), 64, 1), ("standard_mult_adds", "separable_mult_adds"), separable_reference, [
             ("ops_flops_2x", lambda *a: tuple(2 * v for v in separable_reference(*a))),
             ("depthwise_full", _depthwise_as_full),
         ])
DIAGNOSE_CASES["depthwise_separable_cost"] = ((3, 5, 4), 4, 2)


def se_reference(channels, reduction):
    return _params(Build(nn.SqueezeExcitation, channels, reduction, rng=0), (channels, 2, 2))


question("se_params", (st.integers(1, 64), st.integers(1, 16)), (256, 16), ("params",), se_reference, [
    ("params_bias", lambda c, r: 2 * c * max(1, c // r)),
])
DIAGNOSE_CASES["se_params"] = (24, 4)


def dense_reference(k0, num_layers, k, bn_size):
    block = Build(nn.DenseBlock, num_layers, k0, bn_size=bn_size, growth_rate=k, rng=0)
    s = _summary(block, (k0, 3, 3))
    return s.output_shape[1], s.total_params


def _dense_layers_params(k0, num_layers, k, bn_size, grow=True, bn=True):
    total = 0
    for i in range(num_layers):
        c = k0 + i * k if grow else k0
        total += c * bn_size * k + bn_size * k * k * 9 + (2 * c + 2 * bn_size * k if bn else 0)
    return total


question("dense_block", (small, st.integers(1, 4), small, st.integers(1, 4)), (64, 6, 32, 4),
         ("out_channels", "params"), dense_reference, [
             ("dense_input_channels", lambda k0, n, k, b: (n * k, dense_reference(k0, n, k, b)[1])),
             ("dense_bn_params", lambda k0, n, k, b: (k0 + n * k, _dense_layers_params(k0, n, k, b, bn=False))),
             ("dense_no_growth", lambda k0, n, k, b: (k0 + n * k, _dense_layers_params(k0, n, k, b, grow=False))),
         ])
DIAGNOSE_CASES["dense_block"] = (3, 3, 2, 2)
