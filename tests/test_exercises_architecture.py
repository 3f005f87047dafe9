"""The pooling and architecture exercises (issue 19): average pooling and padded max
pooling, the lecture's questions (sizes, parameters, memory, operation counts) and the
blocks built from minicnn's layers.  As in test_exercises.py: the correct solution
passes, and each classic mistake -- the solution broken in one place -- fails with its hint."""
import pathlib

import pytest

from minicnn import exercises
from minicnn.exercises import checker, report
from test_exercises import SOLUTION, by_name, mutate, write


AVG_DIVIDE = "dout[:, :, i, j][:, :, None, None] / (size * size)"

# (name, source, function expected to fail, hint id it must give)
MUTANTS = [
    ("max pool padded with zeros",
     mutate(("(pad, pad), (pad, pad)), constant_values=-np.inf)", "(pad, pad), (pad, pad)))")),
     "max_pool_forward", "pool_pad_zero"),
    ("average pool divides by the real pixels only",
     mutate((".mean(axis=(2, 3))", ".sum(axis=(2, 3)) / _real(x.shape, size, stride, pad, i, j)"))
     + '''

def _real(shape, size, stride, pad, i, j):
    h, w = shape[2:]
    rows = min(i * stride + size, h + pad) - max(i * stride, pad)
    cols = min(j * stride + size, w + pad) - max(j * stride, pad)
    return rows * cols
''', "avg_pool_forward", "avg_exclude_pad"),
    ("average pool backward does not divide", mutate((AVG_DIVIDE, "dout[:, :, i, j][:, :, None, None]")),
     "avg_pool_backward", "avg_grad_scale"),
    ("overlapping average windows assigned, not added",
     mutate(("dxp[:, :, i * stride:i * stride + size, j * stride:j * stride + size] += ",
             "dxp[:, :, i * stride:i * stride + size, j * stride:j * stride + size] = ")),
     "avg_pool_backward", "overlap_add"),
]


@pytest.mark.parametrize("label, source, fn, hint", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_each_classic_mistake_fails_with_its_hint(tmp_path, label, source, fn, hint):
    r = by_name(exercises.check_file(write(tmp_path, source), [fn]))[fn]
    assert r.status in (checker.FAILED, checker.ERROR), (label, r)
    assert hint in r.hints, (label, r.hints, r.message)
    assert r.message
    assert report.exit_code([r]) == 1


def test_pooling_solutions_pass(tmp_path):
    results = exercises.check_file(write(tmp_path, SOLUTION), ["maxpool", "avgpool"])
    assert [(r.name, r.status) for r in results] == [
        (n, checker.PASSED) for n in ("max_pool_forward", "max_pool_backward", "avg_pool_forward",
                                      "avg_pool_backward")]


def test_a_max_pool_without_pad_fails_on_padded_cases(tmp_path):
    """A solution of the old, unpadded exercise is not accepted: the checks draw pad > 0."""
    src = mutate(("def max_pool_forward(x, size, stride, pad=0):\n    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), "
                  "(pad, pad)), constant_values=-np.inf)", "def max_pool_forward(x, size, stride, pad=0):"))
    r = by_name(exercises.check_file(write(tmp_path, src), ["max_pool_forward"]))["max_pool_forward"]
    assert r.status == checker.FAILED and "pad=1" in r.message
