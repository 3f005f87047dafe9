"""minicnn vs PyTorch vs the textbook NumPy path (and vs another minicnn checkout), on the
layers of real networks and on whole networks, each library timed in its own processes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=$PWD \\
        /path/to/torchvenv/bin/python benchmarks/run.py [--baseline /path/to/old/checkout]

Tables (float32):

- op workloads, forward + backward, ms: the six conv workloads of issue 5, two max pools,
  LRN and spatial batch norm in training.  A conv's GFLOP/s count a direct convolution's
  multiply-adds (backward = 2x forward); the layers minicnn runs by Winograd do 2.25x
  fewer, so their rate can pass the GEMM ceiling (a 1024^3 float32 matmul, best run);
- training images/s (forward, backward, SGD momentum step; batch 128, random data) of
  LeNet-5 with 1 and 3 input channels, CIFAR ResNet-20, a small VGG (conv
  64-64-pool-128-128-pool-256-pool + linear, ReLU, no BN), and ResNet-18 on 224x224 images
  in batches of 32 (the slow row: --big-steps, --no-resnet18);
- inference images/s of the same networks (evaluation mode, no gradients);
- the memory of a training step of the same networks (step_memory.py).

Libraries: "minicnn" (the checkout this file is in), "baseline" (``--baseline PATH``:
another minicnn checkout, e.g. the code before a change; its figures come with a
"minicnn / baseline" ratio), PyTorch (when ``import torch`` works; not a dependency) and
the "textbook" path (textbook.py, op rows only).  How it times -- a fresh process per
(library, workload group), rounds alternating between the libraries, median over rounds of
each process's median with the min-max beside it -- is in harness.py; the workloads are in
workloads.py.

Options: --rounds R (processes per library and group, default 3), --retries N (how often a
process disturbed by other work is run again, default 1), --repeat R (timed op calls per
process), --steps S / --big-steps S (timed network steps per process), --min-time T
(seconds of timed calls per row and process, at least), --only a,b (rows whose name
contains one of these), --baseline PATH, --no-torch, --no-textbook, --no-ops,
--no-train, --no-infer, --no-memory, --no-resnet18, --quick (tiny sizes, one round: a smoke
test whose numbers mean nothing).
"""
import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

import harness
import step_memory
import report
import workloads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEMM_SIZE, GEMM_QUICK_SIZE = 1024, 256
DISTURBED = 0.10     # share of the cores busy with other work above which a process is counted as disturbed


# ----------------------------------------------------------------------------- in a child

def _gemm_times(job):
    import numpy as np
    size = GEMM_QUICK_SIZE if job["quick"] else GEMM_SIZE
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    if job["lib"] == "torch":
        import torch
        a, b = torch.from_numpy(a), torch.from_numpy(b)
    return {"times": harness.time_calls(lambda: a @ b, job["repeat"], min_seconds=job["min_time"])}


def _op_times(job):
    cases = workloads.op_cases(job["quick"])
    return {str(i): harness.guarded(lambda c: {"times": harness.time_calls(
        c.setup(job["lib"]), job["repeat"], min_seconds=job["min_time"])}, cases[i]) for i in job["rows"]}


def _network_times(job):
    case = workloads.model_cases(job["quick"])[job["row"]]
    if job.get("batch"):                       # scaling.py's batch sizes
        case = case._replace(batch=job["batch"])
    x, y = workloads.batch_of(case)
    if job["kind"] == "train":
        fn = workloads.train_step(case, job["lib"], x, y)
    else:
        fn = workloads.infer_step(case, job["lib"], x)
    warmup = 1 if case.big else 2
    return {"times": harness.time_calls(fn, job["steps"], warmup, job["min_time"])}


def _memory(job):
    return step_memory.probe(workloads.model_cases(job["quick"])[job["row"]], job["lib"])


KINDS = {"gemm": _gemm_times, "ops": _op_times, "train": _network_times, "infer": _network_times,
         "memory": _memory}


def child_main(job):
    """One (library, workload group) in this fresh process: prints {"info", "result"} as JSON."""
    info = {}
    if job["lib"] in workloads.MINICNN_LIBS:
        info = harness.enter_checkout(job["path"])
    elif job["lib"] == "torch":
        import torch
        torch.set_num_threads(job["cores"])    # every core it may use, as minicnn's pool does
    result, info["elsewhere"] = harness.busy_elsewhere(harness.guarded, KINDS[job["kind"]], job)
    print(json.dumps({"info": info, "result": result}))


