"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012, "ImageNet Classification with Deep
Convolutional Neural Networks").

The idea: a much bigger and deeper convnet, made trainable on ImageNet by ReLU units
(faster than tanh), GPUs, dropout in the fully connected layers and data augmentation
-- it halved the error of the previous ImageNet winners and started the deep-learning era.

This is the variant of the CS231n lecture (one tower, no groups; input 227x227 so that
the 11x11/4 arithmetic comes out whole)::

    layer                         output       parameters
    input                         227x227x3
    CONV1 96 11x11 stride 4       55x55x96     34,944   (= 96 * 11*11*3 + 96)
    MAX POOL1 3x3 stride 2        27x27x96     0
    NORM1 (LRN)                   27x27x96     0
    CONV2 256 5x5 pad 2           27x27x256    614,656
    MAX POOL2 3x3 stride 2        13x13x256    0
    NORM2 (LRN)                   13x13x256    0
    CONV3 384 3x3 pad 1           13x13x384    885,120
    CONV4 384 3x3 pad 1           13x13x384    1,327,488
    CONV5 256 3x3 pad 1           13x13x256    884,992
    MAX POOL3 3x3 stride 2        6x6x256      0
    FC6 4096, ReLU, dropout 0.5                37,752,832
    FC7 4096, ReLU, dropout 0.5                16,781,312
    FC8 1000                                   4,097,000
    total                                      62,378,344

