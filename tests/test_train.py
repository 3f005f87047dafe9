"""fit / evaluate / checkpoints: the loss falls, metrics are right, runs resume bit for bit,
NaN and Ctrl-C leave a good checkpoint behind, and bad checkpoint files are refused."""
import json
import math
import os
import warnings
import zipfile

import numpy as np
import pytest

from minicnn import checkpoint, models, nn, optim
from minicnn.train import (History, TrainingDiverged, confusion_matrix, ensemble_predict, evaluate,
                           evaluate_ensemble, fit, load_model, topk_accuracy)

K = 4  # classes in the toy data


def toy_data(n=96, size=8, seed=0):
    """uint8 images whose class sets the mean colour of a quadrant: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, size=n).astype(np.int64)
    x = rng.normal(110, 30, size=(n, 3, size, size))
    h = size // 2
    for c in range(K):
        r, q = divmod(c, 2)
        x[y == c, c % 3, r * h:(r + 1) * h, q * h:(q + 1) * h] += 90
    return np.clip(x, 0, 255).astype(np.uint8), y


def tiny_net(seed=0, dropout=True):
    """A conv-BN-ReLU-pool net (with dropout, whose RNG must survive a resume)."""
    rng = np.random.default_rng(seed)
    layers = [nn.Conv2d(3, 6, 3, padding=1, rng=rng), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
              nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(0.2, rng=rng))
    layers.append(nn.Linear(6 * 4 * 4, K, rng=rng))
    return nn.Sequential(*layers)


def make(seed=0, lr=0.05, dropout=True):
    model = tiny_net(seed, dropout)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = optim.CosineAnnealingLR(opt, T_max=3)
    return model, opt, sched


def quiet(*_):
    pass


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype
        assert np.array_equal(sa[k], sb[k]), k


# --------------------------------------------------------------------- fit
def test_fit_loss_falls_and_history_is_written(tmp_path):
    x, y = toy_data()
    xv, yv = toy_data(40, seed=1)
    model, opt, sched = make()
    logs = []
    hist = fit(model, opt, (x, y), val=(xv, yv), epochs=3, batch_size=16, augment=False,
               schedule=sched, run_dir=tmp_path, log=logs.append, progress=False)
    assert isinstance(hist, History) and len(hist) == 3
    for key in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "lr"):
        assert key in hist[0]
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    assert hist[-1]["val_accuracy"] > 0.5                        # chance is 0.25
    assert all(0 <= r["train_accuracy"] <= 1 and 0 <= r["val_accuracy"] <= 1 for r in hist)
    # The cosine schedule lowered the rate after every epoch.
    assert hist[0]["lr"] == pytest.approx(0.05) and hist[2]["lr"] < hist[1]["lr"] < hist[0]["lr"]
    # Initial-loss sanity check reported against ln(K).
    assert hist.expected_initial_loss == pytest.approx(math.log(K))
    # ... and computed as it says: a train-mode forward of the fresh model on the normalised images.
    fresh, _, _ = make()
    xn = (x.astype(np.float64) - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    from minicnn.functional import softmax_cross_entropy
    expected, _ = softmax_cross_entropy(fresh(xn.astype(np.float32)), y)
    assert hist.initial_loss == pytest.approx(expected, rel=1e-4)
    assert any("initial loss" in m and "ln(4)" in m for m in logs)
    saved = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in saved] == [1, 2, 3]
    assert saved[-1]["val_accuracy"] == hist[-1]["val_accuracy"]
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,train_accuracy,val_loss,val_accuracy")
    assert len(csv_lines) == 4
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    mask = os.umask(0)
    os.umask(mask)
    for name in ("last.npz", "history.json", "history.csv", "config.json"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~mask   # as open() would make it
    assert "cpu_seconds" in hist[0] and hist[0]["cpu_seconds"] > 0
    # evaluate reuses the training statistics kept on the model.
    m = evaluate(model, xv, yv)
    assert m["accuracy"] == pytest.approx(hist[-1]["val_accuracy"])


def test_initial_loss_check_changes_nothing():
    x, y = toy_data()
    a, opt_a, _ = make()
    b, opt_b, _ = make()
    fit(a, opt_a, (x, y), epochs=1, batch_size=16, log=quiet, progress=False)
    # Same run but without the probe can't be asked for; instead check that the probe's
    # side effects are undone by running it twice before identical training.
    from minicnn.train import initial_loss
    xb = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    yb = np.arange(8) % K
    initial_loss(b, xb, yb)
    b2, opt_b2, _ = make()
    fit(b, opt_b, (x, y), epochs=1, batch_size=16, log=quiet, progress=False)
    fit(b2, opt_b2, (x, y), epochs=1, batch_size=16, log=quiet, progress=False)
    assert_same_state(b, b2)


def test_fit_refuses_bad_input():
    x, y = toy_data(16)
    model, opt, _ = make()
    with pytest.raises(ValueError, match="expected images x of shape"):
        fit(model, opt, (x[0], y), log=quiet)
    with pytest.raises(ValueError, match="expected labels y of shape"):
        fit(model, opt, (x, y[:3]), log=quiet)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, opt, (x, y), epochs=0, log=quiet)
    with pytest.raises(ValueError, match="resume=True needs the run_dir"):
        fit(model, opt, (x, y), resume=True, log=quiet)


def test_overfit_mode_memorises_the_images():
    x, y = toy_data(24)
    model = tiny_net(0)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    logs, during = [], []
    hist = fit(model, opt, (x, y), epochs=200, batch_size=128, augment=True, overfit=20,
               log=logs.append, progress=False,
               on_batch=lambda info: during.append((opt.weight_decay, model[5].p)))
    assert hist[-1]["train_accuracy"] == 1.0
    assert len(hist) < 200 and "reached 100%" in hist.stopped
    assert set(during) == {(0.0, 0.0)}                          # regularisation switched off ...
    assert opt.weight_decay == 5e-4 and model[5].p == 0.2       # ... for the run only
    assert any("overfit test: 20 images" in m and "weight decay, dropout switched off" in m for m in logs)


def test_warnings_for_constant_and_unnormalised_inputs():
    x, y = toy_data(32)
    model, opt, _ = make()
    const = np.full_like(x, 7)
    with pytest.warns(UserWarning, match="constant"):
        fit(model, opt, (const, y), epochs=1, batch_size=16, log=quiet, progress=False)
    raw = x.astype(np.float32)   # 0..255 floats, used as given
    model, opt, _ = make(lr=1e-4)
    with pytest.warns(UserWarning, match="unnormalised"):
        fit(model, opt, (raw, y), epochs=1, batch_size=16, normalize=False, log=quiet, progress=False)
    # Normalised floats raise no warning.
    ok = ((x - x.mean()) / x.std()).astype(np.float32)
    model, opt, _ = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(model, opt, (ok, y), epochs=1, batch_size=16, normalize=False, log=quiet, progress=False)


# ---------------------------------------------------------------- evaluate
def test_evaluate_keys_and_ranges():
    x, y = toy_data(50)
    model, _, _ = make()
    m = evaluate(model, x, y, batch_size=16, mean=[110] * 3, std=[40] * 3)
    assert set(m) == {"loss", "accuracy", "top5"}
    assert 0 <= m["accuracy"] <= m["top5"] <= 1
    assert m["top5"] == 1.0           # 4 classes: the label is always among the top 5
    assert m["loss"] > 0 and math.isfinite(m["loss"])
    # Training mode is restored.
    assert model.training


def test_evaluate_matches_hand_computation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, K, 10)
    model, _, _ = make()
    model.eval()
    scores = model(x).astype(np.float64)
    model.train()
    logp = scores - scores.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    m = evaluate(model, x, y, batch_size=3)    # floats without statistics: used as given
    assert m["loss"] == pytest.approx(-logp[np.arange(10), y].mean(), rel=1e-5)
    assert m["accuracy"] == pytest.approx((scores.argmax(1) == y).mean())


def test_topk_accuracy_and_confusion_matrix():
    scores = np.array([[0.1, 0.5, 0.2, 0.9, 0.0, 0.3, 0.8],     # top-1 = 3, top-5 = {3,6,1,5,2}
                       [0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],     # top-5 = {0,6,5,4,3}
                       [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    y = np.array([2, 1, 6])
    assert topk_accuracy(scores, y, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, y, 5) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, y, 10) == 1.0
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=4)
    expected = np.zeros((4, 4), dtype=np.int64)
    for t, p in [(0, 0), (0, 1), (1, 1), (2, 2), (2, 0), (2, 2)]:
        expected[t, p] += 1
    assert np.array_equal(cm, expected) and cm.dtype == np.int64
    assert cm.sum() == 6 and np.trace(cm) == 4
    with pytest.raises(ValueError, match="one shape"):
        confusion_matrix([0, 1], [0])


def test_ensemble_averages_softmax(tmp_path):
    x, y = toy_data(48)
    a, opt_a, _ = make(0)
    b, opt_b, _ = make(1)
    fit(a, opt_a, (x, y), epochs=1, batch_size=16, log=quiet, progress=False)
    fit(b, opt_b, (x, y), epochs=1, batch_size=16, log=quiet, progress=False)
    from minicnn.train import predict
    pa, pb = predict(a, x), predict(b, x)
    assert np.allclose(pa.sum(1), 1)
    assert np.allclose(ensemble_predict([a, b], x), (pa + pb) / 2)
    one = evaluate(a, x, y)
    same = evaluate_ensemble([a, a], x, y)
    assert same["accuracy"] == one["accuracy"] and same["loss"] == pytest.approx(one["loss"])
    assert same["members"] == 2


# ------------------------------------------------------------ checkpoints
def run_straight(tmp_path, data, epochs=2):
    model, opt, sched = make()
    fit(model, opt, data, epochs=epochs, batch_size=16, augment=True, schedule=sched, seed=5,
        run_dir=tmp_path / "straight", log=quiet, progress=False)
    return model, opt, sched


def test_resume_is_bit_identical(tmp_path):
    data = toy_data()
    model, opt, sched = run_straight(tmp_path, data)

    m1, o1, s1 = make()
    fit(m1, o1, data, epochs=1, batch_size=16, augment=True, schedule=s1, seed=5,
        run_dir=tmp_path / "resumed", log=quiet, progress=False)
    # A fresh process would rebuild everything from scratch: so do we.
    m2, o2, s2 = make(seed=99)
    hist = fit(m2, o2, data, epochs=2, batch_size=16, augment=True, schedule=s2, seed=5,
               run_dir=tmp_path / "resumed", resume=True, log=quiet, progress=False)
    assert_same_state(model, m2)
    so, sr = opt.state_dict(), o2.state_dict()
    assert set(so) == set(sr)
    for k in so:
        assert np.array_equal(so[k], sr[k]), k
    assert sched.state_dict() == s2.state_dict()
    assert [r["epoch"] for r in hist] == [1, 2]
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert [r["train_loss"] for r in straight] == [r["train_loss"] for r in hist]


def make_grouped(seed=0):
    """tiny_net fine-tuned: the classifier (layer 6) at the optimizer's lr, the rest at a tenth
    of it with no momentum and no weight decay; a warm-up then cosine over both groups."""
    model = tiny_net(seed)
    groups = optim.fine_tuning_groups(model, head="6", backbone_lr=0.005)
    groups[1].update(momentum=0.0, weight_decay=0.0)
    opt = optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = optim.LinearWarmup(opt, 1, after=optim.CosineAnnealingLR(opt, T_max=2))
    return model, opt, sched


def test_resume_with_param_groups_is_bit_identical(tmp_path):
    data = toy_data()
    kw = dict(batch_size=16, augment=True, seed=5, log=quiet, progress=False)
    model, opt, sched = make_grouped()
    straight = fit(model, opt, data, epochs=3, schedule=sched, run_dir=tmp_path / "straight", **kw)

    m1, o1, s1 = make_grouped()
    fit(m1, o1, data, epochs=2, schedule=s1, run_dir=tmp_path / "resumed", **kw)
    m2, o2, s2 = make_grouped(seed=99)
    o2.param_groups[1]["lr"] = 1.0               # the checkpoint, not the rebuilt optimizer, decides
    hist = fit(m2, o2, data, epochs=3, schedule=s2, run_dir=tmp_path / "resumed", resume=True, **kw)
    assert_same_state(model, m2)
    so, sr = opt.state_dict(), o2.state_dict()
    assert list(so) == list(sr) and "param_groups.1.lr" in so and "momentum_buffer.2" not in so
    for k in so:
        assert np.array_equal(so[k], sr[k]), k
    assert [g["lr"] for g in o2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert sched.state_dict() == s2.state_dict() and len(sched.state_dict()["base_lrs"]) == 2
    assert [r["train_loss"] for r in straight] == [r["train_loss"] for r in hist]
    # the history's lr is the head's (the first group's): warm-up 0.005, then cosine from 0.05
    assert [r["lr"] for r in hist] == pytest.approx([0.005, 0.05, 0.025])


def test_ctrl_c_saves_and_resume_mid_epoch_is_bit_identical(tmp_path):
    data = toy_data()
    model, _, _ = run_straight(tmp_path, data)

    def interrupt(info):
        if info["epoch"] == 2 and info["batch"] == 3:
            raise KeyboardInterrupt

    m1, o1, s1 = make()
    logs = []
    with pytest.raises(KeyboardInterrupt):
        fit(m1, o1, data, epochs=2, batch_size=16, augment=True, schedule=s1, seed=5,
            run_dir=tmp_path / "r", on_batch=interrupt, log=logs.append, progress=False)
    assert any("interrupted at epoch 2, batch 3" in m for m in logs)
    ck = checkpoint.load(tmp_path / "r" / "last.npz")
    assert (ck.epoch, ck.batch) == (1, 3)
    m2, o2, s2 = make(seed=7)
    fit(m2, o2, data, epochs=2, batch_size=16, augment=True, schedule=s2, seed=5,
        run_dir=tmp_path / "r", resume=True, log=quiet, progress=False)
    assert_same_state(model, m2)


def test_crash_after_periodic_checkpoint_resumes_bit_identically(tmp_path):
    """checkpoint_seconds=0 saves after every batch; a crash (not Ctrl-C: nothing saved on the
    way out) loses only the batch in progress, and the resumed run still ends identical."""
    data = toy_data()
    model, _, _ = run_straight(tmp_path, data)

    def crash(info):
        if info["epoch"] == 2 and info["batch"] == 4:
            raise RuntimeError("power cut")

    m1, o1, s1 = make()
    with pytest.raises(RuntimeError, match="power cut"):
        fit(m1, o1, data, epochs=2, batch_size=16, augment=True, schedule=s1, seed=5,
            run_dir=tmp_path / "c", on_batch=crash, checkpoint_seconds=0.0, log=quiet, progress=False)
    ck = checkpoint.load(tmp_path / "c" / "last.npz")
    assert (ck.epoch, ck.batch) == (1, 3)
    m2, o2, s2 = make(seed=3)
    fit(m2, o2, data, epochs=2, batch_size=16, augment=True, schedule=s2, seed=5,
        run_dir=tmp_path / "c", resume=True, log=quiet, progress=False)
    assert_same_state(model, m2)


def test_existing_checkpoint_is_not_overwritten_by_a_fresh_run(tmp_path):
    data = toy_data(32)
    model, opt, _ = make()
    fit(model, opt, data, epochs=1, batch_size=16, run_dir=tmp_path, log=quiet, progress=False)
    model, opt, _ = make()
    with pytest.raises(ValueError, match="already exists; pass resume=True"):
        fit(model, opt, data, epochs=1, batch_size=16, run_dir=tmp_path, log=quiet)
    def stop_at_once(info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, opt, data, epochs=1, batch_size=16, run_dir=tmp_path, overwrite=True, log=quiet,
            progress=False, on_batch=stop_at_once)
    assert not (tmp_path / "history.json").exists()      # the old run's history went with it
    assert checkpoint.load(tmp_path / "last.npz").batch == 1
    with pytest.raises(checkpoint.CheckpointError, match="nothing to resume"):
        fit(model, opt, data, run_dir=tmp_path / "empty", resume=True, log=quiet)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    data = toy_data(64)
    model, opt, sched = make()

    def poison(info):
        if info["epoch"] == 2 and info["batch"] == 2:
            model[0].weight.data[0, 0, 0, 0] = np.nan

    with pytest.raises(TrainingDiverged, match=r"became nan(/inf)? at epoch 2, batch 3") as err:
        fit(model, opt, data, epochs=3, batch_size=16, schedule=sched, run_dir=tmp_path,
            on_batch=poison, log=quiet, progress=False)
    assert "last good checkpoint" in str(err.value) and "Lower the learning rate" in str(err.value)
    assert err.value.checkpoint == str(tmp_path / "last.npz")
    ck = checkpoint.load(tmp_path / "last.npz")
    assert (ck.epoch, ck.batch) == (1, 0)
    assert all(np.isfinite(v).all() for v in ck.model_state.values())
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_huge_learning_rate_diverges_cleanly(tmp_path):
    x, y = toy_data(64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32, rng=0), nn.ReLU(), nn.Linear(32, K, rng=0))
    opt = optim.SGD(model.parameters(), lr=1e6, momentum=0.9)
    with pytest.raises(TrainingDiverged, match="lr 1e\\+06") as err:
        fit(model, opt, (x, y), epochs=5, batch_size=8, run_dir=tmp_path, log=quiet, progress=False)
    assert not math.isfinite(err.value.loss)
    if err.value.checkpoint is not None:
        ck = checkpoint.load(err.value.checkpoint)
        assert all(np.isfinite(v).all() for v in ck.model_state.values())


def test_checkpoint_round_trip_and_load_model(tmp_path):
    x, y = toy_data(32)
    model = models.create("small_cnn", num_classes=K, width=0.25, rng=0)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    fit(model, opt, (x, y), epochs=1, batch_size=16, run_dir=tmp_path, log=quiet, progress=False,
        config={"model": "small_cnn", "model_kwargs": {"num_classes": K, "width": 0.25}})
    with np.load(tmp_path / "last.npz", allow_pickle=False) as z:
        assert "__minicnn_checkpoint__" in z.files
        assert all(z[k].dtype != object for k in z.files)
    again, ck = load_model(tmp_path)
    assert_same_state(model, again)
    assert np.allclose(again.normalization[0], model.normalization[0])
    assert evaluate(again, x, y) == evaluate(model, x, y)
    opt2 = optim.Adam(again.parameters(), lr=1.0)
    ck.restore(again, opt2)
    assert opt2.lr == opt.lr and opt2.step_count == opt.step_count == 2
    for k, v in opt.state_dict().items():
        assert np.array_equal(v, opt2.state_dict()[k])


def test_bad_checkpoint_files_give_clear_errors(tmp_path):
    x, y = toy_data(32)
    model, opt, _ = make()
    fit(model, opt, (x, y), epochs=1, batch_size=16, run_dir=tmp_path, log=quiet, progress=False)
    good = (tmp_path / "last.npz").read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated.npz.*not a readable"):
        checkpoint.load(truncated)

    flipped = bytearray(good)
    # Alter one byte inside the first stored weight array (after its local header and .npy header).
    pos = good.index(b"model/0.weight.npy") + 200
    flipped[pos] ^= 0xFF
    altered = tmp_path / "altered.npz"
    altered.write_bytes(bytes(flipped))
    with pytest.raises(checkpoint.CheckpointError, match="not a readable"):
        checkpoint.load(altered)

    with_object = tmp_path / "object.npz"
    np.savez(with_object, **{"__minicnn_checkpoint__": np.array('{"format": 1}'),
                             "evil": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(checkpoint.CheckpointError, match="not a readable"):
        checkpoint.load(with_object)

    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match="__minicnn_checkpoint__ entry is missing"):
        checkpoint.load(foreign)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(garbage)
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.npz")
    # The good file still loads, and a failed save leaves it untouched.
    assert checkpoint.load(tmp_path / "last.npz").epoch == 1


def test_failed_save_leaves_previous_checkpoint_and_no_temp_file(tmp_path):
    model, opt, _ = make()
    path = tmp_path / "c.npz"
    checkpoint.save(path, model, optimizer=opt, epoch=3)
    before = path.read_bytes()

    class Broken:
        def state_dict(self):
            return {"bad": object()}

    with pytest.raises(ValueError, match="cannot store a object"):
        checkpoint.save(path, model, optimizer=Broken(), epoch=4)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


def test_checkpoint_keeps_types_of_nested_state(tmp_path):
    model, _, _ = make()
    extra = {"ints": {1: 2, "k": (3, 4.5)}, "scalar": np.float32(1.5), "arr": np.arange(3),
             "inf": float("inf"), "none": None, "nested": [np.ones((2, 2)), {"x": True}]}
    checkpoint.save(tmp_path / "c.npz", model, extra=extra, config={"model": "x"})
    got = checkpoint.load(tmp_path / "c.npz").extra
    assert got["ints"] == {1: 2, "k": (3, 4.5)}
    assert got["scalar"] == np.float32(1.5) and got["scalar"].dtype == np.float32
    assert np.array_equal(got["arr"], np.arange(3)) and got["inf"] == float("inf")
    assert got["none"] is None and np.array_equal(got["nested"][0], np.ones((2, 2)))
    assert got["nested"][1] == {"x": True}
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        assert all(n.endswith(".npy") for n in z.namelist())


def test_short_real_run_on_the_shipped_sample_learns():
    """Real CIFAR-10 images (the sample inside the package): the loss falls within 3 epochs
    and the model beats chance on images it was not trained on."""
    from minicnn.data import load_sample
    x_train, y_train, x_test, y_test = load_sample()
    model = models.create("small_cnn", width=0.5, rng=0)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    hist = fit(model, opt, (x_train[:512], y_train[:512]), val=(x_test, y_test), epochs=3,
               batch_size=32, log=quiet, progress=False)
    assert abs(hist.initial_loss - math.log(10)) < 0.1     # small_cnn starts at ln(10)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] < hist.initial_loss
    assert hist[-1]["val_accuracy"] > 0.15                   # chance is 0.10 on 240 test images


def test_ctrl_c_between_epochs_resumes_bit_identically(tmp_path):
    """A Ctrl-C honoured after an epoch (here: KeyboardInterrupt from on_epoch) saves the
    loader's position at the start of the next epoch, not the one it had finished."""
    data = toy_data()
    model, _, _ = run_straight(tmp_path, data)

    def stop(record):
        raise KeyboardInterrupt

    m1, o1, s1 = make()
    with pytest.raises(KeyboardInterrupt):
        fit(m1, o1, data, epochs=2, batch_size=16, augment=True, schedule=s1, seed=5,
            run_dir=tmp_path / "e", on_epoch=stop, log=quiet, progress=False)
    assert (checkpoint.load(tmp_path / "e" / "last.npz").epoch,
            checkpoint.load(tmp_path / "e" / "last.npz").batch) == (1, 0)
    m2, o2, s2 = make(seed=4)
    fit(m2, o2, data, epochs=2, batch_size=16, augment=True, schedule=s2, seed=5,
        run_dir=tmp_path / "e", resume=True, log=quiet, progress=False)
    assert_same_state(model, m2)


