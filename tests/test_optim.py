"""minicnn.optim: update rules against hand-computed steps, convergence, state, schedules."""
import io
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import optim
from minicnn.nn.module import Parameter

G1 = [0.5, 0.25]
G2 = [-0.1, 0.4]


def param(values=(1.0, -2.0), dtype=np.float64):
    return Parameter(np.array(values, dtype=dtype))


def two_steps(opt, p):
    """Step with gradient G1, then with G2; returns p.data after each step."""
    out = []
    for g in (G1, G2):
        p.grad[...] = g
        opt.step()
        out.append(p.data.copy())
    return out


# ------------------------------------------------------------------ hand-computed steps

def test_sgd_plain():
    p = param()
    s1, s2 = two_steps(optim.SGD([p], lr=0.1), p)
    np.testing.assert_allclose(s1, [1 - 0.1 * 0.5, -2 - 0.1 * 0.25], rtol=1e-15)
    np.testing.assert_allclose(s2, [0.95 + 0.1 * 0.1, -2.025 - 0.1 * 0.4], rtol=1e-15)


def test_sgd_momentum():
    p = param()
    s1, s2 = two_steps(optim.SGD([p], lr=0.1, momentum=0.9), p)
    # v1 = g1 = (0.5, 0.25); v2 = 0.9 v1 + g2 = (0.35, 0.625)
    np.testing.assert_allclose(s1, [0.95, -2.025], rtol=1e-15)
    np.testing.assert_allclose(s2, [0.95 - 0.035, -2.025 - 0.0625], rtol=1e-14)


def test_sgd_nesterov():
    p = param()
    s1, s2 = two_steps(optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True), p)
    # step 1: v = g1, p -= 0.1 (g1 + 0.9 v) = 0.1 * 1.9 g1
    np.testing.assert_allclose(s1, [1 - 0.095, -2 - 0.0475], rtol=1e-14)
    # step 2: v = (0.35, 0.625), p -= 0.1 (g2 + 0.9 v) = 0.1 (0.215, 0.9625)
    np.testing.assert_allclose(s2, [0.905 - 0.0215, -2.0475 - 0.09625], rtol=1e-14)


def test_sgd_weight_decay_with_momentum():
    p = param()
    s1, s2 = two_steps(optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), p)
    # step 1: g = g1 + 0.1 p = (0.6, 0.05) = v;  p = (0.94, -2.005)
    np.testing.assert_allclose(s1, [0.94, -2.005], rtol=1e-14)
    # step 2: g = g2 + 0.1 p = (-0.006, 0.1995); v = 0.9 (0.6, 0.05) + g = (0.534, 0.2445)
    np.testing.assert_allclose(s2, [0.94 - 0.0534, -2.005 - 0.02445], rtol=1e-14)


def test_adam_bias_correction():
    p = param()
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    s1, s2 = two_steps(optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps), p)
    # Step 1: m_hat = g, v_hat = g^2, so the step is lr * sign(g) (up to eps): the
    # bias correction is what makes the first step full size.
    np.testing.assert_allclose(s1, [1 - lr * 0.5 / (0.5 + eps), -2 - lr * 0.25 / (0.25 + eps)], rtol=1e-15)
    expected = []
    for x, ga, gb in zip(s1, G1, G2):
        m = b1 * (1 - b1) * ga + (1 - b1) * gb
        v = b2 * (1 - b2) * ga ** 2 + (1 - b2) * gb ** 2
        m_hat, v_hat = m / (1 - b1 ** 2), v / (1 - b2 ** 2)
        expected.append(x - lr * m_hat / (math.sqrt(v_hat) + eps))
    np.testing.assert_allclose(s2, expected, rtol=1e-12)
    # Numbers for the first coordinate: m = 0.035, m_hat = 0.035 / 0.19.
    assert expected[0] == pytest.approx(0.9 - 0.1 * (0.035 / 0.19) / math.sqrt(0.00025975 / 0.001999), rel=1e-7)


def test_adam_weight_decay_is_l2_in_the_gradient():
    p = param()
    opt = optim.Adam([p], lr=0.1, weight_decay=0.5)
    p.grad[...] = [0.0, 0.0]
    opt.step()
    # g = 0.5 * p = (0.5, -1): the first step is -lr * sign(g)
    np.testing.assert_allclose(p.data, [0.9, -1.9], rtol=1e-7)


