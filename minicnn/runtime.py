"""How the CPU ops use the machine: scratch buffers, worker threads, BLAS threads.

None of this is mathematics -- ``minicnn.functional`` holds that -- but a CPU convolution
needs it to run near the machine's speed.  Four pieces:

* **workspace** -- reusable scratch buffers (as cuDNN calls them).  A fresh large array is
  not free: the first write to every page of it is a page fault that the kernel has to
  zero-fill, and on a conv layer's column matrix that made im2col up to 2.7x slower than
  writing into a buffer used before;
* **recycled outputs** -- ``empty_output``: the same page faults avoided for the arrays an
  op returns, by handing out again the memory of outputs nothing refers to any more;
* **chunks on threads** -- ``run_chunks`` / ``sum_over_chunks`` share the chunks of a batch
  out over one Python thread per core (NumPy's matmul and the Cython kernels release the
  GIL), with BLAS single-threaded meanwhile.  ``sum_over_chunks`` adds the threads' partial
  sums in a fixed order, so a weight gradient has the same bits on every call.  A loop
  that needs nothing from Python per thread (a 1x1 conv's) shares itself out over OpenMP
  threads in C instead, told how many by ``threads_for_c_loop``; a forked child runs those
  on one thread (``_after_fork_in_child`` says why);
* **OpenBLAS control** -- ``single_threaded_blas`` and ``cpu_count``.

This module sits beside ``minicnn.backend``: the ops import it, it imports nothing from
minicnn.
"""
import contextlib
import math
import os
import sys
import threading
from concurrent.futures import wait

import numpy as np

# ------------------------------------------------------------------ workspace
#
# Rules that keep it safe:
#  * a workspace buffer is scratch only: it is overwritten by the next op that asks for
#    the same name, so nothing that outlives the call (an op's output, its cache) may point
#    into it -- outputs are always fresh arrays;
#  * buffers are kept per thread (two threads running convs never share scratch space);
#  * the cache is bounded: a request larger than WORKSPACE_MAX_BYTES gets a fresh, uncached
#    array, and the kept buffers of one thread never total more than WORKSPACE_MAX_BYTES.

WORKSPACE_MAX_BYTES = 64 << 20   # total bytes kept per thread

_local = threading.local()


def _buffers():
    if not hasattr(_local, "buffers"):
        _local.buffers = {}
    return _local.buffers


def _size(shape):
    # math.prod, not np.prod: np.prod turns the tuple into an array first, ~6 us a call, and
    # an op asks for a few buffers per call (a 1x1 conv's fwd + bwd spent 70 us on it).
    if isinstance(shape, (tuple, list)):
        return int(math.prod(int(d) for d in shape))
    return int(shape)


def workspace(name, shape, dtype):
    """A C-contiguous NumPy array of ``shape`` and ``dtype`` whose contents are garbage.

    The same ``name`` (and dtype) hands back the same memory on the next call, grown
    when a larger size is asked for.  Callers must finish with it before asking again.
    """
    dtype = np.dtype(dtype)
    size = _size(shape)
    nbytes = size * dtype.itemsize
    if nbytes > WORKSPACE_MAX_BYTES:
        return np.empty(shape, dtype=dtype)
    buffers = _buffers()
    key = (name, dtype)
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buffers.pop(key, None)
        kept = sum(b.nbytes for b in buffers.values())
        if kept + nbytes > WORKSPACE_MAX_BYTES:
            buffers.clear()   # rare (shapes changed a lot): start over rather than grow past the bound
        buf = np.empty(size, dtype=dtype)
        buffers[key] = buf
    return buf[:size].reshape(shape)


def clear_workspace():
    """Free this thread's workspace buffers."""
    _buffers().clear()


def workspace_nbytes():
    """Bytes held by this thread's workspace buffers."""
    return sum(b.nbytes for b in _buffers().values())


# ------------------------------------------------------------------ recycled outputs
#
# An op's output cannot live in the workspace: it outlives the call (the next layer reads it,
# a cache keeps it for the backward pass).  But a training step makes the same arrays every
# step, and glibc hands an array over its mmap threshold back to the kernel when it is freed,
# so the next one is fresh pages again: a page fault per 4 KB written.  Measured on LeNet-5
# (batch 128, 3 channels, 2 cores): 1,700 faults a step, training 11.0k -> 13.2k images/s
# without them (there by raising malloc's thresholds, which is process-wide and not ours to
# set).  So ``empty_output`` keeps the arrays it hands out and hands one out again once
# nothing else refers to it: every view, cache entry, memoryview or Cython buffer of an
# array holds a reference to it, so a reference count down to this module's own means the
# array is dead.  (Only a raw address taken from it, arr.ctypes.data say, escapes the count.)
# Small arrays are left to malloc, which recycles them itself.

