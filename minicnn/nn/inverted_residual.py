"""MobileNet v2's block: the inverted residual with a linear bottleneck (Sandler, Howard, Zhu,
Zhmoginov & Chen 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks").

A ResNet bottleneck is wide -> narrow -> wide with the shortcut between the wide ends.
MobileNet v2 turns it inside out: narrow -> wide -> narrow, the shortcut between the
*narrow* ends (the "bottlenecks"), and the expensive middle is a cheap depthwise 3x3:

    expand 1x1 (x t) -> BN -> ReLU6 -> depthwise 3x3/stride -> BN -> ReLU6
    -> project 1x1 -> BN                      (no ReLU: the linear bottleneck)
    (+ x, when stride is 1 and the channels stay)

Why no ReLU after the projection: the paper argues (Sec. 3.2) that a ReLU on a
low-dimensional tensor destroys information it cannot get back, whereas in the expanded
space it loses little.  ReLU6 (min(max(0, x), 6)) keeps activations in a range that
low-precision arithmetic on phones represents well.

Parameter names are torchvision's: ``conv.0`` (expand: ``conv.0.0`` conv, ``conv.0.1`` BN),
``conv.1`` (depthwise), ``conv.2`` (project conv), ``conv.3`` (its BN); with expansion 1
there is no expand layer and the indices shift down by one, as in torchvision.
"""
import minicnn.functional as F
from minicnn.checks import as_generator, check_int
from minicnn.nn.layers import BatchNorm2d, Conv2d, check_feature_map
from minicnn.nn.module import Module, Sequential


class ReLU6(Module):
    """min(max(0, x), 6), elementwise; any shape -> the same shape.  (Both kinks get gradient 0.)"""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        out, self._cache = F.relu6_forward(x)
        return out

    def backward(self, dout):
        return F.relu6_backward(dout, self._get_cache())


def conv_bn_relu6(in_channels, out_channels, kernel_size, stride=1, groups=1, rng=None):
    """torchvision's ``Conv2dNormActivation``: conv (no bias, "same" padding) -> BN -> ReLU6,
    named 0, 1, 2.  (N, in, H, W) -> (N, out, (H-1)//stride+1, (W-1)//stride+1)."""
    return Sequential(Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                             padding=(kernel_size - 1) // 2, groups=groups, bias=False, rng=rng),
                      BatchNorm2d(out_channels), ReLU6())


class InvertedResidual(Module):
    """MobileNet v2's inverted residual block (the paper's Table 1 and Fig. 3b).

    - x: (N, in_channels, H, W) -> (N, out_channels, (H-1)//stride+1, (W-1)//stride+1)
    - expand_ratio t: the expanded width is round(in_channels * t); t = 1 skips the expand layer
    - stride 1 or 2 (on the depthwise conv); the shortcut exists only when stride is 1 and
      in_channels == out_channels (otherwise the shapes differ and there is none, as in the paper)
    """

    def __init__(self, in_channels, out_channels, stride, expand_ratio, rng=None):
        super().__init__()
        op = "InvertedResidual"
        self.in_channels = check_int(op, "in_channels", in_channels, 1)
        self.out_channels = check_int(op, "out_channels", out_channels, 1)
        self.stride = check_int(op, "stride", stride, 1)
        if stride not in (1, 2):
            raise ValueError(f"{op}: expected stride 1 or 2, received {stride!r}")
        self.expand_ratio = check_int(op, "expand_ratio", expand_ratio, 1)
        rng = as_generator(rng, op)
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = [conv_bn_relu6(in_channels, hidden, 1, rng=rng)] if expand_ratio != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride=stride, groups=hidden, rng=rng),
                   Conv2d(hidden, out_channels, 1, bias=False, rng=rng),
                   BatchNorm2d(out_channels)]
        self.conv = Sequential(*layers)   # one Sequential for torchvision's names conv.0 ... conv.3

    def _stages(self):
        """(expand or None, depthwise, project, project_bn): the parts of ``self.conv`` by role."""
        parts = list(self.conv)
        return (None if len(parts) == 3 else parts[0]), *parts[-3:]

    def forward(self, x):
        check_feature_map("InvertedResidual", x, self.in_channels)
        expand, depthwise, project, project_bn = self._stages()
        out = x if expand is None else expand(x)      # 1x1 up to t * in_channels, ReLU6
        out = depthwise(out)                          # 3x3 per channel, ReLU6
        out = project_bn(project(out))                # 1x1 down, linear: no ReLU
        return out + x if self.use_res_connect else out

    def backward(self, dout):
        expand, depthwise, project, project_bn = self._stages()
        d = project.backward(project_bn.backward(dout))
        d = depthwise.backward(d)
        dx = d if expand is None else expand.backward(d)
        # x fed both the branch and the shortcut: the gradients add.
        return dx + dout if self.use_res_connect else dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, stride={self.stride}, "
                f"expand_ratio={self.expand_ratio}")
