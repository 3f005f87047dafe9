"""Pre-activation ResNet-18 for CIFAR (He, Zhang, Ren & Sun, 2016, "Identity Mappings in
Deep Residual Networks", ECCV).

The idea: move BatchNorm and ReLU *before* each convolution and leave nothing after the
addition.  Then the shortcuts form a clean identity path, ``x_L = x_l + sum_i F(x_i)``,
and the gradient ``dL/dx_l = dL/dx_L (1 + d/dx_l sum_i F)`` reaches every block
directly; the paper trains a 1001-layer CIFAR net this way (4.62% error) where the
original post-activation block degrades.  See ``PreActBlock`` in minicnn/nn/preact.py.

Layout (the common CIFAR "PreActResNet18": ResNet-18's four stages of two basic blocks
with 64-128-256-512 channels, a 3x3 stem for 32x32 inputs and no max pool)::

    conv1 3x3 (64)                            32x32
    layer1  [BN-ReLU-3x3, 64 ; BN-ReLU-3x3, 64 ] x2      32x32
    layer2  [ ... 128 ] x2, first stride 2    16x16
    layer3  [ ... 256 ] x2, first stride 2    8x8
    layer4  [ ... 512 ] x2, first stride 2    4x4
    bn -> relu (the last block's sum still needs normalising, as in the paper)
    global average pool -> fc

Projection shortcuts (1x1 conv, no BN, on the pre-activated input) where the shape
changes.  11,172,170 parameters with num_classes=10.

- x: (N, 3, H, W) (32x32) -> scores (N, num_classes); ``rng``: Generator, seed or None.
"""
from minicnn.checks import as_generator, check_int
from minicnn.models._common import final_linear
from minicnn.models.registry import register
from minicnn.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool2d, ReLU
from minicnn.nn.module import Module, Sequential
from minicnn.nn.preact import PreActBlock


class PreActResNet(Module):
    """conv1 3x3 -> layer1..layer4 of PreActBlocks -> bn -> relu -> avgpool -> fc.

    - layers: blocks per stage, e.g. [2, 2, 2, 2]; channels: per stage (64, 128, 256, 512)
    - stem_channels: conv1's filters (default channels[0]; Wide ResNets use a narrower 16)
    - dropout: probability of the Dropout inside each block (0 = none; Wide ResNets)
    - x: (N, 3, H, W) -> (N, num_classes)
    """

    # backward() returns conv1's input gradient untouched, so a training step may skip it
    # (minicnn.nn.input_grad).
    input_layer = "conv1"
    classifier_names = ("fc",)   # the layer reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, layers, num_classes=10, channels=(64, 128, 256, 512), rng=None, *,
                 stem_channels=None, dropout=0.0):
        super().__init__()
        op = "PreActResNet"
        if len(layers) != len(channels):
            raise ValueError(f"{op}: expected {len(channels)} block counts (one per stage), "
                             f"received {layers!r}")
        layers = [check_int(op, f"layers[{i}]", n, 1) for i, n in enumerate(layers)]
        self.num_classes = num_classes = check_int(op, "num_classes", num_classes, 1)
        rng = as_generator(rng, op)
        in_channels = channels[0] if stem_channels is None else stem_channels
        self.conv1 = Conv2d(3, in_channels, 3, padding=1, bias=False, rng=rng)
        for i, (c, n) in enumerate(zip(channels, layers)):
            blocks = [PreActBlock(in_channels if j == 0 else c, c,
                                  stride=2 if (i > 0 and j == 0) else 1, dropout=dropout, rng=rng)
                      for j in range(n)]
            in_channels = c
            setattr(self, f"layer{i + 1}", Sequential(*blocks))
        self.n_stages = len(channels)
        self.bn = BatchNorm2d(in_channels)
        self.relu = ReLU()
        self.avgpool = GlobalAvgPool2d()
        self.fc = final_linear(in_channels, num_classes, rng=rng)

    def _stages(self):
        return [getattr(self, f"layer{i + 1}") for i in range(self.n_stages)]

    def forward(self, x):
        if getattr(x, "ndim", None) != 4 or x.shape[1] != 3:
            raise ValueError(f"PreActResNet: expected x of shape (N, 3, H, W), received "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        x = self.conv1(x)
        for stage in self._stages():
            x = stage(x)
        return self.fc(self.avgpool(self.relu(self.bn(x))))

    def backward(self, dout):
        d = self.bn.backward(self.relu.backward(self.avgpool.backward(self.fc.backward(dout))))
        for stage in reversed(self._stages()):
            d = stage.backward(d)
        return self.conv1.backward(d)


@register("preact_resnet18", family="ResNet, pre-activation", dataset="CIFAR-10", input_size=(3, 32, 32),
          params=11_172_170, title="pre-activation ResNet-18 for CIFAR")
def preact_resnet18(num_classes=10, rng=None):
    """Pre-activation ResNet-18 for CIFAR (He et al. 2016b): blocks [2, 2, 2, 2],
    11,172,170 parameters (num_classes=10)."""
    return PreActResNet([2, 2, 2, 2], num_classes=num_classes, rng=rng)
