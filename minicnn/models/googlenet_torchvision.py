"""torchvision's GoogLeNet: the network behind its published Inception v1 weights, layer for
layer, so that those weights load and give its scores (``googlenet`` is the paper's).

What differs from the paper's network (models/googlenet.py)::

    paper (googlenet)                       torchvision (googlenet_torchvision)
    conv -> ReLU                            conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU,
                                            each a ``BasicConv2d`` (keys conv1.conv.weight,
                                            conv1.bn.running_mean, ...)
    LRN after maxpool1 and conv3            no LRN
    5x5 conv in the third branch            3x3 conv (a slip kept for the published weights)
    maxpool4 3x3/2                          maxpool4 2x2/2 (both 14 -> 7, rounded up)
    dropout 0.4 before fc                   dropout 0.2
    aux head: avgpool 5x5/3, conv ReLU,     aux head: adaptive avg pool to 4x4 (any input
      FC 1024, dropout 0.7, linear            size), BasicConv2d 128, fc1 1024, ReLU,
                                              dropout 0.7, fc2
    aux heads off by default                aux heads on by default (``aux_logits=True``),
                                              as torchvision's ``googlenet(weights=None)``

Every max pool rounds up (``ceil_mode=True``), as torchvision's.  In training the aux
heads run and ``forward`` leaves their scores in ``aux_outputs``; ``backward`` takes
their gradients (``aux_douts``), as for ``googlenet`` (``AuxiliaryTaps``).  In
evaluation they do not run; their weights are still part of the state dict, as in
torchvision's files.

``transform_input``: torchvision's pretrained ImageNet weights were converted from a
model that read inputs normalised to [-1, 1]; ``transform_input=True`` maps an input
normalised with the ImageNet mean and std to that range first (channel c:
``x * std_c / 0.5 + (mean_c - 0.5) / 0.5``).  torchvision turns it on when it loads
those weights and leaves it off otherwise (``googlenet(weights=None)``): off by default
here too, so pass ``transform_input=True`` with its published weights.

6,624,904 parameters for 1000 classes (torchvision's count: its published model drops the
aux heads), 13,004,888 with the two aux heads (each 3.19 M, mostly its 2048 x 1024 fc1).
"""
from collections import OrderedDict

import numpy as np

from minicnn import backend
from minicnn.checks import as_generator
from minicnn.functional._validate import check_float_array
from minicnn.models._common import final_linear
from minicnn.models.googlenet import AuxiliaryTaps
from minicnn.models.registry import register
from minicnn.nn.blocks import ParallelConcat
from minicnn.nn.layers import (AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten,
                               GlobalAvgPool2d, Linear, MaxPool2d, ReLU)
from minicnn.nn.module import Module, Sequential

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def basic_conv(in_channels, out_channels, kernel_size, padding=0, stride=1, rng=None):
    """torchvision's BasicConv2d: conv (no bias) -> BatchNorm (eps 0.001) -> ReLU, as
    children ``conv``, ``bn``, ``relu``."""
    return Sequential(OrderedDict([
        ("conv", Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                        bias=False, rng=rng)),
        ("bn", BatchNorm2d(out_channels, eps=0.001)),
        ("relu", ReLU())]))


def inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, rng):
    """torchvision's Inception module: (N, in_channels, H, W) ->
    (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W); its "5x5" branch is a 3x3 conv."""
    return ParallelConcat(
        branch1=basic_conv(in_channels, ch1x1, 1, rng=rng),
        branch2=Sequential(basic_conv(in_channels, ch3x3red, 1, rng=rng),
                           basic_conv(ch3x3red, ch3x3, 3, padding=1, rng=rng)),
        branch3=Sequential(basic_conv(in_channels, ch5x5red, 1, rng=rng),
                           basic_conv(ch5x5red, ch5x5, 3, padding=1, rng=rng)),
        branch4=Sequential(MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                           basic_conv(in_channels, pool_proj, 1, rng=rng)))