def test_rmsprop_with_and_without_momentum():
    lr, alpha, eps = 0.01, 0.99, 1e-8
    p = param()
    s1, s2 = two_steps(optim.RMSProp([p], lr=lr, alpha=alpha, eps=eps), p)
    # step 1: s = 0.01 g^2, sqrt(s) = 0.1 |g|, so the step is lr * 10 * sign(g)
    np.testing.assert_allclose(s1, [1 - 0.1, -2 - 0.1], rtol=1e-7)
    sq = [alpha * 0.01 * ga ** 2 + 0.01 * gb ** 2 for ga, gb in zip(G1, G2)]  # (0.002575, 0.00221875)
    assert sq == pytest.approx([0.002575, 0.00221875])
    np.testing.assert_allclose(s2, [x - lr * g / (math.sqrt(s) + eps) for x, g, s in zip(s1, G2, sq)],
                               rtol=1e-12)

    p = param()
    s1, s2 = two_steps(optim.RMSProp([p], lr=lr, alpha=alpha, eps=eps, momentum=0.5), p)
    b1 = [ga / (math.sqrt(0.01 * ga ** 2) + eps) for ga in G1]  # (10, 10)
    np.testing.assert_allclose(s1, [1 - lr * b1[0], -2 - lr * b1[1]], rtol=1e-12)
    b2 = [0.5 * b + g / (math.sqrt(s) + eps) for b, g, s in zip(b1, G2, sq)]
    np.testing.assert_allclose(s2, [x - lr * b for x, b in zip(s1, b2)], rtol=1e-12)


# ------------------------------------------------------------------ convergence on a quadratic

def quadratic(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, n)          # f(p) = sum(a p^2 / 2 - b p), minimum at b / a
    b = rng.normal(size=n)
    return a, b, b / a


@pytest.mark.parametrize("make, steps", [
    (lambda ps: optim.SGD(ps, lr=0.3), 200),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), 300),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), 300),
    (lambda ps: optim.Adam(ps, lr=0.05), 1500),
    (lambda ps: optim.RMSProp(ps, lr=0.01, momentum=0.5), 1500),
])
def test_quadratic_converges(make, steps):
    a, b, best = quadratic(6, seed=1)
    p = Parameter(np.zeros(6))
    opt = make([p])
    for _ in range(steps):
        opt.zero_grad()
        p.grad += a * p.data - b
        opt.step()
    np.testing.assert_allclose(p.data, best, atol=2e-3)


def test_weight_decay_moves_the_minimum():
    a, b, best = quadratic(4, seed=2)
    p = Parameter(np.zeros(4))
    opt = optim.SGD([p], lr=0.2, momentum=0.5, weight_decay=0.5)
    for _ in range(300):
        opt.zero_grad()
        p.grad += a * p.data - b
        opt.step()
    np.testing.assert_allclose(p.data, b / (a + 0.5), atol=1e-6)  # minimum of f + 0.25 |p|^2


# ------------------------------------------------------------------ dtype, in place, grads untouched

@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-3),
    lambda ps: optim.RMSProp(ps, lr=0.01, momentum=0.9, weight_decay=1e-3),
])
def test_float32_stays_float32_in_place(make):
    rng = np.random.default_rng(0)
    ps = [Parameter(rng.normal(size=(3, 4)).astype(np.float32)), Parameter(np.ones(5, np.float32))]
    data_ids = [id(p.data) for p in ps]
    opt = make(ps)
    opt.lr = np.float64(0.05)  # a NumPy float64 must not promote float32 parameters
    for _ in range(3):
        for p in ps:
            p.grad[...] = rng.normal(size=p.shape)
        grads = [p.grad.copy() for p in ps]
        opt.step()
        for p, g in zip(ps, grads):
            np.testing.assert_array_equal(p.grad, g)  # the gradient is never written
    assert [id(p.data) for p in ps] == data_ids
    assert all(p.data.dtype == np.float32 for p in ps)
    assert all(v.dtype == np.float32 for k, v in opt.state_dict().items() if hasattr(v, "dtype"))
    assert type(opt.lr) is float
    opt.zero_grad()
    assert all(not p.grad.any() for p in ps)


# ------------------------------------------------------------------ state round trip

