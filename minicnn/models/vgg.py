"""VGG (Simonyan & Zisserman, 2014, "Very Deep Convolutional Networks for Large-Scale
Image Recognition").

The idea: depth from one small filter.  Only 3x3 convolutions (stride 1, pad 1) and
2x2 max pools: a stack of three 3x3 convs sees a 7x7 receptive field, like one 7x7
conv, with fewer parameters (3 * 9C^2 vs 49C^2) and three non-linearities instead of
one.  Channels double after each pool (64 -> 128 -> 256 -> 512), so each stage costs
about the same.

The paper's Table 1 (the configurations below; "M" is a 2x2/2 max pool, each number a
3x3 conv with that many filters, followed by ReLU)::

    A (VGG11)  64      M 128      M 256 256         M 512 512         M 512 512         M
    B (VGG13)  64 64   M 128 128  M 256 256         M 512 512         M 512 512         M
    D (VGG16)  64 64   M 128 128  M 256 256 256     M 512 512 512     M 512 512 512     M
    E (VGG19)  64 64   M 128 128  M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M

then FC-4096, FC-4096, FC-1000 (ReLU and dropout 0.5 after the first two).  On a
224x224 input the last pool leaves 7x7x512 = 25,088 features; VGG16 has 138,357,544
parameters (torchvision's count), VGG19 143,667,240.

Names are torchvision's: ``features.N`` (conv, [BatchNorm,] ReLU per conv, MaxPool per M)
and ``classifier.N`` (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear), so
torchvision weights load.  The ``_bn`` forms put a BatchNorm2d after every conv (not in
the paper; torchvision keeps the conv bias there, and so does this file).

Options beyond the paper:

* ``width``: multiplies every channel count and the FC width (``width=0.25``: 16-32-64-
  128-128 channels, FC 1024) -- a "teaching width" a CPU trains on CIFAR-10;
* ``input_size`` (a multiple of 32; default 224) sizes the first FC layer for the final
  ``input_size / 32`` square map; ``cifar=True`` is ``input_size=32``, where the
  classifier reads the final 1x1 map (512 * width features);
* ``hidden`` overrides the FC width.
"""
from collections import OrderedDict

from minicnn.checks import as_generator, check_int
from minicnn.models._common import check_input, final_linear, scaled
from minicnn.models.registry import register
from minicnn.nn.layers import BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from minicnn.nn.module import Sequential

cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(cfg, batch_norm=False, width=1.0, in_channels=3, rng=None):
    """The feature extractor of a configuration: (N, in_channels, H, W) -> (N, C_last, H/32, W/32).

    Each number is a 3x3 conv (pad 1) [+ BatchNorm] + ReLU; each "M" a 2x2/2 max pool.
    """
    rng = as_generator(rng, "make_layers")
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(MaxPool2d(2, stride=2))
            continue
        out = scaled(v, width, "VGG")
        layers.append(Conv2d(in_channels, out, 3, padding=1, rng=rng))
        if batch_norm:
            layers.append(BatchNorm2d(out))
        layers.append(ReLU())
        in_channels = out
    return Sequential(*layers)


class VGG(Sequential):
    """A VGG network: x (N, 3, input_size, input_size) -> scores (N, num_classes).

    Children: ``features`` (make_layers), ``flatten``, ``classifier``.
    """

    classifier_names = ("classifier.6",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, cfg, batch_norm=False, num_classes=1000, width=1.0, input_size=224,
                 cifar=False, hidden=None, dropout=0.5, rng=None):
        rng = as_generator(rng, "VGG")
        if cifar:
            input_size = 32
        input_size = check_int("VGG", "input_size", input_size, 32)
        if input_size % 32:
            raise ValueError(f"VGG: expected input_size a multiple of 32 (five 2x2 pools), "
                             f"received {input_size}")
        side = input_size // 32
        hidden = scaled(4096, width, "VGG") if hidden is None else check_int("VGG", "hidden", hidden, 1)
        last = scaled(512, width, "VGG")
        classifier = Sequential(
            Linear(last * side * side, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
            Linear(hidden, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
            final_linear(hidden, num_classes, rng=rng))
        super().__init__(OrderedDict([
            ("features", make_layers(cfg, batch_norm, width, rng=rng)),
            ("flatten", Flatten()), ("classifier", classifier)]))
        self.input_size = input_size

    def forward(self, x):
        check_input("VGG", x, 3, self.input_size)
        return super().forward(x)


def _factory(name, cfg, batch_norm):
    def build(num_classes=1000, width=1.0, input_size=224, cifar=False, hidden=None, dropout=0.5,
              rng=None):
        return VGG(cfgs[cfg], batch_norm=batch_norm, num_classes=num_classes, width=width,
                   input_size=input_size, cifar=cifar, hidden=hidden, dropout=dropout, rng=rng)
    build.__name__ = name
    build.__doc__ = (f"{name}: VGG configuration {cfg}{' with BatchNorm' if batch_norm else ''} "
                     "(options: width, input_size / cifar, hidden, dropout, rng).")
    return register(name, family="VGG", dataset="ImageNet", input_size=(3, 224, 224),
                    title=f"configuration {cfg}{', BatchNorm' if batch_norm else ''}",
                    params={"vgg11": 132_863_336, "vgg11_bn": 132_868_840, "vgg13": 133_047_848,
                            "vgg13_bn": 133_053_736, "vgg16": 138_357_544, "vgg16_bn": 138_365_992,
                            "vgg19": 143_667_240, "vgg19_bn": 143_678_248}[name])(build)


vgg11 = _factory("vgg11", "A", False)
vgg13 = _factory("vgg13", "B", False)
vgg16 = _factory("vgg16", "D", False)
vgg19 = _factory("vgg19", "E", False)
vgg11_bn = _factory("vgg11_bn", "A", True)
vgg13_bn = _factory("vgg13_bn", "B", True)
vgg16_bn = _factory("vgg16_bn", "D", True)
vgg19_bn = _factory("vgg19_bn", "E", True)
