"""The text of the exercise skeletons, one module per exercise.

Each module holds ``FUNCTIONS`` (the names the checker looks for, in order) and
``SOURCE``: Python source of those functions with the real op's docstring and shapes
and a body that raises NotImplementedError -- the blank the student fills in.  The
skeleton is only ever *written to a file* by ``minicnn exercise new``; no code path
of the package calls these functions.
"""
import importlib

# Order of the exercises in a full assignment: each builds on the ones before it.
NAMES = ("linear", "relu", "conv", "maxpool", "avgpool", "batchnorm", "dropout", "lrn", "softmax", "residual")


def load(name):
    """The template module of exercise ``name`` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"exercise: expected one of {', '.join(NAMES)} or 'all', received {name!r}")
    return importlib.import_module(f"{__name__}.{name}")
