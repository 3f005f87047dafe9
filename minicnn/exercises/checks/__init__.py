"""What each exercise function is checked against, and how its classic mistakes are recognised.

One module per exercise; each registers one ``Check`` per function (see checker.py) in
``CHECKS``.  Cases are small: a gradient check costs two forward passes per input entry,
and a student's naive loops are slow.  Inputs keep away from kinks and ties
(``minicnn.testing.strategies``) except in the cases that test them.

A *diagnosis* computes, on a fixed input, what a classic mistake would return and
compares it with what the student's function returns: a match names the hint.
"""
import importlib

from minicnn.exercises import templates
from minicnn.exercises.checks._common import CHECKS

for _name in templates.NAMES:
    importlib.import_module(f"{__name__}.{_name}")

# Report in the order of the template (the order a student works in).
_ORDER = [f for name in templates.NAMES for f in templates.load(name).FUNCTIONS]
CHECKS.sort(key=lambda chk: _ORDER.index(chk.name))

__all__ = ["CHECKS"]
