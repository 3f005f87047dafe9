"""FractalNet (Larsson, Maire & Shakhnarovich, 2016, "FractalNet: Ultra-Deep Neural
Networks without Residuals").

The idea: very deep networks train without residual connections if the architecture
contains sub-paths of many depths.  A fractal expansion rule (minicnn.nn.blocks.
FractalBlock) builds such a block: columns of 1, 2, 4, ... convs joined by element-wise
means.  Shallow paths carry the gradient early in training, deep ones add capacity,
and *drop-path* (randomly dropping inputs of the joins) keeps any one path from relying
on the others -- the paper's regulariser, which also lets a single column be extracted
as a plain deep net.

The CIFAR network of the paper is B=5 blocks, each followed by a 2x2 max pool (so the
five pools take 32x32 to 1x1), with C=3 or 4 columns and 64-128-256-512-512 channels,
local drop-path 0.15.  This is a small version of it for CPUs:

    block1 FractalBlock(3 -> 16, C columns)   32x32 -> pool1  16x16
    block2 FractalBlock(16 -> 32)                  -> pool2   8x8
    block3 FractalBlock(32 -> 64)                  -> pool3   4x4
    block4 FractalBlock(64 -> 128)                 -> pool4   2x2
    block5 FractalBlock(128 -> 128)                -> pool5   1x1
    global average pool, linear num_classes

``channels`` (one entry per block) and ``columns`` reproduce the paper's sizes:
``fractalnet(channels=(64, 128, 256, 512, 512), columns=4)``.  Global average pooling
instead of the paper's flatten lets larger inputs through too.
"""
from collections import OrderedDict

from minicnn.models.registry import register
from minicnn.nn import init
from minicnn.nn.blocks import FractalBlock
from minicnn.nn.layers import GlobalAvgPool2d, Linear, MaxPool2d
from minicnn.nn.module import Sequential


class FractalNet(Sequential):
    """FractalNet: x (N, in_channels, H, W), H, W >= 2**len(channels) -> scores (N, num_classes).

    Children: ``block1``, ``pool1``, ..., ``avgpool``, ``fc``.
    """

    def __init__(self, num_classes=10, channels=(16, 32, 64, 128, 128), columns=3, drop_prob=0.15,
                 in_channels=3, rng=None):
        rng = init.as_generator(rng)
        if len(channels) < 1:
            raise ValueError(f"FractalNet: expected at least one block in channels, "
                             f"received {channels!r}")
        layers = OrderedDict()
        c = in_channels
        for i, out in enumerate(channels):
            layers[f"block{i + 1}"] = FractalBlock(c, out, columns, drop_prob=drop_prob, rng=rng)
            layers[f"pool{i + 1}"] = MaxPool2d(2, stride=2)
            c = out
        layers["avgpool"] = GlobalAvgPool2d()
        layers["fc"] = Linear(c, num_classes, rng=rng)
        super().__init__(layers)


@register("fractalnet")
def fractalnet(num_classes=10, channels=(16, 32, 64, 128, 128), columns=3, drop_prob=0.15,
               in_channels=3, rng=None):
    """A small CIFAR FractalNet: 5 fractal blocks of 3 columns, local drop-path 0.15."""
    return FractalNet(num_classes=num_classes, channels=channels, columns=columns,
                      drop_prob=drop_prob, in_channels=in_channels, rng=rng)
