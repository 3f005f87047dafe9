"""ShuffleNet v2's unit (Ma, Zhang, Zheng & Sun 2018, "ShuffleNet V2: Practical Guidelines
for Efficient CNN Architecture Design", Fig. 3c and 3d).

The paper measures speed rather than counting multiply-adds and derives four guidelines:
equal input and output widths of a 1x1 conv, few groups, few branches, few elementwise
ops.  Its unit follows them:

    stride 1 (3c):  channel split x -> (x1, x2)          half the channels each
                    x2 -> 1x1 -> BN -> ReLU -> dw 3x3 -> BN -> 1x1 -> BN -> ReLU
                    concat (x1, branch2(x2)) -> channel shuffle (2 groups)
    stride 2 (3d):  no split: both branches read all of x
                    branch1: dw 3x3/2 -> BN -> 1x1 -> BN -> ReLU
                    branch2: 1x1 -> BN -> ReLU -> dw 3x3/2 -> BN -> 1x1 -> BN -> ReLU
                    concat (branch1(x), branch2(x)) -> channel shuffle (2 groups)

The untouched half x1 is the unit's shortcut (a concat, not an add: no elementwise op),
and the shuffle makes the next unit's split mix the halves.  In backward the stride-1
unit hands x1's gradient straight through; at stride 2, x fed both branches, so their
gradients add.

Parameter names are torchvision's: ``branch1.0`` ... ``branch1.4`` (stride 2 only),
``branch2.0`` ... ``branch2.7``.
"""
import minicnn.functional as F
from minicnn import backend
from minicnn.checks import as_generator, check_int
from minicnn.nn.layers import BatchNorm2d, Conv2d, ReLU, check_feature_map
from minicnn.nn.module import Module, Sequential


def channel_split(x):
    """(N, C, H, W) -> the first and the second C // 2 channels, two (N, C // 2, H, W) views."""
    half = x.shape[1] // 2
    return x[:, :half], x[:, half:]


def channel_concat(a, b):
    """(N, Ca, H, W), (N, Cb, H, W) -> (N, Ca + Cb, H, W); its backward is channel_split."""
    xp = backend.get_array_module(a=a, b=b, op="channel_concat")
    return xp.concatenate([a, b], axis=1)


def _depthwise(channels, stride, rng):
    return Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False, rng=rng)


def _pointwise(in_channels, out_channels, rng):
    return Conv2d(in_channels, out_channels, 1, bias=False, rng=rng)


class ShuffleUnit(Module):
    """ShuffleNet v2's unit (torchvision's ``InvertedResidual`` of shufflenetv2.py).

    - x: (N, in_channels, H, W) -> (N, out_channels, (H-1)//stride+1, (W-1)//stride+1)
    - stride 1: in_channels == out_channels (the split halves must match); stride 2: any
      in_channels, out_channels even (each branch gives half)
    """

    def __init__(self, in_channels, out_channels, stride, rng=None):
        super().__init__()
        op = "ShuffleUnit"
        self.in_channels = check_int(op, "in_channels", in_channels, 1)
        self.out_channels = check_int(op, "out_channels", out_channels, 2)
        self.stride = check_int(op, "stride", stride, 1)
        if stride not in (1, 2):
            raise ValueError(f"{op}: expected stride 1 or 2, received {stride!r}")
        if out_channels % 2 or (stride == 1 and in_channels != out_channels):
            raise ValueError(f"{op}: expected an even out_channels, equal to in_channels at stride 1, "
                             f"received in_channels={in_channels}, out_channels={out_channels}, "
                             f"stride={stride}")
        rng = as_generator(rng, op)
        half = out_channels // 2
        self.branch1 = None if stride == 1 else Sequential(
            _depthwise(in_channels, stride, rng), BatchNorm2d(in_channels),
            _pointwise(in_channels, half, rng), BatchNorm2d(half), ReLU())
        self.branch2 = Sequential(
            _pointwise(in_channels if stride > 1 else half, half, rng), BatchNorm2d(half), ReLU(),
            _depthwise(half, stride, rng), BatchNorm2d(half),
            _pointwise(half, half, rng), BatchNorm2d(half), ReLU())
        self._cache = None

    def forward(self, x):
        check_feature_map("ShuffleUnit", x, self.in_channels)
        if self.stride == 1:
            x1, x2 = channel_split(x)                 # x1 passes untouched: the shortcut
            out = channel_concat(x1, self.branch2(x2))
        else:
            out = channel_concat(self.branch1(x), self.branch2(x))
        out, self._cache = F.channel_shuffle_forward(out, 2)
        return out

    def backward(self, dout):
        d = F.channel_shuffle_backward(dout, self._get_cache())
        d1, d2 = channel_split(d)                     # concat's backward
        if self.stride == 1:
            return channel_concat(d1, self.branch2.backward(d2))
        # x fed both branches: the gradients add.
        return self.branch1.backward(d1) + self.branch2.backward(d2)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"