# ----------------------------------------------------------------------------- the plan

def wanted(only, name):
    return not only or any(part.strip().lower() in name.lower() for part in only.split(",") if part.strip())


def plan(args, libs):
    """The process groups of one round: (kind, row, libraries); row is the network's index
    for "train" and "infer", None for "gemm" and "ops" (one process runs all op rows)."""
    groups = [("gemm", None, ["numpy"] + (["torch"] if "torch" in libs else []))]
    if selected_ops(args):
        groups.append(("ops", None, libs + ([] if args.no_textbook else ["textbook"])))
    for kind in ("train", "infer"):
        if not getattr(args, f"no_{kind}"):
            groups += [(kind, i, libs) for i in selected_models(args)]
    return groups


def selected_ops(args):
    if args.no_ops:
        return []
    return [i for i, c in enumerate(workloads.op_cases(args.quick)) if wanted(args.only, c.label)]


def selected_models(args):
    return [i for i, c in enumerate(workloads.model_cases(args.quick))
            if wanted(args.only, c.name) and not (c.big and args.no_resnet18)]


def make_job(args, kind, row, lib):
    big = kind in ("train", "infer") and workloads.model_cases(args.quick)[row].big
    return {"kind": kind, "row": row, "rows": selected_ops(args) if kind == "ops" else None,
            "lib": lib, "quick": args.quick, "path": {"minicnn": ROOT, "baseline": args.baseline}.get(lib),
            "cores": harness.core_count(), "repeat": args.repeat,
            "steps": args.big_steps if big else args.steps, "min_time": 0.0 if big else args.min_time}


def run_rounds(args, libs):
    """{(kind, row, lib): [child results, one per round]}; progress on stderr.

    A process during which other work kept more than DISTURBED of the cores busy is run
    again, up to --retries times (the last attempt counts): the table should describe the
    libraries, not the neighbours.
    """
    groups = plan(args, libs)
    results, start = {}, time.time()
    for r in range(args.rounds):
        for kind, row, group_libs in groups:
            for lib in harness.rotated(group_libs, r):
                for attempt in range(args.retries + 1):
                    res = harness.run_child(make_job(args, kind, row, lib))
                    share = (res.get("info") or {}).get("elsewhere")
                    again = share is not None and share > DISTURBED and attempt < args.retries
                    print(f"[{time.time() - start:4.0f} s] round {r + 1}/{args.rounds}: "
                          + progress(args, kind, row, lib, res) + (" -- disturbed: again" if again else ""),
                          file=sys.stderr, flush=True)
                    if not again:
                        break
                results.setdefault((kind, row, lib), []).append(res)
    return results


def progress(args, kind, row, lib, res):
    """One process's outcome in a line: what ran and its own figure (or its error)."""
    name = "" if row is None else " " + workloads.model_cases(args.quick)[row].name
    what = f"{kind}{name}, {lib}"
    part = res.get("result", res)
    elsewhere = (res.get("info") or {}).get("elsewhere")
    busy = "" if elsewhere is None else f"; cores busy elsewhere {100 * elsewhere:.0f}%"
    if "error" in part:
        return f"{what}: {part['error']}"
    if kind in ("train", "infer"):
        times = part["times"]
        rate = workloads.model_cases(args.quick)[row].batch / statistics.median(times)
        return f"{what}: {rate:.0f} images/s (median of {len(times)} steps{busy})"
    if kind == "gemm":
        return f"{what}: {2.0 * gemm_size(args) ** 3 / min(part['times']) / 1e9:.0f} GFLOP/s{busy}"
    return f"{what}: {len(part)} rows{busy}"


def gemm_size(args):
    return GEMM_QUICK_SIZE if args.quick else GEMM_SIZE


# ----------------------------------------------------------------------------- the tables

