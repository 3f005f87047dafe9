"""Data-parallel training over MPI (minicnn.distributed, --sync-bn, minicnn mpi-check).

The first tests need no MPI.  The others start `mpiexec -n 2` on this machine (loopback;
Open MPI refuses root without the two OMPI_ALLOW_RUN_AS_ROOT variables, set here for the
children only) and skip when mpi4py or mpiexec is missing -- `make test` installs both
(the `mpi` extra).  Runs are float64 and tiny: equal means within 1e-10 relative.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import minicnn.functional as F
from minicnn import checkpoint, distributed, nn
from minicnn.data.loader import BatchLoader
from minicnn.distributed import ShardedBatchLoader, launched_by_mpi, shard
from minicnn.functional.sync_batchnorm import sync_batchnorm_backward, sync_batchnorm_forward
from minicnn.nn.sync_batchnorm import SyncBatchNorm2d, sync_batchnorm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-300))


def _max_rel(a, b, keys=None):
    return max(_rel(a[k], b[k]) for k in (keys or a.files))


# --------------------------------------------------------------------------- no MPI needed
def test_importing_minicnn_does_not_import_mpi4py():
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    code = ("import sys, minicnn, minicnn.train, minicnn.cli, minicnn.distributed; "
            "assert minicnn.distributed.world_comm() is None; print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": ROOT},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_launch_is_detected_from_the_launchers_variables():
    assert not launched_by_mpi({"PATH": "/bin"})
    assert launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "2"})
    assert launched_by_mpi({"PMI_SIZE": "4"})           # MPICH / Intel MPI (hydra)
    assert launched_by_mpi({"SLURM_STEP_NUM_TASKS": "8"})  # srun, not sbatch alone


@pytest.mark.parametrize("n", [0, 1, 5, 23, 64])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_shards_cover_the_batch_in_order_and_differ_by_at_most_one(n, size):
    parts = [shard(n, r, size) for r in range(size)]
    assert [i for p in parts for i in range(n)[p]] == list(range(n))
    lengths = [p.stop - p.start for p in parts]
    assert max(lengths) - min(lengths) <= 1


def test_sharded_loader_yields_the_slices_of_the_single_process_batches():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (23, 3, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 10, 23)
    whole = BatchLoader(x, y, 10, augment=True, rng=5)
    ranks = [ShardedBatchLoader(x, y, 10, augment=True, rng=5, rank=r, size=2) for r in (0, 1)]
    for _ in range(2):   # two epochs: the second permutation and augmentation too
        for (xb, yb), *slices in zip(whole, *ranks):
            assert ranks[0].global_batch == len(yb)
            np.testing.assert_array_equal(np.concatenate([s[0] for s in slices]), xb)
            np.testing.assert_array_equal(np.concatenate([s[1] for s in slices]), yb)


def _threads_allreduce(size):
    """An allreduce for ``size`` threads standing in for ranks (sums at a barrier)."""
    barrier, slots = threading.Barrier(size), {}

    def make(rank):
        def allreduce(v):
            slots[rank] = np.array(v, dtype=np.float64)
            barrier.wait()
            total = sum(slots[r] for r in range(size))
            barrier.wait()
            return total
        return allreduce
    return [make(r) for r in range(size)]


@pytest.mark.parametrize("shape, cut", [((6, 4, 3, 3), 2), ((7, 5), 3), ((5, 4), 0)])
def test_sync_batchnorm_over_slices_equals_batchnorm_of_the_whole_batch(shape, cut):
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, shape)
    dout = rng.normal(size=shape)
    c = shape[1]
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    ref_rm, ref_rv = np.zeros(c), np.ones(c)
    out, cache = F.batchnorm_forward(x, gamma, beta, ref_rm, ref_rv, True)
    dx, dgamma, dbeta = F.batchnorm_backward(dout, cache)
    parts = [slice(0, cut), slice(cut, shape[0])]       # cut=0: rank 0 holds no image
    results = [None, None]

    def rank(r, allreduce):
        rm, rv = np.zeros(c), np.ones(c)
        o, ca = sync_batchnorm_forward(x[parts[r]], gamma, beta, rm, rv, True, allreduce)
        results[r] = (o, *sync_batchnorm_backward(dout[parts[r]], ca), rm, rv)

    threads = [threading.Thread(target=rank, args=(r, f))
               for r, f in enumerate(_threads_allreduce(2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(np.concatenate([r[0] for r in results]), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([r[1] for r in results]), dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[0][2] + results[1][2], dgamma, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][3] + results[1][3], dbeta, rtol=1e-12, atol=1e-12)
    for r in results:   # the same running statistics on both ranks, and the single process's
        np.testing.assert_allclose(r[4], ref_rm, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(r[5], ref_rv, rtol=1e-12)


def test_sync_batchnorm_needs_two_values_per_channel_in_the_whole_batch():
    one = np.ones((1, 3))
    with pytest.raises(ValueError, match=r"sync_batchnorm_forward: .*more than 1 value .*received 1"):
        sync_batchnorm_forward(one, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True, lambda v: v)


def test_sync_batchnorm_swaps_layers_keeping_parameters_buffers_and_names():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4, 2), nn.BatchNorm1d(2))
    params, keys = list(model.parameters()), list(model.state_dict())
    mean = model[1].running_mean
    assert sync_batchnorm(model, lambda v: v) == 2
    assert type(model[1]) is SyncBatchNorm2d and type(model[5]).__name__ == "SyncBatchNorm1d"
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert list(model.state_dict()) == keys and model[1].running_mean is mean
    x = np.random.default_rng(0).normal(size=(5, 3, 3, 3)).astype(np.float32)
    out = model(x)        # one process: the identity allreduce is plain BN
    model.backward(np.ones_like(out))
    with pytest.raises(ValueError, match="sync_batchnorm: expected a callable allreduce"):
        sync_batchnorm(model, None)


# --------------------------------------------------------------------------- under mpiexec
def _mpiexec():
    found = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return found if os.path.exists(found) else shutil.which("mpiexec")


def _have_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return _mpiexec() is not None


needs_mpi = pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py and mpiexec "
                               "(pip install '.[mpi]')")


def _env():
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    return {**env, "PYTHONPATH": ROOT, "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1"}


def _launch(n, argv, timeout=120):
    """Run ``argv`` (a Python command line after the interpreter) on n ranks, or alone (n=1)."""
    cmd = [sys.executable] + argv
    if n > 1:
        version = subprocess.run([_mpiexec(), "--version"], capture_output=True, text=True).stdout
        extra = ["--oversubscribe"] if "Open MPI" in version or "prte" in version.lower() else []
        cmd = [_mpiexec(), "-n", str(n)] + extra + cmd
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _worker(n, tmp_path, name, *args):
    out = tmp_path / f"{name}.npz"
    r = _launch(n, [WORKER, "--out", str(out), *args])
    assert r.returncode == 0, r.stderr[-3000:]
    return np.load(out)


@needs_mpi
def test_two_ranks_equal_one_process_without_batchnorm(tmp_path):
    # 70 images in batches of 23: slices of 12/11 images and a last batch of 1, where rank 0
    # holds nothing and still joins the Allreduce.
    one = _worker(1, tmp_path, "one")
    two = _worker(2, tmp_path, "two")
    assert _max_rel(one, two) < 1e-10          # the weights and every epoch's losses and accuracies
    assert "history.val_top5" in two.files


@needs_mpi
def test_two_ranks_with_sync_bn_equal_one_process(tmp_path):
    args = ("--model", "small_cnn", "--batch-size", "16", "--images", "40")
    one = _worker(1, tmp_path, "one", *args)
    two = _worker(2, tmp_path, "two", *args, "--sync-bn")
    assert _max_rel(one, two) < 1e-10        # parameters and running statistics


@needs_mpi
def test_per_rank_bn_is_batchnorm_over_each_ranks_slice(tmp_path):
    # The documented difference: without --sync-bn, 2 ranks compute what one process computes
    # with BN statistics per half-batch ("ghost batches"), not what it computes on whole batches.
    args = ("--model", "small_cnn", "--batch-size", "16", "--images", "40")
    one = _worker(1, tmp_path, "one", *args)
    two = _worker(2, tmp_path, "two", *args)
    halves = _worker(1, tmp_path, "halves", *args, "--mode", "ghost")
    params = [k for k in one.files if "running" not in k and not k.startswith("history.")]
    assert _max_rel(halves, two, params) < 1e-10
    assert _max_rel(one, two, params) > 1e-6


@needs_mpi
@pytest.mark.parametrize("resume_ranks", [1, 2])
def test_an_interrupted_distributed_run_resumes_as_if_uninterrupted(tmp_path, resume_ranks):
    whole = _worker(2, tmp_path, "whole")
    run = str(tmp_path / "run")
    r = _launch(2, [WORKER, "--run-dir", run, "--stop-at", "1", "2"])
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = checkpoint.load(os.path.join(run, "last.npz"))
    assert (ckpt.epoch, ckpt.batch, ckpt.config["world_size"]) == (0, 2, 2)
    resumed = _worker(resume_ranks, tmp_path, "resumed", "--run-dir", run, "--resume")
    assert _max_rel(whole, resumed) < 1e-10
    assert json.load(open(os.path.join(run, "config.json")))["world_size"] == resume_ranks


@needs_mpi
def test_a_killed_rank_ends_the_job_and_leaves_a_loadable_checkpoint(tmp_path):
    run = str(tmp_path / "run")
    start = time.monotonic()
    r = _launch(2, [WORKER, "--run-dir", run, "--epochs", "50", "--kill-rank", "1"], timeout=90)
    assert time.monotonic() - start < 60
    assert r.returncode != 0
    assert checkpoint.load(os.path.join(run, "last.npz")).epoch >= 1


@needs_mpi
def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_batch_and_saves(tmp_path):
    run, pids = str(tmp_path / "run"), str(tmp_path / "pid")
    cmd = [_mpiexec(), "-n", "2", "--oversubscribe", sys.executable, WORKER, "--run-dir", run,
           "--epochs", "500", "--batch-size", "4", "--pid-file", pids]
    job = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(pids + ".1") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        os.kill(int(open(pids + ".1").read()), signal.SIGINT)
        _, err = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == 0, err[-3000:]          # every rank left fit by KeyboardInterrupt
    ckpt = checkpoint.load(os.path.join(run, "last.npz"))
    assert ckpt.epoch < 500 and (ckpt.epoch, ckpt.batch) > (0, 3)


@needs_mpi
def test_an_exception_on_one_rank_aborts_every_rank_with_a_message(tmp_path):
    start = time.monotonic()
    r = _launch(2, [WORKER, "--epochs", "50", "--raise-rank", "1"], timeout=90)
    assert time.monotonic() - start < 60
    assert r.returncode != 0
    assert "rank 1 of 2" in r.stderr and "a test failure on one rank" in r.stderr


@needs_mpi
def test_cli_train_on_two_ranks_then_evaluate_agrees_with_one_process(tmp_path):
    def train(n, out):
        r = _launch(n, ["-m", "minicnn.cli", "train", "--model", "small_cnn", "--model-arg",
                        "width=0.5", "--limit", "96", "--batch-size", "32", "--epochs", "2",
                        "--lr", "0.01", "--sync-bn", "--no-progress", "--out", str(out)])
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout

    log = train(2, tmp_path / "two")
    train(1, tmp_path / "one")
    assert log.count("epoch 2/2:") == 1 and "2 MPI ranks (sync BN)" in log   # rank 0 alone logs
    config = json.load(open(tmp_path / "two" / "config.json"))
    assert config["world_size"] == 2 and config["sync_bn"] is True
    results = []
    for run in ("one", "two"):
        r = _launch(1, ["-m", "minicnn.cli", "evaluate", str(tmp_path / run)])
        assert r.returncode == 0, r.stderr
        results.append(json.loads(r.stdout))
    assert results[0]["accuracy"] == results[1]["accuracy"]
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-4)


@needs_mpi
def test_mpi_check_reports_ranks_and_timings():
    r = _launch(2, ["-m", "minicnn.cli", "mpi-check", "--sizes", "10", "100000", "--repeat", "3"])
    assert r.returncode == 0, r.stderr
    assert "2 rank(s)" in r.stdout and "rank 1:" in r.stdout and "right" in r.stdout
    assert "100,000" in r.stdout


# --------------------------------------------------------------------------- the benchmark and its doc
BENCH = os.path.join(ROOT, "benchmarks", "distributed.py")
DOC = os.path.join(ROOT, "docs", "distributed.md")


def _bench():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_distributed", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scaling_model_is_the_ring_formula():
    bench = _bench()
    assert bench.ring_allreduce_seconds(1, 1e6, 1e9, 1e-5) == 0
    # 4 nodes: 6 latencies and 1.5 x the buffer over the link
    assert bench.ring_allreduce_seconds(4, 1e6, 1e9, 1e-5) == pytest.approx(6e-5 + 1.5e-3)
    assert bench.step_seconds(4, 128, 1e-3, 1e6, 1e9, 1e-5) == pytest.approx(0.032 + 6e-5 + 1.5e-3)
    assert bench.small_allreduce_seconds(8, 100, 1e9, 1e-5) == pytest.approx(3 * (1e-5 + 1e-7))


def test_the_docs_numbers_and_tables_are_what_the_benchmark_prints_from_its_measurements():
    out = subprocess.run([sys.executable, BENCH, "table",
                          os.path.join(ROOT, "docs", "results", "distributed.json")],
                         env=_env(), capture_output=True, text=True, check=True).stdout
    doc = open(DOC, encoding="utf-8").read()
    missing = [line for line in out.splitlines() if line.strip() and line not in doc]
    assert not missing, f"docs/distributed.md lacks these lines of the benchmark's output: {missing}"


@needs_mpi
def test_benchmark_throughput_runs_on_two_ranks():
    r = _launch(2, [BENCH, "throughput", "resnet20", "32", "4", "1"])
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["images_per_second"] > 0 and result["sum_gradients_seconds"] > 0


class _FakeComm:
    """Enough of a communicator for DataParallel on one 'rank' (Bcast and Allreduce of one)."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Bcast(self, buf, root=0):
        pass

    def Allreduce(self, sendbuf, recvbuf, op=None):
        pass


@pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py")
def test_each_rank_draws_dropout_masks_from_its_own_stream():
    def masks(rank):
        model = nn.Sequential(nn.Linear(4, 64, rng=0), nn.Dropout(0.5, rng=1))
        distributed.DataParallel(_FakeComm(rank, 3), model)
        return model(np.ones((2, 4)).astype(np.float32)) != 0

    single = nn.Sequential(nn.Linear(4, 64, rng=0), nn.Dropout(0.5, rng=1))(np.ones((2, 4), np.float32)) != 0
    np.testing.assert_array_equal(masks(0), single)        # rank 0 keeps the single process's stream
    assert (masks(1) != masks(0)).any() and (masks(2) != masks(1)).any()


class _StopFlagComm(_FakeComm):
    """One rank that records the Ctrl-C flag of each exchange (the buffer's last value) and
    runs ``inject`` once, during the next exchange."""

    def __init__(self, *args):
        super().__init__(*args)
        self.sent, self.inject = [], None

    def Allreduce(self, sendbuf, recvbuf, op=None):
        self.sent.append(float(recvbuf[-1]))
        if self.inject:
            self.inject()
            self.inject = None


def _one_rank_trainer():
    """(comm, trainer, step) of a tiny distributed run on one fake rank; step() trains a batch."""
    from minicnn import optim
    from minicnn.train import Trainer
    comm = _StopFlagComm(0, 1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3, rng=0))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3, 2, 2)).astype(np.float32), rng.integers(0, 3, 12)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), (x, y), batch_size=4,
                      normalize=False, comm=comm)
    batches = iter(trainer.loader)
    return comm, trainer, lambda: trainer.step(*trainer._to_model(*next(batches)))


@pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py")
def test_a_ctrl_c_during_the_exchange_is_sent_with_the_next_one():
    comm, trainer, step = _one_rank_trainer()
    assert trainer._stop.agreed
    comm.inject = lambda: trainer._stop._handler(signal.SIGINT, None)   # a Ctrl-C during the exchange
    step()
    assert comm.sent == [0.0] and not trainer._stop.requested   # not acted on by this rank alone
    assert trainer._stop.pending
    step()
    assert comm.sent == [0.0, 1.0] and trainer._stop.requested   # sent, agreed: every rank stops


@pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py")
def test_a_ctrl_c_after_the_exchange_waits_for_the_next_one():
    """A Ctrl-C that lands after this rank's exchange -- while it applies the step -- must not
    stop this rank alone after the batch: the others would wait in the next exchange forever
    (what made the two-rank Ctrl-C test hang one run in eight)."""
    comm, trainer, step = _one_rank_trainer()
    step_optimizer = trainer.optimizer.step

    def interrupted_step():
        trainer._stop._handler(signal.SIGINT, None)        # Ctrl-C while the step is applied
        step_optimizer()

    trainer.optimizer.step = interrupted_step
    step()
    assert comm.sent == [0.0] and not trainer._stop.requested and trainer._stop.pending
    trainer.optimizer.step = step_optimizer
    step()
    assert comm.sent == [0.0, 1.0] and trainer._stop.requested
    with pytest.raises(KeyboardInterrupt):                 # a second Ctrl-C stops at once
        trainer._stop._handler(signal.SIGINT, None)


def test_without_mpi4py_a_distributed_launch_says_what_to_install(tmp_path):
    # A directory that shadows mpi4py with a package that fails to import.
    (tmp_path / "mpi4py").mkdir()
    (tmp_path / "mpi4py" / "__init__.py").write_text("raise ImportError('no MPI here')\n")
    env = {**_env(), "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "OMPI_COMM_WORLD_SIZE": "2"}
    for argv in (["train", "--model", "small_cnn", "--out", str(tmp_path / "run")], ["mpi-check"]):
        r = subprocess.run([sys.executable, "-m", "minicnn.cli", *argv], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert "pip install 'minicnn[mpi]'" in r.stderr and "Traceback" not in r.stderr
