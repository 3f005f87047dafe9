"""MobileNet v2 (Sandler, Howard, Zhu, Zhmoginov & Chen, 2018, "MobileNetV2: Inverted
Residuals and Linear Bottlenecks"), torchvision's twin.

The network is a stem conv, 17 inverted residual blocks (minicnn.nn.inverted_residual)
and a 1x1 conv to 1280 channels.  The paper's Table 2 (224x224 input; t expansion,
c output channels, n repeats, s stride of the first repeat)::

    input        operator       t     c    n   s
    224^2 x 3    conv2d 3x3     -    32    1   2
    112^2 x 32   bottleneck     1    16    1   1
    112^2 x 16   bottleneck     6    24    2   2
    56^2 x 24    bottleneck     6    32    3   2
    28^2 x 32    bottleneck     6    64    4   2
    14^2 x 64    bottleneck     6    96    3   1
    14^2 x 96    bottleneck     6   160    3   2
    7^2 x 160    bottleneck     6   320    1   1
    7^2 x 320    conv2d 1x1     -  1280    1   1
    7^2 x 1280   avgpool 7x7    -     -    1   -
    1 x 1 x 1280 conv2d 1x1     -     k    -   -     (a Linear here, after dropout 0.2)

3,504,872 parameters with 1000 classes (torchvision's count; the paper's "3.4M").  Names are
torchvision's: ``features.0`` ... ``features.18``, ``classifier.1``; so its weight files load.
"""
from collections import OrderedDict

from minicnn.checks import as_generator
from minicnn.models._common import final_linear
from minicnn.models.registry import register
from minicnn.nn.inverted_residual import InvertedResidual, conv_bn_relu6
from minicnn.nn.layers import Dropout, GlobalAvgPool2d
from minicnn.nn.module import Sequential

# (t, c, n, s) of the paper's Table 2.
CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
       (6, 320, 1, 1)]


class MobileNetV2(Sequential):
    """MobileNet v2: x (N, 3, H, W), H, W >= 32 -> scores (N, num_classes)."""

    classifier_names = ("classifier.1",)   # the layer reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=1000, dropout=0.2, rng=None):
        rng = as_generator(rng, "MobileNetV2")
        layers = [conv_bn_relu6(3, 32, 3, stride=2, rng=rng)]
        c = 32
        for t, out, n, s in CFG:
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t, rng=rng))
                c = out
        layers.append(conv_bn_relu6(c, 1280, 1, rng=rng))
        super().__init__(OrderedDict([
            ("features", Sequential(*layers)), ("avgpool", GlobalAvgPool2d()),
            ("classifier", Sequential(Dropout(dropout, rng=rng), final_linear(1280, num_classes, rng=rng)))]))


@register("mobilenet_v2", family="MobileNet", dataset="ImageNet", input_size=(3, 224, 224), params=3_504_872,
          title="v2, inverted residuals (torchvision's)")
def mobilenet_v2(num_classes=1000, dropout=0.2, rng=None):
    """MobileNet v2 at width 1.0 with torchvision's names; ``dropout`` before the classifier."""
    return MobileNetV2(num_classes=num_classes, dropout=dropout, rng=rng)
