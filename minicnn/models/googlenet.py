"""GoogLeNet (Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich,
2014, "Going Deeper with Convolutions").

The idea: the Inception module (minicnn.nn.blocks.Inception) -- 1x1, 3x3 and 5x5 convs
and a max pool side by side, with 1x1 "reduce" convs in front to keep the cost low --
stacked 9 times into a 22-layer network that is deeper and more accurate than AlexNet
with 12x fewer parameters, and no big fully connected layer (global average pooling).

The paper's Table 1 (224x224 input; Inception columns: #1x1, #3x3 reduce, #3x3,
#5x5 reduce, #5x5, pool proj)::

    conv1   7x7/2, 64, pad 3            112x112x64
    maxpool1 3x3/2, LRN                  56x56x64
    conv2   1x1, 64 (the "3x3 reduce")   56x56x64
    conv3   3x3, 192, pad 1, LRN         56x56x192
    maxpool2 3x3/2                       28x28x192
    inception3a  64  96 128 16  32  32   28x28x256
    inception3b 128 128 192 32  96  64   28x28x480
    maxpool3 3x3/2                       14x14x480
    inception4a 192  96 208 16  48  64   14x14x512   <- aux1 reads this
    inception4b 160 112 224 24  64  64   14x14x512
    inception4c 128 128 256 24  64  64   14x14x512
    inception4d 112 144 288 32  64  64   14x14x528   <- aux2 reads this
    inception4e 256 160 320 32 128 128   14x14x832
    maxpool4 3x3/2                        7x7x832
    inception5a 256 160 320 32 128 128    7x7x832
    inception5b 384 192 384 48 128 128    7x7x1024
    avgpool (global), dropout 40%, linear num_classes

Everything follows the paper: 5x5 convs in the third branch, ReLU after every conv, no
BatchNorm, and the two local response normalisations of its Fig. 3 (after maxpool1 and
after conv3), with the settings of the authors' Caffe model (n=5, alpha=1e-4 in the
alpha/n convention, beta=0.75, k=1).  The 3x3/2 pools round up (``ceil_mode``), as
Caffe's do: 112 -> 56 -> 28 -> 14 -> 7, the table's sizes, with the windows of the
authors' model.  Names follow torchvision's
GoogLeNet where it has the layer (conv1, maxpool1, conv2, conv3, inception3a, ...,
aux1, aux2, fc), but torchvision's convs carry BatchNorm and 3x3 "5x5" branches, so
its weights do not load here: that network is ``googlenet_torchvision``
(models/googlenet_torchvision.py).  Global average pooling lets CIFAR-size inputs through.

Auxiliary classifiers (``aux_logits=True``; off by default): on inception4a and 4d,
avg pool 5x5/3, 1x1 conv 128, FC 1024, dropout 70%, linear num_classes.  In training
``forward`` returns the main scores and leaves the two auxiliary ones in
``model.aux_outputs``; ``backward(dout, aux_douts=(d1, d2))`` adds their gradients (the
paper weights the auxiliary losses by 0.3).  In evaluation the heads are not run.  Their
FC size depends on the input: ``input_size`` (default 224) must be given for other sizes.
(The running of a trunk with heads tapping it is ``AuxiliaryTaps``, shared with
``googlenet_torchvision``.)
"""
from minicnn.checks import as_generator, check_int
from minicnn.functional.pool import pooled_size
from minicnn.models._common import final_linear
from minicnn.models.registry import register
from minicnn.nn.blocks import Inception
from minicnn.nn.layers import (AvgPool2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear,
                               LocalResponseNorm, MaxPool2d, ReLU)
from minicnn.nn.module import Module, Sequential


def _lrn():
    # bvlc_googlenet's LRN: local_size 5, alpha 1e-4, beta 0.75, k 1 (Caffe divides alpha by n).
    return LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class InceptionAux(Sequential):
    """An auxiliary classifier: (N, in_channels, S, S) -> (N, num_classes).

    avgpool 5x5/3 (rounded up, as Caffe's) -> conv 1x1 128 -> ReLU -> FC 1024 -> ReLU ->
    dropout 0.7 -> linear.  ``spatial`` is S (14 for a 224 input); the FC reads
    128 * side ** 2 values, side = ceil((S - 5) / 3) + 1 (4 for S = 14).
    """

    def __init__(self, in_channels, num_classes, spatial=14, rng=None):
        rng = as_generator(rng, "InceptionAux")
        if spatial < 5:
            raise ValueError(f"InceptionAux: expected a map of at least 5x5 (input_size >= 79), "
                             f"received {spatial}x{spatial}")
        side = pooled_size(spatial, 5, 3, 0, ceil_mode=True)
        super().__init__(
            AvgPool2d(5, stride=3, ceil_mode=True), Conv2d(in_channels, 128, 1, rng=rng), ReLU(), Flatten(),
            Linear(128 * side * side, 1024, rng=rng), ReLU(), Dropout(0.7, rng=rng),
            final_linear(1024, num_classes, rng=rng))


