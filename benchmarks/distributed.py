"""Data-parallel training on this machine, and on paper for a cluster (docs/distributed.md).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=$PWD .venv/bin/python \\
        benchmarks/distributed.py measure --save docs/results/distributed.json   # ~3 minutes
    PYTHONPATH=$PWD .venv/bin/python benchmarks/distributed.py table docs/results/distributed.json

``measure`` times, with the Trainer's own step (float32, random images):
- ResNet-20 training images/s as 1 process x 2 threads and as 2 MPI ranks x 1 thread
  (``mpiexec -n 2``), and the part of a 2-rank step spent summing gradients (pack, Allreduce,
  unpack: ``DataParallel._sum_gradients``);
- the compute time per image of one process on one thread, for ResNet-20 (32x32) and
  ResNet-50 (224x224): the "compute" of the scaling model;
- float32 Allreduce time against buffer size between 2 ranks over loopback.

``table`` prints the scaling model from those measurements (markdown; the doc's tables are
this output, checked by tests/test_distributed.py):

    step(N) = compute_per_image * B / N + allreduce(N)
    allreduce(N) = 2 (N - 1) * latency + 2 (N - 1) / N * gradient_bytes / bandwidth

a ring allreduce: a reduce-scatter and an all-gather of N - 1 steps each, every step one
message of 1/N of the buffer per node (Patarasuk & Yuan, 2009).  Speed-up = step(1) * N /
step(N) at a fixed per-node batch (the global batch grows with N), and step(1) / step(N) at
a fixed global batch; "with sync BN" adds the BatchNorm sums of --sync-bn, small allreduces
that cost latency (``sync_bn_seconds``).  Compute does not overlap communication in minicnn,
so no overlap is assumed.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = (1, 2, 4, 8, 16, 32, 64)
# Nominal links: bandwidth in bytes/s (line rate; a tuned ring reaches 80-90% of it) and the
# latency of one message between two nodes (TCP over 10 GbE; RDMA over 100 Gb InfiniBand/RoCE).
LINKS = {"10 GbE": (1.25e9, 30e-6), "100 Gb": (12.5e9, 3e-6)}
FASTER = 100   # a GPU's speed-up over one core, roughly, for the "faster nodes" line
MODELS = {  # name: (zoo name, input side, classes, global batch of the fixed-batch table)
    "ResNet-20": ("resnet20", 32, 10, 128),
    "ResNet-50": ("resnet50", 224, 1000, 256),
}


# ------------------------------------------------------------------------------ the model
def ring_allreduce_seconds(nodes, nbytes, bandwidth, latency):
    """Time of a ring allreduce of ``nbytes`` over ``nodes`` nodes (0 for one node)."""
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) * latency + 2 * (nodes - 1) / nodes * nbytes / bandwidth


def step_seconds(nodes, batch, per_image, nbytes, bandwidth, latency):
    """One data-parallel step: each node computes batch / nodes images, then the allreduce."""
    return per_image * batch / nodes + ring_allreduce_seconds(nodes, nbytes, bandwidth, latency)


def small_allreduce_seconds(nodes, nbytes, bandwidth, latency):
    """A small allreduce (a BN layer's sums): recursive doubling, log2(N) exchanges of the
    whole buffer -- what MPI libraries choose below a few kB, where the ring's 2 (N - 1)
    latencies would dominate."""
    rounds = math.ceil(math.log2(nodes)) if nodes > 1 else 0
    return rounds * (latency + nbytes / bandwidth)


def sync_bn_seconds(nodes, bn_channels, bandwidth, latency):
    """What --sync-bn adds to a step: per BN layer of C channels, one allreduce of 2C + 1
    float64 values in the forward pass and one of 2C in the backward pass."""
    return sum(small_allreduce_seconds(nodes, 8 * (2 * c + 1), bandwidth, latency)
               + small_allreduce_seconds(nodes, 8 * 2 * c, bandwidth, latency) for c in bn_channels)


def model_facts(zoo, classes):
    """(parameters, the channels of every BatchNorm layer) of a zoo model."""
    from minicnn import models
    from minicnn.nn.layers import BatchNorm1d, BatchNorm2d
    net = models.create(zoo, num_classes=classes, rng=0)
    channels = [m.num_features for m in net.modules() if isinstance(m, (BatchNorm1d, BatchNorm2d))]
    return net.num_parameters(), channels


def table(measured):
    """The markdown tables of the scaling model, one per model, from ``measured``."""
    lines = []
    for name, (zoo, side, classes, batch) in MODELS.items():
        per_image = measured["compute_seconds_per_image"][zoo]
        params, channels = model_facts(zoo, classes)
        nbytes = 4 * params
        lines += [f"**{name}** ({params:,} parameters, {nbytes / 1e6:.1f} MB of float32 gradients, "
                  f"{len(channels)} BN layers; compute {per_image * 1e3:.1f} ms per image on one "
                  "core here)", "",
                  "| nodes | " + " | ".join(f"{link}: step ms, B={batch} | speed-up | with sync BN "
                                            f"| speed-up, {batch} per node" for link in LINKS) + " |",
                  "|---:|" + "---:|---:|---:|---:|" * len(LINKS)]
        for n in NODES:
            cells = []
            for bandwidth, latency in LINKS.values():
                one = step_seconds(1, batch, per_image, nbytes, bandwidth, latency)
                fixed = step_seconds(n, batch, per_image, nbytes, bandwidth, latency)
                synced = fixed + sync_bn_seconds(n, channels, bandwidth, latency)
                grown = step_seconds(n, batch * n, per_image, nbytes, bandwidth, latency)
                cells += [f"{fixed * 1e3:,.1f}", f"{one / fixed:.1f}x", f"{one / synced:.1f}x",
                          f"{one * n / grown:.1f}x"]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        bandwidth, latency = LINKS["10 GbE"]
        fast = per_image / FASTER
        one = step_seconds(1, batch, fast, nbytes, bandwidth, latency)
        speedups = [one / step_seconds(n, batch, fast, nbytes, bandwidth, latency) for n in (8, 64)]
        lines += ["", f"{name} on nodes {FASTER}x faster (a GPU each), B={batch} over 10 GbE: "
                  f"speed-up {speedups[0]:.1f}x on 8 nodes, {speedups[1]:.1f}x on 64.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------- measurements
def _env(threads):
    n = str(threads)
    return {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
            "MKL_NUM_THREADS": n, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def _child(args, threads, ranks=1):
    cmd = [sys.executable, os.path.abspath(__file__)] + args
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(ranks),
               "--oversubscribe"] + cmd
    out = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def throughput(model, side, batch, steps):
    """(images/s, seconds summing gradients per step) of Trainer steps on random images,
    over MPI when launched so; run as a child process (printed as JSON by rank 0)."""
    from minicnn import distributed, models, optim
    from minicnn.train import Trainer
    comm = distributed.world_comm()
    classes = {zoo: c for zoo, _, c, _ in MODELS.values()}[model]
    net = models.create(model, num_classes=classes, rng=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * (steps + 1), 3, side, side)).astype(np.float32)
    y = rng.integers(0, classes, len(x))
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    trainer = Trainer(net, opt, (x, y), batch_size=batch, normalize=False, comm=comm)
    summing = [0.0]
    if trainer.dist is not None:
        plain = trainer.dist._sum_gradients

        def timed(*a):
            t = time.perf_counter()
            out = plain(*a)
            summing[0] += time.perf_counter() - t
            return out
        trainer.dist._sum_gradients = timed
    batches = iter(trainer.loader)
    trainer.step(*trainer._to_model(*next(batches)))          # warm-up: buffers, workspaces
    summing[0] = 0.0
    start, cpu = time.perf_counter(), time.process_time()
    for xb, yb in batches:
        trainer.step(*trainer._to_model(xb, yb))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if distributed.rank_of(comm) == 0:
        print(json.dumps({"images_per_second": batch * steps / seconds,
                          "sum_gradients_seconds": summing[0] / steps,
                          "step_seconds": seconds / steps,
                          "cpu_seconds_per_image": cpu / (batch * steps)}))


def allreduce_sizes(sizes):
    from minicnn import distributed
    rows = distributed.allreduce_timings(distributed.world_comm(), sizes, repeat=20)
    if distributed.rank_of(distributed.world_comm()) == 0:
        print(json.dumps(rows))


def measure(save):
    r20 = ["throughput", "resnet20", "32", "128", "8"]
    one_two = _child(r20, threads=2)
    two_one = _child(r20, threads=1, ranks=2)
    one_one = _child(r20, threads=1)
    r50 = _child(["throughput", "resnet50", "224", "4", "2"], threads=1)
    sizes = [2 ** k for k in range(4, 26, 3)] + [269722, 25557032]   # + ResNet-20's, ResNet-50's
    loopback = _child(["allreduce"] + [str(s) for s in sorted(sizes)], threads=1, ranks=2)
    result = {
        "resnet20_1_process_2_threads": one_two,
        "resnet20_2_ranks_1_thread": two_one,
        # CPU time of one single-threaded process: what a core does, whatever else runs here.
        "compute_seconds_per_image": {"resnet20": one_one["cpu_seconds_per_image"],
                                      "resnet50": r50["cpu_seconds_per_image"]},
        "load_average": os.getloadavg()[0], "cores": os.cpu_count(),
        "allreduce_loopback_2_ranks": loopback,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if save:
        with open(save, "w") as f:
            f.write(text + "\n")


def report(measured):
    """The measured numbers as the doc quotes them."""
    from minicnn import distributed
    a, b = measured["resnet20_1_process_2_threads"], measured["resnet20_2_ranks_1_thread"]
    print(f"load average while measuring: {measured['load_average']:.1f} on {measured['cores']} cores")
    print(f"ResNet-20, batch 128: 1 process x 2 threads {a['images_per_second']:.0f} images/s; "
          f"2 ranks x 1 thread {b['images_per_second']:.0f} images/s; summing gradients "
          f"{b['sum_gradients_seconds'] * 1e3:.2f} ms of a {b['step_seconds'] * 1e3:.0f} ms step")
    print("| float32 values | MB | median ms | best ms | GB/s (best) |\n|---:|---:|---:|---:|---:|")
    for values, median, best in measured["allreduce_loopback_2_ranks"]:
        print(f"| {values:,} | {values * 4 / 1e6:.3f} | {median * 1e3:.3f} | {best * 1e3:.3f} | "
              f"{distributed.bus_bandwidth(values, best, 2) / 1e9:.2f} |")
    print()
    print(table(measured))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("measure", help="time on this machine (a few minutes)")
    m.add_argument("--save", help="write the measurements as JSON here")
    t = sub.add_parser("table", help="the measured numbers and the scaling tables")
    t.add_argument("measured", help="the JSON that `measure --save` wrote")
    c = sub.add_parser("throughput")
    c.add_argument("model")
    c.add_argument("side", type=int)
    c.add_argument("batch", type=int)
    c.add_argument("steps", type=int)
    a = sub.add_parser("allreduce")
    a.add_argument("sizes", type=int, nargs="+")
    args = p.parse_args(argv)
    if args.what == "measure":
        measure(args.save)
    elif args.what == "table":
        with open(args.measured) as f:
            report(json.load(f))
    elif args.what == "throughput":
        throughput(args.model, args.side, args.batch, args.steps)
    else:
        allreduce_sizes(args.sizes)


if __name__ == "__main__":
    main()