def figures(runs, key, per_process):
    """over_rounds of ``per_process(times)`` over the rounds' results for ``key`` (an op
    index, or None for a whole-process result), and the errors met."""
    values, errors = [], set()
    for res in runs:
        part = res.get("result", res)
        if key is not None and isinstance(part, dict) and "error" not in part:
            part = part.get(key, {"error": "no result"})
        if "error" in part:
            errors.add(part["error"])
        else:
            values.append(per_process(part["times"]))
    return harness.over_rounds(values), errors


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def print_header(args, libs):
    model, isa = harness.cpu_description()
    torch_version = _version("torch") if "torch" in libs else "not used"
    print(f"# minicnn benchmark, {time.strftime('%Y-%m-%d %H:%M')}: {model} ({platform.machine()}; "
          f"{', '.join(isa) or 'no avx2/avx512f/fma'}), {harness.core_count()} cores, load average "
          f"{harness.load_average():.2f} at the start")
    print(f"# python {platform.python_version()}, numpy {_version('numpy')}, torch {torch_version}")
    print(f"# minicnn: {ROOT} (git {harness.git_revision(ROOT)})")
    if args.baseline:
        print(f"# baseline: {args.baseline} (git {harness.git_revision(args.baseline)})")
    if harness.load_average() >= harness.core_count():      # the per-process count below is the finer test
        print(f"# BUSY MACHINE: load average {harness.load_average():.2f} on {harness.core_count()} "
              "cores -- threaded code waits for descheduled threads, so expect a wide spread; "
              "measure on a quiet machine")
    tuning = harness.tuning_environment()
    print("# tuning variables set: " + (", ".join(f"{k}={v}" for k, v in tuning.items()) or "none"))
    print(f"# float32; each (library, workload group) in a fresh process, {args.rounds} round(s), "
          f"libraries alternating; figure = median over rounds of each process's median "
          f"(min-max over rounds)")


def print_ops(args, libs, results, gemm):
    others = [lib for lib in libs if lib != "minicnn"]
    textbook = not args.no_textbook
    heads = ["workload (fwd+bwd)", "shape"] + report.compared_heads(others, "ms") + \
        (["textbook ms", "textbook / minicnn"] if textbook else []) + ["minicnn GFLOP/s (% of GEMM)"]
    rows, errors = [], set()
    cases = workloads.op_cases(args.quick)
    for i in selected_ops(args):
        stats = {}
        for lib in libs + (["textbook"] if textbook else []):
            stats[lib], errs = figures(results[("ops", None, lib)], str(i), statistics.median)
            errors |= {f"{cases[i].label}, {report.NAMES[lib]}: {e}" for e in errs}
        mine, flops = stats.get("minicnn"), cases[i].flops
        rate = "-" if flops is None or mine is None or gemm is None else \
            f"{flops / mine[0] / 1e9:.0f} ({100 * flops / mine[0] / 1e9 / gemm[0]:.0f}%)"
        tb_cells = [report.fmt_spread(stats["textbook"], report.ms),
                    report.ratio(stats["textbook"], mine)] if textbook else []
        rows.append([cases[i].label, cases[i].shape] + report.compared_cells(stats, others, report.ms)
                    + tb_cells + [rate])
    report.print_table(heads, rows)
    print("# minicnn / other < 1: minicnn is faster")
    return errors


def print_networks(args, libs, results, kind):
    others = [lib for lib in libs if lib != "minicnn"]
    cases = workloads.model_cases(args.quick)
    # The batch in the title is the CIFAR rows' one; the ResNet-18 row names its own.
    batch = "".join(sorted({f", batch {cases[i].batch}" for i in selected_models(args)
                            if not cases[i].big}))
    title = {"train": f"training{batch}, SGD momentum", "infer": f"inference (eval, no grad){batch}"}[kind]
    rows, errors = [], set()
    for i in selected_models(args):
        stats = {}
        for lib in libs:
            stats[lib], errs = figures(results[(kind, i, lib)], None,
                                       lambda t, b=cases[i].batch: b / statistics.median(t))
            errors |= {f"{kind} {cases[i].name}, {report.NAMES[lib]}: {e}" for e in errs}
        rows.append([cases[i].name] + report.compared_cells(stats, others, report.per_second))
    report.print_table([title] + report.compared_heads(others, "images/s"), rows)
    print("# minicnn / other > 1: minicnn is faster")
    return errors


