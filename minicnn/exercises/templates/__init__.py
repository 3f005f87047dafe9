"""The text of the exercise skeletons, one module per exercise.

Each module holds ``FUNCTIONS`` (the names the checker looks for, in order) and
``SOURCE``: Python source of those functions with the real op's docstring and shapes
and a body that raises NotImplementedError -- the blank the student fills in.  The
skeleton is only ever *written to a file* by ``minicnn exercise new``; no code path
of the package calls these functions.
"""
import importlib

# The layer assignment (``all``), in order: each builds on the ones before it.
ALL = ("linear", "relu", "conv", "maxpool", "avgpool", "batchnorm", "dropout", "lrn", "softmax", "residual")
# Every exercise: the layers, then the architecture lecture's questions and blocks -- a
# second assignment (its own file: the two together would be a very long skeleton).
NAMES = ALL + ("architecture", "blocks")


def load(name):
    """The template module of exercise ``name`` (one of NAMES; 'all' is ALL, the layers)."""
    if name not in NAMES:
        raise ValueError(f"exercise: expected one of {', '.join(NAMES)} or 'all', received {name!r}")
    return importlib.import_module(f"{__name__}.{name}")
