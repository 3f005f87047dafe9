"""Small helpers shared by the model families (a private file: the registry skips it)."""
from minicnn.checks import check_positive
from minicnn.functional._validate import check_float_array
from minicnn.nn.layers import Linear


def scaled(channels, width, op="scaled"):
    """``channels * width`` rounded, at least 1: the "teaching width" of a narrow variant.

    ``width`` is a channel multiplier > 0 such as 0.25; ``op`` names the model in errors."""
    return max(1, int(round(channels * check_positive(op, "width", width))))


def check_input(model, x, channels, size):
    """x must be (N, channels, size, size): the one input size a flatten-then-Linear net accepts.

    Raised before any layer runs, so the error names the model and the size it was built for
    rather than a Linear deep inside it.
    """
    check_float_array(model, "x", x, ndim=4)
    if tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(f"{model}: expected input of shape (N, {channels}, {size}, {size}) (the "
                         f"size this model was built for), received {tuple(x.shape)}")


def final_linear(in_features, num_classes, rng=None):
    """The last Linear layer of a zoo model (the classifier): He init scaled by 0.1.

    He init keeps activations at scale through the ReLUs of hidden layers, but the last
    layer feeds softmax: there it makes confident, random initial guesses -- a first loss
    of 3-4 instead of ln(10) = 2.30 on CIFAR-10, and 7 for ResNet-56, whose residual sums
    grow with depth.  10x smaller weights start every model near ln(num_classes), the
    sanity check `minicnn train` prints, and no early steps are spent undoing the guesses
    (Karpathy, "A Recipe for Training Neural Networks").  The numbers drawn from ``rng``
    are those of a plain Linear; the bias is zero.
    """
    layer = Linear(in_features, num_classes, rng=rng)
    layer.weight.data *= layer.weight.data.dtype.type(0.1)
    return layer