def npz_round_trip(state):
    buf = io.BytesIO()
    np.savez(buf, **state)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2),
    lambda ps: optim.RMSProp(ps, lr=0.01, momentum=0.9),
])
def test_state_round_trip_continues_identically(make):
    rng = np.random.default_rng(3)
    init = [rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=4).astype(np.float32)]
    grads = [[rng.normal(size=a.shape).astype(np.float32) for a in init] for _ in range(6)]

    def run(ps, opt, gs):
        for g in gs:
            for p, gi in zip(ps, g):
                p.grad[...] = gi
            opt.step()

    ref = [Parameter(a.copy()) for a in init]
    ref_opt = make(ref)
    run(ref, ref_opt, grads)

    first = [Parameter(a.copy()) for a in init]
    opt = make(first)
    run(first, opt, grads[:3])
    opt.lr = opt.lr * 0.5  # a schedule changed the lr: the state must carry it
    ref2 = [Parameter(a.copy()) for a in init]
    ref2_opt = make(ref2)
    run(ref2, ref2_opt, grads[:3])
    ref2_opt.lr = ref2_opt.lr * 0.5
    run(ref2, ref2_opt, grads[3:])

    state = npz_round_trip(opt.state_dict())
    resumed = [Parameter(p.data.copy()) for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(state)
    assert opt2.step_count == 3 and opt2.lr == opt.lr
    run(resumed, opt2, grads[3:])
    for a, b in zip(resumed, ref2):
        np.testing.assert_array_equal(a.data, b.data)  # bit-identical
    assert resumed[0].data.dtype == np.float32


def test_load_state_dict_errors():
    p = param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    state = opt.state_dict()
    with pytest.raises(ValueError, match="missing.*momentum_buffer.0"):
        optim.SGD([param()], lr=0.1, momentum=0.9).load_state_dict({k: v for k, v in state.items()
                                                                    if k != "momentum_buffer.0"})
    with pytest.raises(ValueError, match="unexpected.*momentum_buffer.0"):
        optim.SGD([param()], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"'momentum_buffer.0' of shape \(3,\), received \(2,\)"):
        optim.SGD([param((1, 2, 3))], lr=0.1, momentum=0.9).load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        optim.Adam([param()]).load_state_dict(state)


@pytest.mark.parametrize("build, message", [
    (lambda: optim.SGD([], lr=0.1), "non-empty"),
    (lambda: optim.SGD([param()], lr=-0.1), "lr >= 0"),
    (lambda: optim.SGD([param()], lr=float("nan")), "received nan"),
    (lambda: optim.SGD([param()], lr=float("inf")), r"lr < inf, received inf"),
    (lambda: optim.SGD([param()], lr=0.1, momentum=-0.5), "momentum"),
    (lambda: optim.SGD([param()], lr=0.1, nesterov=True), "nesterov"),
    (lambda: optim.SGD([np.zeros(3)], lr=0.1), r"\.data and \.grad"),
    (lambda: optim.Adam([param()], betas=(0.9, 1.0)), "beta2"),
    (lambda: optim.Adam([param()], betas=0.9), "pair"),
    (lambda: optim.RMSProp([param()], alpha=1.5), "alpha"),
])
def test_optimizer_rejects_bad_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_duplicate_parameter_and_wrong_grad_shape():
    p = param()
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.zeros(3)
    with pytest.raises(ValueError, match=r"shape \(2,\), received \(3,\)"):
        opt.step()


# ------------------------------------------------------------------ schedules

def lrs(schedule, n, metrics=None):
    """The optimizer's lr at epochs 0..n-1 (stepping between them)."""
    out = [schedule.optimizer.lr]
    for i in range(n - 1):
        schedule.step(*([metrics[i]] if isinstance(schedule, optim.ReduceLROnPlateau) else []))
        out.append(schedule.optimizer.lr)
        assert schedule.lr == schedule.optimizer.lr
    return out


def sgd(lr=0.1):
    return optim.SGD([param()], lr=lr, momentum=0.9)


def test_step_lr():
    assert lrs(optim.StepLR(sgd(), step_size=2, gamma=0.5), 7) == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125])


def test_multistep_lr():
    assert lrs(optim.MultiStepLR(sgd(), milestones=[2, 5]), 7) == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001])


