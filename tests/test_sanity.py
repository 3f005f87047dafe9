"""minicnn.sanity: input warnings, normalisation statistics, the initial loss (leaving no trace)
and the overfit test, which switches regularisation off for the run only."""
import math

import numpy as np
import pytest

from minicnn import models, nn, optim
from minicnn.nn.probe import generator_states
from minicnn.sanity import (REGULARISERS, initial_loss, input_warnings, normalization_stats,
                            overfit_mode, overfit_verdict, report_initial_loss, safe_std)
from minicnn.train import fit


def regularisation(model, optimizer):
    """Every value overfit_mode may change, in a comparable form."""
    values = [("weight_decay", optimizer.weight_decay)]
    for what, cls, attr, _ in REGULARISERS:
        values += [(f"{n}.{attr}", getattr(m, attr)) for n, m in model.named_modules()
                   if isinstance(m, cls)]
    return values


def fractal(rng=0):
    return models.create("fractalnet", channels=(4, 4), columns=2, drop_prob=0.2, rng=rng)


# ------------------------------------------------------------------- inputs
def test_input_warnings():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 3, 4, 4)).astype(np.uint8)
    assert input_warnings(x) == []
    assert "inputs are constant" in input_warnings(np.full_like(x, 3))[0]
    one = x.copy()
    one[:, 1] = 9
    assert input_warnings(one) == ["channel(s) [1] of the inputs are constant"]
    raw = x.astype(np.float32)
    assert input_warnings(raw) == []                               # fit normalises them
    assert "unnormalised" in input_warnings(raw, normalized_by_us=False)[0]
    ok = ((raw - raw.mean()) / raw.std()).astype(np.float32)
    assert input_warnings(ok, normalized_by_us=False) == []


def test_normalization_stats_divide_constant_channels_by_one():
    x = np.zeros((4, 2, 3, 3), dtype=np.uint8)
    x[:, 0] = np.arange(4)[:, None, None] * 10
    x[:, 1] = 200
    mean, std = normalization_stats(x)
    assert mean.tolist() == [15.0, 200.0]
    assert std[0] == pytest.approx(np.std(np.arange(4) * 10.0)) and std[1] == 1.0
    assert safe_std(np.array([5.0, 100.0, 1e9]), np.array([0.0, 2.0, 2.0])).tolist() == [1.0, 2.0, 1.0]


# -------------------------------------------------------------- initial loss
def test_initial_loss_leaves_no_trace():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Dropout(0.5, rng=1), nn.Linear(4 * 4 * 4, 5, rng=0))
    model.eval()
    x = np.random.default_rng(0).standard_normal((6, 3, 6, 6))      # float64 in, float32 model
    y = np.arange(6) % 5
    state = {k: v.copy() for k, v in model.state_dict().items()}
    rngs = generator_states(model)
    loss, expected = initial_loss(model, x, y)
    assert expected == pytest.approx(math.log(5)) and math.isfinite(loss)
    assert not model.training and not model[4].training
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in state.items())
    assert generator_states(model) == rngs
    # It ran in training mode: BatchNorm used the batch statistics, dropout was on.
    model.train()
    from minicnn.functional import softmax_cross_entropy
    assert softmax_cross_entropy(model(x.astype(np.float32)), y)[0] == pytest.approx(loss)


def test_report_initial_loss_logs_the_comparison():
    x = np.random.default_rng(0).integers(0, 256, size=(300, 3, 8, 8)).astype(np.uint8)
    y = np.arange(300) % 10
    lines = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 10, rng=0))
    loss, expected = report_initial_loss(model, x, y, normalization_stats(x), lines.append)
    assert expected == pytest.approx(math.log(10))
    assert lines == [f"initial loss {loss:.4f} (an untrained 10-class classifier should be near "
                     f"ln(10) = {math.log(10):.4f})"]
    big = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 10, rng=0))
    big[1].weight.data *= 100                                       # over-confident scores
    report_initial_loss(big, x, y, normalization_stats(x), lines.append)
    assert "far from it: check the initialisation of the last layer" in lines[-1]


