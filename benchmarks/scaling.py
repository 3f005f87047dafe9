"""How ResNet-20's training speed grows with the batch and the threads, minicnn vs PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=$PWD \\
        /path/to/torchvenv/bin/python benchmarks/scaling.py [--rounds 3] [--model ResNet-20]
        [--batches 32,64,128,256] [--threads 1,2] [--steps 5] [--no-torch]

Training images/s (forward, backward, SGD momentum step, random data) at batch 32, 64,
128 and 256, with 1 and with 2 threads.  Timed as run.py times (harness.py): each
(library, batch, threads) in a fresh process, the libraries alternating, --rounds rounds,
the table's figure the median over rounds of each process's median step, the min-max
beside it.  The thread count is set in the child's environment before anything loads
(OMP_NUM_THREADS, which minicnn's pool, its OpenMP kernels and OpenBLAS read, and
OPENBLAS_NUM_THREADS), and PyTorch gets torch.set_num_threads(threads).
"""
import argparse
import importlib.util
import sys
import time

import harness
import workloads

BATCHES = (32, 64, 128, 256)
THREADS = (1, 2)


def job(row, lib, batch, threads, steps):
    import run
    return {"kind": "train", "row": row, "rows": None, "lib": lib, "quick": False,
            "path": run.ROOT if lib == "minicnn" else None, "cores": threads, "repeat": 1,
            "steps": steps, "min_time": 0.5, "batch": batch}


def measure(model, rounds, steps, libs, batches=BATCHES, thread_counts=THREADS):
    """{(lib, batch, threads): [images/s of each round's process]}; progress on stderr."""
    names = [c.name for c in workloads.model_cases(False)]
    if model not in names:
        raise SystemExit(f"scaling.py: expected --model one of {', '.join(names)}, received {model!r}")
    row = names.index(model)
    results, start = {}, time.time()
    for r in range(rounds):
        for threads in thread_counts:
            for batch in batches:
                for lib in harness.rotated(libs, r):
                    env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
                    res = harness.run_child(job(row, lib, batch, threads, steps), env=env)
                    times = (res.get("result") or {}).get("times")
                    ips = batch / sorted(times)[len(times) // 2] if times else None
                    print(f"[{time.time() - start:4.0f} s] round {r + 1}/{rounds}: {lib} batch {batch}, "
                          f"{threads} thread(s): " + (f"{ips:.0f} images/s" if ips else str(res.get("error"))),
                          file=sys.stderr, flush=True)
                    results.setdefault((lib, batch, threads), []).append(ips)
    return results


def cell(values):
    spread = harness.over_rounds(values)
    if spread is None:
        return "-"
    med, lo, hi = spread
    return f"{med:.0f} ({lo:.0f}-{hi:.0f})"


def table(model, results, libs, batches=BATCHES, thread_counts=THREADS):
    """The Markdown table: a row per batch, a column per (threads, library), then the ratios."""
    def threads(t):
        return f"{t} thread{'s' if t > 1 else ''}"
    ratios = [f"minicnn / PyTorch, {threads(t)}" for t in thread_counts] if "torch" in libs else []
    header = [f"{model} training, images/s"] + [f"{lib} {threads(t)}" for t in thread_counts
                                                 for lib in libs] + ratios
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for batch in batches:
        row = [cell(results.get((lib, batch, t), [])) for t in thread_counts for lib in libs]
        if "torch" in libs:
            for t in thread_counts:
                a = harness.over_rounds(results.get(("minicnn", batch, t), []))
                b = harness.over_rounds(results.get(("torch", batch, t), []))
                row.append(f"{a[0] / b[0]:.2f}x" if a and b else "-")
        lines.append(f"| batch {batch} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per process (at least)")
    ap.add_argument("--model", default="ResNet-20", help="a row of run.py's network tables")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)), help="comma-separated")
    ap.add_argument("--threads", default=",".join(map(str, THREADS)), help="comma-separated")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    batches = tuple(int(b) for b in args.batches.split(","))
    thread_counts = tuple(int(t) for t in args.threads.split(","))
    libs = ["minicnn"] + ([] if args.no_torch or importlib.util.find_spec("torch") is None else ["torch"])
    cpu, isa = harness.cpu_description()
    print(f"# {args.model} training vs batch and threads, {time.strftime('%Y-%m-%d %H:%M')}: "
          f"{cpu} ({', '.join(isa) or 'no avx'}), load average {harness.load_average():.2f} at the start")
    print(f"# each (library, batch, threads) in a fresh process, {args.rounds} round(s); "
          "figure = median over rounds of each process's median step (min-max over rounds)")
    results = measure(args.model, args.rounds, args.steps, libs, batches, thread_counts)
    print(table(args.model, results, libs, batches, thread_counts))
    print(f"# load average {harness.load_average():.2f} at the end")


if __name__ == "__main__":
    main()