# ---------------------------------------------------------------- Trainer
def test_trainer_step_is_the_cs231n_step():
    """Trainer.step is forward, loss, zero_grad, backward, step -- nothing else touches the weights."""
    from minicnn.functional import softmax_cross_entropy
    from minicnn.train import Trainer
    x, y = toy_data(32)
    a, opt_a, _ = make(dropout=False)
    b, opt_b, _ = make(dropout=False)
    trainer = Trainer(a, opt_a, (x, y), batch_size=8)
    xb = np.random.default_rng(1).standard_normal((8, 3, 8, 8)).astype(np.float32)
    yb = np.arange(8) % K
    loss, correct = trainer.step(xb, yb)
    scores = b(xb)
    expected, dscores = softmax_cross_entropy(scores, yb)
    opt_b.zero_grad()
    b.backward(dscores)
    opt_b.step()
    assert loss == expected and correct == int((scores.argmax(1) == yb).sum())
    assert_same_state(a, b)


def test_trainer_by_hand_equals_fit():
    """train_epoch / validate / end_epoch called one by one give fit's weights and history."""
    from minicnn.train import Trainer
    data, val = toy_data(), toy_data(40, seed=1)
    a, opt_a, sched_a = make()
    hist = fit(a, opt_a, data, val=val, epochs=2, batch_size=16, augment=True, schedule=sched_a,
               seed=5, log=quiet, progress=False)
    b, opt_b, sched_b = make()
    trainer = Trainer(b, opt_b, data, val=val, batch_size=16, augment=True, schedule=sched_b, seed=5)
    for _ in range(2):
        record = trainer.train_epoch()
        assert record["epoch"] == trainer.epoch + 1 and trainer.batch == len(trainer.loader)
        record.update(trainer.validate())
        trainer.end_epoch(record)
    assert_same_state(a, b)
    assert trainer.epoch == 2 and trainer.batch == 0
    for got, want in zip(trainer.history, hist):
        assert list(got) == list(want)           # same fields, same order
        for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_top5", "lr"):
            assert got[k] == want[k], k
    assert np.array_equal(b.normalization[0], a.normalization[0])


