"""Residual blocks: the ResNet family's building blocks, each with a hand-written backward.

He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition" (CVPR):
instead of asking a stack of layers to fit a mapping H(x), let it fit the residual
F(x) = H(x) - x and add the input back,

    out = relu(F(x) + shortcut(x)).

If the identity is what is needed, the layers only have to push F towards zero, which
is easy; and the gradient reaches early layers through the shortcut unchanged, so
networks of 100+ layers train (plain networks of that depth get *worse*, even on the
training set: the "degradation" problem, see models/cifar_resnet.py).

The one rule of backprop that blocks add to a chain of layers: a tensor used twice
(here x feeds both the branch F and the shortcut) receives the SUM of the gradients
flowing back along both uses:

    dL/dx = dL/dx through F  +  dL/dx through the shortcut.

Every block calls its children as ``child(x)`` (so summary's forward hooks see every
layer; each child caches what its own backward needs), and its ``backward`` runs the
children's backward in reverse order and adds the two paths.

Shortcuts when the shape changes (stride 2 and/or more channels), He et al. 2016, Sec 3.3:

* option A -- ``ZeroPadShortcut``: parameter-free identity: take every stride-th pixel
  and append zero channels (the CIFAR ResNets of the paper's Sec 4.2);
* option B -- ``projection_shortcut``: a 1x1 convolution with stride + BatchNorm
  (torchvision's ``downsample.0`` / ``downsample.1``; the ImageNet ResNets).

Blocks here:

* ``BasicBlock`` (two 3x3 convs; ResNet-18/34, CIFAR ResNets),
* ``Bottleneck`` (1x1 reduce, 3x3, 1x1 expand x4; ResNet-50/101/152, ResNeXt via
  ``groups``/``base_width``, SE-ResNet via ``se_reduction``),
* ``PreActBlock`` (BN-ReLU before each conv: He et al. 2016b, "Identity Mappings in Deep
  Residual Networks"; also the Wide-ResNet block, with optional dropout),
* ``SqueezeExcitation`` and ``SEBottleneck`` (Hu, Shen & Sun, 2018),
* ``StochasticDepth`` (Huang et al., 2016): randomly skip a residual branch in training,
  and ``Residual`` (out = x + branch(x)) to put it in a network.

Shapes: every block maps (N, in_channels, H, W) to (N, out_channels, H', W') with
H' = (H - 1) // stride + 1 (a 3x3 conv with padding 1, or a 1x1 conv, at that stride).
"""
import numpy as np

from minicnn import backend
from minicnn.nn import init
from minicnn.nn.layers import (BatchNorm2d, Conv2d, Dropout, GlobalAvgPool2d, Linear, ReLU, Sigmoid,
                               add_relu, bn_relu, bn_relu_backward)
from minicnn.nn.module import Module, Sequential

SHORTCUTS = ("A", "B", "none")


def _check_channels(op, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{op}: expected {name} to be an int >= 1, received {v!r}")
    return int(v)


def _check_stride(op, stride):
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"{op}: expected stride to be an int >= 1, received {stride!r}")
    return int(stride)


def _check_x(op, x, channels):
    if getattr(x, "ndim", None) != 4 or x.shape[1] != channels:
        raise ValueError(f"{op}: expected x of shape (N, {channels}, H, W), received "
                         f"{getattr(x, 'shape', type(x).__name__)}")


