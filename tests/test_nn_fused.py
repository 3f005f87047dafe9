"""minicnn.nn.fused and the blocks that use it: the fused path (training, no hook) and the
layer-by-layer path (while a forward hook watches) must give the same outputs, gradients and
running statistics; hooks must see every layer; and a block must keep its own state -- its
backward may not depend on what another call did to its layers' caches in the meantime.
"""
import copy

import numpy as np
import pytest

import minicnn
from minicnn import models
from minicnn.nn import blocks, fused, hooks
from minicnn.nn.layers import BatchNorm2d, ReLU
from minicnn.nn.module import forward_hook
from minicnn.nn.preact import PreActBlock
from minicnn.nn.residual import BasicBlock, Bottleneck, SEBottleneck

DTYPES = [np.float32, np.float64]

BLOCKS = {
    "basic": lambda: BasicBlock(3, 3, rng=0),
    "basic_A_stride2": lambda: BasicBlock(3, 5, stride=2, shortcut="A", rng=0),
    "basic_B_stride2": lambda: BasicBlock(3, 5, stride=2, shortcut="B", rng=0),
    "basic_plain": lambda: BasicBlock(3, 4, stride=2, shortcut="none", rng=0),
    "basic_survival": lambda: BasicBlock(3, 3, survival_prob=0.7, rng=0),
    # survival_prob 0.01: the seeded draw drops the branch in training (checked below)
    "basic_dropped": lambda: BasicBlock(3, 5, stride=2, shortcut="A", survival_prob=0.01, rng=0),
    "bottleneck_dropped": lambda: Bottleneck(4, 2, stride=2, survival_prob=0.01, rng=0),
    "bottleneck": lambda: Bottleneck(8, 2, rng=0),
    "bottleneck_grouped": lambda: Bottleneck(4, 4, stride=2, groups=2, base_width=32, rng=0),
    "bottleneck_stride_in_1x1": lambda: Bottleneck(4, 2, stride=2, stride_in_1x1=True, rng=0),
    "se_bottleneck": lambda: SEBottleneck(4, 2, stride=2, reduction=4, rng=0),
    "preact_A": lambda: PreActBlock(3, 4, stride=2, shortcut="A", rng=0),
    "preact_B_dropout": lambda: PreActBlock(3, 4, stride=2, dropout=0.3, rng=0),
    "preact_identity": lambda: PreActBlock(3, 3, rng=0),
    "dense_layer": lambda: blocks.DenseLayer(3, 2, bn_size=2, drop_rate=0.2, rng=0),
    "depthwise_separable": lambda: blocks.DepthwiseSeparableConv(3, 4, stride=2, rng=0),
}


def _in_channels(block):
    return getattr(block, "in_channels", None) or block.norm1.num_features


def _pass(block, x, dout, watched):
    """out, dx, every parameter gradient and every buffer after one forward/backward;
    ``watched``: with a (no-op) forward hook active, which makes the blocks run the layers."""
    block.zero_grad()
    if watched:
        with forward_hook(lambda m, a, o: None):
            out = block(x)
    else:
        out = block(x)
    dx = block.backward(dout)
    return ([out, dx] + [p.grad.copy() for _, p in block.named_parameters()]
            + [b.copy() for _, b in block.named_buffers()])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_fused_and_layer_by_layer_paths_agree(name, training, dtype):
    """The same arithmetic in the same order: equal to the last bit, NaN for NaN."""
    fused_block = BLOCKS[name]().to(dtype).train(training)
    layered = copy.deepcopy(fused_block)       # same weights and the same Generator state
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, _in_channels(fused_block), 7, 6)).astype(dtype)
    dout = rng.standard_normal(copy.deepcopy(fused_block)(x).shape).astype(dtype)
    got = _pass(fused_block, x, dout, watched=False)
    want = _pass(layered, x, dout, watched=True)
    if name.endswith("_dropped") and training:
        assert not fused_block.conv1.weight.grad.any()      # the branch did not run
    assert len(got) == len(want) > 4
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b, err_msg=f"entry {i}")


