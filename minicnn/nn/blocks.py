"""Composite blocks that are not residual: branches, concatenation, dense reuse.

Each block is a Module built from the plain layers, with a hand-written backward.  Two
rules of backprop do all the work here:

* **concatenation** on the channel axis is undone in backward by *splitting* ``dout``
  on the same channel boundaries: each branch receives the slice of the gradient that
  belongs to its own output channels;
* **fan-out** (one tensor read by several branches, or re-read by every later layer of
  a dense block) *sums* the gradients that come back from every reader.

Children are always run as ``child(x)`` (never ``child.forward(x)``) so that the
forward hooks of ``minicnn.summary`` see every layer.  Every constructor takes ``rng``
(a numpy Generator, an int seed or None) and hands one Generator to all its children,
so a seed reproduces the whole block.

Blocks here (residual blocks live in ``minicnn.nn.residual`` and beside it):

* ``ParallelConcat``        -- branches on the same input, outputs concatenated on channels
* ``Inception``             -- GoogLeNet's 1x1 / 1x1->3x3 / 1x1->5x5 / pool->1x1 module
* ``Fire``                  -- SqueezeNet's squeeze 1x1 then expand 1x1 + 3x3
* ``DenseLayer``, ``DenseBlock``, ``Transition`` -- DenseNet
* ``DepthwiseSeparableConv`` -- MobileNet's depthwise 3x3 + pointwise 1x1
* ``FractalBlock``          -- FractalNet's block, in ``minicnn.nn.fractal`` (importable here)

The BN -> ReLU pairs of DenseLayer and DepthwiseSeparableConv run fused in one pass
(``minicnn.nn.fused``), as in the residual blocks.
"""
from collections import OrderedDict

from minicnn import backend
from minicnn.checks import as_generator, check_int, check_prob
from minicnn.functional._validate import check_float_array
from minicnn.nn import fused
from minicnn.nn.fractal import FractalBlock  # noqa: F401 (importable here, as before)
from minicnn.nn.layers import AvgPool2d, BatchNorm2d, Conv2d, Dropout, MaxPool2d, ReLU
from minicnn.nn.module import Module, Sequential


def _split_channels(dout, sizes):
    """Slices of ``dout`` (N, sum(sizes), H, W) along channels: one (N, sizes[i], H, W) per branch.

    Contiguous copies, so that kernels that want C-contiguous input get it and no branch
    can alias another's gradient.
    """
    xp = backend.get_array_module(dout)
    out, start = [], 0
    for s in sizes:
        out.append(xp.ascontiguousarray(dout[:, start:start + s]))
        start += s
    return out


def _check_channels(op, dout, expected, shape):
    """dout must have the shape of the forward output (N, expected, H, W)."""
    check_float_array(op, "dout", dout, ndim=4)
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"{op}: expected dout of shape {tuple(shape)} (the forward output), "
                         f"received {tuple(dout.shape)}")


# --------------------------------------------------------------------------- concat
class ParallelConcat(Module):
    """Run every branch on the same input and concatenate the outputs on the channel axis.

    - x: (N, C, H, W), read by every branch (fan-out)
    - branch i: (N, C, H, W) -> (N, C_i, H', W'); every branch must give the same H', W'
    - out: (N, sum_i C_i, H', W')

    Backward splits ``dout`` by channel (branch i gets channels ``C_0 + ... + C_{i-1}``
    up to ``+ C_i``) and, because ``x`` fanned out, returns the *sum* of the branches' dx.

    ``ParallelConcat(a, b)`` names the branches "0", "1"; keyword arguments keep their
    names (``ParallelConcat(branch1=a, branch2=b)``), in the order given.
    """

    def __init__(self, *branches, **named_branches):
        super().__init__()
        if branches and named_branches:
            raise ValueError("ParallelConcat: expected branches either all positional or all "
                             f"named, received {len(branches)} positional and "
                             f"{len(named_branches)} named")
        items = list(named_branches.items()) if named_branches else \
            [(str(i), b) for i, b in enumerate(branches)]
        if not items:
            raise ValueError("ParallelConcat: expected at least one branch, received none")
        for name, b in items:
            if not isinstance(b, Module):
                raise ValueError(f"ParallelConcat: expected branch {name!r} to be a Module, "
                                 f"received {type(b).__name__}")
            self.add_module(name, b)
        self.branch_names = tuple(name for name, _ in items)
        self._cache = None

    def forward(self, x):
        op = f"{type(self).__name__}.forward"
        check_float_array(op, "x", x, ndim=4)
        xp = backend.get_array_module(x)
        outs = [getattr(self, name)(x) for name in self.branch_names]
        h, w = outs[0].shape[2:]
        for name, o in zip(self.branch_names, outs):
            if o.ndim != 4 or tuple(o.shape[2:]) != (h, w):
                raise ValueError(f"{op}: expected every branch to output (N, C_i, {h}, {w}), "
                                 f"received {tuple(o.shape)} from branch {name!r}")
        out = xp.concatenate(outs, axis=1)
        self._cache = (tuple(o.shape[1] for o in outs), out.shape)
        return out

    def backward(self, dout):
        sizes, out_shape = self._get_cache()
        _check_channels(f"{type(self).__name__}.backward", dout, sum(sizes), out_shape)
        dx = None
        for name, d in zip(self.branch_names, _split_channels(dout, sizes)):
            g = getattr(self, name).backward(d)
            dx = g if dx is None else dx + g  # fan-out: the branches' gradients add
        return dx

    def extra_repr(self):
        return f"branches={len(self.branch_names)}"


