"""Reusable scratch buffers for the hot ops ("workspace", as cuDNN calls it).

A fresh large array is not free: the first write to every page of it is a page fault
that the kernel has to zero-fill, and on a conv layer's column matrix that made im2col
up to 2.7x slower than writing into a buffer used before.  So the CPU conv asks this
module for its scratch space instead of calling ``np.empty`` every time.

Rules that keep it safe:

* a workspace buffer is scratch only: it is overwritten by the next op that asks for
  the same name, so nothing that outlives the call (an op's output, its cache) may point
  into it -- outputs are always fresh arrays;
* buffers are kept per thread (two threads running convs never share scratch space);
* the cache is bounded: a request larger than ``MAX_BYTES`` gets a fresh, uncached
  array, and the kept buffers of one thread never total more than ``MAX_BYTES``.
"""
import os
import threading

import numpy as np

MAX_BYTES = 64 << 20   # total bytes kept per thread

_local = threading.local()


def _buffers():
    if not hasattr(_local, "buffers"):
        _local.buffers = {}
    return _local.buffers


def get(name, shape, dtype):
    """A C-contiguous NumPy array of ``shape`` and ``dtype`` whose contents are garbage.

    The same ``name`` (and dtype) hands back the same memory on the next call, grown
    when a larger size is asked for.  Callers must finish with it before asking again.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    nbytes = size * dtype.itemsize
    if nbytes > MAX_BYTES:
        return np.empty(shape, dtype=dtype)
    buffers = _buffers()
    key = (name, dtype)
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buffers.pop(key, None)
        kept = sum(b.nbytes for b in buffers.values())
        if kept + nbytes > MAX_BYTES:
            buffers.clear()   # rare (shapes changed a lot): start over rather than grow past the bound
        buf = np.empty(size, dtype=dtype)
        buffers[key] = buf
    return buf[:size].reshape(shape)


def clear():
    """Free this thread's workspace buffers."""
    _buffers().clear()


def nbytes():
    """Bytes held by this thread's workspace buffers."""
    return sum(b.nbytes for b in _buffers().values())


# ------------------------------------------------------------------ threads
#
# The chunked conv runs its chunks on a few Python threads (NumPy's matmul and the
# Cython kernels release the GIL), each chunk's GEMM on one core.  That needs BLAS
# itself to stay single-threaded meanwhile: a threaded BLAS called from two threads
# at once oversubscribes the cores, and on a busy machine its spinning threads made
# the many small GEMMs of a conv several times slower.  NumPy has no API for BLAS
# threads, so -- as threadpoolctl does -- we look up OpenBLAS's own setter in the
# already loaded library.  Where it is not found (another BLAS), ``blas_threads``
# returns None and the conv runs its chunks on the calling thread only.

def _find_openblas():
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:     # not Linux
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
            setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                return setter, getter
    return None


_blas = {}
_blas_lock = threading.Lock()


def blas_threads():
    """(set_num_threads, get_num_threads) of the OpenBLAS NumPy uses, or None if not found."""
    if "api" not in _blas:
        _blas["api"] = _find_openblas()
    return _blas["api"]


class single_threaded_blas:
    """Context manager: BLAS on one thread inside, the previous setting restored after.

    Nested and concurrent uses are counted, so the setting is restored only when the
    last one leaves.  Raises nothing when BLAS cannot be controlled (see blas_threads).
    """

    def __enter__(self):
        api = blas_threads()
        if api is not None:
            with _blas_lock:
                if _blas.get("depth", 0) == 0:
                    _blas["saved"] = api[1]()
                    api[0](1)
                _blas["depth"] = _blas.get("depth", 0) + 1
        return self

    def __exit__(self, *exc):
        api = blas_threads()
        if api is not None:
            with _blas_lock:
                _blas["depth"] -= 1
                if _blas["depth"] == 0:
                    api[0](_blas["saved"])
        return False


def cpu_count():
    """Cores this process may use, capped by $OMP_NUM_THREADS when it is set."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        n = min(n, int(env))
    return max(1, n)


_pool = {}


def _after_fork_in_child():
    # Threads do not survive fork(): a child (a data-loader worker, say) must not submit
    # to its parent's pool -- nobody would run the work -- nor inherit a half-held count.
    _pool.clear()
    _blas.pop("depth", None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def thread_pool():
    """A process-wide pool of cpu_count() worker threads, made on first use (again after a fork)."""
    if "pool" not in _pool:
        from concurrent.futures import ThreadPoolExecutor
        _pool["pool"] = ThreadPoolExecutor(max_workers=cpu_count(), thread_name_prefix="minicnn")
    return _pool["pool"]