def test_training_takes_the_fused_kernels(monkeypatch):
    """Without a hook the blocks run F.batchnorm_relu_forward and F.add_relu_forward (the
    fast path); under a hook, neither."""
    calls = []
    for name in ("batchnorm_relu_forward", "add_relu_forward"):
        original = getattr(fused, name)
        monkeypatch.setattr(fused, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    block = Bottleneck(4, 2, stride=2, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    block(x)
    assert calls == ["batchnorm_relu_forward", "batchnorm_relu_forward", "add_relu_forward"]
    calls.clear()
    with forward_hook(lambda m, a, o: None):
        block(x)
    assert calls == []


def test_fused_path_leaves_the_layers_caches_alone():
    """A fused forward keeps its cache in the block: the BN and ReLU layers are not written."""
    block = BasicBlock(3, 3, rng=0)
    block(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32))
    assert block.bn1._cache is None and block.relu1._cache is None
    assert block.relu_out._cache is None
    assert block.bn2._cache is not None         # bn2 runs as a layer (no ReLU follows it)


@pytest.mark.parametrize("name", ["basic_B_stride2", "bottleneck", "se_bottleneck",
                                  "preact_B_dropout", "dense_layer", "depthwise_separable"])
def test_fused_pairs_do_not_depend_on_their_layers_caches(name):
    """The layers of a fused pair did not run, so their caches are untouched (None), and
    running them on something else between the block's forward and backward (a probe, a
    layer shared with another block) changes nothing in the block's gradients: the block
    keeps what its backward needs in its own cache."""
    block = BLOCKS[name]().to(np.float64)
    twin = copy.deepcopy(block)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, _in_channels(block), 6, 6))
    dout = rng.standard_normal(copy.deepcopy(block)(x).shape)
    want = _pass(twin, x, dout, watched=False)
    block.zero_grad()
    out = block(x)
    not_run = [m for m in block.modules() if isinstance(m, (BatchNorm2d, ReLU)) and m._cache is None]
    assert len(not_run) >= 2
    for m in not_run:
        channels = m.num_features if isinstance(m, BatchNorm2d) else 1
        m(rng.standard_normal((4, channels, 3, 3)))   # the BN's statistics move: on purpose
    dx = block.backward(dout)
    got = [out, dx] + [p.grad.copy() for _, p in block.named_parameters()]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_hooks_see_every_layer_of_every_block(name):
    block = BLOCKS[name]().train()
    if getattr(block, "survival_prob", 1.0) != 1.0:
        block.eval()                              # a dropped branch would skip its layers
    seen = set()
    x = np.random.default_rng(0).standard_normal((2, _in_channels(block), 6, 6)).astype(np.float32)
    with forward_hook(lambda m, inp, out: seen.add(id(m))):
        block(x)
    missing = [n for n, m in block.named_modules() if id(m) not in seen]
    assert missing == []


@pytest.mark.parametrize("name,shape", [("resnet20", (3, 32, 32)), ("preact_resnet18", (3, 32, 32)),
                                        ("mobilenet_v1", (3, 32, 32))])
def test_summary_has_a_row_for_every_batchnorm_and_relu(name, shape):
    model = models.create(name, rng=0)
    rows = {r.name: r for r in minicnn.summary(model, shape).rows}
    wanted = [n for n, m in model.named_modules() if isinstance(m, (BatchNorm2d, ReLU))]
    assert len(wanted) > 10
    assert [n for n in wanted if n not in rows or rows[n].output_shape is None] == []


def test_hooks_active_only_inside_forward_hook():
    assert not hooks.active()
    with forward_hook(lambda m, a, o: None):
        assert hooks.active()
        with forward_hook(lambda m, a, o: None):
            assert len(hooks.ACTIVE) == 2
        assert len(hooks.ACTIVE) == 1
    assert not hooks.active()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_helpers_equal_the_layers(dtype, training):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5, 5)).astype(dtype)
    b = rng.standard_normal(x.shape).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    bn, relu = BatchNorm2d(4).to(dtype).train(training), ReLU()
    bn.weight.data[...] = rng.uniform(0.5, 1.5, 4)
    ref_bn, ref_relu = copy.deepcopy(bn), ReLU()

    out, cache = fused.bn_relu(bn, relu, x)
    assert cache is not fused.RAN_AS_LAYERS
    dx = fused.bn_relu_backward(bn, relu, dout, cache)
    want = ref_relu(ref_bn(x))
    want_dx = ref_bn.backward(ref_relu.backward(dout))
    for a, w in ((out, want), (dx, want_dx), (bn.weight.grad, ref_bn.weight.grad),
                 (bn.bias.grad, ref_bn.bias.grad), (bn.running_mean, ref_bn.running_mean),
                 (bn.running_var, ref_bn.running_var)):
        np.testing.assert_array_equal(a, w)

    out, cache = fused.add_relu(relu, x, b)
    np.testing.assert_array_equal(out, ReLU()(x + b))
    np.testing.assert_array_equal(fused.add_relu_backward(relu, dout, cache),
                                  np.where(x + b > 0, dout, 0))
    out, cache = fused.add_relu(relu, x, None)  # a block without a shortcut: relu(a)
    assert cache is fused.RAN_AS_LAYERS
    np.testing.assert_array_equal(out, np.maximum(x, 0))


def test_subclasses_run_as_layers():
    """A subclass of BatchNorm2d or ReLU may compute something else: it is never fused."""
    class LeakyReLU(ReLU):
        def forward(self, x):
            self._cache = x
            return np.where(x > 0, x, 0.1 * x)

        def backward(self, dout):
            return np.where(self._cache > 0, dout, 0.1 * dout)

    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    relu = LeakyReLU()
    out, cache = fused.bn_relu(BatchNorm2d(3), relu, x)
    assert cache is fused.RAN_AS_LAYERS and (out < 0).any()
    out, cache = fused.add_relu(relu, x, x)
    assert cache is fused.RAN_AS_LAYERS and (out < 0).any()