def test_cosine_lr():
    assert lrs(optim.CosineAnnealingLR(sgd(1.0), T_max=4), 7) == pytest.approx(
        [1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0, 0.0, 0.0], abs=1e-15)
    assert lrs(optim.CosineAnnealingLR(sgd(1.0), T_max=2, eta_min=0.2), 4) == pytest.approx(
        [1.0, 0.6, 0.2, 0.2])


def test_linear_warmup_alone_and_wrapping():
    assert lrs(optim.LinearWarmup(sgd(), warmup_epochs=4, start_factor=0.25), 6) == pytest.approx(
        [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1])
    opt = sgd()
    after = optim.StepLR(opt, step_size=2, gamma=0.1)
    warm = optim.LinearWarmup(opt, warmup_epochs=2, after=after, start_factor=0.5)
    assert lrs(warm, 7) == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.01, 0.01, 0.001])
    assert after.last_epoch == 4


def test_reduce_on_plateau_max_accuracy():
    sched = optim.ReduceLROnPlateau(sgd(1.0), mode="max", factor=0.1, patience=2)
    acc = [0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3]
    got = [sched.step(a) for a in acc]
    assert got == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01])


def test_reduce_on_plateau_min_cooldown_min_lr_and_nan():
    sched = optim.ReduceLROnPlateau(sgd(1.0), mode="min", patience=0, cooldown=1, min_lr=0.05)
    assert [sched.step(v) for v in [1.0, 1.0, 1.0, 1.0]] == pytest.approx([1, 0.1, 0.1, 0.05])
    sched = optim.ReduceLROnPlateau(sgd(1.0), patience=0)
    assert [sched.step(v) for v in [0.5, float("nan")]] == pytest.approx([1, 0.1])
    # Relative threshold: 0.5 -> 0.50001 is not an improvement of more than 1e-4 * 0.5.
    sched = optim.ReduceLROnPlateau(sgd(1.0), patience=0)
    assert [sched.step(v) for v in [0.5, 0.50001, 0.6]] == pytest.approx([1, 0.1, 0.1])


@pytest.mark.parametrize("make", [
    lambda o: optim.StepLR(o, 3),
    lambda o: optim.MultiStepLR(o, [1, 4]),
    lambda o: optim.CosineAnnealingLR(o, 5, eta_min=0.01),
    lambda o: optim.LinearWarmup(o, 2, after=optim.CosineAnnealingLR(o, 4)),
    lambda o: optim.ReduceLROnPlateau(o, patience=1),
])
def test_schedule_state_round_trip(make):
    metrics = [0.3, 0.3, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5]
    ref = make(sgd())
    expected = lrs(ref, 8, metrics)
    opt = sgd()
    sched = make(opt)
    head = lrs(sched, 4, metrics)
    state = json.loads(json.dumps(sched.state_dict()))  # JSON-able, strictly
    json.dumps(state, allow_nan=False)
    opt2 = sgd()
    opt2.load_state_dict(npz_round_trip(opt.state_dict()))
    resumed = make(opt2)
    resumed.load_state_dict(state)
    assert opt2.lr == opt.lr
    tail = [resumed.step(*([metrics[i]] if isinstance(resumed, optim.ReduceLROnPlateau) else []))
            for i in range(3, 7)]
    assert head + tail == expected


