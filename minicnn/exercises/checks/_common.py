"""Helpers shared by the per-exercise checks (one module per exercise in this package).

One ``Check`` per function (see checker.py).  Cases are small: a gradient check costs two
forward passes per input entry, and a student's naive loops are slow.  Inputs keep away
from kinks and ties (``minicnn.testing.strategies``) except in the cases that test them.

A *diagnosis* computes, on a fixed input, what a classic mistake would return and
compares it with what the student's function returns: a match names the hint.
"""
import numpy as np

from minicnn.exercises.checker import Check, call, close
from minicnn.testing import strategies as mst

seeds = mst.seeds


def rnd(seed, shape, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def shape_text(**arrays):
    return ", ".join(f"{k} {tuple(v.shape) if hasattr(v, 'shape') else v}" for k, v in arrays.items())


def attempt(fn, *args):
    """Run student code for a diagnosis; None if it raises anything."""
    try:
        return call(fn, *args)
    except Exception:  # noqa: BLE001 - a diagnosis only looks for matches
        return None


def batch_hints(got, per_example):
    """Hint ids for a parameter gradient that should be the sum of ``per_example`` over the batch."""
    want = sum(per_example)
    got = np.asarray(got) if got is not None else None
    if got is None:
        return []
    if got.shape == (len(per_example),) + want.shape:
        return ["batch_sum"]
    if close(got, want):
        return []
    if any(close(got, pe) for pe in per_example):
        return ["batch_sum"]
    if close(got, want / len(per_example)):
        return ["batch_mean"]
    return []


CHECKS = []


def check(name, strategy, first, diagnose=None, needs=(), max_examples=10, tol=None, typical=None):
    def deco(body):
        CHECKS.append(Check(name, body, strategy, first, diagnose, needs, max_examples, tol, typical))
        return body
    return deco