Every conv and FC6/FC7 are followed by ReLU.  The lecture (and Caffe's CaffeNet) pools
before normalising; the paper normalises the ReLU output and then pools.  The paper
splits CONV2, CONV4 and CONV5 into two groups (one per GPU), which would give 60,965,224
parameters; this variant is ungrouped.

LRN mapping: the paper writes ``b = a / (k + alpha * sum a^2) ** beta`` with n=5,
alpha=1e-4, beta=0.75, k=2; minicnn's LocalResponseNorm (Caffe/PyTorch) divides alpha by
n, so the paper's setting is ``LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)``.

State-dict names are ``features.N`` and ``classifier.N`` (classifier = Linear, ReLU,
Dropout, Linear, ReLU, Dropout, Linear: the paper drops the *outputs* of FC6 and FC7, as
Caffe's drop6/drop7 do).

torchvision's AlexNet is another network, so its weights do not fit here: that one is
``alexnet_torchvision`` below -- the "one weird trick" variant (Krizhevsky, 2014):
64-192-384-256-256 channels (CONV1 11x11/4 pad 2), no LRN, an adaptive average pool to
6x6 before the classifier (so any input from 63x63 up runs; at 224x224 the map is
already 6x6), and dropout *before* FC6 and FC7; 61,100,840 parameters.

Teaching variant: ``width`` multiplies every channel count and the FC widths
(``width=0.25``: 24-64-96-96-64 channels, FC 1024), and ``cifar=True`` adapts the first
layer to 32x32 images (CONV1 5x5 stride 1 pad 2: 32x32 -> 32 -> pool 15 -> 15 -> pool 7 ->
pool 3, so FC6 reads 3x3 maps), which a CPU trains on CIFAR-10.
"""
from collections import OrderedDict

from minicnn.models._common import check_input, final_linear, scaled
from minicnn.models.registry import register
from minicnn.checks import as_generator
from minicnn.nn.layers import (AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, LocalResponseNorm,
                               MaxPool2d, ReLU)
from minicnn.nn.module import Sequential

# The paper's n=5, alpha=1e-4, beta=0.75, k=2 in the alpha/n (Caffe/PyTorch) convention.
LRN_PAPER = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)


def lrn():
    """The AlexNet paper's local response normalisation (see the module docstring for alpha)."""
    return LocalResponseNorm(**LRN_PAPER)


def classifier(in_features, hidden, num_classes, dropout, rng):
    """The AlexNet/ZFNet head: FC6, ReLU, Dropout, FC7, ReLU, Dropout, FC8.

    (N, in_features) -> (N, num_classes); dropout on the outputs of FC6 and FC7, as in the paper.
    """
    return Sequential(
        Linear(in_features, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
        Linear(hidden, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
        final_linear(hidden, num_classes, rng=rng))


class AlexNet(Sequential):
    """AlexNet, CS231n lecture variant: x (N, 3, 227, 227) -> scores (N, num_classes).

    With ``cifar=True``: x (N, 3, 32, 32).  Children: ``features``, ``flatten``, ``classifier``.
    """

    classifier_names = ("classifier.6",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=1000, width=1.0, cifar=False, dropout=0.5, rng=None):
        rng = as_generator(rng, "AlexNet")
        c1, c2, c3, c4, c5 = (scaled(c, width, "AlexNet") for c in (96, 256, 384, 384, 256))
        hidden = scaled(4096, width, "AlexNet")
        if cifar:
            conv1, input_size, final = Conv2d(3, c1, 5, stride=1, padding=2, rng=rng), 32, 3
        else:
            conv1, input_size, final = Conv2d(3, c1, 11, stride=4, padding=0, rng=rng), 227, 6
        features = Sequential(
            conv1, ReLU(), MaxPool2d(3, stride=2), lrn(),                            # 0-3
            Conv2d(c1, c2, 5, padding=2, rng=rng), ReLU(), MaxPool2d(3, stride=2), lrn(),  # 4-7
            Conv2d(c2, c3, 3, padding=1, rng=rng), ReLU(),                           # 8-9
            Conv2d(c3, c4, 3, padding=1, rng=rng), ReLU(),                           # 10-11
            Conv2d(c4, c5, 3, padding=1, rng=rng), ReLU(), MaxPool2d(3, stride=2))   # 12-14
        super().__init__(OrderedDict([
            ("features", features), ("flatten", Flatten()),
            ("classifier", classifier(c5 * final * final, hidden, num_classes, dropout, rng))]))
        self.input_size = input_size

    def forward(self, x):
        check_input(type(self).__name__, x, 3, self.input_size)
        return super().forward(x)


@register("alexnet", family="AlexNet", dataset="ImageNet", input_size=(3, 227, 227), params=62_378_344,
          title="lecture variant: one tower, 227x227")
def alexnet(num_classes=1000, width=1.0, cifar=False, dropout=0.5, rng=None):
    """AlexNet (lecture variant, 62,378,344 parameters); ``width=0.25, cifar=True`` for CIFAR."""
    return AlexNet(num_classes=num_classes, width=width, cifar=cifar, dropout=dropout, rng=rng)


class AlexNetTorchvision(Sequential):
    """torchvision's AlexNet: x (N, 3, H, W), H, W >= 63 -> scores (N, num_classes).

    Children (and state-dict keys) as torchvision's: ``features`` (convs at 0, 3, 6, 8,
    10), ``avgpool`` (adaptive, to 6x6), ``flatten``, ``classifier`` (Dropout, FC6,
    ReLU, Dropout, FC7, ReLU, FC8: Linears at 1, 4, 6).
    """

    classifier_names = ("classifier.6",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=1000, dropout=0.5, rng=None):
        rng = as_generator(rng, "AlexNetTorchvision")
        features = Sequential(
            Conv2d(3, 64, 11, stride=4, padding=2, rng=rng), ReLU(), MaxPool2d(3, stride=2),   # 0-2
            Conv2d(64, 192, 5, padding=2, rng=rng), ReLU(), MaxPool2d(3, stride=2),            # 3-5
            Conv2d(192, 384, 3, padding=1, rng=rng), ReLU(),                                   # 6-7
            Conv2d(384, 256, 3, padding=1, rng=rng), ReLU(),                                   # 8-9
            Conv2d(256, 256, 3, padding=1, rng=rng), ReLU(), MaxPool2d(3, stride=2))           # 10-12
        head = Sequential(
            Dropout(dropout, rng=rng), Linear(256 * 6 * 6, 4096, rng=rng), ReLU(),
            Dropout(dropout, rng=rng), Linear(4096, 4096, rng=rng), ReLU(),
            final_linear(4096, num_classes, rng=rng))
        super().__init__(OrderedDict([("features", features), ("avgpool", AdaptiveAvgPool2d(6)),
                                      ("flatten", Flatten()), ("classifier", head)]))


@register("alexnet_torchvision", family="AlexNet", dataset="ImageNet", input_size=(3, 224, 224),
          params=61_100_840, title="torchvision's: 64 CONV1 filters, no LRN, adaptive pool")
def alexnet_torchvision(num_classes=1000, dropout=0.5, rng=None):
    """torchvision's AlexNet (64 filters in CONV1, no LRN; 61,100,840 parameters), its names."""
    return AlexNetTorchvision(num_classes=num_classes, dropout=dropout, rng=rng)
