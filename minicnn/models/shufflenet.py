"""ShuffleNet v2 1.0x (Ma, Zhang, Zheng & Sun, 2018, "ShuffleNet V2: Practical Guidelines for
Efficient CNN Architecture Design"), torchvision's twin.

The paper's Table 5 (224x224 input, the 1x column)::

    layer       output size   kernel  stride  repeat  output channels
    image       224 x 224                                3
    conv1       112 x 112     3x3     2       1         24
    maxpool      56 x 56      3x3     2
    stage2       28 x 28              2       1        116
                 28 x 28              1       3
    stage3       14 x 14              2       1        232
                 14 x 14              1       7
    stage4        7 x 7               2       1        464
                  7 x 7               1       3
    conv5         7 x 7       1x1     1       1       1024
    global pool   1 x 1       7x7
    fc                                                1000

The stages are ShuffleNet v2 units (minicnn.nn.shuffle.ShuffleUnit): a channel split, one
branch of 1x1 / depthwise 3x3 / 1x1, concat and channel shuffle.  2,278,604 parameters
with 1000 classes (torchvision's count; the paper's "2.3M"), 144.9M multiply-adds (the
paper: 146M).  Names are torchvision's: ``conv1.0``, ``stage2.0.branch1.0`` ..., ``conv5.0``, ``fc``.
"""
from collections import OrderedDict

from minicnn.checks import as_generator
from minicnn.models._common import final_linear
from minicnn.models.registry import register
from minicnn.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool2d, MaxPool2d, ReLU
from minicnn.nn.module import Sequential
from minicnn.nn.shuffle import ShuffleUnit

REPEATS = (4, 8, 4)                              # units of stage2, stage3, stage4
CHANNELS = (24, 116, 232, 464, 1024)             # conv1, the three stages, conv5 (the 1x column)


class ShuffleNetV2(Sequential):
    """ShuffleNet v2: x (N, 3, H, W), H, W >= 32 -> scores (N, num_classes)."""

    classifier_names = ("fc",)   # the layer reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=1000, rng=None):
        rng = as_generator(rng, "ShuffleNetV2")
        c = CHANNELS[0]
        layers = OrderedDict([
            ("conv1", Sequential(Conv2d(3, c, 3, stride=2, padding=1, bias=False, rng=rng),
                                 BatchNorm2d(c), ReLU())),
            ("maxpool", MaxPool2d(3, stride=2, padding=1)),
        ])
        for stage, (repeats, out) in enumerate(zip(REPEATS, CHANNELS[1:4])):
            units = [ShuffleUnit(c, out, 2, rng=rng)]            # the first unit halves the size
            units += [ShuffleUnit(out, out, 1, rng=rng) for _ in range(repeats - 1)]
            layers[f"stage{stage + 2}"] = Sequential(*units)
            c = out
        layers["conv5"] = Sequential(Conv2d(c, CHANNELS[-1], 1, bias=False, rng=rng),
                                     BatchNorm2d(CHANNELS[-1]), ReLU())
        layers["avgpool"] = GlobalAvgPool2d()
        layers["fc"] = final_linear(CHANNELS[-1], num_classes, rng=rng)
        super().__init__(layers)


@register("shufflenet_v2_x1_0", family="ShuffleNet", dataset="ImageNet", input_size=(3, 224, 224),
          params=2_278_604, title="v2 1.0x, channel split and shuffle (torchvision's)")
def shufflenet_v2_x1_0(num_classes=1000, rng=None):
    """ShuffleNet v2 at 1.0x with torchvision's names."""
    return ShuffleNetV2(num_classes=num_classes, rng=rng)
