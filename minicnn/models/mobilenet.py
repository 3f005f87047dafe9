"""MobileNet v1 (Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto & Adam, 2017,
"MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications").

The idea: build the whole network from *depthwise-separable* convolutions (a 3x3
depthwise conv filters each channel alone, a 1x1 pointwise conv mixes channels; see
minicnn.nn.blocks.DepthwiseSeparableConv): 8-9x fewer multiply-adds than standard 3x3
convs for a small loss of accuracy.  Two global knobs trade accuracy for cost: the
*width multiplier* alpha thins every layer (``width``), the resolution multiplier is
simply the input size.

The paper's Table 1 (224x224 input)::

    conv 3x3/2, 32 (BN, ReLU)         112x112x32
    dw-sep  32 ->   64, s1            112x112x64
    dw-sep  64 ->  128, s2             56x56x128
    dw-sep 128 ->  128, s1             56x56x128
    dw-sep 128 ->  256, s2             28x28x256
    dw-sep 256 ->  256, s1             28x28x256
    dw-sep 256 ->  512, s2             14x14x512
    5 x dw-sep 512 -> 512, s1          14x14x512
    dw-sep 512 -> 1024, s2              7x7x1024
    dw-sep 1024 -> 1024, s1             7x7x1024  (the table prints s2; the sizes need s1)
    global average pool, FC num_classes

4,231,976 parameters at width 1.0 and 1000 classes (the paper's "4.2 million").  The
convs have no bias (BatchNorm follows each).  Global average pooling lets CIFAR-size
inputs through (32 -> 1x1 at the end).  Names: ``features.conv1``, ``features.bn1``,
``features.relu1``, ``features.dw1`` ... ``features.dw13``, ``avgpool``, ``classifier``.
"""
from collections import OrderedDict

from minicnn.models._common import final_linear, scaled
from minicnn.models.registry import register
from minicnn.checks import as_generator
from minicnn.nn.blocks import DepthwiseSeparableConv
from minicnn.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool2d, ReLU
from minicnn.nn.module import Sequential

# (output channels, stride) of the 13 depthwise-separable layers.
CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


class MobileNetV1(Sequential):
    """MobileNet v1: x (N, 3, H, W), H, W >= 32 -> scores (N, num_classes)."""

    classifier_names = ("classifier",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=1000, width=1.0, rng=None):
        rng = as_generator(rng, "MobileNetV1")
        c = scaled(32, width, "MobileNetV1")
        layers = OrderedDict([
            ("conv1", Conv2d(3, c, 3, stride=2, padding=1, bias=False, rng=rng)),
            ("bn1", BatchNorm2d(c)),
            ("relu1", ReLU()),
        ])
        for i, (out, stride) in enumerate(CFG):
            out = scaled(out, width, "MobileNetV1")
            layers[f"dw{i + 1}"] = DepthwiseSeparableConv(c, out, stride=stride, rng=rng)
            c = out
        super().__init__(OrderedDict([
            ("features", Sequential(layers)), ("avgpool", GlobalAvgPool2d()),
            ("classifier", final_linear(c, num_classes, rng=rng))]))


@register("mobilenet_v1", family="MobileNet", dataset="ImageNet", input_size=(3, 224, 224), params=4_231_976,
          title="v1, width multiplier 1.0")
def mobilenet_v1(num_classes=1000, width=1.0, rng=None):
    """MobileNet v1 with width multiplier ``width`` (alpha in the paper: 1.0, 0.75, 0.5, 0.25)."""
    return MobileNetV1(num_classes=num_classes, width=width, rng=rng)
