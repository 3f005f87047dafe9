"""FractalNet (Larsson, Maire & Shakhnarovich, 2016, "FractalNet: Ultra-Deep Neural
Networks without Residuals").

The idea: very deep networks train without residual connections if the architecture
contains sub-paths of many depths.  A fractal expansion rule (minicnn.nn.fractal.
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

Drop-path as in the paper: each training mini-batch is, with probability ``global_prob``
(0.5), a *global* one -- one column, drawn uniformly, is the only path through every
block -- and otherwise a *local* one (each join input dropped with ``drop_prob``).  The
draws come from the model's Generator.  In evaluation the whole network runs, or a
single column if ``model.column`` is set (1-based): the paper's extracted plain deep net.
"""
from collections import OrderedDict

from minicnn.checks import as_generator, check_prob
from minicnn.models._common import final_linear
from minicnn.models.registry import register
from minicnn.nn.fractal import FractalBlock
from minicnn.nn.layers import GlobalAvgPool2d, MaxPool2d
from minicnn.nn.module import Sequential


class FractalNet(Sequential):
    """FractalNet: x (N, in_channels, H, W), H, W >= 2**len(channels) -> scores (N, num_classes).

    Children: ``block1``, ``pool1``, ..., ``avgpool``, ``fc``.
    """

    classifier_names = ("fc",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=10, channels=(16, 32, 64, 128, 128), columns=3, drop_prob=0.15,
                 global_prob=0.5, in_channels=3, rng=None):
        rng = as_generator(rng, "FractalNet")
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
        layers["fc"] = final_linear(c, num_classes, rng=rng)
        super().__init__(layers)
        global_prob = check_prob("FractalNet", "global_prob", global_prob)
        self.num_columns = columns
        self.global_prob = global_prob
        self.column = None          # evaluation: None = every column, c = column c alone
        self.rng = rng

    def _blocks(self):
        return [m for m in self.children() if isinstance(m, FractalBlock)]

    def forward(self, x):
        if self.training:
            column = None
            if self.global_prob > 0 and self.rng.random() < self.global_prob:
                column = int(self.rng.integers(self.num_columns)) + 1   # one for all blocks
        else:
            column = self.column
        for block in self._blocks():
            block.column = column
        return super().forward(x)


@register("fractalnet", family="FractalNet", dataset="CIFAR-10", input_size=(3, 32, 32), params=2_113_594,
          title="5 blocks of 3 columns, drop-path")
def fractalnet(num_classes=10, channels=(16, 32, 64, 128, 128), columns=3, drop_prob=0.15,
               global_prob=0.5, in_channels=3, rng=None):
    """A small CIFAR FractalNet: 5 fractal blocks of 3 columns; drop-path 50% global /
    50% local with local drop probability 0.15, as in the paper."""
    return FractalNet(num_classes=num_classes, channels=channels, columns=columns,
                      drop_prob=drop_prob, global_prob=global_prob, in_channels=in_channels,
                      rng=rng)
