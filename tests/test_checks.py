"""The shared argument checks (minicnn.checks) and the side-effect-free probe (nn.probe)."""
import numpy as np
import pytest

from minicnn import backend, nn
from minicnn.checks import as_generator, check_int, check_number, check_positive, check_prob
from minicnn.nn.probe import generator_states, untouched


def test_check_int_accepts_ints_and_numpy_ints():
    assert check_int("op", "n", 3, 1) == 3
    assert check_int("op", "n", np.int64(0), 0) == 0
    assert type(check_int("op", "n", np.int32(5))) is int


@pytest.mark.parametrize("bad", [True, 2.0, "3", None, [1]])
def test_check_int_refuses_non_ints_naming_op_and_value(bad):
    with pytest.raises(ValueError, match=r"op: expected n to be an int >= 1, received"):
        check_int("op", "n", bad, 1)


def test_check_int_minimum():
    with pytest.raises(ValueError, match=r"op: expected n >= 1, received 0"):
        check_int("op", "n", 0, 1)


def test_check_number_bounds():
    assert check_number("op", "x", 0, low=0) == 0.0
    with pytest.raises(ValueError, match=r"x > 0"):
        check_number("op", "x", 0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"x <= 1"):
        check_number("op", "x", 1.5, high=1)
    for bad in (True, float("nan"), "1", None):
        with pytest.raises(ValueError, match="op: expected x to be a number"):
            check_number("op", "x", bad)
    assert check_positive("op", "lr", 0.1) == 0.1
    with pytest.raises(ValueError):
        check_positive("op", "lr", -1)


def test_check_prob_ends():
    assert check_prob("Dropout", "p", 0) == 0.0
    assert check_prob("Dropout", "p", 1) == 1.0
    with pytest.raises(ValueError, match=r"p > 0"):
        check_prob("StochasticDepth", "p", 0, allow_zero=False)
    with pytest.raises(ValueError, match=r"p < 1"):
        check_prob("op", "p", 1.0, allow_one=False)


def test_as_generator():
    g = np.random.default_rng(1)
    assert as_generator(g) is g
    assert as_generator(3).random() == np.random.default_rng(3).random()
    assert isinstance(as_generator(None), np.random.Generator)
    for bad in (-1, True, 1.5, "x"):
        with pytest.raises(ValueError, match="loader: expected"):
            as_generator(bad, op="loader")


def test_device_of():
    assert backend.device_of(np.zeros(2)) == "numpy"
    assert backend.device_of([1, 2]) == "numpy"


def _bn_dropout_model():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.Flatten(), nn.Dropout(0.5, rng=np.random.default_rng(0)),
                         nn.Linear(3 * 4 * 4, 2, rng=0))


def test_untouched_restores_modes_buffers_generators_and_caches():
    model = _bn_dropout_model()
    x = np.random.default_rng(0).standard_normal((4, 2, 4, 4)).astype(np.float32)
    model.eval()
    model[1].train()                      # a mixed mode must come back as it was
    out = model(x)
    caches = [m.__dict__.get("_cache") for m in model.modules()]
    bn = model[1]
    mean, var = bn.running_mean.copy(), bn.running_var.copy()
    rng_before = generator_states(model)
    with untouched(model, training=True):
        assert all(m.training for m in model.modules())
        model(x + 1)
        model(x + 2)
        assert not np.array_equal(bn.running_mean, mean)   # it really moved inside
    assert [m.training for m in model.modules()] == [False, False, True, False, False, False, False]
    np.testing.assert_array_equal(bn.running_mean, mean)
    np.testing.assert_array_equal(bn.running_var, var)
    assert generator_states(model) == rng_before
    assert all(a is b for a, b in zip(caches, [m.__dict__.get("_cache") for m in model.modules()]))
    # The caller's forward still backpropagates as if the probe never ran.
    dx = model.backward(np.ones_like(out))
    assert dx.shape == x.shape


def test_untouched_restores_on_error():
    model = _bn_dropout_model()
    model.train()
    with pytest.raises(ValueError):
        with untouched(model, training=False):
            model(np.zeros((1, 5, 4, 4), np.float32))    # wrong channel count
    assert all(m.training for m in model.modules())


def test_untouched_keeps_the_mode_a_frozen_batchnorm_was_asked_for():
    model = _bn_dropout_model().train()
    bn = model[1]
    bn.freeze()
    assert not bn.training                        # frozen: in effect, evaluation mode
    with untouched(model, training=False):
        model(np.ones((2, 2, 4, 4), np.float32))
    bn.unfreeze()
    assert bn.training                            # the mode train() asked for, not the effective one