def test_trainer_fit_continues_where_it_stopped():
    from minicnn.train import Trainer
    data = toy_data()
    a, opt_a, sched_a = make()
    Trainer(a, opt_a, data, batch_size=16, augment=True, schedule=sched_a, seed=5).fit(3)
    b, opt_b, sched_b = make()
    trainer = Trainer(b, opt_b, data, batch_size=16, augment=True, schedule=sched_b, seed=5)
    assert len(trainer.fit(1)) == 1
    history = trainer.fit(3)                     # epochs in all, as fit's resume counts them
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert_same_state(a, b)
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit(0)


def test_trainer_state_dict_round_trip_mid_epoch_is_bit_identical():
    """state_dict() taken in the middle of an epoch is JSON-able; a new Trainer (new model,
    optimizer, schedule given their states) that loads it ends with the uninterrupted weights."""
    from minicnn.nn.probe import generator_states, set_generator_states
    from minicnn.train import Trainer
    data = toy_data()
    straight, opt, sched = make()
    Trainer(straight, opt, data, batch_size=16, augment=True, schedule=sched, seed=5).fit(2)

    class Stop(Exception):
        pass

    def stop(info):
        if info["epoch"] == 2 and info["batch"] == 4:
            raise Stop

    m1, o1, s1 = make()
    first = Trainer(m1, o1, data, batch_size=16, augment=True, schedule=s1, seed=5, on_batch=stop)
    with pytest.raises(Stop):
        first.fit(2)
    state = json.loads(json.dumps(first.state_dict()))
    assert (state["epoch"], state["batch"], state["loader"]["position"]) == (1, 4, 4)
    assert state["sums"]["seen"] == 64 and len(state["history"]) == 1
    m2, o2, s2 = make(seed=11)
    m2.load_state_dict(m1.state_dict())
    set_generator_states(m2, generator_states(m1))        # dropout's draws continue too
    o2.load_state_dict(o1.state_dict())
    s2.load_state_dict(s1.state_dict())
    second = Trainer(m2, o2, data, batch_size=16, augment=True, schedule=s2, seed=123)
    second.load_state_dict(state)
    history = second.fit(2)
    assert_same_state(straight, m2)
    assert [r["epoch"] for r in history] == [1, 2]


