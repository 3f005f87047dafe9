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

Each block's ``forward`` reads like torchvision's (conv -> bn -> relu -> ... -> add ->
relu) and its ``backward`` is the same list in reverse, ending in that sum.  The
``bn -> relu`` pairs and the final ``add -> relu`` go through ``minicnn.nn.fused``: the
same arithmetic in one pass over memory, with the cache kept in the block's own cache.

Blocks here:

* ``BasicBlock`` (two 3x3 convs; ResNet-18/34, CIFAR ResNets),
* ``Bottleneck`` (1x1 reduce, 3x3, 1x1 expand x4; ResNet-50/101/152, ResNeXt via
  ``groups``/``base_width``, SE-ResNet via ``se_reduction``), and ``SEBottleneck``.

Beside them: the shortcuts of the paper's options A and B (``minicnn.nn.shortcuts``),
the pre-activation block (``minicnn.nn.preact``), squeeze-and-excitation
(``minicnn.nn.squeeze_excitation``) and stochastic depth (``minicnn.nn.stochastic_depth``),
whose names are also importable from here.

Shapes: every block maps (N, in_channels, H, W) to (N, out_channels, H', W') with
H' = (H - 1) // stride + 1 (a 3x3 conv with padding 1, or a 1x1 conv, at that stride).
"""
from minicnn.checks import as_generator, check_int
from minicnn.nn import fused
from minicnn.nn.layers import BatchNorm2d, Conv2d, ReLU, check_feature_map
from minicnn.nn.module import Module
from minicnn.nn.shortcuts import make_shortcut
from minicnn.nn.squeeze_excitation import SqueezeExcitation
from minicnn.nn.stochastic_depth import branch_scale, check_survival_prob
# Importable from here too, where they lived before the split into files per idea.
from minicnn.nn.preact import PreActBlock  # noqa: F401
from minicnn.nn.shortcuts import SHORTCUTS, ZeroPadShortcut, projection_shortcut  # noqa: F401
from minicnn.nn.stochastic_depth import Residual, StochasticDepth, linear_decay  # noqa: F401


def _check_stochastic_depth(op, survival_prob, residual):
    survival_prob = check_survival_prob(op, survival_prob)
    if survival_prob != 1.0 and not residual:
        raise ValueError(f"{op}: stochastic depth needs a shortcut (a dropped block is its "
                         f"shortcut), received shortcut='none' and survival_prob={survival_prob!r}")
    return survival_prob


class BasicBlock(Module):
    """ResNet basic block (He et al. 2016, Fig. 2 left): two 3x3 convs and a shortcut.

        conv1 3x3/stride -> bn1 -> relu1 -> conv2 3x3 -> bn2 -> (+ shortcut) -> relu_out

    - x: (N, in_channels, H, W) -> (N, channels, (H-1)//stride+1, (W-1)//stride+1)
    - shortcut: "B" projection (1x1 conv + BN, torchvision's ``downsample``), "A" zero
      padding (parameter-free), or "none" (a plain block, for the degradation experiment)
      -- only used when the shape changes; otherwise the shortcut is the identity.
    - zero_init_residual: start bn2's gamma at 0 so the block starts as the identity
      (Goyal et al. 2017).
    - survival_prob: < 1 turns on stochastic depth (Huang et al. 2016,
      minicnn.nn.stochastic_depth): in training the branch is skipped with probability
      1 - survival_prob (out = relu(shortcut(x))), in evaluation scaled by survival_prob.
      The draws come from ``rng`` (kept as ``self.rng``).

    Parameter names are torchvision's: conv1, bn1, conv2, bn2, downsample.0/1.
    """

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, shortcut="B", zero_init_residual=False,
                 survival_prob=1.0, rng=None):
        super().__init__()
        op = "BasicBlock"
        self.in_channels = check_int(op, "in_channels", in_channels, 1)
        self.channels = self.out_channels = check_int(op, "channels", channels, 1)
        self.stride = check_int(op, "stride", stride, 1)
        self.residual = shortcut != "none"
        self.survival_prob = _check_stochastic_depth(op, survival_prob, self.residual)
        self.rng = rng = as_generator(rng, op)
        self.conv1 = Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(channels)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(channels, channels, 3, padding=1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(channels)
        self.downsample = make_shortcut(op, shortcut, in_channels, channels, stride, rng)
        self.relu_out = ReLU()
        if zero_init_residual:
            self.bn2.weight.data[...] = 0
        self._cache = None

    def forward(self, x):
        check_feature_map("BasicBlock", x, self.in_channels)
        scale = branch_scale(self.survival_prob, self.training, self.rng)  # stochastic depth
        if scale == 0.0:                     # the branch is dropped for this batch
            identity = x if self.downsample is None else self.downsample(x)
            self._cache = (scale, None, None)
            return self.relu_out(identity)
        out = self.conv1(x)
        out, bn1_cache = fused.bn_relu(self.bn1, self.relu1, out)     # relu1(bn1(out))
        out = self.conv2(out)
        out = self.bn2(out)
        if scale != 1.0:
            out = out * scale                # evaluation: the branch's expected value
        identity = x if self.downsample is None else self.downsample(x)
        out, out_cache = fused.add_relu(self.relu_out, out, identity if self.residual else None)
        self._cache = (scale, bn1_cache, out_cache)
        return out

    def backward(self, dout):
        scale, bn1_cache, out_cache = self._get_cache()
        if scale == 0.0:                     # dropped: only the shortcut ran
            d = self.relu_out.backward(dout)
            return d if self.downsample is None else self.downsample.backward(d)
        d = fused.add_relu_backward(self.relu_out, dout, out_cache)   # reaches both summands
        d_branch = d if scale == 1.0 else d * scale
        d_branch = self.bn2.backward(d_branch)
        d_branch = self.conv2.backward(d_branch)
        d_branch = fused.bn_relu_backward(self.bn1, self.relu1, d_branch, bn1_cache)
        dx_branch = self.conv1.backward(d_branch)
        if not self.residual:                # a plain block: the branch is the only path
            return dx_branch
        dx_shortcut = d if self.downsample is None else self.downsample.backward(d)
        # x fed both paths: the gradients add (into dx_branch, which conv1.backward made
        # for us: no fresh array, ResNet-20 training 1-3% faster).
        dx_branch += dx_shortcut
        return dx_branch

    def extra_repr(self):
        s = f"{self.in_channels}, {self.channels}, stride={self.stride}"
        return s + (f", survival_prob={self.survival_prob}" if self.survival_prob != 1.0 else "")


class Bottleneck(Module):
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
    - shortcut, zero_init_residual (bn3's gamma), survival_prob: as in BasicBlock.
    """

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, shortcut="B", groups=1, base_width=64,
                 stride_in_1x1=False, se_reduction=None, zero_init_residual=False,
                 survival_prob=1.0, rng=None):
        super().__init__()
        op = type(self).__name__
        self.in_channels = check_int(op, "in_channels", in_channels, 1)
        self.channels = check_int(op, "channels", channels, 1)
        self.stride = check_int(op, "stride", stride, 1)
        self.groups = check_int(op, "groups", groups, 1)
        base_width = check_int(op, "base_width", base_width, 1)
        self.width = w = int(channels * (base_width / 64.0)) * groups
        if w < 1:
            raise ValueError(f"{op}: expected channels * base_width / 64 >= 1, received "
                             f"channels={channels}, base_width={base_width}")
        self.out_channels = out = channels * self.expansion
        self.residual = shortcut != "none"
        self.survival_prob = _check_stochastic_depth(op, survival_prob, self.residual)
        self.rng = rng = as_generator(rng, op)
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, w, 1, stride=s1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(w)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(w, w, 3, stride=s3, padding=1, groups=groups, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(w)
        self.relu2 = ReLU()
        self.conv3 = Conv2d(w, out, 1, bias=False, rng=rng)
        self.bn3 = BatchNorm2d(out)
        self.se = None if se_reduction is None else SqueezeExcitation(out, se_reduction, rng=rng)
        self.downsample = make_shortcut(op, shortcut, in_channels, out, stride, rng)
        self.relu_out = ReLU()
        if zero_init_residual:
            self.bn3.weight.data[...] = 0    # Goyal et al. (2017): start as the identity
        self._cache = None

    def forward(self, x):
        check_feature_map(type(self).__name__, x, self.in_channels)
        scale = branch_scale(self.survival_prob, self.training, self.rng)  # stochastic depth
        if scale == 0.0:                     # the branch is dropped for this batch
            identity = x if self.downsample is None else self.downsample(x)
            self._cache = (scale, None, None, None)
            return self.relu_out(identity)
        out = self.conv1(x)
        out, bn1_cache = fused.bn_relu(self.bn1, self.relu1, out)     # relu1(bn1(out))
        out = self.conv2(out)
        out, bn2_cache = fused.bn_relu(self.bn2, self.relu2, out)     # relu2(bn2(out))
        out = self.conv3(out)
        out = self.bn3(out)
        if self.se is not None:
            out = self.se(out)               # SE-ResNet: reweight the channels first
        if scale != 1.0:
            out = out * scale                # evaluation: the branch's expected value
        identity = x if self.downsample is None else self.downsample(x)
        out, out_cache = fused.add_relu(self.relu_out, out, identity if self.residual else None)
        self._cache = (scale, bn1_cache, bn2_cache, out_cache)
        return out

    def backward(self, dout):
        scale, bn1_cache, bn2_cache, out_cache = self._get_cache()
        if scale == 0.0:                     # dropped: only the shortcut ran
            d = self.relu_out.backward(dout)
            return d if self.downsample is None else self.downsample.backward(d)
        d = fused.add_relu_backward(self.relu_out, dout, out_cache)   # reaches both summands
        d_branch = d if scale == 1.0 else d * scale
        if self.se is not None:
            d_branch = self.se.backward(d_branch)
        d_branch = self.bn3.backward(d_branch)
        d_branch = self.conv3.backward(d_branch)
        d_branch = fused.bn_relu_backward(self.bn2, self.relu2, d_branch, bn2_cache)
        d_branch = self.conv2.backward(d_branch)
        d_branch = fused.bn_relu_backward(self.bn1, self.relu1, d_branch, bn1_cache)
        dx_branch = self.conv1.backward(d_branch)
        if not self.residual:                # a plain block: the branch is the only path
            return dx_branch
        dx_shortcut = d if self.downsample is None else self.downsample.backward(d)
        # x fed both paths: the gradients add (into dx_branch, which conv1.backward made
        # for us: no fresh array, ResNet-20 training 1-3% faster).
        dx_branch += dx_shortcut
        return dx_branch

    def extra_repr(self):
        s = f"{self.in_channels}, {self.channels}, stride={self.stride}"
        s += f", groups={self.groups}, width={self.width}" if self.groups != 1 else ""
        return s + (f", survival_prob={self.survival_prob}" if self.survival_prob != 1.0 else "")


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