@given(step_size=st.integers(1, 5), gamma=st.floats(0.05, 1.0), n=st.integers(1, 12))
@settings(max_examples=25)
def test_step_lr_matches_its_formula(step_size, gamma, n):
    got = lrs(optim.StepLR(sgd(0.3), step_size=step_size, gamma=gamma), n)
    assert got == pytest.approx([0.3 * gamma ** (e // step_size) for e in range(n)])


@pytest.mark.parametrize("build, message", [
    (lambda: optim.StepLR(sgd(), 0), "step_size"),
    (lambda: optim.MultiStepLR(sgd(), [3, 2]), "increasing"),
    (lambda: optim.CosineAnnealingLR(sgd(), 0), "T_max"),
    (lambda: optim.LinearWarmup(sgd(), 2, after=optim.ReduceLROnPlateau(sgd())), "metric-driven"),
    (lambda: optim.ReduceLROnPlateau(sgd(), mode="maximum"), "mode"),
    (lambda: optim.ReduceLROnPlateau(sgd(), factor=1.0), "factor"),
    (lambda: optim.ReduceLROnPlateau(sgd()).step("high"), "number"),
    (lambda: optim.StepLR(object(), 2), "lr attribute"),
])
def test_schedule_rejects_bad_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_schedules_are_importable_from_optim_and_schedules():
    from minicnn import schedules
    for name in ("StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearWarmup", "ReduceLROnPlateau",
                 "make_schedule"):
        assert getattr(optim, name) is getattr(schedules, name)


# ------------------------------------------------------------- by name (the CLI's)

@pytest.mark.parametrize("name, cls", [("sgd", optim.SGD), ("adam", optim.Adam),
                                       ("rmsprop", optim.RMSProp)])
def test_make_optimizer_by_name(name, cls):
    momentum = None if name == "adam" else 0.5
    opt = optim.make_optimizer(name, [param()], lr=0.2, momentum=momentum, weight_decay=1e-3)
    assert type(opt) is cls and opt.lr == 0.2 and opt.weight_decay == 1e-3
    if name != "adam":
        assert opt.momentum == 0.5
    assert optim.make_optimizer("sgd", [param()], 0.1, momentum=0.9, nesterov=True).nesterov


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="lbfgs"), "expected one of sgd, adam, rmsprop"),
    (dict(name="adam", momentum=0.9), "adam takes no momentum"),
    (dict(name="rmsprop", momentum=0.9, nesterov=True), "nesterov=True is SGD's"),
])
def test_make_optimizer_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optim.make_optimizer(params=[param()], lr=0.1, **kwargs)


@pytest.mark.parametrize("kind, warmup, expected", [
    ("multistep", 0, [0.1, 0.1, 0.01, 0.001]),            # milestones at 50% and 75% of 4 epochs
    ("step", 0, [0.1, 0.01, 0.001, 0.0001]),              # every 4 // 3 = 1 epoch
    ("cosine", 0, [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05, 0.1 * (1 + np.cos(3 * np.pi / 4)) / 2]),
    ("cosine", 1, [0.01, 0.1, 0.075, 0.025]),            # 1 warm-up epoch from 0.1 x lr, then cosine over 3
    ("none", 0, [0.1] * 4),
    ("none", 2, [0.01, 0.055, 0.1, 0.1]),                # the warm-up alone
])
def test_make_schedule_by_name(kind, warmup, expected):
    opt = sgd()
    sched = optim.make_schedule(kind, opt, epochs=4, warmup=warmup)
    assert (sched is None) == (kind == "none" and not warmup)
    got = []
    for _ in range(4):
        got.append(opt.lr)
        if sched is not None:
            sched.step()
    assert got == pytest.approx(expected)


def test_make_plateau_schedule_divides_by_ten_when_accuracy_stalls():
    opt = sgd()
    sched = optim.make_schedule("plateau", opt, epochs=10)
    for acc in (0.3, 0.4, 0.4, 0.4, 0.4):
        sched.step(acc)
    assert opt.lr == pytest.approx(0.01)


@pytest.mark.parametrize("args, message", [
    (("exponential", 4), "expected one of cosine, step"),
    (("plateau", 4, 1), "warm-up cannot be combined"),
    (("cosine", 0), "epochs"),
    (("cosine", 4, -1), "warmup"),
])
def test_make_schedule_rejects(args, message):
    with pytest.raises(ValueError, match=message):
        optim.make_schedule(args[0], sgd(), *args[1:])


# ------------------------------------------------------------- param groups

def three_params(seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.normal(size=s)) for s in ((2, 3), (4,), (3,))]


