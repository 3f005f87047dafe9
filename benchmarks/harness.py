"""How benchmarks/run.py measures: one fresh process per (library, workload group), rounds
of them alternating between the libraries, and the medians over rounds.

Why separate processes: timed in one process, two libraries' thread pools interfere --
minicnn's chunk threads and OpenBLAS's, PyTorch's OpenMP team, each spinning after its
calls and stealing the other's cores.  Measured on the 2-core development VM, a LeNet-5
training step timed in one process with PyTorch ran at 2,966 (minicnn) and 8,034
(PyTorch) images/s; each alone ran at 7,681-9,067 and 15,791-15,982.  And what one
workload leaves in the process (freed heap that glibc keeps, its raised mmap threshold,
warm workspaces) changes the next one's speed.  So a child process imports one library
only, runs one group of workloads and prints its per-call times as JSON; the parent only
starts children and does the arithmetic.  The allocator and the thread settings are the
ones users get: nothing here sets MALLOC_* or other process-wide tuning (run.py prints
any such variable it finds set, since the children inherit it).

Every child also reports the share of the cores that OTHER work kept busy while it timed
(busy_elsewhere): on a small shared machine that is what scatters the figures most, and
run.py runs a disturbed process again and counts the ones left in the table's notes.

Per process, each workload gets warm-up calls, then timed calls (at least ``calls`` of
them and at least ``min_seconds`` of work), and its figure is the median.  Over the rounds
the reported figure is the median of those process medians, with their min-max beside it:
the spread says how far one process's figure can be trusted.
"""
import json
import os
import statistics
import subprocess
import sys
import time

RUN_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py")
TUNING_PREFIXES = ("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD", "PYTHONMALLOC", "OMP_", "GOMP_",
                   "KMP_", "MKL_", "OPENBLAS_", "ATEN_", "ONEDNN_", "DNNL_", "MINICNN_")
MAX_CALLS = 1000


def core_count():
    """Cores this process may use (its affinity mask), capped by $OMP_NUM_THREADS when set --
    the count minicnn's thread pool takes; PyTorch children are given the same."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        n = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(n, int(env)) if env.isdigit() and int(env) > 0 else n


# ----------------------------------------------------------------------------- the machine

def cpu_description():
    """(model name, ISA flags present among avx512f / avx2 / fma) from /proc/cpuinfo."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    if model is None:
        import platform
        model = platform.processor() or platform.machine() or "unknown CPU"
    return model, [f for f in ("avx512f", "avx2", "fma") if f in flags]


def tuning_environment():
    """The variables set in this environment that tune allocators, threads or BLAS."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(TUNING_PREFIXES)}


def load_average():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def git_revision(path):
    """'abc1234' or 'abc1234 + uncommitted changes' for a git checkout, else 'not a git checkout'."""
    def git(*args):
        return subprocess.run(["git", "-C", path] + list(args), capture_output=True, text=True,
                              timeout=30)
    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:
            return "not a git checkout"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "git not available"
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


# ----------------------------------------------------------------------------- in a child

def enter_checkout(path):
    """Make ``import minicnn`` find the checkout at ``path`` first, import it and check that
    it did; returns a description of what was imported (file, Cython kernels or not)."""
    sys.path.insert(0, path)
    import minicnn
    found = os.path.realpath(minicnn.__file__)
    if not found.startswith(os.path.realpath(path) + os.sep):
        raise RuntimeError(f"asked for the minicnn checkout at {path}, imported {found}")
    from minicnn import backend
    cython = getattr(backend, "cython_available", lambda: None)()
    return {"file": found, "cython": cython}


def time_calls(fn, calls, warmup=1, min_seconds=0.0):
    """Seconds of each timed call of ``fn()``, after ``warmup`` untimed ones (first-touch
    page faults, workspaces, oneDNN's primitive caches): at least ``calls`` calls and, when
    they are quick, as many more as fill ``min_seconds`` (at most MAX_CALLS)."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < calls or (time.perf_counter() - start < min_seconds and len(times) < MAX_CALLS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _busy_cpu_seconds():
    """CPU seconds all cores have spent busy since boot, by /proc/stat (user, nice, system,
    irq, softirq, and steal: time the hypervisor gave to other guests); None without /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def busy_elsewhere(fn, *args):
    """(fn(*args), share): ``share`` is the part of the machine's cores (0 to 1) that other
    processes -- or the hypervisor -- kept busy while fn ran; None where /proc/stat is missing.

    On a machine of 2 cores shared with other work that share is what scatters the figures
    most: a thread team waits for its descheduled member.  Measured while another process
    kept one of the 2 cores busy (share ~50%): a LeNet-5 training step went from ~12 to ~90 ms
    in minicnn and from ~8 to ~260 ms in PyTorch.  So run.py shows the share of every process
    and runs a disturbed one again.
    """
    busy0, own0, t0 = _busy_cpu_seconds(), sum(os.times()[:2]), time.perf_counter()
    result = fn(*args)
    busy1, own1, t1 = _busy_cpu_seconds(), sum(os.times()[:2]), time.perf_counter()
    if busy0 is None or busy1 is None or t1 <= t0:
        return result, None
    others = max(0.0, (busy1 - busy0) - (own1 - own0))
    return result, min(1.0, others / ((t1 - t0) * (os.cpu_count() or 1)))


def guarded(fn, *args):
    """fn(*args), or {"error": "..."} if it raises: one workload a checkout lacks (an old
    baseline, say) must not lose the rest of its process's rows."""
    try:
        return fn(*args)
    except Exception as e:      # noqa: BLE001 -- reported in the table, not hidden
        return {"error": f"{type(e).__name__}: {e}"}


# ----------------------------------------------------------------------------- in the parent

def run_child(job, timeout=3600, env=None):
    """Run ``job`` (a JSON-able dict, see run.py's child_main) in a fresh Python process:
    returns the dict it printed, or {"error": ...} naming why there is none.  ``env``:
    variables to set in the child (thread counts must be set before its libraries load)."""
    cmd = [sys.executable, RUN_PY, "--_child", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return {"error": err}


def rotated(items, k):
    """``items`` rotated left by k: round k starts with a different library, so that none
    always runs right after the same other one."""
    items = list(items)
    return items[k % len(items):] + items[:k % len(items)] if items else items


def over_rounds(values):
    """(median, min, max) of the per-process figures, or None if there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)
