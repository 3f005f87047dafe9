"""ResNeXt-50 (32x4d) (Xie, Girshick, Dollar, Tu & He, 2017, "Aggregated Residual
Transformations for Deep Neural Networks", CVPR).

The idea: cardinality.  Split the bottleneck's 3x3 convolution into C parallel paths
of the same shape and sum them -- which is exactly a grouped convolution with C
groups.  At equal parameters and multiply-adds, more paths (32 of width 4) beat wider
ones: ResNeXt-50 is more accurate than ResNet-50 at the same cost.

It is the ResNet-50 skeleton (Table 1 of the ResNet paper, stages [3, 4, 6, 3]; see
models/resnet.py) with ``Bottleneck(groups=32, base_width=4)``: the 3x3 of a stage with
``channels`` c has width int(c * 4 / 64) * 32 = 2c (128 in the first stage, the paper's
Table 1 "[1x1, 128; 3x3, 128, C=32; 1x1, 256]"), and the output is 4c as in ResNet.

Names are torchvision's (``layer1.0.conv2.weight`` of shape (128, 4, 3, 3)), as is the
stride in the 3x3 conv; 25,028,904 parameters (num_classes=1000), 4.23 G multiply-adds
at 224x224 (paper: 4.2 G).  Accepts 32x32 inputs too (global pooling).
"""
from minicnn.models.registry import register
from minicnn.models.resnet import ResNet
from minicnn.nn.residual import Bottleneck


@register("resnext50_32x4d", family="ResNeXt", dataset="ImageNet", input_size=(3, 224, 224),
          params=25_028_904, title="ResNeXt-50, 32 groups of 4 channels", forwards_to=ResNet)
def resnext50_32x4d(num_classes=1000, rng=None, **kw):
    """ResNeXt-50 32x4d: cardinality 32, 4 channels per group in the first stage."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, groups=32,
                  width_per_group=4, rng=rng, **kw)