RECYCLE_MIN_BYTES = 128 << 10      # glibc's default mmap threshold: below it, malloc's free lists
# Total bytes kept, in use or not (clear_recycled() lets the dead ones go).  A step of the
# CIFAR ResNet-20 at batch 128 makes ~200 MB of such outputs; with 64 MB most of them were
# fresh again.  Alternating runs (2 cores), 64 -> 256 MB: ResNet-20 training 446 -> 481
# images/s, the small VGG 328 -> 371, LeNet-5 (a few MB) the same; a step's peak memory
# ResNet-20 278 -> 284 MB, ResNet-18 (batch 32 at 224, 1,050 MB) the same.
RECYCLE_MAX_BYTES = 256 << 20

_recycled = {"arrays": {}, "nbytes": 0}     # {nbytes: [1-d uint8 arrays]}, their total
_recycle_lock = threading.Lock()


def _refcounts(arrays):
    return [sys.getrefcount(buf) for buf in arrays]


# What _refcounts says of an array nothing else holds (the list's reference, the loop's and
# getrefcount's own -- measured rather than assumed, as interpreters count differently).
_UNUSED_REFS = _refcounts([np.empty(0)])[0]


def empty_output(shape, dtype):
    """np.empty(shape, dtype) for an op's output, its memory recycled from a dead earlier one.

    C-contiguous, contents garbage, like np.empty; the caller may keep it as long as it likes.
    """
    dtype = np.dtype(dtype)
    nbytes = _size(shape) * dtype.itemsize
    if not RECYCLE_MIN_BYTES <= nbytes <= RECYCLE_MAX_BYTES:
        return np.empty(shape, dtype=dtype)
    with _recycle_lock:
        arrays = _recycled["arrays"].setdefault(nbytes, [])
        for buf, refs in zip(arrays, _refcounts(arrays)):
            if refs == _UNUSED_REFS:
                return buf.view(dtype).reshape(shape)
        if not _make_room(nbytes):
            return np.empty(shape, dtype=dtype)
        buf = np.empty(nbytes, dtype=np.uint8)
        arrays.append(buf)
        _recycled["nbytes"] += nbytes
        return buf.view(dtype).reshape(shape)


def _make_room(nbytes):
    """Forget unused arrays (other sizes: the shapes changed) until nbytes more fit the bound."""
    for size, arrays in _recycled["arrays"].items():
        if _recycled["nbytes"] + nbytes <= RECYCLE_MAX_BYTES:
            break
        kept = [buf for buf, refs in zip(arrays, _refcounts(arrays)) if refs != _UNUSED_REFS]
        _recycled["nbytes"] -= size * (len(arrays) - len(kept))
        arrays[:] = kept
    return _recycled["nbytes"] + nbytes <= RECYCLE_MAX_BYTES


def clear_recycled():
    """Forget the kept output arrays (those still in use live on, owned by their users)."""
    with _recycle_lock:
        _recycled["arrays"].clear()
        _recycled["nbytes"] = 0


def recycled_nbytes():
    """Bytes of the output arrays empty_output keeps (in use or not)."""
    return _recycled["nbytes"]


# ------------------------------------------------------------------ BLAS threads
#
# The chunked conv runs each chunk's GEMM on one core.  That needs BLAS itself to stay
# single-threaded meanwhile: a threaded BLAS called from two threads at once
# oversubscribes the cores, and on a busy machine its spinning threads made the many
# small GEMMs of a conv several times slower.  NumPy has no API for BLAS threads, so --
# as threadpoolctl does -- we look up OpenBLAS's own setter in the already loaded
# library.  Where it is not found (another BLAS), ``blas_threads`` returns None and the
# chunks run on the calling thread only.