def test_trainer_step_stops_before_a_nan_step():
    from minicnn.train import Trainer
    x, y = toy_data(32)
    model, opt, _ = make()
    trainer = Trainer(model, opt, (x, y), batch_size=8)
    before = {k: v.copy() for k, v in model.state_dict().items() if "running" not in k}
    xb = np.full((8, 3, 8, 8), np.nan, dtype=np.float32)
    message = r"the loss became nan at epoch 1, batch 1 \(lr 0.05\)"
    with pytest.raises(TrainingDiverged, match=message) as err:
        trainer.step(xb, np.arange(8) % K)
    assert "no checkpoint had been written yet" in str(err.value) and err.value.checkpoint is None
    after = model.state_dict()
    assert all(np.array_equal(v, after[k]) for k, v in before.items())   # the step was not applied


def test_trainer_normalisation_choices():
    from minicnn.train import Trainer
    x, y = toy_data(32)
    model, opt, _ = make()
    Trainer(model, opt, (x, y), normalize=([100.0, 110.0, 120.0], [50.0, 50.0, 50.0]))
    assert np.array_equal(model.normalization[0], [100.0, 110.0, 120.0])
    assert model.normalization[0].dtype == np.float64
    Trainer(model, opt, (x.astype(np.float32) / 255, y), normalize=False)
    assert model.normalization is None
    with pytest.raises(ValueError, match="Trainer: expected batch_size >= 1, received 0"):
        Trainer(model, opt, (x, y), batch_size=0)
    with pytest.raises(ValueError, match="Trainer: val: expected labels y"):
        Trainer(model, opt, (x, y), val=(x, y[:3]))


