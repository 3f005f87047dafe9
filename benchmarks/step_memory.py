"""The memory of a training step, each (network, library) pair in a fresh process.

A fresh process per measurement, since memory one measurement frees stays with the process
(glibc keeps freed heap for reuse) and would hide the next one's needs.  The child builds
the model, the batch and the optimizer as the throughput rows do (same threads), takes its
resident set size (VmRSS) as the baseline, resets the peak RSS (VmHWM, via
/proc/self/clear_refs) and runs MEMORY_STEPS training steps (MEMORY_STEPS_BIG for ResNet-18);
the figure is peak RSS - baseline: what a step needs above the model and the data --
activations and caches, gradients, optimizer state, workspaces, and the allocator's slack.
The baseline is taken before the first step, not after a warm-up one: after a step, both
libraries' processes keep the freed heap resident (measured: PyTorch's RSS between steps
stayed 90-360 MB above the baseline), so "peak - RSS after a warm-up" would mostly measure
what the allocator happened to keep.  MB are 2^20 bytes.  (minicnn allocates its gradients with the model,
PyTorch at the first backward: a few MB, counted for PyTorch only.)

For a minicnn checkout a second view: the NumPy arrays live at the peak of one
steady-state step, by tracemalloc, and of those the ones held between steps (the layers'
caches of the last step, and the recycled outputs ``runtime.empty_output`` keeps), both
without the state allocated before (parameters, gradients, momentum, workspaces).  Linux only exactly: without /proc the figures are
lower bounds (baseline = peak RSS so far, by getrusage); without getrusage (Windows) the
table is skipped.
"""
import gc
import sys

import report
import workloads

MEMORY_STEPS = 5
MEMORY_STEPS_BIG = 3       # ResNet-18 at 224x224: ~2 s a step on 2 cores


def _proc_status():
    """{"VmRSS": bytes, "VmHWM": bytes} of this process, or None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}
    except (OSError, KeyError, ValueError):
        return None


def _reset_peak_rss():
    """Lower VmHWM to the current RSS (Linux >= 4.0), so that the peak read later is the
    steps' own and not the import's or the model build's; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss():
    """Peak RSS in bytes by getrusage (kB on Linux, bytes on macOS), or None (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def probe(case, lib):
    """In the child process: the memory a training step of ``case`` needs in ``lib``.

    Returns a dict: "peak" (peak RSS - baseline), "held" (RSS after the steps - baseline),
    "exact" (False when the peak may include the time before the baseline, or, without
    /proc, the baseline is itself a peak), and for minicnn checkouts "np_peak" and
    "np_held" (module doc); None where memory cannot be measured.
    """
    step = workloads.train_step(case, lib, *workloads.batch_of(case))
    gc.collect()
    status = _proc_status()
    if status is not None:
        exact, base = _reset_peak_rss(), status["VmRSS"]
    else:
        exact, base = False, _maxrss()
        if base is None:
            return None
    for _ in range(MEMORY_STEPS_BIG if case.big else MEMORY_STEPS):
        step()
    status = _proc_status()
    peak = status["VmHWM"] if status is not None else _maxrss()
    res = {"peak": peak - base, "held": None if status is None else status["VmRSS"] - base, "exact": exact}
    if lib in workloads.MINICNN_LIBS:
        # NumPy reports its array data to tracemalloc.  Trace one step, so that what the
        # next step frees of it (the previous step's caches) is traced too, then take the
        # traced peak of the following step.  The arrays runtime.empty_output recycles were
        # allocated before the trace: its pool is emptied first, so that they are made again
        # under it and counted (the pool keeps them: held, even when dead).
        import tracemalloc
        from minicnn import runtime
        if hasattr(runtime, "clear_recycled"):
            runtime.clear_recycled()
        tracemalloc.start()
        step()
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0]
        step()
        res["np_held"], res["np_peak"] = held, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return res


def _notes(name, lib, r):
    if isinstance(r, dict) and "error" in r:
        return {f"{name}, {report.NAMES[lib]}: {r['error']}"}
    if r is None:
        return {"no /proc and no getrusage here: memory not measured"}
    if not r["exact"]:
        return {"peak RSS could not be reset after the model was built: the peaks are upper bounds"
                if r["held"] is not None else "no /proc: the baseline is a peak, the figures lower bounds"}
    return set()


def print_table(cases, libs, results):
    """``results[(case.name, lib)]`` is a probe result (or {"error": ...})."""
    others = [lib for lib in libs if lib != "minicnn"]
    batch = "".join(sorted({f", batch {c.batch}" for c in cases if not c.big}))
    heads = [f"training step memory{batch}"] + report.compared_heads(others, "MB") + \
        ["minicnn NumPy arrays MB (held between steps)"]
    rows, notes = [], set()
    for case in cases:
        peaks = {}
        for lib in libs:
            r = results[(case.name, lib)]
            notes |= _notes(case.name, lib, r)
            if isinstance(r, dict) and "peak" in r:
                peaks[lib] = (r["peak"],) * 3
        mine = results[(case.name, "minicnn")]
        np_view = (f"{report.megabytes(mine['np_peak'])} ({report.megabytes(mine['np_held'])})"
                   if isinstance(mine, dict) and "np_peak" in mine else "-")
        rows.append([case.name] + report.compared_cells(peaks, others, report.megabytes) + [np_view])
    report.print_table(heads, rows)
    for note in sorted(notes):
        print(f"# {note}")