def _openblas_libraries():
    """(library, symbol prefix, symbol suffix) of each OpenBLAS this process has loaded
    (NumPy's wheels rename its symbols: scipy_openblas_set_num_threads64_, ...)."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:     # not Linux
        return
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
            if getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None) is not None:
                yield lib, prefix, suffix
                break


def _find_openblas():
    import ctypes
    for lib, prefix, suffix in _openblas_libraries():
        setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
        getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
        if getter is not None:
            setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
            return setter, getter
    return None


def cblas_gemm():
    """(address of cblas_sgemm, of cblas_dgemm, ilp64) in the OpenBLAS NumPy loaded, or None.

    For the kernels that run a whole chunk loop in C, GEMMs included (see
    minicnn/_ext/blas_gemm.h).  ``ilp64``: the library takes 64-bit integers, as its
    configuration string says (USE64BITINT) -- calling it with the wrong width would read
    garbage sizes, so the pair is also tried on a small product against NumPy's before it is
    handed out.
    """
    if "gemm" not in _blas:
        _blas["gemm"] = _find_cblas_gemm()
    return _blas["gemm"]


def gemm_in_c(kernels):
    """True if a kernel module's chunk loops (``forward_chunks``, ``backward_chunks``) can call
    BLAS from C: NumPy's CBLAS gemm was found and handed to the module (``gemm_use``)."""
    if not hasattr(kernels, "gemm_ready"):
        return False
    if not kernels.gemm_ready():
        gemm = cblas_gemm()
        if gemm is None:
            return False
        kernels.gemm_use(*gemm)
    return True


def _find_cblas_gemm():
    import ctypes
    np.ones((2, 2)) @ np.ones((2, 2))          # NumPy loads its BLAS on first use
    for lib, prefix, suffix in _openblas_libraries():
        config = getattr(lib, f"{prefix}openblas_get_config{suffix}", None)
        sgemm = getattr(lib, f"{prefix}cblas_sgemm{suffix}", None)
        dgemm = getattr(lib, f"{prefix}cblas_dgemm{suffix}", None)
        if config is None or sgemm is None or dgemm is None:
            continue
        config.restype = ctypes.c_char_p
        ilp64 = b"USE64BITINT" in (config() or b"")
        if _gemm_agrees(sgemm, np.float32, ilp64) and _gemm_agrees(dgemm, np.float64, ilp64):
            return (ctypes.cast(sgemm, ctypes.c_void_p).value, ctypes.cast(dgemm, ctypes.c_void_p).value, ilp64)
    return None


def _gemm_agrees(gemm, dtype, ilp64):
    """True if ``gemm`` (a CBLAS ?gemm, called row-major) multiplies a 3x4 by a 4x2 matrix
    as NumPy does."""
    import ctypes
    integer = ctypes.c_int64 if ilp64 else ctypes.c_int32
    real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    pointer = ctypes.POINTER(real)
    gemm.restype = None
    gemm.argtypes = [ctypes.c_int] * 3 + [integer] * 3 + [real, pointer, integer, pointer, integer,
                                                          real, pointer, integer]
    a = np.arange(12, dtype=dtype).reshape(3, 4)
    b = np.arange(8, dtype=dtype).reshape(4, 2) - 3
    c = np.zeros((3, 2), dtype=dtype)
    gemm(101, 111, 111, 3, 2, 4, 1.0, a.ctypes.data_as(pointer), 4, b.ctypes.data_as(pointer), 2,
         0.0, c.ctypes.data_as(pointer), 2)
    return bool(np.array_equal(c, a @ b))


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


# OpenBLAS's worker threads do not sleep when a threaded call ends: they spin, waiting for
# the next one, for a while (their THREAD_TIMEOUT; OPENBLAS_THREAD_TIMEOUT sets it).  A minicnn
# worker thread that needs the core meanwhile waits for the spinner to be descheduled.  So a
# GEMM outside the chunked ops (a Linear layer's, a small conv's) runs on one BLAS thread
# unless it is big enough for a second thread to pay for that.  Measured on the 2-core
# Xeon (2026-12-06): LeNet-5's three fc layers (GEMMs of 1-6 M multiply-adds, which a
# second BLAS thread makes 0.01-0.04 ms faster) left OpenBLAS spinning into the conv chunks
# that followed: training 10.5k images/s with 3 input channels, 14k with those GEMMs on one
# BLAS thread (8.9k -> 12k with 1 channel).  From ~100 M multiply-adds on (VGG's and
# AlexNet's fc layers: 0.5-13 G) a second thread halves the GEMM's time: worth it.
GEMM_THREADS_MIN_MACS = 64 << 20


