"""DenseNet (Huang, Liu, van der Maaten & Weinberger, 2017, "Densely Connected
Convolutional Networks").

The idea: connect every layer to every later layer of its block by *concatenation*
(ResNet adds; DenseNet concatenates).  Each layer adds only ``growth_rate`` new maps
(k = 32) and reads all earlier ones, so features are reused instead of re-learnt, the
network stays narrow, and every layer has a short path to the loss.  Blocks are
separated by transitions (BN-ReLU-1x1 conv halving the channels, 2x2 average pool).

densenet121 (DenseNet-BC, k=32, blocks of 6-12-24-16 layers; torchvision's names and its
7,978,856 parameters)::

    features.conv0   conv 7x7/2, 64 (no bias)   112x112   (224 input)
    features.norm0, relu0, pool0 (max 3x3/2 pad 1)  56x56
    features.denseblock1 (6 layers)      64 -> 256 channels  56x56
    features.transition1                256 -> 128            28x28
    features.denseblock2 (12 layers)    128 -> 512
    features.transition2                512 -> 256            14x14
    features.denseblock3 (24 layers)    256 -> 1024
    features.transition3               1024 -> 512             7x7
    features.denseblock4 (16 layers)    512 -> 1024
    features.norm5                      then ReLU, global average pool
    classifier       Linear(1024, num_classes)

Keys such as ``features.denseblock1.denselayer1.norm1.weight`` match torchvision, so its
weights load (its ``num_batches_tracked`` keys are ignored).  Its *published* checkpoints
are older than those names: they say ``...denselayer1.norm.1.weight`` (a module once
named "norm.1"); ``rename_legacy_keys`` maps them, with torchvision's own pattern, and
``load_state_dict`` and ``models.create(..., weights=PATH)`` apply it.  Global average
pooling lets CIFAR-size inputs through (32 -> 16 -> 8 -> 4 -> 2 -> 1).
"""
import re
from collections import OrderedDict

from minicnn.checks import as_generator
from minicnn.models._common import final_linear
from minicnn.models.registry import register
from minicnn.nn.blocks import DenseBlock, Transition
from minicnn.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool2d, MaxPool2d, ReLU
from minicnn.nn.module import Sequential

# torchvision/models/densenet.py::_load_state_dict: "denselayerN.norm.1.weight" -> "norm1.weight".
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def rename_legacy_keys(state_dict):
    """A copy of ``state_dict`` with the legacy DenseNet keys of torchvision's published
    checkpoints (``features.denseblock1.denselayer1.norm.1.weight``) renamed to today's
    (``...denselayer1.norm1.weight``); every other key is kept as it is."""
    renamed = OrderedDict()
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


class DenseNet(Sequential):
    """DenseNet-BC: x (N, 3, H, W), H, W >= 32 -> scores (N, num_classes).

    Children: ``features`` (named as torchvision), ``relu``, ``avgpool`` (global, flattens),
    ``classifier``.
    """

    classifier_names = ("classifier",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                 bn_size=4, drop_rate=0.0, num_classes=1000, rng=None):
        rng = as_generator(rng, "DenseNet")
        layers = OrderedDict([
            ("conv0", Conv2d(3, num_init_features, 7, stride=2, padding=3, bias=False, rng=rng)),
            ("norm0", BatchNorm2d(num_init_features)),
            ("relu0", ReLU()),
            ("pool0", MaxPool2d(3, stride=2, padding=1)),
        ])
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, bn_size=bn_size, growth_rate=growth_rate,
                               drop_rate=drop_rate, rng=rng)
            layers[f"denseblock{i + 1}"] = block
            channels = block.out_channels
            if i != len(block_config) - 1:
                layers[f"transition{i + 1}"] = Transition(channels, channels // 2, rng=rng)
                channels //= 2  # compression 0.5 (the "C" of DenseNet-BC)
        layers["norm5"] = BatchNorm2d(channels)
        super().__init__(OrderedDict([
            ("features", Sequential(layers)), ("relu", ReLU()), ("avgpool", GlobalAvgPool2d()),
            ("classifier", final_linear(channels, num_classes, rng=rng))]))

    # The published checkpoints' legacy keys: models.create(weights=...) renames with this too.
    rename_legacy_keys = staticmethod(rename_legacy_keys)

    def load_state_dict(self, state_dict, strict=True):
        """Module.load_state_dict, also accepting the legacy keys of torchvision's published
        DenseNet checkpoints (see ``rename_legacy_keys``)."""
        if not hasattr(state_dict, "items"):
            return super().load_state_dict(state_dict, strict)   # its error for a non-mapping
        return super().load_state_dict(rename_legacy_keys(state_dict), strict)


@register("densenet121", family="DenseNet", dataset="ImageNet", input_size=(3, 224, 224), params=7_978_856,
          title="DenseNet-121, k=32")
def densenet121(num_classes=1000, drop_rate=0.0, rng=None):
    """DenseNet-121 (k=32, blocks 6-12-24-16; 7,978,856 parameters), torchvision names."""
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, drop_rate=drop_rate, rng=rng)