# ---------------------------------------------------------------- overfit test
def test_overfit_mode_switches_off_and_restores_everything():
    cases = [(models.create("resnet20", survival_prob=0.5, rng=0), ["weight decay", "stochastic depth"]),
             (fractal(), ["weight decay", "drop-path"]),
             (nn.Sequential(nn.Flatten(), nn.Dropout(0.3, rng=0), nn.Linear(12, 2, rng=0)),
              ["weight decay", "dropout"])]
    for model, expected in cases:
        opt = optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4)
        before = regularisation(model, opt)
        with overfit_mode(model, opt) as off:
            during = regularisation(model, opt)
        assert off == expected
        assert regularisation(model, opt) == before
        for (name, v), (_, w) in zip(during, before):
            assert v == (1.0 if name.endswith("survival_prob") else 0.0), name
        assert during != before


def test_overfit_mode_restores_after_an_exception_and_param_groups():
    model = fractal()

    class GroupOptimizer:                      # an optimizer that keeps settings per group
        weight_decay = 0.0
        param_groups = [{"lr": 0.1, "weight_decay": 5e-4}, {"lr": 0.1, "weight_decay": 0.0}]

    opt = GroupOptimizer()
    with pytest.raises(RuntimeError, match="boom"):
        with overfit_mode(model, opt) as off:
            assert off == ["weight decay", "drop-path"]
            assert opt.param_groups[0]["weight_decay"] == 0.0 and model.global_prob == 0.0
            assert all(b.drop_prob == 0.0 for b in model.modules() if isinstance(b, nn.FractalBlock))
            raise RuntimeError("boom")
    assert opt.param_groups[0]["weight_decay"] == 5e-4 and opt.weight_decay == 0.0
    assert model.global_prob == 0.5
    assert all(b.drop_prob == 0.2 for b in model.modules() if isinstance(b, nn.FractalBlock))


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.RMSProp])
def test_overfit_mode_restores_each_param_group_of_a_real_optimizer_exactly(cls):
    """opt.weight_decay = x sets every group: restoring it after the groups would overwrite
    their own values, so overfit_mode restores the groups alone."""
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.3, rng=0), nn.Linear(12, 4, rng=0),
                          nn.Linear(4, 2, rng=0))
    p = list(model.parameters())
    opt = cls([{"params": p[:2], "weight_decay": 5e-4}, {"params": p[2:3]},
               {"params": p[3:], "weight_decay": 1e-3, "lr": 0.01}], lr=0.1, weight_decay=0.0)
    before = [dict(g) for g in opt.param_groups]
    for raise_inside in (False, True):
        try:
            with overfit_mode(model, opt) as off:
                assert off == ["weight decay", "dropout"]
                assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.0, 0.0]
                assert opt.weight_decay == 0.0
                if raise_inside:
                    raise RuntimeError("boom")
        except RuntimeError:
            pass
        assert opt.param_groups == before
        assert [type(g["weight_decay"]) for g in opt.param_groups] == [float] * 3
    assert opt.weight_decay == 5e-4 and model[1].p == 0.3


@pytest.mark.parametrize("name", ["resnet20", "fractalnet"])
def test_fit_overfit_switches_stochastic_depth_and_drop_path_off_for_the_run(name):
    model = (models.create("resnet20", survival_prob=0.5, rng=0) if name == "resnet20" else fractal())
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = np.random.default_rng(0).integers(0, 256, size=(8, 3, 8, 8)).astype(np.uint8)
    y = np.arange(8) % 2
    before = regularisation(model, opt)
    seen = []

    def watch(info):
        seen.append(regularisation(model, opt))
        if len(seen) == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        fit(model, opt, (x, y), epochs=5, batch_size=4, overfit=4, on_batch=watch, log=None,
            progress=False)
    assert regularisation(model, opt) == before
    for _, v in seen[0]:
        assert v in (0.0, 1.0)
    assert seen[0] != before
    logs = []
    fit(model, opt, (x, y), epochs=1, batch_size=4, overfit=4, log=logs.append, progress=False)
    assert regularisation(model, opt) == before
    what = "stochastic depth" if name == "resnet20" else "drop-path"
    assert any(f"weight decay, {what} switched off" in m for m in logs)


def test_overfit_verdict():
    lines = []
    assert overfit_verdict([{"train_accuracy": 0.5}, {"train_accuracy": 1.0}], 9, 20,
                           lines.append) == "overfit reached 100% train accuracy after 2 epochs"
    assert "did NOT reach 100% train accuracy in 9 epochs" in overfit_verdict(
        [{"train_accuracy": 0.5}], 9, 20, lines.append)
    assert "cannot memorise 20 images has a bug" in lines[-1]
