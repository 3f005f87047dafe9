"""Small helpers shared by the model families (a private file: the registry skips it)."""
from minicnn.checks import check_positive
from minicnn.functional._validate import check_float_array
# The zoo's classifier layer lives beside reset_classifier, which redraws it; the model
# files import it from here.
from minicnn.nn.classifier import final_linear  # noqa: F401


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
