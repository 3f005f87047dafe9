"""minicnn: convolutional networks from scratch in NumPy and Cython, with hand-written backprop.

    import minicnn.functional as F      # the ops: forward -> (out, cache), backward(dout, cache)
    import minicnn.nn as nn             # modules and blocks built on those ops
    minicnn.models.create("resnet20")   # the architecture zoo
"""
__version__ = "0.1.0"

from minicnn import backend  # noqa: F401  (chooses numpy or cupy; never imports cupy by itself)


def __getattr__(name):
    # Submodules load on first use so that `import minicnn` stays light.
    import importlib
    if name in ("functional", "nn", "models", "data", "optim", "schedules", "train", "gradcheck",
                "testing", "viz", "weights", "evaluation", "runs", "sanity", "runtime",
                "checks", "checkpoint"):
        return importlib.import_module(f"minicnn.{name}")
    if name == "summary":
        # The package itself: it is callable (see the end of summary/__init__.py), so that
        # minicnn.summary(model, shape) works before and after `import minicnn.summary`.
        return importlib.import_module("minicnn.summary")
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
