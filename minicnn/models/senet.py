"""SE-ResNet-50 (Hu, Shen & Sun, 2018, "Squeeze-and-Excitation Networks", CVPR).

The idea: channel attention.  A squeeze-and-excitation module pools each channel of a
block's output to one number (squeeze), passes the C numbers through a small
bottleneck MLP, C -> C/16 -> C, ending in a sigmoid (excitation), and multiplies each
channel by its gate.  The network learns to emphasise informative channels from
global context, for ~10% more parameters and <1% more multiply-adds (top-5 error on
ImageNet 7.48% -> 6.62% for ResNet-50; the ILSVRC 2017 winner).

It is ResNet-50 (stages [3, 4, 6, 3], models/resnet.py) with ``SEBottleneck``
(minicnn/nn/residual.py): the SE module sits on the branch after bn3, before the
addition.  Reduction r = 16.  Parameters: 28,088,024 (num_classes=1000; the paper's
28.1M), i.e. ResNet-50 + sum over blocks of 2 C^2 / 16 + C / 16 + C.

As in the paper's (Caffe) models, the stride of a downsampling bottleneck is in its
first 1x1 conv (``stride_in_1x1=True``, "v1"): 3.87 G multiply-adds at 224x224 (paper:
3.87 G); ``stride_in_1x1=False`` gives torchvision's v1.5 layout (4.09 G).  Attribute
names follow torchvision's ResNet (``layer1.0.se.fc1.weight``).  Accepts 32x32 inputs.
"""
from minicnn.models.registry import register
from minicnn.models.resnet import ResNet
from minicnn.nn.residual import SEBottleneck


@register("se_resnet50", family="SENet", dataset="ImageNet", input_size=(3, 224, 224), params=28_088_024,
          title="SE-ResNet-50 (v1: stride in the 1x1)", forwards_to=ResNet)
def se_resnet50(num_classes=1000, rng=None, reduction=16, stride_in_1x1=True, **kw):
    """SE-ResNet-50: ResNet-50 with squeeze-and-excitation (r=16) in every bottleneck."""
    return ResNet(SEBottleneck, [3, 4, 6, 3], num_classes=num_classes, rng=rng,
                  reduction=reduction, stride_in_1x1=stride_in_1x1, **kw)