# --------------------------------------------------------------------------- shortcuts
class ZeroPadShortcut(Module):
    """Option A shortcut (He et al. 2016, Sec 3.3 and 4.2): identity with zero padding.

    Subsample by ``stride`` (keep every stride-th row and column, as a 1x1 stride-s
    conv with an identity kernel would) and append ``out_channels - in_channels`` zero
    channels.  No parameters, so ResNet-20 has exactly as many weights as plain-20.

    - x: (N, in_channels, H, W) -> out: (N, out_channels, (H-1)//stride+1, (W-1)//stride+1)

    Backward: the gradient of the kept pixels of the first ``in_channels`` channels goes
    back to where they came from; padding channels and skipped pixels get zero.
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        op = "ZeroPadShortcut"
        self.in_channels = _check_channels(op, "in_channels", in_channels)
        self.out_channels = _check_channels(op, "out_channels", out_channels)
        self.stride = _check_stride(op, stride)
        if self.out_channels < self.in_channels:
            raise ValueError(f"ZeroPadShortcut: expected out_channels >= in_channels "
                             f"({self.in_channels}), received {self.out_channels}")
        self._cache = None

    def forward(self, x):
        _check_x("ZeroPadShortcut", x, self.in_channels)
        xp = backend.get_array_module(x)
        s = self.stride
        kept = x[:, :, ::s, ::s]
        n, c, h, w = kept.shape
        out = xp.zeros((n, self.out_channels, h, w), dtype=x.dtype)
        out[:, :c] = kept
        self._cache = (x.shape, x.dtype)
        return out

    def backward(self, dout):
        x_shape, dtype = self._get_cache()
        xp = backend.get_array_module(dout)
        dx = xp.zeros(x_shape, dtype=dtype)
        s = self.stride
        dx[:, :, ::s, ::s] = dout[:, :self.in_channels]
        return dx

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def projection_shortcut(in_channels, out_channels, stride=1, rng=None):
    """Option B shortcut: 1x1 conv (no bias, stride) + BatchNorm, as a Sequential.

    Named as torchvision's ``downsample``: ``downsample.0.weight`` (out, in, 1, 1) and
    ``downsample.1.{weight,bias,running_mean,running_var}``.
    - x: (N, in_channels, H, W) -> (N, out_channels, (H-1)//stride+1, (W-1)//stride+1)
    """
    return Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, rng=rng),
                      BatchNorm2d(out_channels))


def _make_shortcut(op, kind, in_channels, out_channels, stride, rng):
    """The ``downsample`` module for a block, or None for the plain identity.

    ``kind``: "A" (zero padding), "B" (projection), "none" (no shortcut at all: a plain
    block).  Option A and B differ only when the shape changes; otherwise both are the
    identity (None), as in the paper.
    """
    if kind not in SHORTCUTS:
        raise ValueError(f"{op}: expected shortcut in {SHORTCUTS}, received {kind!r}")
    if kind == "none" or (stride == 1 and in_channels == out_channels):
        return None
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return projection_shortcut(in_channels, out_channels, stride, rng)


class _BlockBranch(Module):
    """The residual function F of a post-activation block as a Module of its own, so that
    StochasticDepth can wrap it.  The layers stay the block's (``conv1``, ``bn1``, ...):
    the block is held as a plain attribute, not a child, so names do not change."""

    def __init__(self, block):
        super().__init__()
        object.__setattr__(self, "block", block)

    def forward(self, x):
        return self.block._branch(x)

    def backward(self, dout):
        return self.block._branch_backward(dout)

    def output_shape(self, shape):
        n, _, h, w = shape
        s = self.block.stride
        return (n, self.block.out_channels, (h - 1) // s + 1, (w - 1) // s + 1)


class _PostActivationBlock(Module):
    """What BasicBlock and Bottleneck share: out = relu(branch(x) + shortcut(x)).

    Subclasses define ``_branch(x)`` and ``_branch_backward(d)`` (the residual function F),
    the layers ``downsample`` (None = identity) and ``relu_out``, ``residual`` (False
    for a plain block: out = relu(branch(x))), and call ``_init_stochastic_depth`` last.
    """

    def _init_stochastic_depth(self, survival_prob, rng):
        self.stochastic_depth = None
        if survival_prob != 1.0:
            if not self.residual:
                raise ValueError(f"{type(self).__name__}: stochastic depth needs a shortcut "
                                 f"(a dropped block is its shortcut), received shortcut='none' "
                                 f"and survival_prob={survival_prob!r}")
            self.stochastic_depth = StochasticDepth(_BlockBranch(self), survival_prob, rng)

    def forward(self, x):
        _check_x(type(self).__name__, x, self.in_channels)
        out = self._branch(x) if self.stochastic_depth is None else self.stochastic_depth(x)
        if self.residual:
            # relu_out(out + shortcut) without storing the sum (minicnn.nn.layers.add_relu).
            return add_relu(self.relu_out, out, x if self.downsample is None else self.downsample(x))
        return self.relu_out(out)

    def backward(self, dout):
        d = self.relu_out.backward(dout)
        if self.stochastic_depth is None:
            dx = self._branch_backward(d)
        else:
            dx = self.stochastic_depth.backward(d)
        if self.residual:
            # x fanned out into the branch and the shortcut: its gradient is the sum.
            dx = dx + (d if self.downsample is None else self.downsample.backward(d))
        return dx

    def _zero_init_last_bn(self, bn):
        # Goyal et al. (2017): with gamma = 0 each block starts as the identity.
        bn.weight.data[...] = 0


class BasicBlock(_PostActivationBlock):
    """ResNet basic block (He et al. 2016, Fig. 2 left): two 3x3 convs and a shortcut.

        conv1 3x3/stride -> bn1 -> relu1 -> conv2 3x3 -> bn2 -> (+ shortcut) -> relu_out

    - x: (N, in_channels, H, W) -> (N, channels, (H-1)//stride+1, (W-1)//stride+1)
    - shortcut: "B" projection (1x1 conv + BN, torchvision's ``downsample``), "A" zero
      padding (parameter-free), or "none" (a plain block, for the degradation experiment)
      -- only used when the shape changes; otherwise the shortcut is the identity.
    - zero_init_residual: start bn2's gamma at 0 so the block starts as the identity.
    - survival_prob: < 1 wraps the branch in StochasticDepth (Huang et al. 2016): in
      training it is skipped with probability 1 - survival_prob (out = relu(shortcut(x))),
      in evaluation scaled by survival_prob.

    Parameter names are torchvision's: conv1, bn1, conv2, bn2, downsample.0/1.
    """

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, shortcut="B", zero_init_residual=False,
                 survival_prob=1.0, rng=None):
        super().__init__()
        op = "BasicBlock"
        self.in_channels = _check_channels(op, "in_channels", in_channels)
        self.channels = _check_channels(op, "channels", channels)
        self.out_channels = self.channels
        self.stride = _check_stride(op, stride)
        self.residual = shortcut != "none"
        rng = init.as_generator(rng)
        self.conv1 = Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(channels)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(channels, channels, 3, padding=1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(channels)
        self.downsample = _make_shortcut(op, shortcut, in_channels, channels, stride, rng)
        self.relu_out = ReLU()
        if zero_init_residual:
            self._zero_init_last_bn(self.bn2)
        self._init_stochastic_depth(survival_prob, rng)

    def _branch(self, x):
        # bn_relu(bn, relu, h) is relu(bn(h)) in one pass (minicnn.nn.layers).
        return self.bn2(self.conv2(bn_relu(self.bn1, self.relu1, self.conv1(x))))

    def _branch_backward(self, d):
        d = self.conv2.backward(self.bn2.backward(d))
        return self.conv1.backward(bn_relu_backward(self.bn1, self.relu1, d))

    def extra_repr(self):
        return f"{self.in_channels}, {self.channels}, stride={self.stride}"


class Bottleneck(_PostActivationBlock):
    """ResNet bottleneck block (He et al. 2016, Fig. 5 right): 1x1 reduce, 3x3, 1x1 expand.

        conv1 1x1 -> bn1 -> relu1 -> conv2 3x3/stride (groups) -> bn2 -> relu2
        -> conv3 1x1 -> bn3 -> [se] -> (+ shortcut) -> relu_out

    The 1x1 convs shrink the channels to ``width`` for the expensive 3x3 and grow them
    back to ``channels * 4``, so a deep net costs little more than a shallow one.

    - x: (N, in_channels, H, W) -> (N, 4 * channels, (H-1)//stride+1, (W-1)//stride+1)
    - width = int(channels * base_width / 64) * groups (torchvision's rule): plain ResNet
      has width = channels; ResNeXt-50 32x4d has groups=32, base_width=4, so the first
      stage's 3x3 is a grouped conv of 32 groups of 4 channels (Xie et al., 2017).
    - stride_in_1x1: False (default) puts the stride in the 3x3 conv, as torchvision does
      ("ResNet v1.5", slightly more accurate and ~5% more multiply-adds at stride-2 blocks);
      True puts it in the first 1x1 conv, as the original paper and Caffe model ("v1").
    - se_reduction: if given, a SqueezeExcitation(4 * channels, se_reduction) recalibrates
      the branch before the addition (SE-ResNet, Hu et al. 2018).
    - shortcut: "B" (default, projection), "A" or "none" as in BasicBlock.
    - survival_prob: stochastic depth of the branch, as in BasicBlock.
    """

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, shortcut="B", groups=1, base_width=64,
                 stride_in_1x1=False, se_reduction=None, zero_init_residual=False,
                 survival_prob=1.0, rng=None):
        super().__init__()
        op = "Bottleneck"
        self.in_channels = _check_channels(op, "in_channels", in_channels)
        self.channels = _check_channels(op, "channels", channels)
        self.stride = _check_stride(op, stride)
        self.groups = _check_channels(op, "groups", groups)
        base_width = _check_channels(op, "base_width", base_width)
        self.width = int(channels * (base_width / 64.0)) * groups
        if self.width < 1:
            raise ValueError(f"Bottleneck: expected channels * base_width / 64 >= 1, received "
                             f"channels={channels}, base_width={base_width}")
        self.out_channels = channels * self.expansion
        self.residual = shortcut != "none"
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        rng = init.as_generator(rng)
        w, out = self.width, self.out_channels
        self.conv1 = Conv2d(in_channels, w, 1, stride=s1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(w)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(w, w, 3, stride=s3, padding=1, groups=groups, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(w)
        self.relu2 = ReLU()
        self.conv3 = Conv2d(w, out, 1, bias=False, rng=rng)
        self.bn3 = BatchNorm2d(out)
        self.se = None if se_reduction is None else SqueezeExcitation(out, se_reduction, rng=rng)
        self.downsample = _make_shortcut(op, shortcut, in_channels, out, stride, rng)
        self.relu_out = ReLU()
        if zero_init_residual:
            self._zero_init_last_bn(self.bn3)
        self._init_stochastic_depth(survival_prob, rng)

    def _branch(self, x):
        # bn_relu(bn, relu, h) is relu(bn(h)) in one pass (minicnn.nn.layers).
        out = bn_relu(self.bn1, self.relu1, self.conv1(x))
        out = bn_relu(self.bn2, self.relu2, self.conv2(out))
        out = self.bn3(self.conv3(out))
        return out if self.se is None else self.se(out)

    def _branch_backward(self, d):
        if self.se is not None:
            d = self.se.backward(d)
        d = bn_relu_backward(self.bn2, self.relu2, self.conv3.backward(self.bn3.backward(d)))
        d = bn_relu_backward(self.bn1, self.relu1, self.conv2.backward(d))
        return self.conv1.backward(d)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.channels}, stride={self.stride}"
        return s + (f", groups={self.groups}, width={self.width}" if self.groups != 1 else "")


# ----------------------------------------------------------------- squeeze-excitation
class SqueezeExcitation(Module):
    """Squeeze-and-excitation (Hu, Shen & Sun, 2018, "Squeeze-and-Excitation Networks"):
    let the network reweight its own channels from global context.

        s = avgpool(x)                         squeeze: (N, C, H, W) -> (N, C)
        g = sigmoid(fc2(relu(fc1(s))))         excitation: C -> C/r -> C, gates in (0, 1)
        out = x * g[:, :, None, None]          scale each channel map

    - x: (N, channels, H, W) -> out: same shape
    - fc1: Linear(channels, channels // reduction), fc2: Linear(channels // reduction,
      channels), both with bias (the paper's FC layers; 2 C^2 / r weights per block).

    Backward: x is used twice (scaled, and through the gates), so
    dx = dout * g  +  avgpool.backward(d s), with dg = sum_{h,w} dout * x.
    """

    def __init__(self, channels, reduction=16, rng=None):
        super().__init__()
        op = "SqueezeExcitation"
        self.channels = _check_channels(op, "channels", channels)
        self.reduction = _check_channels(op, "reduction", reduction)
        hidden = max(1, channels // reduction)
        rng = init.as_generator(rng)
        self.avgpool = GlobalAvgPool2d()
        self.fc1 = Linear(channels, hidden, rng=rng)
        self.relu = ReLU()
        self.fc2 = Linear(hidden, channels, rng=rng)
        self.sigmoid = Sigmoid()
        self._cache = None

    def forward(self, x):
        _check_x("SqueezeExcitation", x, self.channels)
        g = self.sigmoid(self.fc2(self.relu(self.fc1(self.avgpool(x)))))
        self._cache = (x, g)
        return x * g[:, :, None, None]

    def backward(self, dout):
        x, g = self._get_cache()
        dg = (dout * x).sum(axis=(2, 3))
        ds = self.fc1.backward(self.relu.backward(self.fc2.backward(self.sigmoid.backward(dg))))
        return dout * g[:, :, None, None] + self.avgpool.backward(ds)

    def extra_repr(self):
        return f"{self.channels}, reduction={self.reduction}"


class SEBottleneck(Bottleneck):
    """Bottleneck with a squeeze-and-excitation module on the branch, before the addition
    (Hu et al. 2018, Fig. 3, "SE-ResNet module").  Same arguments as Bottleneck;
    ``reduction`` (default 16, the paper's choice) sets SE's hidden width C / r."""

    def __init__(self, in_channels, channels, stride=1, shortcut="B", groups=1, base_width=64,
                 stride_in_1x1=False, reduction=16, zero_init_residual=False, survival_prob=1.0,
                 rng=None):
        super().__init__(in_channels, channels, stride=stride, shortcut=shortcut, groups=groups,
                         base_width=base_width, stride_in_1x1=stride_in_1x1,
                         se_reduction=reduction, zero_init_residual=zero_init_residual,
                         survival_prob=survival_prob, rng=rng)


# --------------------------------------------------------------------- pre-activation
class PreActBlock(Module):
    """Pre-activation basic block (He, Zhang, Ren & Sun 2016b, "Identity Mappings in Deep
    Residual Networks", Fig. 1b / 4e): BN and ReLU move *before* each conv, and nothing
    follows the addition,

        a = relu1(bn1(x));  out = conv2(relu2(bn2(conv1(a)))) + shortcut

    so the path x_l -> x_L through the identities is a pure sum (x_L = x_l + sum F) and
    the gradient of any block reaches every earlier block undiminished.

    - x: (N, in_channels, H, W) -> (N, channels, (H-1)//stride+1, (W-1)//stride+1)
    - shortcut when the shape changes: "B" (default) a 1x1 conv (no BN) applied to the
      pre-activated ``a`` (the paper shares the first BN-ReLU with the projection; so do
      Wide-ResNets), "A" zero padding of ``x``; otherwise the identity on ``x``.
    - dropout: p of a Dropout between relu2 and conv2 (Wide-ResNet, Zagoruyko &
      Komodakis 2016, use 0.3); 0 = none.
    """

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, shortcut="B", dropout=0.0, rng=None):
        super().__init__()
        op = "PreActBlock"
        self.in_channels = _check_channels(op, "in_channels", in_channels)
        self.channels = _check_channels(op, "channels", channels)
        self.out_channels = self.channels
        self.stride = _check_stride(op, stride)
        if shortcut not in ("A", "B"):
            raise ValueError(f"PreActBlock: expected shortcut 'A' or 'B', received {shortcut!r}")
        rng = init.as_generator(rng)
        self.bn1 = BatchNorm2d(in_channels)
        self.relu1 = ReLU()
        self.conv1 = Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(channels)
        self.relu2 = ReLU()
        self.dropout = Dropout(dropout, rng=rng) if dropout > 0 else None
        self.conv2 = Conv2d(channels, channels, 3, padding=1, bias=False, rng=rng)
        identity = stride == 1 and in_channels == channels
        if identity:
            self.downsample = None
        elif shortcut == "A":
            self.downsample = ZeroPadShortcut(in_channels, channels, stride)
        else:
            self.downsample = Conv2d(in_channels, channels, 1, stride=stride, bias=False, rng=rng)
        # Projection reads the pre-activated input; identity and zero padding read x.
        self.shortcut_from_preact = shortcut == "B" and not identity

    def forward(self, x):
        _check_x("PreActBlock", x, self.in_channels)
        a = bn_relu(self.bn1, self.relu1, x)      # relu1(bn1(x)) in one pass
        if self.downsample is None:
            sc = x
        else:
            sc = self.downsample(a if self.shortcut_from_preact else x)
        out = bn_relu(self.bn2, self.relu2, self.conv1(a))
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv2(out) + sc

    def backward(self, dout):
        d = self.conv2.backward(dout)
        if self.dropout is not None:
            d = self.dropout.backward(d)
        da = self.conv1.backward(bn_relu_backward(self.bn2, self.relu2, d))
        dx_short = None
        if self.downsample is None:
            dx_short = dout
        elif self.shortcut_from_preact:
            da = da + self.downsample.backward(dout)     # a fans out: conv1 and the projection
        else:
            dx_short = self.downsample.backward(dout)
        dx = bn_relu_backward(self.bn1, self.relu1, da)
        return dx if dx_short is None else dx + dx_short  # x fans out: branch and shortcut

    def extra_repr(self):
        return f"{self.in_channels}, {self.channels}, stride={self.stride}"


# --------------------------------------------------------------------- stochastic depth
class StochasticDepth(Module):
    """Stochastic depth (Huang, Sun, Liu, Sedra & Weinberger, 2016, "Deep Networks with
    Stochastic Depth"): train a short network, test a deep one.

    Wraps a residual branch f (a Module).  In training, once per forward (per
    mini-batch, as in the paper) the branch survives with probability ``survival_prob`` (p):

        training:  out = f(x) with probability p, else 0   (f is not even computed)
        testing:   out = p * f(x)                          (its expected training value)

    Used inside a residual block as ``shortcut(x) + StochasticDepth(f)(x)``: a dropped
    block is just its shortcut, so the expected depth in training is sum_l p_l (the paper
    decays p_l linearly from 1 to 0.5 over the blocks; see ``linear_decay``).  The draw
    comes from ``rng`` (a Generator, seed or None), never global state.  The blocks above
    take ``survival_prob`` and wrap their own branch this way.

    - x: any shape -> out: f's output shape.  A dropped branch outputs zeros of that
      shape without running f: the input's shape, or ``f.output_shape(x.shape)`` if f
      defines it (a branch that downsamples, as the first block of a ResNet stage).
    - backward: dropped -> dx = 0 and no parameter gradient; kept -> f.backward(dout);
      testing -> f.backward(p * dout).
    """

    def __init__(self, branch, survival_prob=0.5, rng=None):
        super().__init__()
        if not isinstance(branch, Module):
            raise ValueError(f"StochasticDepth: expected a Module branch, received "
                             f"{type(branch).__name__}")
        if isinstance(survival_prob, bool) or not isinstance(survival_prob, (int, float, np.floating)) \
                or not 0.0 < survival_prob <= 1.0:
            raise ValueError(f"StochasticDepth: expected survival_prob in (0, 1], received "
                             f"{survival_prob!r}")
        self.branch = branch
        self.survival_prob = float(survival_prob)
        self.rng = init.as_generator(rng)
        self._cache = None

    def forward(self, x):
        xp = backend.get_array_module(x)
        if self.training:
            keep = bool(self.rng.random() < self.survival_prob)
            scale = 1.0
        else:
            keep, scale = True, self.survival_prob
        if not keep:
            self._cache = ("dropped", x.shape, x.dtype)
            return xp.zeros(self._output_shape(x), dtype=x.dtype)
        out = self.branch(x)
        if tuple(out.shape) != self._output_shape(x):
            raise ValueError(f"StochasticDepth: expected a branch output of shape "
                             f"{self._output_shape(x)} (the input's shape, or the branch's "
                             f"output_shape), received {tuple(out.shape)}")
        self._cache = ("kept", scale, None)
        return out if scale == 1.0 else out * scale  # a Python float keeps float32 float32

    def _output_shape(self, x):
        shape_of = getattr(self.branch, "output_shape", None)
        return tuple(x.shape) if shape_of is None else tuple(shape_of(tuple(x.shape)))

    def backward(self, dout):
        state, a, b = self._get_cache()
        if state == "dropped":
            return backend.get_array_module(dout).zeros(a, dtype=b)
        return self.branch.backward(dout if a == 1.0 else dout * a)

    def extra_repr(self):
        return f"survival_prob={self.survival_prob}"


def linear_decay(index, total, last_survival_prob):
    """Huang et al.'s rule: block ``index`` (1 .. total) survives with probability
    p_l = 1 - index / total * (1 - p_L), from ~1 at the input to p_L at the output."""
    return 1.0 - index / total * (1.0 - last_survival_prob)


class Residual(Module):
    """The bare residual connection ``out = x + branch(x)`` around any shape-keeping branch.

    - x: (N, ...) -> out: same shape.  Backward: dx = dout + branch.backward(dout).
    With ``Residual(StochasticDepth(f, p))`` a dropped block is exactly the identity.
    """

    def __init__(self, branch):
        super().__init__()
        if not isinstance(branch, Module):
            raise ValueError(f"Residual: expected a Module branch, received {type(branch).__name__}")
        self.branch = branch

    def forward(self, x):
        out = self.branch(x)
        if out.shape != x.shape:
            raise ValueError(f"Residual: expected a branch that keeps the shape of its input "
                             f"{tuple(x.shape)}, received output {tuple(out.shape)}")
        return x + out

    def backward(self, dout):
        return dout + self.branch.backward(dout)  # x fans out: branch and identity
