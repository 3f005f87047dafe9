"""The notebooks of ``minicnn exercise notebook``: one spec per notebook, a list ``CELLS``.

Each module here is a notebook's text: markdown, setup and picture cells, and which
template functions go in which exercise cell and which check cell follows them (the
constructors are in ``minicnn/exercises/notebooks.py``).  A new notebook -- e.g. the
architecture exercises once their templates exist -- is a new module with ``CELLS`` and
its name added to ``NAMES``; ``tests/test_notebooks.py`` then runs it with the skeletons
and with a solution, and checks its committed copy in ``notebooks/``.
"""
import importlib

from minicnn.exercises import templates

# In the order of the assignments.  ``architectures`` is built from the architecture and
# blocks exercises (templates/architecture.py, blocks.py), listed once those are there.
NAMES = ("layers", "conv_pool", "batchnorm_dropout") + (
    ("architectures",) if {"architecture", "blocks"} <= set(templates.NAMES) else ())


def load(name):
    """The spec module of notebook ``name`` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"exercise notebook: expected one of {', '.join(NAMES)} or 'all', received {name!r}")
    return importlib.import_module(f"{__name__}.{name}")