def blas_threads_for(macs):
    """Context manager for a GEMM of ``macs`` multiply-adds run outside ``share_out``: BLAS on
    one thread below GEMM_THREADS_MIN_MACS (see above), as many as it has otherwise."""
    return single_threaded_blas() if macs < GEMM_THREADS_MIN_MACS else contextlib.nullcontext()


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


# ------------------------------------------------------------------ chunks on threads

def images_per_chunk(n, image_bytes, image_columns, weight_bytes, chunk_bytes, min_columns):
    """How many images a chunked conv takes per chunk (at least 1, at most n).

    * As many as fit ``chunk_bytes`` of the chunk's own data (``image_bytes`` per image: its
      columns, or its Winograd-domain tiles), so that the GEMM finds them in the core's L2
      cache right after they were written.
    * But when the layer's weights (``weight_bytes``) are at least one image's data, enough
      images for ``min_columns`` GEMM columns (``image_columns`` per image), as long as every
      core still gets a chunk.  Every chunk's GEMM reads all the weights once -- BLAS packs
      them again for each call -- so a layer with few positions per image spends its time
      moving weights, not multiplying.  ResNet-18's 512->512 3x3 layer at 7x7 (49 positions,
      16 Winograd tiles per image, 16 MB of transformed filters) took 46 / 144 ms fwd / bwd
      (batch 32, 2 cores) one image per chunk, 35 / 68 ms with 8; the CIFAR ResNet's 64->64
      layer at 8x8 (256 KB of them, 64 KB of tiles per image) 2.5 / 4.8 ms with 4 images,
      2.3 / 4.4 with 8.  Such chunks are big, so their size is then chosen (up to twice the
      least) for the cores to finish together: 32 images in chunks of 6 leave one core 4
      images of work after the other is done, chunks of 8 none.
    """
    step = max(1, min(n, chunk_bytes // max(1, image_bytes)))
    if weight_bytes < image_bytes or step * image_columns >= min_columns:
        return step
    cores = cpu_count()
    most = max(1, -(-n // cores))                        # every core gets a chunk
    least = max(1, min(most, -(-min_columns // max(1, image_columns))))
    return min(range(least, min(most, 2 * least) + 1), key=lambda s: (_busiest_core(n, s, cores), s))


def _busiest_core(n, step, cores):
    """Images the busiest core works through when chunks of ``step`` (of n) go to the cores in turn."""
    chunks = -(-n // step)
    return -(-chunks // cores) * step


_pool = {}
# GNU OpenMP (libgomp, GCC's) does not rebuild its pool of worker threads after a fork: in
# the child they are gone, and the first parallel loop of a kernel waits for them forever
# (found 2026-12-06: a forked child hung in batchnorm_forward, and in a 1x1 conv, after its
# parent had run one on two threads).  LLVM's libomp starts over by itself.  So a child
# forked after libgomp was loaded runs the kernels' OpenMP loops on its own thread.
_openmp = {"one_thread": False}


def _openmp_on_one_thread():
    """omp_set_num_threads(1) in the libgomp this process has loaded; False if none is."""
    import ctypes
    try:    # RTLD_NOLOAD: only a library already loaded -- one that is not has no stale pool
        gomp = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except (OSError, AttributeError):
        return False
    gomp.omp_set_num_threads(1)
    return True


def _after_fork_in_child():
    # Threads do not survive fork(): a child (a data-loader worker, say) must not submit
    # to its parent's pool -- nobody would run the work -- nor inherit a half-held count,
    # nor wait for its parent's OpenMP threads (above).
    global _recycle_lock
    _pool.clear()
    _blas.pop("depth", None)
    _recycle_lock = threading.Lock()      # a parent's thread may have held it at the fork
    if _openmp_on_one_thread():
        _openmp["one_thread"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def thread_pool():
    """A process-wide pool of cpu_count() worker threads, made on first use (again after a fork)."""
    if "pool" not in _pool:
        from concurrent.futures import ThreadPoolExecutor
        _pool["pool"] = ThreadPoolExecutor(max_workers=cpu_count(), thread_name_prefix="minicnn")
    return _pool["pool"]


# Below this many multiply-adds a layer runs on the calling thread: handing chunks to
# worker threads costs tens of microseconds.
PARALLEL_MIN_MACS = 4 << 20


def _threads_for(items, macs):
    """Threads for ``items`` independent pieces of work, ``macs`` multiply-adds in all: one
    per core, at most one per item -- or 1 for a small layer, or where BLAS's own threads
    cannot be held to one meanwhile (they would fight ours for the cores)."""
    if macs < PARALLEL_MIN_MACS or blas_threads() is None:
        return 1
    return max(1, min(items, cpu_count()))


def share_out(fn, n, step, macs, fixed_shares=False):
    """fn(chunks) on worker threads (BLAS single-threaded meanwhile), or on the calling thread;
    returns the list of fn's results, one per thread, in thread order.

    ``chunks`` is an iterator over the first image of every chunk, range(0, n, step); fn
    processes the chunks it takes from it.  With several threads they share ONE iterator,
    taking the next chunk as they come free: the cores stay busy to the last chunk, even
    when another process slows one of them down.  (Fixed shares -- 4 ranges of images
    per core before this -- left a core idle for up to a range's time at the end; measured
    at load ~1.4, fwd+bwd of the CIFAR ResNet 64->64 8x8 layer went 17.4 -> 16.1 ms, of
    the 16->16 32x32 one 31.6 -> 30.0 ms.)  Taking from a range iterator is atomic under
    the GIL.

    ``fixed_shares=True``: thread t takes chunks t, t + T, t + 2T, ... instead, so what
    each thread computes does not depend on the timing (see sum_over_chunks); ``chunks`` is
    then a range, range(t * step, n, T * step), which a loop in C can take as its bounds.
    """
    starts = range(0, n, step)
    threads = _threads_for(len(starts), macs)
    if threads < 2:
        with blas_threads_for(macs):      # a small layer: no spinning BLAS threads after it
            return [fn(starts if fixed_shares else iter(starts))]
    if fixed_shares:
        shares = [starts[t::threads] for t in range(threads)]
    else:
        shares = [iter(starts)] * threads
    with single_threaded_blas():
        # The calling thread takes the first share itself rather than sleeping until the
        # workers are done: one thread fewer to wake, and none to wake it when they are.
        futures = [thread_pool().submit(fn, chunks) for chunks in shares[1:]]
        try:
            first = fn(shares[0])
        finally:
            wait(futures)           # even if this share failed: no worker left running on our arrays
        return [first] + [f.result() for f in futures]


class threads_for_c_loop:
    """Context manager for a loop in C that shares ``n`` independent items out over OpenMP
    threads itself (im2col.pyx's pointwise_forward, say): ``as`` gives how many threads it
    should use -- by share_out's rule, 1 for a small layer -- with BLAS single-threaded
    meanwhile if more.  (A class, as single_threaded_blas is: a contextmanager generator is
    entered from contextlib's code, which the exercise checker's call watch would take for a
    student's code calling into minicnn.)"""

    def __init__(self, n, macs):
        self.threads = 1 if _openmp["one_thread"] else _threads_for(n, macs)
        self._blas = single_threaded_blas() if self.threads > 1 else blas_threads_for(macs)

    def __enter__(self):
        self._blas.__enter__()
        return self.threads

    def __exit__(self, *exc):
        return self._blas.__exit__(*exc)


def run_chunks(fn, n, step, macs):
    """fn(chunks) over the chunks of a batch of ``n`` (``step`` images each), on the cores
    that come free first; for chunks that write disjoint parts of the output.

    ``macs`` (the layer's multiply-adds) decides whether threads pay: see share_out.
    """
    share_out(fn, n, step, macs)


def sum_over_chunks(fn, n, step, macs):
    """The sum of fn(chunks) over the threads, the same bits whatever the thread timing.

    Each thread sums its chunks' contributions (a weight gradient, say) into the array
    fn returns.  Float addition is not associative, so chunks taken as threads come free
    would make the total -- and a training run -- differ in the last bits from call to
    call (a resumed run would no longer end bit-identical to an uninterrupted one).  So
    thread t takes the fixed share of chunks t, t + T, t + 2T, ..., and the partial sums
    are added in thread order.  The first partial sum receives the total (fn must return
    a fresh array, not a workspace buffer).  fn may return None (nothing to sum: a
    backward pass asked for dx only); None is returned if every thread did.
    """
    parts = [part for part in share_out(fn, n, step, macs, fixed_shares=True) if part is not None]
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total
