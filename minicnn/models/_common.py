"""Small helpers shared by the model families (a private file: the registry skips it)."""
from minicnn.functional._validate import check_float_array


def scaled(channels, width):
    """``channels * width`` rounded, at least 1: the "teaching width" of a narrow variant."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"expected width > 0 (a channel multiplier such as 0.25), "
                         f"received {width!r}")
    return max(1, int(round(channels * width)))


def check_input(model, x, channels, size):
    """x must be (N, channels, size, size): the one input size a flatten-then-Linear net accepts.

    Raised before any layer runs, so the error names the model and the size it was built for
    rather than a Linear deep inside it.
    """
    check_float_array(model, "x", x, ndim=4)
    if tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(f"{model}: expected input of shape (N, {channels}, {size}, {size}) (the "
                         f"size this model was built for), received {tuple(x.shape)}")
