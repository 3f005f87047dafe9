"""Small helpers shared by the tour scripts (not part of minicnn)."""
import os
import sys

# Run from anywhere: the scripts import minicnn from the repository they live in.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import minicnn  # noqa: E402


def params(model):
    """Number of parameters of a model or module."""
    return sum(int(p.data.size) for p in model.parameters())


def summary(model, shape):
    return minicnn.summary(model, shape)


def human(n):
    """1234567 -> '1.23M' (for mult-adds and activations)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def mib(values, nbytes=4):
    return values * nbytes / 2 ** 20


def rows_of(s, kinds=("Conv2d", "MaxPool2d", "AvgPool2d", "Linear")):
    """The summary rows of the given layer types (the lecture's tables list only these)."""
    return [r for r in s.rows if r.layer.split("(")[0] in kinds]


def hwc(shape):
    """(1, C, H, W) -> '55x55x96'; (1, D) -> '4096'."""
    if shape is None:
        return "-"
    if len(shape) == 4:
        return f"{shape[2]}x{shape[3]}x{shape[1]}"
    return "x".join(str(v) for v in shape[1:])
