"""models.takes / options / info / input_shape / kwargs_for / create_for / num_parameters:
what each zoo model is, and building it for a dataset."""
import numpy as np
import pytest

from minicnn import models


def test_takes_reads_the_signature():
    assert models.takes("lenet5", "in_channels") and models.takes("small_cnn", "in_channels")
    assert not models.takes("resnet20", "in_channels")
    # resnet18(num_classes, rng, **kw) passes **kw to ResNet (registered forwards_to=ResNet),
    # which reads RGB only: no in_channels there either.
    assert not models.takes("resnet18", "in_channels") and models.takes("resnet18", "rng")
    with pytest.raises(ValueError, match="expected one of"):
        models.takes("no_such_net", "in_channels")


def test_options_follow_the_keywords_a_constructor_passes_on():
    opts = models.options("resnet50")
    assert opts["num_classes"] == 1000 and opts["stride_in_1x1"] is False   # resnet50's own
    assert opts["survival_prob"] == 1.0 and opts["zero_init_residual"] is False   # ResNet's
    assert "block" not in opts and "layers" not in opts      # no default: resnet50 fills them in
    assert models.options("resnet20")["shortcut"] == "A"     # CifarResNet's
    assert set(models.options("lenet5")) == {"num_classes", "in_channels", "rng"}
    models.check_options("resnet50", {"stride_in_1x1": True, "survival_prob": 0.8})
    with pytest.raises(ValueError, match=r"resnet50 takes no option 'strides'; its options .* "
                                         r"stride_in_1x1=False"):
        models.check_options("resnet50", {"strides": 2})


def test_every_zoo_model_says_what_it_is():
    for name in models.names():
        info = models.info(name)
        assert info.family and info.dataset in ("ImageNet", "CIFAR-10", "MNIST"), name
        c, h, w = info.input_size
        assert (info.dataset == "ImageNet") == (h >= 224), name
        assert models.options(name)["num_classes"] == (1000 if info.dataset == "ImageNet" else 10), name
    assert models.info("wide_resnet").title == "WRN-28-10"


def test_registered_parameter_counts_are_the_models():
    # `minicnn models` prints these without building the models: each must be the truth.
    for name in models.names():
        assert models.parameter_count(name) == models.num_parameters(name), name


def test_input_shape_is_the_designed_one_and_follows_the_options():
    assert models.input_shape("lenet5") == (1, 32, 32)
    assert models.input_shape("alexnet") == (3, 227, 227)       # the lecture's AlexNet
    assert models.input_shape("resnet20") == (3, 32, 32) and models.input_shape("resnet50") == (3, 224, 224)
    assert models.input_shape("lenet5", in_channels=3) == (3, 32, 32)
    assert models.input_shape("alexnet", cifar=True) == (3, 32, 32)
    assert models.input_shape("vgg16", input_size=64) == (3, 64, 64)
    for name in ("lenet5", "alexnet", "squeezenet1_0"):
        model = models.create(name, rng=0)
        x = np.zeros((1,) + models.input_shape(name), dtype=np.float32)
        assert model(x).shape == (1, models.options(name)["num_classes"]), name


def test_register_refuses_a_bad_input_size():
    with pytest.raises(ValueError, match=r"input_size \(C, H, W\)"):
        models.register("nope", input_size=(32, 32))


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
