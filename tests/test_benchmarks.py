"""benchmarks/run.py: its smoke test, its textbook ops against minicnn's, and the harness's
arithmetic and process plumbing (no timing is checked anywhere)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
RUN_PY = os.path.join(BENCH, "run.py")
if BENCH not in sys.path:
    sys.path.append(BENCH)      # appended: the benchmark's modules must not shadow installed ones

import harness  # noqa: E402
import report  # noqa: E402
import textbook  # noqa: E402
import workloads  # noqa: E402


def run(*args, timeout=300):
    return subprocess.run([sys.executable, RUN_PY] + list(args), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_run_quick_prints_every_table_without_errors():
    """--quick: every table, every row, no row replaced by an error (torch left out: the
    test environment need not have it)."""
    proc = run("--quick", "--no-torch")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("GEMM ceiling", "avx", "cores", "| conv 3x3 |", "| batch norm (train) |",
                 "| training, batch 4", "| inference (eval, no grad), batch 4", "| training step memory",
                 "| LeNet-5 (1 channel) |", "| LeNet-5 (3 channels) |", "| ResNet-20 |", "| small VGG |",
                 "| ResNet-18 32x32 (batch 2) |", "textbook ms"):
        assert text in out, text
    assert "Error" not in out and "error" not in out, out
    if os.path.exists("/proc/stat"):
        assert "processes ran while other work kept more than 10% of the cores busy" in out
    # One process per (library, group): gemm, ops x 2 (minicnn, textbook), 5 networks x 2 modes.
    assert proc.stderr.count("round 1/1") == 1 + 2 + 10, proc.stderr


def test_run_compares_with_a_baseline_checkout():
    """--baseline PATH fills the baseline columns from that checkout (here this one)."""
    proc = run("--quick", "--no-torch", "--no-textbook", "--no-memory", "--no-ops", "--no-infer",
               "--only", "1 channel", "--rounds", "2", "--baseline", ROOT)
    assert proc.returncode == 0, proc.stderr
    assert f"# baseline: {ROOT} (git" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| LeNet-5 (1 channel) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 4 and cells[3].endswith("x"), row          # name, minicnn, baseline, ratio
    assert all(c not in ("-", "") for c in cells), row
    assert proc.stderr.count("round 2/2") == 2 + 1, proc.stderr      # gemm + LeNet x 2 checkouts


def test_baseline_must_be_a_minicnn_checkout(tmp_path):
    proc = run("--quick", "--baseline", str(tmp_path))
    assert proc.returncode == 2
    assert "--baseline: expected a minicnn checkout" in proc.stderr and str(tmp_path) in proc.stderr


def test_a_child_imports_the_checkout_it_is_given(tmp_path):
    """enter_checkout refuses to time a minicnn other than the one asked for (here: an empty
    directory, while this checkout is on PYTHONPATH)."""
    code = (f"import sys; sys.path.append({BENCH!r}); import harness; "
            f"harness.enter_checkout({str(tmp_path)!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode != 0
    assert f"asked for the minicnn checkout at {tmp_path}" in proc.stderr
    info = subprocess.run([sys.executable, "-c", code.replace(repr(str(tmp_path)), repr(ROOT))
                           .replace("harness.enter_checkout", "print(harness.enter_checkout") + ")"],
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert os.path.join(ROOT, "minicnn", "__init__.py") in info.stdout


def test_a_failed_child_becomes_an_error_not_a_crash():
    res = harness.run_child({"kind": "no such kind", "lib": "textbook"}, timeout=60)
    assert set(res) == {"error"} and "KeyError" in res["error"]


def test_over_rounds_is_median_min_max():
    assert harness.over_rounds([3.0, 1.0, 2.0, None]) == (2.0, 1.0, 3.0)
    assert harness.over_rounds([None]) is None
    assert report.fmt_spread((200.0, 100.0, 300.0), report.per_second) == "200 (100-300)"
    assert report.fmt_spread((2.0, 1.0, 3.0), report.per_second) == "2.0 (1.0-3.0)"
    assert report.fmt_spread((0.0021, 0.0021, 0.0021), report.ms) == "2.1"
    assert report.fmt_spread(None, report.ms) == "-"
    assert report.ratio((2.0, 1.0, 3.0), (4.0, 4.0, 4.0)) == "0.50x" and report.ratio(None, 1.0) == "-"


def test_rounds_rotate_the_libraries():
    libs = ["minicnn", "baseline", "torch"]
    assert [harness.rotated(libs, k)[0] for k in range(4)] == ["minicnn", "baseline", "torch", "minicnn"]
    assert sorted(harness.rotated(libs, 2)) == sorted(libs)


def test_time_calls_counts_and_fills_the_minimum_time():
    calls = []
    times = harness.time_calls(lambda: calls.append(1), 3, warmup=2)
    assert len(times) == 3 and len(calls) == 5
    times = harness.time_calls(lambda: None, 1, warmup=0, min_seconds=0.02)
    assert len(times) > 1 or sum(times) >= 0.02


def test_busy_elsewhere_returns_the_result_and_a_share():
    result, share = harness.busy_elsewhere(lambda n: sum(range(n)), 200000)
    assert result == sum(range(200000))
    assert share is None if not os.path.exists("/proc/stat") else 0.0 <= share <= 1.0


def test_cpu_description_and_core_count():
    model, isa = harness.cpu_description()
    assert isinstance(model, str) and model
    assert set(isa) <= {"avx512f", "avx2", "fma"}
    assert 1 <= harness.core_count() <= (os.cpu_count() or 1)


def test_tuning_environment_lists_what_children_inherit(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("SOME_OTHER_VARIABLE", "x")
    env = harness.tuning_environment()
    assert env["MALLOC_ARENA_MAX"] == "2" and env["OPENBLAS_NUM_THREADS"] == "1"
    assert "SOME_OTHER_VARIABLE" not in env


def test_textbook_ops_compute_what_minicnn_computes():
    """Else the textbook column would compare against something else."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 9, 9))
    w = rng.standard_normal((5, 4, 3, 3))
    b = rng.standard_normal(5)
    out, cache = F.conv2d_forward(x, w, b, stride=2, pad=1)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(textbook.tb_conv(x, w, b, 2, 1, dout), (out,) + F.conv2d_backward(dout, cache)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    out, cache = F.max_pool2d_forward(x, 3, 2)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(textbook.tb_max_pool(x, 3, 2, dout), (out, F.max_pool2d_backward(dout, cache))):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    out, cache = F.lrn_forward(x, 5, 1e-2, 0.75, 2.0)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(textbook.tb_lrn(x, 5, 1e-2, 0.75, 2.0, dout), (out, F.lrn_backward(dout, cache))):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    out, cache = F.batchnorm_forward(x, gamma, beta, np.zeros(4), np.ones(4), True)
    dx, dgamma, dbeta = F.batchnorm_backward(dout, cache)
    tout, tdx, tdgamma, tdbeta = textbook.tb_batchnorm(x, gamma, beta, dout)
    for got, want in ((tout, out), (tdx, dx), (tdgamma, dgamma), (tdbeta, dbeta)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("case", workloads.model_cases(quick=True), ids=lambda c: c.key + str(c.in_channels))
def test_pytorch_twins_have_minicnn_parameter_counts(case):
    """The PyTorch networks are the same networks: equal parameter counts, equal output shapes."""
    torch = pytest.importorskip("torch")
    mine, theirs = workloads.build_model(case, "minicnn"), workloads.build_model(case, "torch")
    assert sum(p.data.size for p in mine.parameters()) == sum(p.numel() for p in theirs.parameters())
    x, _ = workloads.batch_of(case)
    with torch.no_grad():
        assert tuple(theirs.eval()(torch.from_numpy(x)).shape) == mine.eval()(x).shape


def test_scaling_prints_a_row_per_batch_and_a_column_per_thread_count():
    """benchmarks/scaling.py on tiny settings: each (batch, threads) in its own process, the
    thread count reaching the child (harness.run_child's env), a table with no gaps."""
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "scaling.py"), "--no-torch",
                           "--rounds", "1", "--steps", "1", "--batches", "2,4", "--threads", "1,2",
                           "--model", "LeNet-5 (1 channel)"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert lines[0] == ("| LeNet-5 (1 channel) training, images/s | minicnn 1 thread | "
                        "minicnn 2 threads |"), lines
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["batch 2", "batch 4"]
    assert all("-" != c.strip() for line in lines[2:] for c in line.strip("|").split("|")), lines
    assert proc.stderr.count("round 1/1") == 4, proc.stderr

