"""small_cnn: the demo network -- three conv blocks and a linear classifier, fast on a laptop CPU.

Not from a paper: the smallest network that shows the modern recipe working on CIFAR-10
in a few minutes on two cores.  Each block is conv 3x3 -> BatchNorm -> ReLU -> max-pool
2x2 (VGG's 3x3 convolutions, Ioffe & Szegedy's BatchNorm, which lets a plain SGD with a
high learning rate converge in a few epochs); the channels double as the resolution
halves, so every block costs about the same.  A global average pool (Lin et al., 2014,
"Network In Network") replaces the large fully connected layers, leaving one small
Linear: few parameters, little overfitting on a 5,000-image sample.

    input            3x32x32
    conv 3x3, 32    32x32x32 -> BN -> ReLU -> max-pool 2x2   32x16x16
    conv 3x3, 64    64x16x16 -> BN -> ReLU -> max-pool 2x2   64x8x8
    conv 3x3, 128  128x8x8   -> BN -> ReLU -> max-pool 2x2  128x4x4
    global average pool                                     128
    fc num_classes

About 95,000 parameters and 10.3 million multiply-adds per 32x32 image at width 1.
``width`` scales every channel count (width=0.25 gives a tiny model for tests).
The convolutions have no bias: the BatchNorm that follows subtracts the mean anyway.
The classifier is initialised 10x smaller than He init, so the untrained loss is ln(10).
"""
from collections import OrderedDict

from minicnn.checks import as_generator
from minicnn.functional._validate import check_float_array
from minicnn.models._common import final_linear, scaled
from minicnn.models.registry import register
from minicnn.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool2d, MaxPool2d, ReLU
from minicnn.nn.module import Sequential


class SmallCNN(Sequential):
    """x (N, in_channels, H, W) -> scores (N, num_classes); H, W >= 8 (any size: the pool is global).

    Children: ``features`` (three conv-BN-ReLU-pool blocks), ``pool`` (global average),
    ``classifier`` (one Linear).
    """

    classifier_names = ("classifier",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=10, in_channels=3, width=1.0, rng=None):
        rng = as_generator(rng, "SmallCNN")
        c1, c2, c3 = (scaled(c, width, "SmallCNN") for c in (32, 64, 128))
        layers = []
        for cin, cout in ((in_channels, c1), (c1, c2), (c2, c3)):
            layers += [Conv2d(cin, cout, 3, padding=1, bias=False, rng=rng), BatchNorm2d(cout),
                       ReLU(), MaxPool2d(2, stride=2)]
        super().__init__(OrderedDict([("features", Sequential(*layers)), ("pool", GlobalAvgPool2d()),
                                      ("classifier", final_linear(c3, num_classes, rng=rng))]))
        self.in_channels = in_channels

    def forward(self, x):
        check_float_array("SmallCNN", "x", x, ndim=4)
        if x.shape[1] != self.in_channels or min(x.shape[2:]) < 8:
            raise ValueError(f"SmallCNN: expected input of shape (N, {self.in_channels}, H, W) with "
                             f"H, W >= 8, received {tuple(x.shape)}")
        return super().forward(x)


@register("small_cnn", family="small CNN", dataset="CIFAR-10", input_size=(3, 32, 32), params=94_762,
          title="the demo: 3 conv-BN-ReLU-pool blocks")
def small_cnn(num_classes=10, in_channels=3, width=1.0, rng=None):
    """The demo CNN for CIFAR-10 (3 conv-BN-ReLU-pool blocks, global pool, fc)."""
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, width=width, rng=rng)
