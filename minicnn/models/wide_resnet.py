"""Wide Residual Networks, WRN-d-k (Zagoruyko & Komodakis, 2016, "Wide Residual
Networks", BMVC), for CIFAR.

The idea: make residual networks wider, not deeper.  Multiplying the channels of the
CIFAR ResNet by k (and using fewer blocks) trains faster on GPUs and is more accurate:
WRN-28-10 (36.5M parameters) beats the 1001-layer pre-activation ResNet on CIFAR-10.
Optional dropout between the two convolutions of a block regularises the wide layers.

Layout, depth d = 6n + 4 (n pre-activation basic blocks per group)::

    conv1   3x3, 16                            32x32
    layer1  [3x3, 16k ; 3x3, 16k] x n          32x32
    layer2  [3x3, 32k ; 3x3, 32k] x n          16x16 (first block stride 2)
    layer3  [3x3, 64k ; 3x3, 64k] x n          8x8   (first block stride 2)
    bn -> relu -> global average pool -> fc

Blocks are ``PreActBlock`` (BN-ReLU-conv, twice; minicnn/nn/preact.py) with a 1x1
projection of the pre-activated input where the width or size changes (including the
first block, 16 -> 16k).  Parameter counts (num_classes=10):

    wide_resnet (WRN-28-10)  36,479,194      wrn16_4 (WRN-16-4)  2,748,890
    (the paper: 36.5M and 2.7M); 5.24 G and 0.39 G multiply-adds per 32x32 image.

Every constructor takes ``num_classes`` (default 10), ``dropout`` (default 0; the paper
uses 0.3 for its best results) and ``rng`` (Generator, seed or None).
- x: (N, 3, H, W) (32x32) -> scores (N, num_classes)
"""
from minicnn.checks import check_int
from minicnn.models.registry import register
from minicnn.models.preact_resnet import PreActResNet


class WideResNet(PreActResNet):
    """WRN-depth-width: conv1 3x3 (16) -> layer1..3 (16k, 32k, 64k) -> bn -> relu -> pool -> fc.

    - depth: 6n + 4 with n >= 1 (16, 22, 28, 40, ...); width: k >= 1
    - dropout: probability of the Dropout inside each block (0 = none)
    - x: (N, 3, H, W) -> (N, num_classes)
    """

    def __init__(self, depth=28, width=10, num_classes=10, dropout=0.0, rng=None):
        op = "WideResNet"
        depth = check_int(op, "depth", depth)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"{op}: expected depth = 6n + 4 with n >= 1 (10, 16, 22, 28, ...), "
                             f"received {depth!r}")
        width = check_int(op, "width (k)", width, 1)
        n = (depth - 4) // 6
        # A pre-activation ResNet with three wide groups; the stem stays at 16 channels.
        super().__init__([n, n, n], num_classes=num_classes,
                         channels=(16 * width, 32 * width, 64 * width), rng=rng,
                         stem_channels=16, dropout=dropout)
        self.depth, self.width = depth, width


@register("wide_resnet", family="Wide ResNet", dataset="CIFAR-10", input_size=(3, 32, 32), params=36_479_194,
          title="WRN-28-10")
def wide_resnet(depth=28, width=10, num_classes=10, dropout=0.0, rng=None):
    """WRN-d-k (Zagoruyko & Komodakis 2016); default WRN-28-10, 36,479,194 parameters."""
    return WideResNet(depth, width, num_classes=num_classes, dropout=dropout, rng=rng)


@register("wrn16_4", family="Wide ResNet", dataset="CIFAR-10", input_size=(3, 32, 32), params=2_748_890,
          title="WRN-16-4")
def wrn16_4(num_classes=10, dropout=0.0, rng=None):
    """WRN-16-4: 2,748,890 parameters (num_classes=10), small enough to train on a CPU."""
    return WideResNet(16, 4, num_classes=num_classes, dropout=dropout, rng=rng)
