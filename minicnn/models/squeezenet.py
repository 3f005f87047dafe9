"""SqueezeNet (Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer, 2016, "SqueezeNet:
AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size").

The idea: AlexNet's accuracy from 1.25M parameters by three design choices -- mostly
1x1 filters, few input channels into the 3x3 filters (the *squeeze* layer of each Fire
module, see minicnn.nn.blocks.Fire), and late downsampling so that the convs work on
large maps.  No fully connected layer: a 1x1 conv gives one map per class and global
average pooling makes the scores.

squeezenet1_0 (torchvision's layout and names, 1,248,424 parameters for 1000 classes)::

    features.0   conv 7x7/2, 96          -> ReLU (features.1)
    features.2   max pool 3x3/2 (ceil_mode, as every pool here)
    features.3-5 Fire(96,16,64,64), Fire(128,16,64,64), Fire(128,32,128,128)
    features.6   max pool 3x3/2
    features.7-10 Fire(256,32,128,128), Fire(256,48,192,192), Fire(384,48,192,192),
                  Fire(384,64,256,256)
    features.11  max pool 3x3/2
    features.12  Fire(512,64,256,256)
    classifier   Dropout(0.5), conv 1x1 512 -> num_classes, ReLU, global average pool

Pools round up (``ceil_mode=True``), as in the authors' Caffe model and torchvision:
224 -> 109 -> 54 -> 27 -> 13, where rounding down would give 53 -> 26 -> 12 and drop the
last row and column of pixels at each pool.  So torchvision's weights load *and* give
its scores.  CIFAR-size inputs get through too (32 -> 13 -> 6 -> 3 -> 1).
"""
from collections import OrderedDict

from minicnn.checks import as_generator
from minicnn.models.registry import register
from minicnn.nn.blocks import Fire
from minicnn.nn.layers import Conv2d, Dropout, GlobalAvgPool2d, MaxPool2d, ReLU
from minicnn.nn.module import Sequential


class SqueezeNet(Sequential):
    """SqueezeNet 1.0: x (N, 3, H, W), H, W >= 21 -> scores (N, num_classes).

    Children: ``features``, ``classifier`` (torchvision's), the latter ending in the
    global average pool that also flattens.
    """

    classifier_names = ("classifier.1",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=1000, dropout=0.5, rng=None):
        rng = as_generator(rng, "SqueezeNet")
        features = Sequential(
            Conv2d(3, 96, 7, stride=2, rng=rng), ReLU(),
            MaxPool2d(3, stride=2, ceil_mode=True),
            Fire(96, 16, 64, 64, rng=rng), Fire(128, 16, 64, 64, rng=rng),
            Fire(128, 32, 128, 128, rng=rng),
            MaxPool2d(3, stride=2, ceil_mode=True),
            Fire(256, 32, 128, 128, rng=rng), Fire(256, 48, 192, 192, rng=rng),
            Fire(384, 48, 192, 192, rng=rng), Fire(384, 64, 256, 256, rng=rng),
            MaxPool2d(3, stride=2, ceil_mode=True),
            Fire(512, 64, 256, 256, rng=rng))
        classifier = Sequential(
            Dropout(dropout, rng=rng), Conv2d(512, num_classes, 1, rng=rng), ReLU(),
            GlobalAvgPool2d())
        super().__init__(OrderedDict([("features", features), ("classifier", classifier)]))


@register("squeezenet1_0", family="SqueezeNet", dataset="ImageNet", input_size=(3, 224, 224),
          params=1_248_424, title="SqueezeNet 1.0, torchvision names")
def squeezenet1_0(num_classes=1000, dropout=0.5, rng=None):
    """SqueezeNet 1.0 (1,248,424 parameters), torchvision names."""
    return SqueezeNet(num_classes=num_classes, dropout=dropout, rng=rng)