def run_steps(ps, opts, n=4, seed=1):
    """n steps with the same random gradients whatever the optimizers."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        for p in ps:
            p.grad[...] = rng.normal(size=p.shape)
        for opt in opts:
            opt.step()


GROUP_CASES = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
     {"lr": 0.01, "weight_decay": 0.0, "nesterov": False}),
    (optim.SGD, dict(lr=0.1), {"lr": 0.3, "momentum": 0.5}),    # momentum in the second group only
    (optim.Adam, dict(lr=0.01, weight_decay=1e-3),
     {"lr": 0.001, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1}),
    (optim.RMSProp, dict(lr=0.01, momentum=0.9),
     {"lr": 0.001, "alpha": 0.9, "momentum": 0.0, "weight_decay": 1e-3}),
]


@pytest.mark.parametrize("cls, defaults, own", GROUP_CASES)
def test_groups_update_as_separate_optimizers_would(cls, defaults, own):
    grouped = three_params()
    opt = cls([{"params": grouped[:2]}, {"params": grouped[2:], **own}], **defaults)
    alone = three_params()
    first, second = cls(alone[:2], **defaults), cls(alone[2:], **{**defaults, **own})
    run_steps(grouped, [opt])
    run_steps(alone, [first, second])
    for a, b in zip(grouped, alone):
        np.testing.assert_array_equal(a.data, b.data)      # bit for bit
    # every group holds every hyper-parameter, the defaults filled in
    assert [set(g) for g in opt.param_groups] == [{"params", *cls.hyper}] * 2
    assert {h: opt.param_groups[1][h] for h in cls.hyper} == {h: getattr(second, h) for h in cls.hyper}
    assert opt.params == grouped and opt.param_groups[0]["params"] == grouped[:2]


def test_hyper_parameter_attributes_read_the_first_group_and_set_every_group():
    ps = three_params()
    opt = optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01, "weight_decay": 0.0}],
                    lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert (opt.lr, opt.weight_decay, opt.momentum) == (0.1, 5e-4, 0.9)
    opt.lr = np.float64(0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]
    assert all(type(g["lr"]) is float for g in opt.param_groups)
    opt.weight_decay = 0
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"SGD\.lr: expected lr to be a number with lr >= 0"):
        opt.lr = -1.0
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]   # a refused value changes nothing
    opt.nesterov = True
    with pytest.raises(ValueError, match=r"SGD\.momentum: expected momentum > 0 with nesterov=True"):
        opt.momentum = 0.0
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.9]
    no_momentum = optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "momentum": 0.9}], lr=0.1)
    with pytest.raises(ValueError, match=r"momentum_buffer.*made without"):
        no_momentum.momentum = 0.9                  # group 0 has no velocity buffers
    assert [g["momentum"] for g in no_momentum.param_groups] == [0.0, 0.9]
    assert "group 1: 2 parameters, lr=0.1, momentum=0.9" in repr(no_momentum)
    assert optim.Adam([{"params": ps[:1], "betas": (0.5, 0.6)}, {"params": ps[1:]}]).betas == (0.5, 0.6)


@pytest.mark.parametrize("build, message", [
    (lambda p: optim.SGD([{"params": p[:2]}, {"params": p[1:]}], lr=0.1),
     r"parameter at position 2 appears twice \(in param groups 0 and 1\)"),
    (lambda p: optim.SGD([{"params": p}, {"params": []}], lr=0.1),
     "SGD: param group 1: expected a non-empty list of parameters"),
    (lambda p: optim.SGD([{"params": p, "learning_rate": 0.1}], lr=0.1),
     r"param group 0: unknown hyper-parameter\(s\) \['learning_rate'\]; SGD takes lr, momentum"),
    (lambda p: optim.Adam([{"params": p, "momentum": 0.9}]), "unknown hyper-parameter"),
    (lambda p: optim.SGD([{"lr": 0.1}], lr=0.1), "param group 0: expected a 'params' entry"),
    (lambda p: optim.SGD([{"params": p[:1]}, p[1]], lr=0.1), "a mix of both"),
    (lambda p: optim.SGD({"params": p}, lr=0.1), "a single dict"),
    (lambda p: optim.SGD([{"params": p, "lr": -0.5}], lr=0.1),
     "SGD: param group 0: expected lr to be a number with lr >= 0 and lr < inf, received -0.5"),
    (lambda p: optim.SGD([{"params": p, "nesterov": True}], lr=0.1), "param group 0: expected momentum > 0"),
    (lambda p: optim.Adam([{"params": p, "betas": 0.9}]), "param group 0: expected betas as a pair"),
    (lambda p: optim.RMSProp([{"params": p[:1]}, {"params": p[1:], "alpha": 2.0}]), "param group 1.*alpha"),
    (lambda p: optim.SGD([{"params": 3}], lr=0.1), "expected 'params' to be a list of parameters"),
])
def test_param_group_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build(three_params())


def test_a_group_may_name_a_single_parameter():
    ps = three_params()
    opt = optim.SGD([{"params": ps[0]}, {"params": ps[1:], "lr": 0.2}], lr=0.1)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 2]


@pytest.mark.parametrize("cls, defaults, own", GROUP_CASES)
def test_group_state_round_trip_continues_identically(cls, defaults, own):
    def make(ps):
        return cls([{"params": ps[:2]}, {"params": ps[2:], **own}], **defaults)

    ref = three_params()
    ref_opt = make(ref)
    run_steps(ref, [ref_opt], n=3, seed=1)
    ref_opt.param_groups[1]["lr"] *= 0.5           # a schedule changed one group's lr
    run_steps(ref, [ref_opt], n=3, seed=2)

    first = three_params()
    opt = make(first)
    run_steps(first, [opt], n=3, seed=1)
    opt.param_groups[1]["lr"] *= 0.5
    state = npz_round_trip(opt.state_dict())
    assert state["param_groups.1.lr"] == opt.param_groups[1]["lr"]
    assert state["param_groups.0.params"] == 2 and state["param_groups.1.params"] == 1
    assert not any(k in state for k in cls.hyper)  # per group only
    resumed = [Parameter(p.data.copy()) for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(state)
    assert opt2.param_groups[1]["lr"] == opt.param_groups[1]["lr"] and opt2.step_count == 3
    run_steps(resumed, [opt2], n=3, seed=2)
    for a, b in zip(resumed, ref):
        np.testing.assert_array_equal(a.data, b.data)


def test_single_group_state_keeps_the_flat_format_of_older_checkpoints():
    p = param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    assert list(opt.state_dict()) == ["step", "lr", "momentum", "weight_decay", "nesterov",
                                      "momentum_buffer.0"]
    old = {"step": 2, "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "nesterov": False,
           "momentum_buffer.0": np.array([0.5, 0.25])}       # as saved before param groups
    opt.load_state_dict(old)
    assert opt.lr == 0.05 and opt.step_count == 2
    assert optim.SGD([{"params": [p]}], lr=0.1, momentum=0.9).state_dict().keys() == opt.state_dict().keys()


def test_group_state_errors_and_a_failed_load_changes_nothing():
    ps = three_params()
    two = optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.01}], lr=0.1, momentum=0.9)
    state = two.state_dict()
    with pytest.raises(ValueError, match="the state has 2 param group.*this optimizer 1"):
        optim.SGD(three_params(), lr=0.1, momentum=0.9).load_state_dict(state)
    with pytest.raises(ValueError, match="the state has 1 param group.*this optimizer 2"):
        two.load_state_dict(optim.SGD(three_params(), lr=0.1, momentum=0.9).state_dict())
    other = three_params()
    regrouped = optim.SGD([{"params": other[:1]}, {"params": other[1:]}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="expected param group 0 to hold 1 parameters"):
        regrouped.load_state_dict(state)
    bad = dict(state, **{"param_groups.1.lr": -1.0})
    with pytest.raises(ValueError, match="load_state_dict: expected lr to be a number with lr >= 0.*received -1.0"):
        two.load_state_dict(bad)
    assert [g["lr"] for g in two.param_groups] == [0.1, 0.01]


def test_fine_tuning_groups_split_head_and_backbone():
    from minicnn import nn
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=0))
    model.fc = nn.Linear(2, 2, rng=0)
    model.fc2 = nn.Linear(2, 2, rng=0)
    groups = optim.fine_tuning_groups(model, head="fc", backbone_lr=0.001)
    assert groups[0]["params"] == [model.fc.weight, model.fc.bias] and "lr" not in groups[0]
    assert groups[1]["lr"] == 0.001 and model.fc2.weight in groups[1]["params"]
    opt = optim.SGD(groups, lr=0.01, momentum=0.9)
    assert opt.lr == 0.01 and [g["lr"] for g in opt.param_groups] == [0.01, 0.001]
    both = optim.fine_tuning_groups(model, head=("fc", "fc2"), backbone_lr=0.0)
    assert len(both[0]["params"]) == 4 and len(both[1]["params"]) == 4
    with pytest.raises(ValueError, match=r"no parameter name starts with head; the model's top-level "
                                         r"names are \['0', '2', 'fc', 'fc2'\]"):
        optim.fine_tuning_groups(model, head="head", backbone_lr=0.001)
    with pytest.raises(ValueError, match="no backbone is left"):
        optim.fine_tuning_groups(model, head=("0", "2", "fc", "fc2"), backbone_lr=0.001)
    with pytest.raises(ValueError, match="expected head as a parameter-name prefix"):
        optim.fine_tuning_groups(model, head=3, backbone_lr=0.001)
    with pytest.raises(ValueError, match="backbone_lr"):
        optim.fine_tuning_groups(model, head="fc", backbone_lr=-1)


# ------------------------------------------------------------- schedules with groups

def grouped_sgd(lrs=(0.1, 0.01, 0.3)):
    return optim.SGD([{"params": [param()], "lr": lr} for lr in lrs], lr=1.0, momentum=0.9)


def group_lrs(schedule, n, metrics):
    """Every group's lr at epochs 0..n-1 (stepping between them), one list per group."""
    out = [[g["lr"] for g in schedule.optimizer.param_groups]]
    for i in range(n - 1):
        schedule.step(*([metrics[i]] if isinstance(schedule, optim.ReduceLROnPlateau) else []))
        out.append([g["lr"] for g in schedule.optimizer.param_groups])
        assert schedule.lr == out[-1][0] == schedule.optimizer.lr
    return [list(col) for col in zip(*out)]