def inception_aux(in_channels, num_classes, dropout=0.7, rng=None):
    """torchvision's InceptionAux: (N, in_channels, H, W) -> (N, num_classes) for any H, W
    (an adaptive pool to 4x4 first), children ``pool``, ``conv``, ``flatten``, ``fc1``,
    ``relu``, ``dropout``, ``fc2``."""
    return Sequential(OrderedDict([
        ("pool", AdaptiveAvgPool2d(4)), ("conv", basic_conv(in_channels, 128, 1, rng=rng)),
        ("flatten", Flatten()), ("fc1", Linear(128 * 4 * 4, 1024, rng=rng)), ("relu", ReLU()),
        ("dropout", Dropout(dropout, rng=rng)), ("fc2", final_linear(1024, num_classes, rng=rng))]))


class InputTransform(Module):
    """Per-channel ``x * scale + shift``: (N, C, H, W) -> same shape; dx = dout * scale.

    For torchvision's GoogLeNet: ImageNet-normalised input -> the [-1, 1] range its
    published weights were trained on (see the module docstring)."""

    def __init__(self, scale, shift):
        super().__init__()
        self.scale = np.asarray(scale, dtype=np.float64)
        self.shift = np.asarray(shift, dtype=np.float64)
        self._cache = None

    def _per_channel(self, values, like):
        xp = backend.get_array_module(like)
        return xp.asarray(values.astype(like.dtype)).reshape(1, -1, 1, 1)

    def forward(self, x):
        check_float_array("InputTransform", "x", x, ndim=4)
        if x.shape[1] != len(self.scale):
            raise ValueError(f"InputTransform: expected {len(self.scale)} channels, received "
                             f"input of shape {tuple(x.shape)}")
        self._cache = x.shape
        return x * self._per_channel(self.scale, x) + self._per_channel(self.shift, x)

    def backward(self, dout):
        self._get_cache()
        return dout * self._per_channel(self.scale, dout)


class GoogLeNetTorchvision(AuxiliaryTaps):
    """torchvision's GoogLeNet: x (N, 3, H, W), H, W >= 15 -> scores (N, num_classes)."""

    trunk = ("transform_input", "conv1", "maxpool1", "conv2", "conv3", "maxpool2",
             "inception3a", "inception3b", "maxpool3", "inception4a", "inception4b",
             "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a",
             "inception5b", "avgpool", "dropout", "fc")
    taps = {"inception4a": "aux1", "inception4d": "aux2"}

    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False, dropout=0.2,
                 dropout_aux=0.7, rng=None):
        super().__init__()
        rng = as_generator(rng, "GoogLeNetTorchvision")
        std, mean = np.array(IMAGENET_STD), np.array(IMAGENET_MEAN)
        self.transform_input = InputTransform(std / 0.5, (mean - 0.5) / 0.5)
        if not transform_input:
            self.trunk = self.trunk[1:]
        self.conv1 = basic_conv(3, 64, 7, stride=2, padding=3, rng=rng)
        self.maxpool1 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = basic_conv(64, 64, 1, rng=rng)
        self.conv3 = basic_conv(64, 192, 3, padding=1, rng=rng)
        self.maxpool2 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32, rng)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64, rng)
        self.maxpool3 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64, rng)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64, rng)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64, rng)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64, rng)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128, rng)
        self.maxpool4 = MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128, rng)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128, rng)
        self.avgpool = GlobalAvgPool2d()
        self.dropout = Dropout(dropout, rng=rng)
        self.fc = final_linear(1024, num_classes, rng=rng)
        self.aux_logits = bool(aux_logits)
        self.classifier_names = ("fc",)
        if self.aux_logits:
            self.aux1 = inception_aux(512, num_classes, dropout_aux, rng=rng)
            self.aux2 = inception_aux(528, num_classes, dropout_aux, rng=rng)
            self.classifier_names = ("fc", "aux1.fc2", "aux2.fc2")
        self.aux_outputs = None
        self._cache = None


@register("googlenet_torchvision", family="GoogLeNet", dataset="ImageNet", input_size=(3, 224, 224),
          params=13_004_888, title="torchvision's: BatchNorm, 3x3 branches, aux heads")
def googlenet_torchvision(num_classes=1000, aux_logits=True, transform_input=False, dropout=0.2,
                          dropout_aux=0.7, rng=None):
    """torchvision's GoogLeNet (BatchNorm, 3x3 "5x5" branches, ceil-mode pools; 6,624,904
    parameters, 13,004,888 with its two aux heads), its names."""
    return GoogLeNetTorchvision(num_classes=num_classes, aux_logits=aux_logits,
                                transform_input=transform_input, dropout=dropout,
                                dropout_aux=dropout_aux, rng=rng)
