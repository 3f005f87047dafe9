"""ZFNet (Zeiler & Fergus, 2013, "Visualizing and Understanding Convolutional Networks").

The idea: look inside the network (deconvnet visualisations of what each layer responds
to) and fix what you see.  The first-layer filters of AlexNet were a mix of
very-high and very-low frequencies and the 11x11/4 stride aliased the second layer, so
ZFNet uses a smaller first layer, 7x7 with stride 2, and a stride-2 CONV2; it won
ILSVRC 2013.

Layers (input 224x224x3)::

    CONV1 96 7x7 stride 2 pad 1     110x110x96  -> ReLU
    MAX POOL 3x3 stride 2 pad 1      55x55x96   -> LRN
    CONV2 256 5x5 stride 2           26x26x256  -> ReLU
    MAX POOL 3x3 stride 2 pad 1      13x13x256  -> LRN
    CONV3 512 3x3 pad 1              13x13x512  -> ReLU
    CONV4 1024 3x3 pad 1             13x13x1024 -> ReLU
    CONV5 512 3x3 pad 1              13x13x512  -> ReLU
    MAX POOL 3x3 stride 2             6x6x512
    FC6 4096, FC7 4096 (ReLU and dropout 0.5 after each), FC8 num_classes

The paper's Fig. 3 model keeps AlexNet's 384-384-256 in CONV3-5; its Table 2 reports the
better 512-1024-512 version, which is the one the CS231n lecture gives and the one built
here.  The paper "contrast-normalises across feature maps"; that is done with the same
local response normalisation as AlexNet (n=5, paper alpha 1e-4 = alpha 5e-4 in our
alpha/n convention, beta 0.75, k 2).  The max pools take pad 1 where the paper's sizes
(55, 13) need a rounded-up output.

Teaching variant: ``width`` scales every channel count and the FC widths; ``cifar=True``
uses CONV1 5x5 stride 1 pad 2 and CONV2 5x5 stride 1 pad 2 for 32x32 inputs
(32 -> pool 16 -> 16 -> pool 8 -> 8 -> pool 3).
"""
from collections import OrderedDict

from minicnn.models._common import check_input, scaled
from minicnn.models.alexnet import classifier, lrn
from minicnn.models.registry import register
from minicnn.checks import as_generator
from minicnn.nn.layers import Conv2d, Flatten, MaxPool2d, ReLU
from minicnn.nn.module import Sequential


class ZFNet(Sequential):
    """ZFNet: x (N, 3, 224, 224) (or (N, 3, 32, 32) with cifar=True) -> scores (N, num_classes).

    Children: ``features``, ``flatten``, ``classifier`` (as AlexNet).
    """

    classifier_names = ("classifier.6",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=1000, width=1.0, cifar=False, dropout=0.5, rng=None):
        rng = as_generator(rng, "ZFNet")
        c1, c2, c3, c4, c5 = (scaled(c, width, "ZFNet") for c in (96, 256, 512, 1024, 512))
        hidden = scaled(4096, width, "ZFNet")
        if cifar:
            conv1 = Conv2d(3, c1, 5, stride=1, padding=2, rng=rng)
            conv2 = Conv2d(c1, c2, 5, stride=1, padding=2, rng=rng)
            input_size, final = 32, 3
        else:
            conv1 = Conv2d(3, c1, 7, stride=2, padding=1, rng=rng)
            conv2 = Conv2d(c1, c2, 5, stride=2, padding=0, rng=rng)
            input_size, final = 224, 6
        features = Sequential(
            conv1, ReLU(), MaxPool2d(3, stride=2, padding=1), lrn(),
            conv2, ReLU(), MaxPool2d(3, stride=2, padding=1), lrn(),
            Conv2d(c2, c3, 3, padding=1, rng=rng), ReLU(),
            Conv2d(c3, c4, 3, padding=1, rng=rng), ReLU(),
            Conv2d(c4, c5, 3, padding=1, rng=rng), ReLU(), MaxPool2d(3, stride=2))
        super().__init__(OrderedDict([
            ("features", features), ("flatten", Flatten()),
            ("classifier", classifier(c5 * final * final, hidden, num_classes, dropout, rng))]))
        self.input_size = input_size

    def forward(self, x):
        check_input("ZFNet", x, 3, self.input_size)
        return super().forward(x)


@register("zfnet", family="ZFNet", dataset="ImageNet", input_size=(3, 224, 224), params=107_627_624,
          title="7x7/2 CONV1, 512-1024-512 in CONV3-5")
def zfnet(num_classes=1000, width=1.0, cifar=False, dropout=0.5, rng=None):
    """ZFNet (7x7/2 CONV1, 512-1024-512 in CONV3-5); ``width=0.25, cifar=True`` for CIFAR."""
    return ZFNet(num_classes=num_classes, width=width, cifar=cifar, dropout=dropout, rng=rng)
