"""models.takes / kwargs_for / create_for / num_parameters: building a zoo model for a dataset."""
import numpy as np
import pytest

from minicnn import models


def test_takes_reads_the_signature():
    assert models.takes("lenet5", "in_channels") and models.takes("small_cnn", "in_channels")
    assert not models.takes("resnet20", "in_channels")
    # resnet18(num_classes, rng, **kw) passes **kw to ResNet, which reads RGB only: a
    # parameter hidden in **kw is not taken (it cannot be seen from outside).
    assert not models.takes("resnet18", "in_channels") and models.takes("resnet18", "rng")
    with pytest.raises(ValueError, match="expected one of"):
        models.takes("no_such_net", "in_channels")


def test_kwargs_for_fits_the_data():
    assert models.kwargs_for("lenet5", 10, 3) == {"num_classes": 10, "in_channels": 3}
    assert models.kwargs_for("resnet20", 100, 3) == {"num_classes": 100}
    with pytest.raises(ValueError, match=r"'resnet20' reads 3-channel .* cannot read 1-channel"):
        models.kwargs_for("resnet20", 10, 1)
    with pytest.raises(ValueError, match="num_classes"):
        models.kwargs_for("lenet5", 0, 3)
    with pytest.raises(ValueError, match="in_channels"):
        models.kwargs_for("lenet5", 10, 3.0)


def test_a_constructor_type_error_is_not_mistaken_for_a_missing_in_channels(monkeypatch):
    """The CLI used to read any TypeError from a constructor as "takes no in_channels"."""
    from minicnn.models import registry

    def broken(num_classes=10, in_channels=3, rng=None):
        raise TypeError("a bug inside the constructor")

    monkeypatch.setitem(registry._REGISTRY, "broken_net", broken)
    assert models.kwargs_for("broken_net", 10, 1) == {"num_classes": 10, "in_channels": 1}
    with pytest.raises(TypeError, match="a bug inside"):
        models.create_for("broken_net", 10, 1)


def test_create_for_builds_a_model_that_reads_the_data():
    model = models.create_for("lenet5", num_classes=7, in_channels=3, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert model(x).shape == (2, 7)
    gray = models.create_for("small_cnn", 4, in_channels=1, rng=0)
    assert gray(x[:, :1]).shape == (2, 4)


def test_num_parameters_draws_no_weights_and_restores_the_samplers():
    from minicnn.nn import init
    before = init.normal, init.uniform
    assert models.num_parameters("lenet5") == 61_706
    assert models.num_parameters("lenet5", in_channels=3) == models.create(
        "lenet5", in_channels=3, rng=0).num_parameters()
    assert (init.normal, init.uniform) == before
