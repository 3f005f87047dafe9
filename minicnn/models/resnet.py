"""ResNet-18/34/50/101/152 for ImageNet (He, Zhang, Ren & Sun, 2016, "Deep Residual
Learning for Image Recognition", CVPR).

The idea: residual learning.  Each block computes ``relu(F(x) + x)``: its layers learn
only the residual F, and the identity shortcut carries the signal (and the gradient)
past them, so depth stops hurting -- 152 layers train better than 34 (see
minicnn/nn/residual.py for the blocks and their backward passes).

The paper's Table 1, for a 224x224 input (every stage halves the map and doubles the
channels; conv3_1, conv4_1 and conv5_1 downsample with stride 2)::

    stage    output   18-layer        34-layer        50-layer          101-layer         152-layer
    conv1    112x112  7x7, 64, stride 2
    conv2_x  56x56    3x3 max pool, stride 2
                      [3x3, 64 ]x2    [3x3, 64 ]x3    [1x1,64 ;3x3,64 ;1x1,256 ]x3   x3   x3
    conv3_x  28x28    [3x3, 128]x2    [3x3, 128]x4    [1x1,128;3x3,128;1x1,512 ]x4   x4   x8
    conv4_x  14x14    [3x3, 256]x2    [3x3, 256]x6    [1x1,256;3x3,256;1x1,1024]x6   x23  x36
    conv5_x  7x7      [3x3, 512]x2    [3x3, 512]x3    [1x1,512;3x3,512;1x1,2048]x3   x3   x3
             1x1      global average pool, 1000-d fc, softmax
    mult-adds         1.8e9           3.6e9           3.8e9             7.6e9             11.3e9

which is ``TABLE_1`` below: (block type, blocks per stage).  Each stage is a
``Sequential`` of blocks named ``layer1`` ... ``layer4``.

Names and parameter counts are torchvision's, so ``state_dict()`` keys match
(``conv1.weight``, ``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``,
``fc.bias``; minus BatchNorm's ``num_batches_tracked``) and torchvision weights load:

    resnet18 11,689,512   resnet34 21,797,672   resnet50 25,557,032
    resnet101 44,549,160  resnet152 60,192,808           (num_classes=1000)

Shortcuts: identity inside a stage, projection (option B: 1x1 conv + BN, torchvision's
``downsample``) at the first block of a stage whose shape changes.

Where the bottleneck strides: the paper (and its Caffe models, "ResNet v1") put the
stride-2 in the first 1x1 conv of conv3_1/conv4_1/conv5_1; torchvision, and these
models by default, put it in the 3x3 conv ("v1.5", ``stride_in_1x1=False``), which is
a little more accurate and costs more: resnet50 4.09 G multiply-adds at 224x224
instead of the paper's 3.8 G (resnet101 7.80 G, resnet152 11.51 G).  With
``stride_in_1x1=True`` (v1) the counts are 3.86 / 7.57 / 11.28 G, the paper's numbers
within 2%; the parameters are the same either way.  resnet18/34: 1.81 / 3.66 G.
(Multiply-adds of the convolutions and the fc layer, as the paper counts them.)

Every model takes ``num_classes`` (default 1000) and ``rng`` (Generator, seed or None;
one Generator initialises every layer).  Thanks to the global average pool they also
run on CIFAR-size 32x32 inputs (the last stage is then 1x1).
"""
from collections import OrderedDict

from minicnn.checks import as_generator, check_int
from minicnn.models._common import final_linear
from minicnn.models.registry import register
from minicnn.nn import fused
from minicnn.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool2d, MaxPool2d, ReLU
from minicnn.nn.module import Module, Sequential
from minicnn.nn.residual import BasicBlock, Bottleneck
from minicnn.nn.stochastic_depth import linear_decay

# The paper's Table 1: block type and the number of blocks in conv2_x .. conv5_x.
TABLE_1 = OrderedDict([
    ("resnet18", (BasicBlock, [2, 2, 2, 2])),
    ("resnet34", (BasicBlock, [3, 4, 6, 3])),
    ("resnet50", (Bottleneck, [3, 4, 6, 3])),
    ("resnet101", (Bottleneck, [3, 4, 23, 3])),
    ("resnet152", (Bottleneck, [3, 8, 36, 3])),
])

# Channels of the blocks of each stage (a bottleneck outputs 4x as many).
STAGE_CHANNELS = (64, 128, 256, 512)