def _conv_relu(in_channels, out_channels, kernel_size, padding, rng):
    return Sequential(Conv2d(in_channels, out_channels, kernel_size, padding=padding, rng=rng),
                      ReLU())


class Inception(ParallelConcat):
    """The Inception module of GoogLeNet (Szegedy et al., 2014, "Going Deeper with Convolutions").

    The idea: instead of choosing one filter size, run 1x1, 3x3 and 5x5 convolutions and a
    3x3 max-pool side by side and concatenate them ("depth concatenation"); 1x1 "reduce"
    convolutions in front of the 3x3 and 5x5 (and after the pool) cut the channels first,
    which keeps the cost of the wide module low.

    Branches (each conv followed by ReLU, as in the paper -- no BatchNorm)::

        branch1: 1x1 conv -> ch1x1
        branch2: 1x1 conv -> ch3x3red, 3x3 conv (pad 1) -> ch3x3
        branch3: 1x1 conv -> ch5x5red, 5x5 conv (pad 2) -> ch5x5
        branch4: 3x3 max-pool (stride 1, pad 1), 1x1 conv -> pool_proj

    - x: (N, in_channels, H, W) -> out: (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)

    Argument names are torchvision's.  torchvision's GoogLeNet uses a 3x3 conv in branch3
    (a slip kept for its pretrained weights) and adds BatchNorm after every conv; this
    block follows the paper (``branch3_kernel=5``); pass ``branch3_kernel=3`` for
    torchvision's variant.
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj,
                 branch3_kernel=5, rng=None):
        rng = as_generator(rng, "Inception")
        k = check_int("Inception", "branch3_kernel", branch3_kernel, 1)
        if k % 2 == 0:
            raise ValueError(f"Inception: expected an odd branch3_kernel (3 or 5), received {k}")
        branch1 = _conv_relu(in_channels, ch1x1, 1, 0, rng)
        branch2 = Sequential(Conv2d(in_channels, ch3x3red, 1, rng=rng), ReLU(),
                             Conv2d(ch3x3red, ch3x3, 3, padding=1, rng=rng), ReLU())
        branch3 = Sequential(Conv2d(in_channels, ch5x5red, 1, rng=rng), ReLU(),
                             Conv2d(ch5x5red, ch5x5, k, padding=k // 2, rng=rng), ReLU())
        branch4 = Sequential(MaxPool2d(3, stride=1, padding=1),
                             Conv2d(in_channels, pool_proj, 1, rng=rng), ReLU())
        super().__init__(branch1=branch1, branch2=branch2, branch3=branch3, branch4=branch4)
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj


# ---------------------------------------------------------------------------- fire
class Fire(Module):
    """The Fire module of SqueezeNet (Iandola et al., 2016, "SqueezeNet: AlexNet-level accuracy
    with 50x fewer parameters and <0.5MB model size").

    The idea: *squeeze* the channels with cheap 1x1 filters, then *expand* with a mix of
    1x1 and 3x3 filters whose outputs are concatenated -- fewer 3x3 filters, and each of
    them sees few input channels, so parameters drop by an order of magnitude.

    - x: (N, in_channels, H, W)
    - s = relu(squeeze(x)): (N, squeeze_planes, H, W)
    - out = concat(relu(expand1x1(s)), relu(expand3x3(s))):
      (N, expand1x1_planes + expand3x3_planes, H, W)

    Attribute names are torchvision's (``squeeze``, ``squeeze_activation``, ``expand1x1``,
    ``expand1x1_activation``, ``expand3x3``, ``expand3x3_activation``).
    """

    def __init__(self, in_channels, squeeze_planes, expand1x1_planes, expand3x3_planes, rng=None):
        super().__init__()
        rng = as_generator(rng, "Fire")
        self.in_channels = in_channels
        self.squeeze = Conv2d(in_channels, squeeze_planes, 1, rng=rng)
        self.squeeze_activation = ReLU()
        self.expand1x1 = Conv2d(squeeze_planes, expand1x1_planes, 1, rng=rng)
        self.expand1x1_activation = ReLU()
        self.expand3x3 = Conv2d(squeeze_planes, expand3x3_planes, 3, padding=1, rng=rng)
        self.expand3x3_activation = ReLU()
        self._cache = None

    def forward(self, x):
        xp = backend.get_array_module(x)
        s = self.squeeze_activation(self.squeeze(x))
        e1 = self.expand1x1_activation(self.expand1x1(s))
        e3 = self.expand3x3_activation(self.expand3x3(s))
        out = xp.concatenate([e1, e3], axis=1)
        self._cache = ((e1.shape[1], e3.shape[1]), out.shape)
        return out

    def backward(self, dout):
        sizes, out_shape = self._get_cache()
        _check_channels("Fire.backward", dout, sum(sizes), out_shape)
        d1, d3 = _split_channels(dout, sizes)
        ds1 = self.expand1x1.backward(self.expand1x1_activation.backward(d1))
        ds3 = self.expand3x3.backward(self.expand3x3_activation.backward(d3))
        ds = ds1 + ds3  # s fanned out to both expand convs
        return self.squeeze.backward(self.squeeze_activation.backward(ds))


# --------------------------------------------------------------------------- dense
class DenseLayer(Module):
    """One layer of a DenseNet block (Huang et al., 2017, "Densely Connected Convolutional
    Networks"), the "DenseNet-B" bottleneck form: BN-ReLU-1x1 conv then BN-ReLU-3x3 conv.

    - x: (N, C, H, W), the concatenation of the block input and every earlier layer's output
    - out: (N, growth_rate, H, W) -- only the *new* features; DenseBlock concatenates them

    The 1x1 conv first reduces the (growing) input to ``bn_size * growth_rate`` channels:

        norm1 -> relu1 -> conv1 1x1 -> norm2 -> relu2 -> conv2 3x3 (pad 1) [-> dropout]

    Attribute names are torchvision's: norm1, relu1, conv1, norm2, relu2, conv2 (convs
    without bias, since a BatchNorm follows).  ``drop_rate > 0`` adds dropout after conv2
    (the paper uses 0.2 on CIFAR without data augmentation).
    """

    def __init__(self, num_input_features, growth_rate, bn_size=4, drop_rate=0.0, rng=None):
        super().__init__()
        op = "DenseLayer"
        rng = as_generator(rng, op)
        inter = bn_size * growth_rate
        self.norm1 = BatchNorm2d(num_input_features)
        self.relu1 = ReLU()
        self.conv1 = Conv2d(num_input_features, inter, 1, bias=False, rng=rng)
        self.norm2 = BatchNorm2d(inter)
        self.relu2 = ReLU()
        self.conv2 = Conv2d(inter, growth_rate, 3, padding=1, bias=False, rng=rng)
        self.drop_rate = check_prob(op, "drop_rate", drop_rate)
        self.dropout = Dropout(self.drop_rate, rng=rng) if self.drop_rate > 0 else None
        self._cache = None

    def forward(self, x):
        out, norm1_cache = fused.bn_relu(self.norm1, self.relu1, x)      # relu1(norm1(x))
        out = self.conv1(out)
        out, norm2_cache = fused.bn_relu(self.norm2, self.relu2, out)    # relu2(norm2(out))
        out = self.conv2(out)
        if self.dropout is not None:
            out = self.dropout(out)
        self._cache = (norm1_cache, norm2_cache)
        return out

    def backward(self, dout):
        norm1_cache, norm2_cache = self._get_cache()
        d = dout if self.dropout is None else self.dropout.backward(dout)
        d = self.conv2.backward(d)
        d = fused.bn_relu_backward(self.norm2, self.relu2, d, norm2_cache)
        d = self.conv1.backward(d)
        return fused.bn_relu_backward(self.norm1, self.relu1, d, norm1_cache)


class DenseBlock(Module):
    """A dense block: every layer reads the concatenation of *all* earlier feature maps.

        x_0 = input (N, C, H, W)
        x_l = concat(x_{l-1}, denselayer_l(x_{l-1}))      for l = 1 .. num_layers
        out = x_L: (N, C + num_layers * growth_rate, H, W)

    Backward (why it is a loop in reverse): the gradient of ``x_l`` splits into the first
    channels, which *are* ``x_{l-1}``, and the last ``growth_rate`` channels, which went
    through layer l; ``x_{l-1}`` was read twice (kept in the concat and fed to layer l), so
    its gradient is the sum of both.  Children are "denselayer1", "denselayer2", ...
    (torchvision's names).
    """

    def __init__(self, num_layers, num_input_features, bn_size=4, growth_rate=32, drop_rate=0.0,
                 rng=None):
        super().__init__()
        rng = as_generator(rng, "DenseBlock")
        self.num_layers = check_int("DenseBlock", "num_layers", num_layers, 1)
        self.num_input_features = num_input_features
        self.growth_rate = growth_rate
        for i in range(self.num_layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(num_input_features + i * growth_rate, growth_rate,
                                       bn_size=bn_size, drop_rate=drop_rate, rng=rng))
        self.out_channels = num_input_features + self.num_layers * growth_rate
        self._cache = None

    def forward(self, x):
        xp = backend.get_array_module(x)
        check_float_array("DenseBlock.forward", "x", x, ndim=4)
        if x.shape[1] != self.num_input_features:
            raise ValueError(f"DenseBlock.forward: expected x with {self.num_input_features} "
                             f"channels, received shape {tuple(x.shape)}")
        features = x
        for layer in self.children():
            features = xp.concatenate([features, layer(features)], axis=1)
        self._cache = features.shape
        return features

    def backward(self, dout):
        out_shape = self._get_cache()
        _check_channels("DenseBlock.backward", dout, self.out_channels, out_shape)
        d = dout
        for layer in reversed(list(self.children())):
            c = d.shape[1] - self.growth_rate
            d_old, d_new = _split_channels(d, (c, self.growth_rate))
            d = d_old + layer.backward(d_new)   # x_{l-1}: kept in the concat + read by layer l
        return d


class Transition(Sequential):
    """DenseNet transition between dense blocks: BN-ReLU-1x1 conv (compression) then 2x2 avg-pool.

    - x: (N, num_input_features, H, W) -> out: (N, num_output_features, H // 2, W // 2)

    DenseNet-BC halves the channels here (compression 0.5).  A Sequential with
    torchvision's child names: norm, relu, conv (no bias), pool.
    """

    def __init__(self, num_input_features, num_output_features, rng=None):
        rng = as_generator(rng, "Transition")
        super().__init__(OrderedDict([
            ("norm", BatchNorm2d(num_input_features)),
            ("relu", ReLU()),
            ("conv", Conv2d(num_input_features, num_output_features, 1, bias=False, rng=rng)),
            ("pool", AvgPool2d(2, stride=2)),
        ]))


# ------------------------------------------------------------------ depthwise sep.
class DepthwiseSeparableConv(Module):
    """MobileNet's depthwise-separable convolution (Howard et al., 2017, "MobileNets:
    Efficient Convolutional Neural Networks for Mobile Vision Applications").

    The idea: factor a standard KxK conv into a *depthwise* 3x3 conv (one filter per input
    channel, ``groups = in_channels``: spatial filtering only) and a *pointwise* 1x1 conv
    (mixing channels only).  Cost drops from ``K*K*C*F`` to ``K*K*C + C*F`` multiply-adds
    per output position, about 8-9x fewer for 3x3.

        depthwise 3x3 (stride, pad 1, groups=C) -> bn1 -> relu1 -> pointwise 1x1 -> bn2 -> relu2

    - x: (N, in_channels, H, W) -> out: (N, out_channels, OH, OW),
      OH = (H + 2 - 3) // stride + 1
    Convs have no bias (a BatchNorm follows each).
    """

    def __init__(self, in_channels, out_channels, stride=1, rng=None):
        super().__init__()
        rng = as_generator(rng, "DepthwiseSeparableConv")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.depthwise = Conv2d(in_channels, in_channels, 3, stride=stride, padding=1,
                                groups=in_channels, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(in_channels)
        self.relu1 = ReLU()
        self.pointwise = Conv2d(in_channels, out_channels, 1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(out_channels)
        self.relu2 = ReLU()
        self._cache = None

    def forward(self, x):
        out = self.depthwise(x)
        out, bn1_cache = fused.bn_relu(self.bn1, self.relu1, out)     # relu1(bn1(out))
        out = self.pointwise(out)
        out, bn2_cache = fused.bn_relu(self.bn2, self.relu2, out)     # relu2(bn2(out))
        self._cache = (bn1_cache, bn2_cache)
        return out

    def backward(self, dout):
        bn1_cache, bn2_cache = self._get_cache()
        d = fused.bn_relu_backward(self.bn2, self.relu2, dout, bn2_cache)
        d = self.pointwise.backward(d)
        d = fused.bn_relu_backward(self.bn1, self.relu1, d, bn1_cache)
        return self.depthwise.backward(d)
