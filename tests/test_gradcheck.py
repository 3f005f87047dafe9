"""The gradient-checking toolkit itself: it must pass correct code and catch wrong code."""
import numpy as np
import pytest
from hypothesis import given, settings

from minicnn import nn
from minicnn.gradcheck import GradError, check_module, compare, numeric_gradient, rel_error
from minicnn.testing import strategies as mst


def test_numeric_gradient_of_known_functions():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_allclose(numeric_gradient(lambda a: (a ** 3).sum(), x), 3 * x ** 2, rtol=1e-8)
    dout = np.array([[1.0, 2.0], [-1.0, 0.5]])
    np.testing.assert_allclose(numeric_gradient(np.sin, x, dout), np.cos(x) * dout, rtol=1e-8)


def test_numeric_gradient_is_float64_and_leaves_x_alone():
    x = np.array([1.0, 2.0], dtype=np.float32)
    seen = []
    g = numeric_gradient(lambda a: seen.append(a.dtype) or a * a, x, np.ones(2))
    assert g.dtype == np.float64 and set(seen) == {np.dtype(np.float64)}
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_allclose(g, [2.0, 4.0], rtol=1e-8)


def test_rel_error_and_compare_report_where():
    assert rel_error(np.ones(3), np.ones(3)) == 0.0
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 4.2)
    err = compare(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 5.0]]))
    assert isinstance(err, GradError) and err.index == (1, 1)
    assert float(err) == pytest.approx(1 / 9) and err.analytic == 4.0 and err.numeric == 5.0
    assert "(1, 1)" in repr(err)
    with pytest.raises(ValueError, match="shape"):
        rel_error(np.ones(2), np.ones(3))


class Square(nn.Module):
    """y = w * x**2 elementwise; ``bug`` forgets the factor 2 in dx."""

    def __init__(self, n, bug=False):
        super().__init__()
        self.w = nn.Parameter(np.linspace(0.5, 1.5, n))
        self.bug = bug

    def forward(self, x):
        self.x = x
        return self.w.data * x * x

    def backward(self, dout):
        self.w.grad += (dout * self.x * self.x).sum(axis=0)
        return dout * self.w.data * self.x * (1 if self.bug else 2)


def test_check_module_passes_correct_and_catches_wrong():
    x = np.random.default_rng(0).standard_normal((3, 4))
    good = check_module(Square(4), x, rng=0)
    assert set(good) == {"x", "w"} and max(good.values()) < 1e-8
    bad = check_module(Square(4, bug=True), x, rng=0)
    assert bad["x"] > 0.1 and bad["w"] < 1e-8   # the wrong input gradient is found, and only it
    assert len(bad["x"].index) == 2


@settings(max_examples=10)
@given(seed=mst.seeds())
def test_check_module_on_a_small_network(seed):
    # Dropout draws the same mask on every evaluation: check_module restores its Generator.
    # (No conv bias before batch norm: its gradient is exactly 0, pure numeric noise.)
    net = nn.Sequential(nn.Conv2d(2, 3, (3, 2), padding=1, bias=False, rng=seed), nn.BatchNorm2d(3), nn.Sigmoid(),
                        nn.Dropout(0.3, rng=seed), nn.Flatten(), nn.Linear(3 * 5 * 6, 4, rng=seed))
    x = mst.random_array((2, 2, 5, 5), seed)
    report = check_module(net, x, rng=seed, floor=1e-3)  # see test_functional's note on the floor
    assert {"x", "0.weight", "1.weight", "1.bias", "5.weight", "5.bias"} <= set(report)
    # Sigmoid, not ReLU: batch norm centres values on ReLU's kink, where numeric gradients lie.
    assert max(report.values()) < 1e-6, report


def test_check_ops_covers_every_op_and_format_results_flags_the_worst():
    from minicnn.gradcheck import check_ops, format_results
    results = check_ops(rng=0)
    ops = {label for label, _, _ in results}
    assert {"conv2d", "linear", "max_pool2d", "lrn", "batchnorm2d", "dropout",
            "softmax_cross_entropy"} <= ops
    assert max(float(e) for _, _, e in results) < 1e-5
    assert format_results(results).endswith("all gradients agree")
    bad = results + [("my_op", "x", GradError(0.5, (1,), 1.0, 3.0))]
    text = format_results(bad, tol=1e-5).splitlines()
    assert text[1].startswith("my_op") and text[1].endswith("<-- above tolerance")
    assert text[-1].startswith("worst: 5.00e-01 (my_op, d/x)") and text[-1].endswith("FAILED")
