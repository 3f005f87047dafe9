"""Data-parallel training over MPI: N processes train one model as one process would.

    mpiexec -n 4 minicnn train --model resnet20 --batch-size 128 ...    # 4 ranks, global batch 128

or from Python, under ``mpiexec -n 4 python script.py``::

    comm = minicnn.distributed.world_comm()        # MPI.COMM_WORLD, or None without mpiexec
    history = fit(model, opt, train, val, batch_size=128, comm=comm, sync_bn=True)

Every rank holds the whole model.  One training step (``DataParallel.step``):

1. every rank draws the *same* global batch (the same permutation and augmentation as a
   single process with that seed: ``ShardedBatchLoader``) and keeps its slice of it, rank r
   images ``[r * B // N, (r + 1) * B // N)``;
2. forward and backward on the slice.  The loss is the mean over the global batch, so the
   rank's loss gradient is scaled by (its images / B) -- its share of the mean;
3. the gradients are packed into one flat buffer (with the loss, the number right and a
   Ctrl-C flag behind them) and summed over the ranks with one ``Allreduce``: every rank now
   holds the gradient of the whole batch, exactly, uneven slices and the last partial
   batch included.  A rank with no images adds zeros but still takes part;
4. every rank applies the same optimizer step to the same weights: they stay identical.

Parameters and buffers are broadcast from rank 0 at the start.  BatchNorm layers use the
statistics of their own rank's slice (per-rank BN, as Horovod and PyTorch's DDP do by
default); their running statistics are averaged over the ranks at the end of every epoch,
so evaluation and the checkpoint see one model.  ``sync_bn=True`` swaps them for
``minicnn.nn.sync_batchnorm`` layers, which use the statistics of the whole batch: then N
ranks compute what one process computes.  Validation is split over the ranks and its sums
reduced.  Rank 0 alone writes files and logs (``minicnn.train.fit`` sees to that).

mpi4py is imported only here and only when a run is distributed (``mpi()``), so a plain
``import minicnn`` needs no MPI.  An exception on one rank while the others wait in a
collective would hang the job: ``abort_on_error`` turns it into ``MPI_Abort`` of all ranks.
"""
import contextlib
import os
import socket
import sys
import time
import traceback

import numpy as np

from minicnn import backend
from minicnn.data.loader import BatchLoader
from minicnn.evaluation import evaluate
from minicnn.functional.loss import softmax_cross_entropy
from minicnn.nn.sync_batchnorm import sync_batchnorm

# Set by the launchers in every process they start: Open MPI's mpiexec, MPICH/Intel's
# hydra, PMIx launchers (Open MPI 5, srun --mpi=pmix) and srun's own steps.
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS",
                      "SLURM_STEP_NUM_TASKS")

_INSTALL_HINT = "install it with: pip install 'minicnn[mpi]' (mpi4py and an MPI runtime)"


def launched_by_mpi(environ=None):
    """Whether this process was started by an MPI launcher (mpiexec, srun): the variable test,
    no MPI imported."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in LAUNCHER_VARIABLES)


def mpi():
    """The ``mpi4py.MPI`` module (initialising MPI), with a clear error when it is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(f"distributed training needs mpi4py ({e}); {_INSTALL_HINT}") from None
    return MPI


def world_comm():
    """``MPI.COMM_WORLD`` when this process is one of several MPI ranks, else None (a plain run:
    without a launcher MPI is not even imported)."""
    if not launched_by_mpi():
        return None
    comm = mpi().COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def rank_of(comm):
    """This process's rank (0 without a communicator)."""
    return 0 if comm is None else comm.Get_rank()


def size_of(comm):
    """The number of ranks (1 without a communicator)."""
    return 1 if comm is None else comm.Get_size()