SCHEDULE_CASES = [
    lambda o: optim.StepLR(o, 2, gamma=0.5),
    lambda o: optim.MultiStepLR(o, [1, 4]),
    lambda o: optim.CosineAnnealingLR(o, 5, eta_min=0.001),
    lambda o: optim.LinearWarmup(o, 3, start_factor=0.2),
    lambda o: optim.LinearWarmup(o, 2, after=optim.CosineAnnealingLR(o, 4)),
    lambda o: optim.ReduceLROnPlateau(o, patience=0, min_lr=0.002),
    lambda o: optim.make_schedule("multistep", o, epochs=6, warmup=2),
]
METRICS = [0.3, 0.3, 0.4, 0.4, 0.4, 0.5, 0.5, 0.5]


@pytest.mark.parametrize("make", SCHEDULE_CASES)
def test_schedules_scale_every_group_from_its_own_base(make):
    lrs = (0.1, 0.01, 0.3)
    got = group_lrs(make(grouped_sgd(lrs)), 8, METRICS)
    alone = [group_lrs(make(grouped_sgd((lr,))), 8, METRICS)[0] for lr in lrs]
    assert got == alone                               # exactly what each group would get alone
    assert len({tuple(col) for col in got}) == 3


@pytest.mark.parametrize("make", SCHEDULE_CASES)
def test_group_schedule_state_round_trip(make):
    ref = make(grouped_sgd())
    expected = group_lrs(ref, 8, METRICS)
    opt = grouped_sgd()
    sched = make(opt)
    head = group_lrs(sched, 4, METRICS)
    state = json.loads(json.dumps(sched.state_dict(), allow_nan=False))   # JSON-able, strictly
    per_group = state.get("base_lrs", state.get("lrs"))
    assert len(per_group) == 3
    opt2 = grouped_sgd((5.0, 5.0, 5.0))             # rebuilt with other lrs: the states decide
    opt2.load_state_dict(npz_round_trip(opt.state_dict()))
    resumed = make(opt2)
    resumed.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    tail = group_lrs(resumed, 5, METRICS[3:])
    assert [h[:3] + t for h, t in zip(head, tail)] == expected


def test_schedule_states_saved_before_groups_still_load():
    sched = optim.StepLR(sgd(), 2, gamma=0.5)
    sched.load_state_dict({"base_lr": 0.2, "last_epoch": 3})
    assert sched.base_lrs == [0.2] and sched.optimizer.lr == 0.1
    plateau = optim.ReduceLROnPlateau(sgd())
    plateau.load_state_dict({"best": 0.5, "num_bad_epochs": 1, "cooldown_counter": 0,
                             "last_epoch": 4, "lr": 0.01})
    assert plateau.optimizer.lr == 0.01 and plateau.lr == 0.01


def test_schedule_state_for_other_groups_is_refused():
    state = optim.StepLR(grouped_sgd(), 2).state_dict()
    with pytest.raises(ValueError, match=r"expected base_lrs as a list of 1 lr\(s\), one per param group"):
        optim.StepLR(sgd(), 2).load_state_dict(state)
    plateau = optim.ReduceLROnPlateau(grouped_sgd()).state_dict()
    with pytest.raises(ValueError, match=r"expected lrs as a list of 2 lr\(s\)"):
        optim.ReduceLROnPlateau(grouped_sgd((0.1, 0.2))).load_state_dict(plateau)
