"""minicnn.evaluation: argument checks, normalisation choices, the eval pass leaving the model
as it was, metrics from log-probabilities, ensembles and load_model's errors."""
import math

import numpy as np
import pytest

from minicnn import checkpoint, nn
from minicnn.checks import check_pair
from minicnn.evaluation import (ensemble_predict, evaluate, load_model,
                                metrics_from_log_probs, predict)
from minicnn.nn.probe import generator_states


def net(seed=0, k=3):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=rng), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.Flatten(), nn.Dropout(0.5, rng=rng), nn.Linear(3 * 4 * 4, k, rng=rng))


def images(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 2, 4, 4)).astype(np.uint8), rng.integers(0, 3, size=n)


def test_check_pair_messages():
    x, y = images()
    assert check_pair("here", (x, y))[0] is x
    with pytest.raises(ValueError, match="here: expected an \\(x, y\\) pair of arrays, received int"):
        check_pair("here", 3)
    with pytest.raises(ValueError, match="here: expected integer labels, received dtype float64"):
        check_pair("here", (x, y.astype(np.float64)))
    with pytest.raises(ValueError, match="here: expected at least one image"):
        check_pair("here", (x[:0], y[:0]))


def test_evaluation_leaves_the_model_as_it_was():
    x, y = images()
    model = net()
    model.train()
    model[4].eval()                                    # a mixed state must come back as it was
    model(x.astype(np.float32))                        # a forward whose cache a backward may need
    cache = model[0]._cache
    buffers = {k: v.copy() for k, v in model.state_dict().items()}
    rngs = generator_states(model)
    modes = [m.training for m in model.modules()]
    evaluate(model, x, y, batch_size=4, mean=[100, 100], std=[50, 50])
    predict(model, x, mean=[100, 100], std=[50, 50])
    assert [m.training for m in model.modules()] == modes
    assert model[0]._cache is cache and generator_states(model) == rngs
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in buffers.items())


def test_normalisation_choices():
    x, y = images()
    model = net()
    with pytest.raises(ValueError, match="evaluate: expected both mean and std, or neither"):
        evaluate(model, x, y, mean=[1, 1])
    with pytest.warns(UserWarning, match="predict: the model has no normalisation statistics"):
        own = predict(model, x)
    model.normalization = (x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)))
    assert np.allclose(predict(model, x), own)          # the same statistics, now from the model
    given = predict(model, x, mean=[0, 0], std=[1, 1])
    assert not np.allclose(given, own)


def test_float64_models_get_float64_images():
    x, y = images()
    model = net().to(np.float64)
    probs = predict(model, x.astype(np.float64) / 255)
    assert probs.dtype == np.float64 and np.allclose(probs.sum(1), 1)


def test_metrics_from_log_probs():
    logp = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]))
    m = metrics_from_log_probs(logp, np.array([0, 1]))
    assert m["loss"] == pytest.approx(-(math.log(0.7) + math.log(0.3)) / 2)
    assert m["accuracy"] == 0.5 and m["top5"] == 1.0
    with pytest.raises(ValueError, match=r"expected labels in \[0, 2\], received labels in \[0, 3\]"):
        metrics_from_log_probs(logp, np.array([0, 3]))


def test_ensemble_and_load_model_errors(tmp_path):
    x, _ = images()
    with pytest.raises(ValueError, match="ensemble_predict: expected at least one model"):
        ensemble_predict([], x)
    a, b = net(k=3), net(k=4)
    for m in (a, b):
        m.normalization = ([100.0, 100.0], [50.0, 50.0])
    with pytest.raises(ValueError, match="members disagree on the number of classes \\(3 and 4\\)"):
        ensemble_predict([a, b], x)
    checkpoint.save(tmp_path / "last.npz", a, config={})
    with pytest.raises(checkpoint.CheckpointError, match="does not name its model"):
        load_model(tmp_path)