def print_results(args, libs, results):
    gemm = {}
    size = gemm_size(args)
    for lib in ("numpy", "torch"):
        if ("gemm", None, lib) in results:
            gemm[lib], _ = figures(results[("gemm", None, lib)], None,
                                   lambda t: 2.0 * size ** 3 / min(t) / 1e9)
    print(f"# GEMM ceiling ({size}^3 float32, best call of each process): "
          + ", ".join(f"{k} {report.fmt_spread(v, report.per_second)} GFLOP/s" for k, v in gemm.items()))
    errors = set()
    if selected_ops(args):
        print()
        errors |= print_ops(args, libs, results, gemm.get("numpy"))
    for kind in ("train", "infer"):
        if selected_models(args) and not getattr(args, f"no_{kind}"):
            print()
            errors |= print_networks(args, libs, results, kind)
    for res in results.values():
        for r in res:
            info = r.get("info") or {}
            if info.get("cython") is False:
                errors.add(f"{info['file']}: Cython kernels NOT loaded (its plain NumPy path was timed)")
    for e in sorted(errors):
        print(f"# {e}")
    print_disturbed(results)


def print_disturbed(results):
    """How many processes shared the cores with other work (harness.busy_elsewhere)."""
    shares = [(r.get("info") or {}).get("elsewhere") for runs in results.values() for r in runs]
    shares = [s for s in shares if s is not None]
    if not shares:
        return
    disturbed = [s for s in shares if s > DISTURBED]
    print(f"# {len(disturbed)} of {len(shares)} processes ran while other work kept more than "
          f"{100 * DISTURBED:.0f}% of the cores busy" + (f" (up to {100 * max(disturbed):.0f}%): their "
                                                        "figures are in the spread" if disturbed else ""))


def run_memory(args, libs):
    cases = [workloads.model_cases(args.quick)[i] for i in selected_models(args)]
    if not cases:
        return
    results = {}
    for case_index, case in zip(selected_models(args), cases):
        for lib in libs:
            res = harness.run_child(make_job(args, "memory", case_index, lib))
            results[(case.name, lib)] = res.get("result", res)
            print(f"memory {case.name}, {lib}" + (f": {res['error']}" if "error" in res else ""),
                  file=sys.stderr, flush=True)
    print()
    step_memory.print_table(cases, libs, results)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=None,
                    help="processes per library and group (3; --quick: 1)")
    ap.add_argument("--repeat", type=int, default=7, help="timed op calls per process")
    ap.add_argument("--steps", type=int, default=5, help="timed network steps per process")
    ap.add_argument("--big-steps", type=int, default=3, help="timed ResNet-18 steps per process")
    ap.add_argument("--min-time", type=float, default=None,
                    help="seconds of timed calls per row and process, at least (0.5; --quick: 0)")
    ap.add_argument("--retries", type=int, default=None, help="how often a process that shared the "
                    "cores with other work (more than 10%% of them busy elsewhere) is run again "
                    "(1; --quick: 0)")
    ap.add_argument("--only", default="", help="only rows whose name contains one of these "
                    "comma-separated substrings")
    ap.add_argument("--baseline", metavar="PATH", help="another minicnn checkout to compare with")
    for name in ("torch", "textbook", "ops", "train", "infer", "memory", "resnet18"):
        ap.add_argument(f"--no-{name}", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke test")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        return args
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    args.retries = args.retries if args.retries is not None else (0 if args.quick else 1)
    args.min_time = args.min_time if args.min_time is not None else (0.0 if args.quick else 0.5)
    for name in ("rounds", "repeat", "steps", "big_steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')}: expected an integer >= 1, "
                     f"received {getattr(args, name)}")
    if args.retries < 0:
        ap.error(f"--retries: expected an integer >= 0, received {args.retries}")
    if args.min_time < 0:
        ap.error(f"--min-time: expected seconds >= 0, received {args.min_time}")
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
        if not os.path.isfile(os.path.join(args.baseline, "minicnn", "__init__.py")):
            ap.error(f"--baseline: expected a minicnn checkout (a directory holding minicnn/__init__.py), "
                     f"received {args.baseline}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args._child:
        child_main(json.loads(args._child))
        return
    libs = ["minicnn"] + (["baseline"] if args.baseline else []) + \
        (["torch"] if not args.no_torch and importlib.util.find_spec("torch") is not None else [])
    print_header(args, libs)
    sys.stdout.flush()
    results = run_rounds(args, libs)
    print_results(args, libs, results)
    if not args.no_memory:
        run_memory(args, libs)
    print(f"# load average {harness.load_average():.2f} at the end")


if __name__ == "__main__":
    main()