def test_every_public_name_is_still_importable_from_train():
    import minicnn.train as train
    for name in ("fit", "Trainer", "evaluate", "predict", "metrics_from_log_probs", "topk_accuracy",
                 "confusion_matrix", "ensemble_predict", "evaluate_ensemble", "load_model",
                 "initial_loss", "input_warnings", "save_history", "load_history", "get_lr",
                 "checkpoint_path", "History", "TrainingDiverged", "CHECKPOINT_NAME", "HISTORY_FIELDS"):
        assert hasattr(train, name), name


def test_progress_bar_on_stderr(capsys):
    x, y = toy_data(32)
    model, opt, _ = make()
    fit(model, opt, (x, y), epochs=1, batch_size=16, log=quiet, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1:" in err and "/2 [" in err               # a bar over the 2 batches


@pytest.mark.parametrize("field, value", [(10, 99), (8, 1)])   # compression method; "encrypted" flag
def test_checkpoint_with_a_damaged_zip_header_gives_a_clear_error(tmp_path, field, value):
    # zipfile reports these as NotImplementedError / RuntimeError, not BadZipFile.
    x, y = toy_data(32)
    model, opt, _ = make()
    fit(model, opt, (x, y), epochs=1, batch_size=16, run_dir=tmp_path, log=quiet, progress=False)
    data = bytearray((tmp_path / "last.npz").read_bytes())
    central = data.index(b"PK\x01\x02")          # the first member's central-directory entry
    data[central + field] = value
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="damaged.npz.*not a readable"):
        checkpoint.load(damaged)
