"""Network in Network (Lin, Chen & Yan, 2013, "Network In Network").

The idea: replace the linear filter of a conv layer by a small multilayer perceptron
slid over the image -- an "mlpconv" layer, which is a conv followed by 1x1 convs (each
1x1 conv is a fully connected layer across channels at every position).  And drop the
fully connected classifier: the last mlpconv outputs one map per class and *global
average pooling* turns each map into a score, with no parameters to overfit.  Both
ideas (1x1 convs, global average pooling) were taken up by GoogLeNet and ResNet.

The CIFAR-10 network of the paper (the layer sizes of its released Caffe model)::

    mlpconv1: conv 5x5 192 pad 2, 1x1 160, 1x1 96   (ReLU after each)   32x32
              max pool 3x3 stride 2, dropout 0.5                         15x15
    mlpconv2: conv 5x5 192 pad 2, 1x1 192, 1x1 192                       15x15
              avg pool 3x3 stride 2, dropout 0.5                          7x7
    mlpconv3: conv 3x3 192 pad 1, 1x1 192, 1x1 num_classes               7x7
    global average pool -> scores (N, num_classes)

Caffe rounds pooled sizes up (16, 8); minicnn's pools round down (15, 7), which does not
change a parameter.  The last 1x1 conv has no ReLU here (its outputs are the class
scores; the Caffe model rectifies them).  966,986 parameters for 10 classes.  Global
pooling makes any input size from 32x32 up work.
"""
from collections import OrderedDict

from minicnn.checks import as_generator
from minicnn.models.registry import register
from minicnn.nn.layers import AvgPool2d, Conv2d, Dropout, GlobalAvgPool2d, MaxPool2d, ReLU
from minicnn.nn.module import Sequential


def mlpconv(in_channels, channels, kernel_size, padding, rng, last_relu=True):
    """A conv kxk then two 1x1 convs, with ReLUs: a tiny MLP applied at every position."""
    c1, c2, c3 = channels
    layers = [Conv2d(in_channels, c1, kernel_size, padding=padding, rng=rng), ReLU(),
              Conv2d(c1, c2, 1, rng=rng), ReLU(),
              Conv2d(c2, c3, 1, rng=rng)]
    if last_relu:
        layers.append(ReLU())
    return layers


class NIN(Sequential):
    """Network in Network: x (N, in_channels, H, W), H, W >= 32 -> scores (N, num_classes).

    Children: ``features`` (mlpconv stacks and pools) and ``avgpool`` (global average pool).
    """

    def __init__(self, num_classes=10, in_channels=3, dropout=0.5, rng=None):
        rng = as_generator(rng, "NIN")
        features = Sequential(
            *mlpconv(in_channels, (192, 160, 96), 5, 2, rng),
            MaxPool2d(3, stride=2), Dropout(dropout, rng=rng),
            *mlpconv(96, (192, 192, 192), 5, 2, rng),
            AvgPool2d(3, stride=2), Dropout(dropout, rng=rng),
            *mlpconv(192, (192, 192, num_classes), 3, 1, rng, last_relu=False))
        super().__init__(OrderedDict([("features", features), ("avgpool", GlobalAvgPool2d())]))
        # The last 1x1 conv outputs one map per class: the classifier reset_classifier replaces.
        self.classifier_names = (f"features.{len(features) - 1}",)


@register("nin", family="Network in Network", dataset="CIFAR-10", input_size=(3, 32, 32), params=966_986,
          title="mlpconv + global average pooling")
def nin(num_classes=10, in_channels=3, dropout=0.5, rng=None):
    """Network in Network for CIFAR-size inputs (mlpconv + global average pooling)."""
    return NIN(num_classes=num_classes, in_channels=in_channels, dropout=dropout, rng=rng)