class ResNet(Module):
    """The ImageNet ResNet skeleton: stem, four stages of residual blocks, pool, fc.

        conv1 7x7/2 (64) -> bn1 -> relu -> maxpool 3x3/2 -> layer1 .. layer4 -> avgpool -> fc

    - x: (N, 3, H, W) -> scores (N, num_classes); H, W >= 32 (224 in the paper:
      112 after conv1, 56 after the pool, then 56 / 28 / 14 / 7 for the four stages)
    - block: BasicBlock or Bottleneck (or a subclass, e.g. SEBottleneck);
      layers: blocks per stage, e.g. [3, 4, 6, 3]
    - groups, width_per_group: the bottleneck's cardinality and width (ResNeXt)
    - block_kw: extra arguments for every block (stride_in_1x1, reduction, ...)
    - zero_init_residual: start the last BN gamma of every block at 0 (off by default,
      as torchvision; Goyal et al. 2017 use it for large-batch training)
    - survival_prob: p_L of stochastic depth (Huang et al. 2016): block l of L survives
      a training step with probability 1 - l/L (1 - p_L); 1.0 (default) = off
    """

    # backward() returns conv1's input gradient untouched, so a training step may skip it
    # (minicnn.nn.input_grad).
    input_layer = "conv1"
    classifier_names = ("fc",)   # the layer reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, block, layers, num_classes=1000, groups=1, width_per_group=64,
                 zero_init_residual=False, survival_prob=1.0, rng=None, **block_kw):
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"ResNet: expected 4 block counts (one per stage), received {layers!r}")
        layers = [check_int("ResNet", f"layers[{i}]", n, 1) for i, n in enumerate(layers)]
        self.num_classes = num_classes = check_int("ResNet", "num_classes", num_classes, 1)
        rng = as_generator(rng, "ResNet")
        self.block_kw = dict(block_kw)
        if block is Bottleneck or issubclass(block, Bottleneck):
            self.block_kw.update(groups=groups, base_width=width_per_group)
        elif groups != 1 or width_per_group != 64 or block_kw:
            raise ValueError("ResNet: groups, width_per_group and other block arguments need a "
                             f"Bottleneck block, received block={block.__name__} with groups={groups}, "
                             f"width_per_group={width_per_group}, {block_kw}")
        self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(64)
        self.relu = ReLU()
        self._cache = None
        self.maxpool = MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        index, total = 0, sum(layers)
        for i, (channels, n) in enumerate(zip(STAGE_CHANNELS, layers)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                index += 1
                p = linear_decay(index, total, survival_prob) if survival_prob != 1.0 else 1.0
                blocks.append(block(in_channels, channels, stride=stride if j == 0 else 1,
                                    shortcut="B", zero_init_residual=zero_init_residual,
                                    survival_prob=p, rng=rng, **self.block_kw))
                in_channels = channels * block.expansion
            setattr(self, f"layer{i + 1}", Sequential(*blocks))
        self.avgpool = GlobalAvgPool2d()
        self.fc = final_linear(in_channels, num_classes, rng=rng)

    def forward(self, x):
        if getattr(x, "ndim", None) != 4 or x.shape[1] != 3:
            raise ValueError(f"ResNet: expected x of shape (N, 3, H, W), received "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        x, self._cache = fused.bn_relu(self.bn1, self.relu, self.conv1(x))   # relu(bn1(conv1(x)))
        x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x))

    def backward(self, dout):
        d = self.avgpool.backward(self.fc.backward(dout))
        d = self.layer1.backward(self.layer2.backward(self.layer3.backward(self.layer4.backward(d))))
        d = fused.bn_relu_backward(self.bn1, self.relu, self.maxpool.backward(d), self._get_cache())
        return self.conv1.backward(d)


def _resnet(name, num_classes, rng, **kw):
    block, layers = TABLE_1[name]
    return ResNet(block, layers, num_classes=num_classes, rng=rng, **kw)


@register("resnet18", family="ResNet", dataset="ImageNet", input_size=(3, 224, 224), params=11_689_512,
          title="basic blocks [2, 2, 2, 2]", forwards_to=ResNet)
def resnet18(num_classes=1000, rng=None, **kw):
    """ResNet-18 (basic blocks [2, 2, 2, 2]): 11,689,512 parameters, 1.8 G mult-adds at 224."""
    return _resnet("resnet18", num_classes, rng, **kw)


@register("resnet34", family="ResNet", dataset="ImageNet", input_size=(3, 224, 224), params=21_797_672,
          title="basic blocks [3, 4, 6, 3]", forwards_to=ResNet)
def resnet34(num_classes=1000, rng=None, **kw):
    """ResNet-34 (basic blocks [3, 4, 6, 3]): 21,797,672 parameters, 3.6 G mult-adds at 224."""
    return _resnet("resnet34", num_classes, rng, **kw)


@register("resnet50", family="ResNet", dataset="ImageNet", input_size=(3, 224, 224), params=25_557_032,
          title="v1.5: stride in the 3x3", forwards_to=ResNet)
def resnet50(num_classes=1000, rng=None, stride_in_1x1=False, **kw):
    """ResNet-50 (bottlenecks [3, 4, 6, 3]): 25,557,032 parameters; 4.09 G mult-adds at 224
    as v1.5 (stride in the 3x3, torchvision, default), 3.86 G as v1 (``stride_in_1x1=True``,
    the paper's 3.8 G)."""
    return _resnet("resnet50", num_classes, rng, stride_in_1x1=stride_in_1x1, **kw)


@register("resnet101", family="ResNet", dataset="ImageNet", input_size=(3, 224, 224), params=44_549_160,
          title="v1.5: stride in the 3x3", forwards_to=ResNet)
def resnet101(num_classes=1000, rng=None, stride_in_1x1=False, **kw):
    """ResNet-101 (bottlenecks [3, 4, 23, 3]): 44,549,160 parameters; 7.80 G mult-adds (v1.5),
    7.57 G (v1; paper 7.6 G)."""
    return _resnet("resnet101", num_classes, rng, stride_in_1x1=stride_in_1x1, **kw)


@register("resnet152", family="ResNet", dataset="ImageNet", input_size=(3, 224, 224), params=60_192_808,
          title="v1.5: stride in the 3x3", forwards_to=ResNet)
def resnet152(num_classes=1000, rng=None, stride_in_1x1=False, **kw):
    """ResNet-152 (bottlenecks [3, 8, 36, 3]): 60,192,808 parameters; 11.51 G mult-adds (v1.5),
    11.28 G (v1; paper 11.3 G)."""
    return _resnet("resnet152", num_classes, rng, stride_in_1x1=stride_in_1x1, **kw)