class AuxiliaryTaps(Module):
    """A network run as a trunk of named layers, in order, with auxiliary classifiers
    that read the outputs of some of them in training (GoogLeNet's aux1 and aux2).

    Subclasses set ``trunk`` (the layer names in order), ``taps`` ({trunk layer: head
    name}) and ``aux_logits`` (build and run the heads).  In training with heads,
    ``forward`` returns the trunk's scores and leaves the heads' in ``aux_outputs`` (in
    the order of ``taps``); ``backward(dout, aux_douts)`` adds each head's gradient to
    the trunk's at the layer it tapped (fan-out).  In evaluation the heads do not run.
    """

    trunk = ()
    taps = {}

    def forward(self, x):
        run_heads = self.aux_logits and self.training
        aux = {}
        for name in self.trunk:
            x = getattr(self, name)(x)
            if run_heads and name in self.taps:
                aux[name] = getattr(self, self.taps[name])(x)
        self.aux_outputs = tuple(aux[name] for name in self.taps) if run_heads else None
        self._cache = run_heads
        return x

    def backward(self, dout, aux_douts=None):
        """dout: (N, num_classes) for the main scores; aux_douts: None or one gradient (or
        None) per head, in the order of ``taps``.  Returns dx (N, 3, H, W)."""
        ran_heads = self._get_cache()
        op = f"{type(self).__name__}.backward"
        if aux_douts is not None:
            if not ran_heads:
                raise ValueError(f"{op}: expected aux_douts=None, since the auxiliary heads did "
                                 "not run (aux_logits=False or eval mode), received "
                                 f"{type(aux_douts).__name__}")
            if len(aux_douts) != len(self.taps):
                raise ValueError(f"{op}: expected aux_douts as {len(self.taps)} gradients "
                                 f"(one per head: {', '.join(self.taps.values())}), received "
                                 f"{len(aux_douts)} items")
            aux_douts = dict(zip(self.taps, aux_douts))
        for name in reversed(self.trunk):
            if aux_douts is not None and aux_douts.get(name) is not None:
                # The tapped map fanned out to the trunk and to the aux head: add both.
                dout = dout + getattr(self, self.taps[name]).backward(aux_douts[name])
            dout = getattr(self, name).backward(dout)
        return dout


def tapped_size(input_size):
    """Side of the maps inception4a/4d give for a square input (what the heads read):
    conv1 (7x7/2, pad 3), then maxpool1-3 (3x3/2, rounded up)."""
    side = (input_size + 2 * 3 - 7) // 2 + 1
    for _ in range(3):
        side = pooled_size(side, 3, 2, 0, ceil_mode=True)
    return side


class GoogLeNet(AuxiliaryTaps):
    """GoogLeNet: x (N, 3, H, W), H, W >= 32 -> scores (N, num_classes)."""

    trunk = ("conv1", "relu1", "maxpool1", "lrn1", "conv2", "relu2", "conv3", "relu3", "lrn2",
             "maxpool2", "inception3a", "inception3b", "maxpool3", "inception4a", "inception4b",
             "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a", "inception5b",
             "avgpool", "dropout", "fc")
    taps = {"inception4a": "aux1", "inception4d": "aux2"}

    def __init__(self, num_classes=1000, aux_logits=False, input_size=224, dropout=0.4, rng=None):
        super().__init__()
        rng = as_generator(rng, "GoogLeNet")
        self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, rng=rng)
        self.relu1 = ReLU()
        self.maxpool1 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = _lrn()
        self.conv2 = Conv2d(64, 64, 1, rng=rng)
        self.relu2 = ReLU()
        self.conv3 = Conv2d(64, 192, 3, padding=1, rng=rng)
        self.relu3 = ReLU()
        self.lrn2 = _lrn()
        self.maxpool2 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32, rng=rng)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64, rng=rng)
        self.maxpool3 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64, rng=rng)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64, rng=rng)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64, rng=rng)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64, rng=rng)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128, rng=rng)
        self.maxpool4 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128, rng=rng)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128, rng=rng)
        self.avgpool = GlobalAvgPool2d()
        self.dropout = Dropout(dropout, rng=rng)
        self.fc = final_linear(1024, num_classes, rng=rng)
        self.aux_logits = bool(aux_logits)
        self.input_size = check_int("GoogLeNet", "input_size", input_size, 32)
        self.classifier_names = ("fc",)
        if self.aux_logits:
            spatial = tapped_size(self.input_size)
            self.aux1 = InceptionAux(512, num_classes, spatial, rng=rng)
            self.aux2 = InceptionAux(528, num_classes, spatial, rng=rng)
            self.classifier_names = ("fc", "aux1.7", "aux2.7")
        self.aux_outputs = None
        self._cache = None


@register("googlenet", family="GoogLeNet", dataset="ImageNet", input_size=(3, 224, 224), params=6_998_552,
          title="Inception v1 as in the paper (5x5 branches, LRN)")
def googlenet(num_classes=1000, aux_logits=False, input_size=224, dropout=0.4, rng=None):
    """GoogLeNet as in the paper (5x5 branches, LRN); auxiliary heads optional, off by default."""
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits, input_size=input_size,
                     dropout=dropout, rng=rng)