def shard(n, rank, size):
    """The slice of ``n`` items that rank ``rank`` of ``size`` takes: contiguous, sizes differing
    by at most one, in rank order (so the slices put back together are the whole)."""
    return slice(rank * n // size, (rank + 1) * n // size)


@contextlib.contextmanager
def abort_on_error(comm):
    """Run the block; an exception on this rank aborts every rank (``MPI_Abort``), with a
    message naming the rank, instead of leaving the others waiting in a collective."""
    try:
        yield
    except BaseException as e:   # noqa: B036 -- Ctrl-C and SystemExit too: the others must stop
        if comm is None:
            raise
        code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 1
        if isinstance(e, SystemExit) and code == 0:
            raise
        where = f"rank {comm.Get_rank()} of {comm.Get_size()} on {socket.gethostname()}"
        if isinstance(e, SystemExit):
            what = f"exits with code {code}"
        else:
            what = f"failed ({''.join(traceback.format_exception_only(type(e), e)).strip()})"
        print(f"minicnn: {where} {what}; ending all ranks", file=sys.stderr, flush=True)
        comm.Abort(code if code else 1)


def _jumped(bit_generator, times):
    """``bit_generator`` moved far ahead ``times`` times; one without ``jumped`` (SFC64) is
    reseeded from a draw of its own and ``times`` instead."""
    if hasattr(bit_generator, "jumped"):
        return bit_generator.jumped(times)
    seed = int(np.random.Generator(bit_generator).integers(2 ** 63))
    return type(bit_generator)(np.random.SeedSequence([seed, times]))


class ShardedBatchLoader(BatchLoader):
    """A ``BatchLoader`` that draws every batch of the whole run, as a single process would,
    and yields only this rank's slice of it (``shard``).

    The augmentation of an image is drawn with the epoch's plan for the whole training set,
    so a slice is cropped and flipped exactly as the same images in a single-process batch.
    ``global_batch`` is the size of the last whole batch (all ranks' images).  The state
    (``state_dict``) is the whole run's, so a run resumes with another number of ranks.
    """

    def __init__(self, *args, rank=0, size=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.rank, self.size, self.global_batch = rank, size, 0

    def _batch(self, idx, offsets, flips):
        self.global_batch = len(idx)
        return super()._batch(idx[shard(len(idx), self.rank, self.size)], offsets, flips)


class DataParallel:
    """What one model needs to train over the ranks of ``comm``: the broadcast at the start,
    the sharded loader, the step with its gradient Allreduce, sharded evaluation.

    ``sync_bn=True`` swaps the model's BatchNorm layers for synchronized ones first.
    """

    def __init__(self, comm, model, sync_bn=False):
        self.comm, self.mpi = comm, mpi()
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.sync_bn = bool(sync_bn) and sync_batchnorm(model, self.allreduce) > 0
        self.params = list(model.parameters())
        self._flat = None
        self.broadcast(model)
        self.own_streams(model)

    def allreduce(self, vector):
        """The sum over the ranks of a float NumPy vector (every rank gets it)."""
        vector = np.ascontiguousarray(vector)
        self.comm.Allreduce(self.mpi.IN_PLACE, vector, op=self.mpi.SUM)
        return vector

    def broadcast(self, model):
        """Rank 0's parameters and buffers to every rank (in place)."""
        for a in [p.data for p in self.params] + list(model.buffers()):
            host = np.ascontiguousarray(backend.asnumpy(a))
            self.comm.Bcast(host, root=0)
            if host is not a:      # a copy (a CuPy or non-contiguous array): put it back
                a[...] = backend.to_backend(host, backend.device_of(a))

    def own_streams(self, model):
        """Give each rank its own stream of the model's Generators (Dropout masks, stochastic
        depth): built from one seed, every rank would otherwise drop the same units for the
        k-th image of its slice.  Rank r jumps about r x 2^127 draws ahead (``jumped``); rank 0
        keeps the single process's stream.  Called at the start and after a resume."""
        seen = set()
        for module in model.modules():
            for value in vars(module).values():
                if isinstance(value, np.random.Generator) and id(value) not in seen:
                    seen.add(id(value))
                    if self.rank:
                        value.bit_generator.state = _jumped(value.bit_generator, self.rank).state

    def loader(self, *args, **kwargs):
        """A ``ShardedBatchLoader`` for this rank (BatchLoader's arguments)."""
        return ShardedBatchLoader(*args, rank=self.rank, size=self.size, **kwargs)

    def step(self, trainer, xb, yb):
        """``Trainer.step`` over the ranks (see the module doc): xb, yb are this rank's slice of
        a global batch of ``trainer.loader.global_batch`` images.  Returns (loss of the whole
        batch, number right in the whole batch)."""
        model, optimizer, n = trainer.model, trainer.optimizer, len(yb)
        total = trainer.loader.global_batch
        optimizer.zero_grad()
        loss_sum = correct = 0.0
        # An empty slice skips the model, unless synchronized BN layers wait for its sums.
        if n or self.sync_bn:
            scores = model(xb)
            if n:
                loss, dscores = softmax_cross_entropy(scores, yb)
                loss_sum, correct = loss * n, int((scores.argmax(axis=1) == yb).sum())
                dscores *= dscores.dtype.type(n / total)        # this rank's share of the mean
            else:
                dscores = backend.get_array_module(scores).zeros_like(scores)
            model.backward(dscores)
        # Ctrl-C on any rank stops every rank after the same batch: a rank's Ctrl-C is only
        # pending (runs.CtrlC, agreed=True) until an exchange has carried it to every rank.
        # One that arrives after this rank sent its flag -- during the exchange, where a
        # waiting rank spends its time, or after it -- stays pending for the next one.
        loss, correct, stop = self._sum_gradients(loss_sum, correct, trainer._stop.pending)
        if stop:
            trainer._stop.requested = True
        loss /= total
        trainer._check_loss(loss)             # the same numbers on every rank: all stop, or none
        trainer._check_gradients(loss)
        optimizer.step()
        return loss, int(round(correct))

    def _sum_gradients(self, loss_sum, correct, stop):
        """Sum every gradient, the loss, the count right and the stop flag over the ranks with
        one Allreduce of one flat buffer; the gradients are written back in place."""
        grads = [p.grad for p in self.params]
        sizes = [g.size for g in grads]
        if self._flat is None or self._flat.dtype != grads[0].dtype:
            self._flat = np.empty(sum(sizes) + 3, dtype=grads[0].dtype)
        flat, offset = self._flat, 0
        for g, size in zip(grads, sizes):
            flat[offset:offset + size] = backend.asnumpy(g).ravel()
            offset += size
        flat[offset:] = (loss_sum, correct, 1.0 if stop else 0.0)
        self.allreduce(flat)
        offset = 0
        for g, size in zip(grads, sizes):
            g[...] = backend.to_backend(flat[offset:offset + size].reshape(g.shape),
                                        backend.device_of(g))
            offset += size
        return float(flat[offset]), float(flat[offset + 1]), bool(flat[offset + 2] > 0)

    def average_running_stats(self, model):
        """Per-rank BN: replace every rank's running statistics by their mean over the ranks
        (the checkpoint and the evaluation then see one model).  Synchronized BN keeps
        identical statistics on every rank already: nothing to do."""
        buffers = [b for b in model.buffers() if np.dtype(b.dtype).kind == "f"]
        if self.sync_bn or not buffers:
            return
        flat = np.concatenate([backend.asnumpy(b).astype(np.float64).ravel() for b in buffers])
        flat = self.allreduce(flat) / self.size
        offset = 0
        for b in buffers:
            b[...] = backend.to_backend(flat[offset:offset + b.size].reshape(b.shape).astype(b.dtype),
                                        backend.device_of(b))
            offset += b.size

    def evaluate(self, model, x, y, batch_size, mean=None, std=None):
        """``minicnn.evaluation.evaluate`` with each rank scoring its slice of (x, y): the
        loss, accuracy and top-5 of the whole set, on every rank."""
        part = shard(len(y), self.rank, self.size)
        n = part.stop - part.start
        sums = np.zeros(4)
        if n:
            m = evaluate(model, x[part], y[part], batch_size, mean, std)
            sums[:] = (m["loss"] * n, round(m["accuracy"] * n), round(m["top5"] * n), n)
        sums = self.allreduce(sums)
        return {"loss": sums[0] / sums[3], "accuracy": sums[1] / sums[3], "top5": sums[2] / sums[3]}


# ------------------------------------------------------------------ measurement
def allreduce_timings(comm, sizes, repeat=20, warmup=3):
    """Seconds of one float32 ``Allreduce`` (sum) of each size in ``sizes`` (numbers of
    values) over ``comm``, timed ``repeat`` times after ``warmup`` untimed calls, the slowest
    rank's.  Returns a list of (values, median seconds, best seconds): the median is what a
    step pays on this machine as it is, the best what the link can do when nothing else runs."""
    MPI = mpi()
    rows = []
    for size in sizes:
        buf = np.ones(int(size), dtype=np.float32)
        times = []
        for i in range(warmup + repeat):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        rows.append((int(size), comm.allreduce(float(np.median(times)), op=MPI.MAX),
                     comm.allreduce(float(np.min(times)), op=MPI.MAX)))
    return rows


def bus_bandwidth(values, seconds, ranks, itemsize=4):
    """Bytes per second each rank moves in a ring allreduce of ``values`` values: it sends
    2 (N - 1) / N times the buffer (reduce-scatter, then all-gather)."""
    return 2 * (ranks - 1) / ranks * values * itemsize / seconds if ranks > 1 else float("nan")
