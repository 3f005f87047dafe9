"""The non-residual composite blocks (minicnn.nn.blocks): gradients against numeric ones
(float64, hypothesis over channels and strides), the structure each paper prescribes,
and the bookkeeping rules (split by channel, fan-out sums, hooks see every layer).

Gradient checks: biases are set to random values of magnitude >= 0.1 (a zero bias puts a
ReLU exactly on its kink wherever the conv reads only zeros, e.g. after another ReLU), the
inputs are kink-free, and an example whose *inner* ReLUs receive a value within 1e-3 of
zero is skipped (the finite-difference step would cross the kink there: such examples
measured errors of 0.04 and 0.2 with a correct backward).  Tolerance 1e-5 on the relative
error with a denominator floor of 1e-3 (float64 centred differences carry a few 1e-10 of
absolute noise, so entries near 1e-7 measured 1e-5 with a floor of 1e-6): correct blocks
measure 1e-10 .. 1e-6, a wrong backward 1e-2 or more.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn.gradcheck import check_module
from minicnn.nn import blocks as B
from minicnn.nn.layers import BatchNorm2d, Conv2d, ReLU
from minicnn.nn.module import Module, forward_hook
from minicnn.testing import strategies as mst

TOL = 1e-5
FLOOR = 1e-3
EXAMPLES = 8


def _randomise_biases(module, seed):
    rng = np.random.default_rng(seed)
    for name, p in module.named_parameters():
        if name.endswith("bias") and not name.split(".")[-2].startswith(("norm", "bn")):
            p.data[...] = rng.uniform(0.1, 0.5, p.shape) * rng.choice([-1, 1], p.shape)


KINK_MARGIN = 1e-3


def _nearest_kink(module, x):
    """The smallest |input| any ReLU inside ``module`` receives on x (float64, fixed masks)."""
    states = [(g, g.bit_generator.state) for m in module.modules() for g in vars(m).values()
              if isinstance(g, np.random.Generator)]
    nearest = [np.inf]

    def hook(m, inp, out):
        if isinstance(m, ReLU):
            nearest.append(float(np.abs(inp).min()))
    with forward_hook(hook):
        module(x)
    for g, s in states:
        g.bit_generator.state = s
    return min(nearest)


def _assert_gradients(module, x, seed):
    _randomise_biases(module, seed)
    module.to(np.float64)
    assume(_nearest_kink(module, x) > KINK_MARGIN)
    report = check_module(module, x, rng=seed, floor=FLOOR)
    worst = max(report, key=report.get)
    assert report[worst] < TOL, f"{type(module).__name__}: {worst} rel error {report[worst]!r}"


def _modules_seen(module, x):
    seen = set()
    with forward_hook(lambda m, inp, out: seen.add(id(m))):
        module(x)
    return seen


class Scale(Module):
    """A test branch: out = k * x; remembers the dout it received."""

    def __init__(self, k):
        super().__init__()
        self.k = k
        self.received = None

    def forward(self, x):
        return self.k * x

    def backward(self, dout):
        self.received = dout.copy()
        return self.k * dout


# ----------------------------------------------------------------- ParallelConcat
def test_parallel_concat_splits_dout_by_channel_and_sums_dx():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    a, b, c = Scale(2.0), Scale(-1.0), Scale(0.5)
    pc = B.ParallelConcat(a, b, c)
    out = pc(x)
    assert out.shape == (2, 9, 4, 5)
    np.testing.assert_array_equal(out[:, 3:6], -x)
    dout = rng.standard_normal(out.shape)
    dout_before = dout.copy()
    dx = pc.backward(dout)
    np.testing.assert_array_equal(a.received, dout[:, 0:3])
    np.testing.assert_array_equal(b.received, dout[:, 3:6])
    np.testing.assert_array_equal(c.received, dout[:, 6:9])
    np.testing.assert_allclose(dx, 2.0 * dout[:, 0:3] - dout[:, 3:6] + 0.5 * dout[:, 6:9])
    np.testing.assert_array_equal(dout, dout_before)  # backward never writes into dout


def test_parallel_concat_names_and_errors():
    pc = B.ParallelConcat(left=Conv2d(2, 3, 1, rng=0), right=Conv2d(2, 1, 3, padding=1, rng=0))
    assert [n for n, _ in pc.named_children()] == ["left", "right"]
    assert list(pc.state_dict()) == ["left.weight", "left.bias", "right.weight", "right.bias"]
    with pytest.raises(ValueError, match="at least one branch"):
        B.ParallelConcat()
    with pytest.raises(ValueError, match="Module"):
        B.ParallelConcat(lambda x: x)
    bad = B.ParallelConcat(Conv2d(2, 3, 1, rng=0), Conv2d(2, 3, 3, rng=0))  # 3x3 no pad shrinks
    with pytest.raises(ValueError, match="branch '1'"):
        bad(np.zeros((1, 2, 5, 5), np.float32))
    pc(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="dout of shape"):
        pc.backward(np.zeros((1, 3, 5, 5), np.float32))


@settings(max_examples=EXAMPLES)
@given(cin=st.integers(1, 3), c1=st.integers(1, 3), c2=st.integers(1, 3), seed=mst.seeds())
def test_parallel_concat_gradients(cin, c1, c2, seed):
    pc = B.ParallelConcat(Conv2d(cin, c1, 1, rng=seed),
                          B.ParallelConcat(Conv2d(cin, c2, 3, padding=1, rng=seed), ReLU()))
    _assert_gradients(pc, mst.kink_free_array((2, cin, 4, 4), seed), seed)


# ---------------------------------------------------------------------- Inception
def test_inception_layout_follows_the_paper():
    inc = B.Inception(192, 64, 96, 128, 16, 32, 32, rng=0)  # inception (3a)
    assert inc.out_channels == 256
    assert inc.branch3[2].kernel_size == (5, 5) and inc.branch3[2].padding == 2
    assert inc.branch4[0].kernel_size == 3 and inc.branch4[0].stride == 1
    out = inc(np.random.default_rng(0).standard_normal((1, 192, 6, 6)).astype(np.float32))
    assert out.shape == (1, 256, 6, 6) and out.dtype == np.float32
    tv = B.Inception(192, 64, 96, 128, 16, 32, 32, branch3_kernel=3, rng=0)
    assert tv.branch3[2].kernel_size == (3, 3)


@settings(max_examples=EXAMPLES)
@given(cin=st.integers(1, 3), ch=st.lists(st.integers(1, 2), min_size=6, max_size=6),
       seed=mst.seeds())
def test_inception_gradients(cin, ch, seed):
    inc = B.Inception(cin, *ch, rng=seed)
    x = mst.tie_free_array((2, cin, 5, 5), seed)  # the pool branch reads x: no ties
    _assert_gradients(inc, x, seed)


# --------------------------------------------------------------------------- Fire
def test_fire_torchvision_names_and_shape():
    fire = B.Fire(96, 16, 64, 64, rng=0)
    assert list(fire.state_dict()) == ["squeeze.weight", "squeeze.bias", "expand1x1.weight",
                                       "expand1x1.bias", "expand3x3.weight", "expand3x3.bias"]
    assert fire(np.ones((1, 96, 5, 5), np.float32)).shape == (1, 128, 5, 5)


@settings(max_examples=EXAMPLES)
@given(cin=st.integers(1, 4), s=st.integers(1, 3), e1=st.integers(1, 3), e3=st.integers(1, 3),
       seed=mst.seeds())
def test_fire_gradients(cin, s, e1, e3, seed):
    fire = B.Fire(cin, s, e1, e3, rng=seed)
    _assert_gradients(fire, mst.kink_free_array((2, cin, 4, 4), seed), seed)


# ------------------------------------------------------------------------ DenseNet
def test_dense_block_concatenates_and_keeps_its_input():
    block = B.DenseBlock(3, 4, bn_size=2, growth_rate=2, rng=0)
    assert [n for n, _ in block.named_children()] == ["denselayer1", "denselayer2", "denselayer3"]
    assert "denselayer2.norm1.running_var" in block.state_dict()
    assert block.denselayer3.conv1.in_channels == 8
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    out = block(x)
    assert out.shape == (2, 10, 3, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :4], x)  # concatenation keeps the input as it is
    with pytest.raises(ValueError, match="4 channels"):
        block(np.zeros((2, 3, 3, 3), np.float32))


def test_dense_layer_names_are_torchvisions():
    layer = B.DenseLayer(64, 32, bn_size=4, rng=0)
    assert [n for n, _ in layer.named_children()] == ["norm1", "relu1", "conv1",
                                                      "norm2", "relu2", "conv2"]
    assert layer.conv1.weight.shape == (128, 64, 1, 1) and layer.conv1.bias is None
    assert layer.conv2.weight.shape == (32, 128, 3, 3) and layer.conv2.bias is None


@settings(max_examples=EXAMPLES)
@given(cin=st.integers(2, 3), layers=st.integers(1, 3), growth=st.integers(1, 2),
       drop=st.sampled_from([0.0, 0.3]), seed=mst.seeds())
def test_dense_block_gradients(cin, layers, growth, drop, seed):
    # cin >= 2: a 1x1 conv from ONE channel followed by BatchNorm has a weight gradient of
    # exactly zero (BN undoes any scaling of a one-entry filter), and round-off is all a
    # numeric gradient of zero can show.
    block = B.DenseBlock(layers, cin, bn_size=2, growth_rate=growth, drop_rate=drop, rng=seed)
    _assert_gradients(block, mst.kink_free_array((2, cin, 3, 3), seed), seed)


@settings(max_examples=EXAMPLES)
@given(cin=st.integers(1, 4), cout=st.integers(1, 3), seed=mst.seeds())
def test_transition_gradients(cin, cout, seed):
    t = B.Transition(cin, cout, rng=seed).to(np.float64)
    assert [n for n, _ in t.named_children()] == ["norm", "relu", "conv", "pool"]
    x = mst.kink_free_array((2, cin, 4, 4), seed)
    assert t(x).shape == (2, cout, 2, 2)
    _assert_gradients(t, x, seed)


# ---------------------------------------------------------- depthwise-separable conv
@settings(max_examples=EXAMPLES)
@given(cin=st.integers(2, 4), cout=st.integers(1, 4), stride=st.integers(1, 2),
       size=st.integers(3, 5), seed=mst.seeds())
def test_depthwise_separable_gradients(cin, cout, stride, size, seed):
    # cin >= 2: see test_dense_block_gradients (a one-channel 1x1 conv before BN has zero gradient).
    block = B.DepthwiseSeparableConv(cin, cout, stride=stride, rng=seed).to(np.float64)
    assert block.depthwise.groups == cin and block.depthwise.weight.shape == (cin, 1, 3, 3)
    x = mst.kink_free_array((2, cin, size, size), seed)
    out_size = (size - 1) // stride + 1
    assert block(x).shape == (2, cout, out_size, out_size)
    _assert_gradients(block, x, seed)


# ------------------------------------------------------------------------ Fractal
def test_fractal_block_is_the_expansion_rule():
    """Two columns: f_2(z) = mean(conv(conv(z)), conv(z)) -- in evaluation, every path kept."""
    block = B.FractalBlock(2, 3, 2, drop_prob=0.5, rng=0).eval()
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4))
    block.to(np.float64)
    deep = block.column2_2(block.column2_1(x))
    shallow = block.column1_1(x)
    np.testing.assert_allclose(block(x), (deep + shallow) / 2)
    np.testing.assert_array_equal(block(x), block(x))  # no drop-path in evaluation


def test_fractal_block_layout_and_joins():
    block = B.FractalBlock(3, 4, 4, rng=0)
    counts = {c: sum(1 for n, _ in block.named_children() if n.startswith(f"column{c}_"))
              for c in range(1, 5)}
    assert counts == {1: 1, 2: 2, 3: 4, 4: 8}  # the longest path has 2**(C-1) convs
    # Join sizes along the deepest column (the paper's Fig. 1): 2, 3, 2, 4 at steps 2, 4, 6, 8.
    assert [len(block._ending(s)) for s in range(1, 9)] == [1, 2, 1, 3, 1, 2, 1, 4]
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    out = block(x)
    assert out.shape == (2, 4, 4, 4) and out.dtype == np.float32


def test_fractal_drop_path_draws_from_its_generator():
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4))
    a = B.FractalBlock(2, 3, 3, drop_prob=0.5, rng=7).to(np.float64)
    b = B.FractalBlock(2, 3, 3, drop_prob=0.5, rng=7).to(np.float64)
    outs_a = [a(x) for _ in range(4)]
    outs_b = [b(x) for _ in range(4)]
    for oa, ob in zip(outs_a, outs_b):
        np.testing.assert_array_equal(oa, ob)  # same seed, same masks
    assert any(not np.array_equal(outs_a[0], o) for o in outs_a[1:])  # masks change per batch
    with pytest.raises(ValueError, match="drop_prob"):
        B.FractalBlock(2, 3, 2, drop_prob=1.0)


def test_fractal_global_column_is_the_plain_chain_of_that_column():
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4))
    block = B.FractalBlock(2, 3, 3, drop_prob=0.5, rng=0).to(np.float64)
    block.column = 1
    np.testing.assert_allclose(block(x), block.column1_1(x))
    block.column = 2
    np.testing.assert_allclose(block(x), block.column2_2(block.column2_1(x)))
    block.column = 3
    chain = x
    for k in range(1, 5):
        chain = getattr(block, f"column3_{k}")(chain)
    block.zero_grad()
    np.testing.assert_allclose(block(x), chain)
    block.backward(np.random.default_rng(1).standard_normal((2, 3, 4, 4)))
    # Only column 3 is on the path: the other columns' weights get no gradient.
    for name, p in block.named_parameters():
        assert (np.abs(p.grad).sum() > 0) == name.startswith("column3_"), name
    block.column = 4
    with pytest.raises(ValueError, match="column"):
        block(x)


@settings(max_examples=EXAMPLES)
@given(cin=st.integers(1, 2), cout=st.integers(1, 2), columns=st.integers(1, 3),
       drop=st.sampled_from([0.0, 0.5]), column=st.sampled_from([None, None, 1, 2, 3]),
       seed=mst.seeds())
def test_fractal_block_gradients(cin, cout, columns, drop, column, seed):
    # With drop-path on, check_module restores the Generator before every forward: one mask.
    block = B.FractalBlock(cin, cout, columns, drop_prob=drop, rng=seed)
    block.column = column if column is None or column <= columns else None
    _assert_gradients(block, mst.kink_free_array((2, cin, 3, 3), seed), seed)


# ------------------------------------------------------------------- every block
@pytest.mark.parametrize("make, shape", [
    (lambda: B.Inception(3, 2, 2, 2, 2, 2, 2, rng=0), (1, 3, 5, 5)),
    (lambda: B.Fire(3, 2, 2, 2, rng=0), (1, 3, 4, 4)),
    (lambda: B.DenseBlock(2, 3, bn_size=2, growth_rate=2, rng=0), (2, 3, 4, 4)),
    (lambda: B.Transition(3, 2, rng=0), (2, 3, 4, 4)),
    (lambda: B.DepthwiseSeparableConv(3, 4, stride=2, rng=0), (2, 3, 4, 4)),
    (lambda: B.FractalBlock(3, 2, 3, drop_prob=0.15, rng=0), (2, 3, 4, 4)),
])
def test_hooks_see_every_layer_and_seed_reproduces(make, shape):
    block = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert {id(m) for m in block.modules()} <= _modules_seen(block, x)
    again = make()
    for (k, v), (k2, v2) in zip(block.state_dict().items(), again.state_dict().items()):
        assert k == k2
        if not k.endswith("running_mean") and not k.endswith("running_var"):
            np.testing.assert_array_equal(v, v2)


def test_bn_inside_blocks_uses_running_stats_in_eval():
    block = B.DepthwiseSeparableConv(2, 3, rng=0)
    assert isinstance(block.bn1, BatchNorm2d)
    x = np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32)
    block(x)  # training: updates the running statistics
    block.eval()
    np.testing.assert_array_equal(block(x[:1]), block(x[:1]))
    assert not block.bn1.training
