"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-Based Learning Applied to
Document Recognition").

The idea: learn the features.  Convolutions share one small filter over the whole image
(few weights, translation equivariance), subsampling builds tolerance to small shifts,
and the whole pipeline -- features and classifier -- is trained end to end by
backpropagation.

The layers (input 32x32; MNIST's 28x28 digits were padded to 32x32 in the paper)::

    input           1x32x32   (in_channels=3 for CIFAR-10)
    C1 conv 5x5, 6     6x28x28   -> ReLU
    S2 max-pool 2x2    6x14x14
    C3 conv 5x5, 16   16x10x10   -> ReLU
    S4 max-pool 2x2   16x5x5
    F5 fc 120  (400 -> 120)      -> ReLU
    F6 fc 84                     -> ReLU
    output fc num_classes (10)

Variant: the common modern one (ReLU and max pooling, C3 connected to all of S2, a plain
linear output).  The 1998 network used scaled tanh units, trainable average
subsampling, a sparse C3 connection table and Euclidean RBF outputs.  61,706 parameters
with one input channel and 10 classes.
"""
from collections import OrderedDict

from minicnn.checks import as_generator
from minicnn.models._common import check_input, final_linear
from minicnn.models.registry import register
from minicnn.nn.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU
from minicnn.nn.module import Sequential


class LeNet5(Sequential):
    """LeNet-5: x (N, in_channels, 32, 32) -> scores (N, num_classes).

    Children (torchvision-style): ``features`` (convs and pools), ``flatten``,
    ``classifier`` (the three fully connected layers).
    """

    classifier_names = ("classifier.4",)   # the layers reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, num_classes=10, in_channels=1, rng=None):
        rng = as_generator(rng, "LeNet5")
        features = Sequential(
            Conv2d(in_channels, 6, 5, rng=rng), ReLU(), MaxPool2d(2, stride=2),
            Conv2d(6, 16, 5, rng=rng), ReLU(), MaxPool2d(2, stride=2))
        classifier = Sequential(
            Linear(16 * 5 * 5, 120, rng=rng), ReLU(),
            Linear(120, 84, rng=rng), ReLU(),
            final_linear(84, num_classes, rng=rng))
        super().__init__(OrderedDict([("features", features), ("flatten", Flatten()),
                                      ("classifier", classifier)]))
        self.in_channels = in_channels

    def forward(self, x):
        check_input("LeNet5", x, self.in_channels, 32)
        return super().forward(x)


@register("lenet5", family="LeNet", dataset="MNIST", input_size=(1, 32, 32), params=61_706,
          title="LeNet-5 (1998): 32x32 grey images")
def lenet5(num_classes=10, in_channels=1, rng=None):
    """LeNet-5 on 32x32 inputs; ``in_channels=3`` for CIFAR-10."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, rng=rng)
