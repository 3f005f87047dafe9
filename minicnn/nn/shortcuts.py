"""Residual shortcuts for when the shape changes (He et al. 2016, Sec 3.3).

A block's output has more channels and/or a smaller map (stride 2) than its input, so
``x`` cannot be added as it is.  The paper's two answers:

* option A -- ``ZeroPadShortcut``: parameter-free identity: take every stride-th pixel
  and append zero channels (the CIFAR ResNets of the paper's Sec 4.2);
* option B -- ``projection_shortcut``: a 1x1 convolution with stride + BatchNorm
  (torchvision's ``downsample.0`` / ``downsample.1``; the ImageNet ResNets).

When the shape does not change, both are the plain identity (``downsample = None``).
"""
from minicnn import backend
from minicnn.checks import check_int
from minicnn.nn.layers import BatchNorm2d, Conv2d, check_feature_map
from minicnn.nn.module import Module, Sequential

SHORTCUTS = ("A", "B", "none")


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
        self.in_channels = check_int(op, "in_channels", in_channels, 1)
        self.out_channels = check_int(op, "out_channels", out_channels, 1)
        self.stride = check_int(op, "stride", stride, 1)
        if self.out_channels < self.in_channels:
            raise ValueError(f"ZeroPadShortcut: expected out_channels >= in_channels "
                             f"({self.in_channels}), received {self.out_channels}")
        self._cache = None

    def forward(self, x):
        check_feature_map("ZeroPadShortcut", x, self.in_channels)
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


def make_shortcut(op, kind, in_channels, out_channels, stride, rng):
    """The ``downsample`` module of a block, or None for the plain identity (or no shortcut).

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
