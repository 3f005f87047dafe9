"""minicnn.runtime: workspace buffers, OpenBLAS control, and chunks shared out over threads
with a fixed-order (bit-reproducible) sum of the threads' partial results."""
import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from minicnn import runtime


def test_runtime_imports_nothing_from_the_ops():
    """runtime sits beside backend, below functional: importing it must not pull the ops in."""
    code = "import sys, minicnn.runtime; sys.exit('minicnn.functional' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ----------------------------------------------------------------------------- workspace

def test_workspace_reuses_and_bounds_its_buffers(monkeypatch):
    """Same name and dtype -> the same memory; a request over WORKSPACE_MAX_BYTES is a fresh
    array that is not kept; the kept bytes never exceed WORKSPACE_MAX_BYTES."""
    runtime.clear_workspace()
    a = runtime.workspace("t_a", (4, 5), np.float32)
    b = runtime.workspace("t_a", (2, 3), np.float32)
    assert a.shape == (4, 5) and b.shape == (2, 3) and b.flags.c_contiguous
    assert np.shares_memory(a, b)
    assert not np.shares_memory(a, runtime.workspace("t_a", (4, 5), np.float64))
    assert not np.shares_memory(a, runtime.workspace("t_b", (4, 5), np.float32))
    monkeypatch.setattr(runtime, "WORKSPACE_MAX_BYTES", 1000)
    big = runtime.workspace("t_big", (300,), np.float64)
    assert big.shape == (300,) and not np.shares_memory(big, runtime.workspace("t_big", (300,), np.float64))
    runtime.workspace("t_c", (200,), np.float32)
    runtime.workspace("t_d", (200,), np.float32)
    assert runtime.workspace_nbytes() <= 1000
    runtime.clear_workspace()
    assert runtime.workspace_nbytes() == 0


def test_workspace_is_per_thread():
    runtime.clear_workspace()
    mine = runtime.workspace("t_thread", (16,), np.float32)
    other = []
    t = threading.Thread(target=lambda: other.append(runtime.workspace("t_thread", (16,), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(mine, other[0])
    runtime.clear_workspace()


def test_single_threaded_blas_restores_the_setting():
    api = runtime.blas_threads()
    if api is None:
        pytest.skip("BLAS threads cannot be controlled here (not OpenBLAS)")
    set_threads, get_threads = api
    before = get_threads()
    with runtime.single_threaded_blas():
        assert get_threads() == 1
        with runtime.single_threaded_blas():
            assert get_threads() == 1
        assert get_threads() == 1
    assert get_threads() == before


def test_small_gemms_run_on_one_blas_thread_big_ones_on_all(monkeypatch):
    """blas_threads_for: one BLAS thread below GEMM_THREADS_MIN_MACS (OpenBLAS's spinning
    threads would starve the conv chunks after it), BLAS's own setting from there on; and
    linear_forward / linear_backward run their GEMMs inside it."""
    api = runtime.blas_threads()
    if api is None:
        pytest.skip("BLAS threads cannot be controlled here (not OpenBLAS)")
    set_threads, get_threads = api
    before = get_threads()
    set_threads(2)
    try:
        with runtime.blas_threads_for(runtime.GEMM_THREADS_MIN_MACS - 1):
            assert get_threads() == 1
        assert get_threads() == 2
        with runtime.blas_threads_for(runtime.GEMM_THREADS_MIN_MACS):
            assert get_threads() == 2
        seen = []
        real = runtime.blas_threads_for

        def spy(macs):
            seen.append(macs)
            return real(macs)
        monkeypatch.setattr(runtime, "blas_threads_for", spy)
        import minicnn.functional as F
        x, w = np.ones((4, 5), np.float32), np.ones((3, 5), np.float32)
        out, cache = F.linear_forward(x, w, None)
        F.linear_backward(np.ones_like(out), cache)
        assert seen == [4 * 5 * 3, 4 * 3 * 5]
    finally:
        set_threads(before)


# ----------------------------------------------------------------------------- chunks on threads

@pytest.fixture
def three_threads(monkeypatch):
    """Chunks really go to 3 worker threads, whatever the machine (skipped without OpenBLAS
    control, where they always run on the calling thread)."""
    if runtime.blas_threads() is None:
        pytest.skip("BLAS threads cannot be controlled here: chunks run on the calling thread")
    monkeypatch.setattr(runtime, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(runtime, "cpu_count", lambda: 3)


def _jittery(fn, seed):
    """fn with a random pause before each chunk, so threads finish in a different order."""
    pause = random.Random(seed)

    def slow(chunks):
        def with_pauses():
            for n0 in chunks:
                time.sleep(pause.random() * 2e-3)
                yield n0
        return fn(with_pauses())
    return slow


def test_sum_over_chunks_takes_fixed_shares_in_thread_order(three_threads):
    """Thread t takes chunks t, t + 3, t + 6, ... and the partial results are added in
    thread order, however long each chunk takes.  (Lists add by concatenation, so the
    total shows exactly which chunks each thread took and in which order they were summed.)"""
    for seed in range(4):
        total = runtime.sum_over_chunks(_jittery(lambda chunks: list(chunks), seed), 20, 2, 1)
        assert total == [0, 6, 12, 18] + [2, 8, 14] + [4, 10, 16]


def test_sum_over_chunks_is_bitwise_reproducible(three_threads):
    """Float32 partial sums whose total depends on the order of additions: the same bits on
    every call, and exactly the sum taken share by share, then shares in thread order."""
    rng = np.random.default_rng(0)
    terms = (rng.standard_normal((13, 64)) * 10.0 ** rng.integers(-4, 5, (13, 1))).astype(np.float32)
    names = []

    def partial(chunks):
        names.append(threading.current_thread().name)
        out = np.zeros(64, np.float32)
        for n0 in chunks:
            out += terms[n0]
        return out

    want = np.zeros(64, np.float32)
    for t in range(3):
        share = np.zeros(64, np.float32)
        for n0 in range(t, 13, 3):
            share += terms[n0]
        want += share
    assert not np.array_equal(want, terms.sum(axis=0, dtype=np.float32))   # the order matters here
    for seed in range(6):
        got = runtime.sum_over_chunks(_jittery(partial, seed), 13, 1, 1)
        np.testing.assert_array_equal(got, want)
    # Really on several threads: the calling one takes the first share, workers the others.
    assert names.count(threading.current_thread().name) == 6
    assert sum(name.startswith("minicnn") for name in names) == 12


def test_fixed_shares_are_ranges_a_loop_in_c_can_take(three_threads):
    """With fixed shares each thread gets range(t * step, n, T * step) -- also on the calling
    thread -- so a C loop can take its bounds; a share may sum nothing (None)."""
    shares = runtime.share_out(lambda chunks: chunks, 20, 2, 1, fixed_shares=True)
    assert shares == [range(0, 20, 6), range(2, 20, 6), range(4, 20, 6)]
    assert runtime.sum_over_chunks(lambda chunks: None, 20, 2, 1) is None
    assert runtime.sum_over_chunks(lambda chunks: None if chunks.start else np.ones(2), 20, 2, 1).tolist() == [1, 1]


def test_cblas_gemm_multiplies_as_numpy_does():
    """Where NumPy's BLAS is an OpenBLAS, cblas_gemm() finds its sgemm and dgemm (checked on a
    small product when found) -- what the Winograd chunk loops call from C."""
    found = runtime.cblas_gemm()
    if found is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS with a CBLAS interface")
    sgemm, dgemm, ilp64 = found
    assert isinstance(sgemm, int) and isinstance(dgemm, int) and sgemm != dgemm
    assert isinstance(ilp64, bool)
    assert runtime.cblas_gemm() is found                                    # looked up once


def test_the_calling_thread_takes_the_first_share_and_waits_for_the_rest(three_threads):
    """share_out runs share 0 on the calling thread (one worker fewer to wake); when a share
    fails, the error reaches the caller -- after every worker is done with its share."""
    done = []

    def fn(chunks):
        if chunks.start == 0:
            raise ValueError("share 0 failed")
        time.sleep(0.05)
        done.append(threading.current_thread().name)
        return chunks.start

    with pytest.raises(ValueError, match="share 0 failed"):
        runtime.share_out(fn, 6, 1, 1, fixed_shares=True)
    assert len(done) == 2 and all(name.startswith("minicnn") for name in done)
    def worker_fails(chunks):
        if chunks.start == 1:
            raise ValueError("share 1 failed")
        return chunks.start

    with pytest.raises(ValueError, match="share 1 failed"):
        runtime.share_out(worker_fails, 6, 1, 1, fixed_shares=True)
    who = runtime.share_out(lambda chunks: threading.current_thread().name, 6, 1, 1, fixed_shares=True)
    assert who[0] == threading.current_thread().name and all(w.startswith("minicnn") for w in who[1:])


def test_run_chunks_gives_every_chunk_to_exactly_one_thread(three_threads):
    taken = []
    runtime.run_chunks(_jittery(lambda chunks: taken.extend(chunks), 1), 23, 3, 1)
    assert sorted(taken) == list(range(0, 23, 3))


def test_small_work_stays_on_the_calling_thread(monkeypatch):
    """Below PARALLEL_MIN_MACS (or with one core) fn runs once, here, over all the chunks."""
    calls = []

    def fn(chunks):
        calls.append((threading.current_thread() is threading.main_thread(), list(chunks)))
        return np.ones(2)

    monkeypatch.setattr(runtime, "PARALLEL_MIN_MACS", 100)
    np.testing.assert_array_equal(runtime.sum_over_chunks(fn, 7, 2, 99), np.ones(2))
    monkeypatch.setattr(runtime, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(runtime, "cpu_count", lambda: 1)
    runtime.run_chunks(fn, 7, 2, 10 ** 9)
    assert calls == [(True, [0, 2, 4, 6])] * 2


# ----------------------------------------------------------------------------- chunk sizes

@pytest.mark.parametrize("cores", [1, 2, 3])
def test_images_per_chunk_fits_the_byte_budget_when_the_weights_are_small(monkeypatch, cores):
    """Weights smaller than an image's data: as many images as fit chunk_bytes (at least 1, at
    most n), however few GEMM columns that makes."""
    monkeypatch.setattr(runtime, "cpu_count", lambda: cores)
    assert runtime.images_per_chunk(128, 100, 4, 99, 1000, 256) == 10
    assert runtime.images_per_chunk(128, 5000, 4, 4999, 1000, 256) == 1
    assert runtime.images_per_chunk(3, 100, 4, 99, 1000, 256) == 3
    assert runtime.images_per_chunk(128, 100, 4, 100, 1000, 256) == min(64, -(-128 // cores))  # wide


@pytest.mark.parametrize("n,columns,cores,step", [
    (32, 16, 2, 16),     # 16 images for 256 columns: one chunk per core
    (32, 49, 2, 8),      # 6 images would do, but 32 = 6+6+6+6+6+2 leaves a core a chunk short
    (33, 49, 2, 6),      # 6 x 5 + 3: 18 and 15 images per core, as even as 6-12 allow
    (128, 49, 2, 8),     # 16 chunks, 8 per core
    (128, 49, 3, 11),    # 12 chunks, 4 per core (the last one 7 images): 44 images at most
    (7, 1, 2, 4),        # too few images for 256 columns per core: one chunk per core
    (7, 100, 3, 3),      # 3 images per chunk: 3 + 3 + 1
    (1, 1, 2, 1),
    (0, 16, 2, 1),       # an empty batch: one (empty) chunk
    (128, 300, 2, 1),    # one image already has the columns
])
def test_images_per_chunk_gives_big_weights_wide_chunks_in_whole_rounds(monkeypatch, n, columns, cores, step):
    """Weights larger than the budget: at least min_columns columns per chunk, as long as
    every core still gets a chunk, and of the size (up to twice that) that leaves the busiest
    core the least work."""
    monkeypatch.setattr(runtime, "cpu_count", lambda: cores)
    assert runtime.images_per_chunk(n, 10 ** 6, columns, 10 ** 7, 10 ** 6, 256) == step


def test_deep_layers_get_wide_chunks_and_cifar_layers_keep_theirs(monkeypatch):
    """The rule engages where it was measured to pay (ResNet-18's 7x7 and 14x14 layers at
    batch 32, the CIFAR ResNet's 64->64 8x8) and leaves the 32->32 16x16 layer as it was."""
    from minicnn.functional import conv_im2col, conv_winograd
    monkeypatch.setattr(runtime, "cpu_count", lambda: 2)
    assert conv_winograd.chunk_size(32, 512, 4, 4, 4, 512) == 8            # 512->512 7x7
    assert conv_winograd.chunk_size(32, 256, 7, 7, 4, 256) == 4            # 256->256 14x14
    assert conv_im2col.chunk_size(32, 256 * 9, 49, 4, 512) == 8            # 256->512 3x3/2
    assert conv_winograd.chunk_size(128, 64, 4, 4, 4, 64) == 8             # 64->64 8x8
    assert conv_winograd.chunk_size(128, 32, 8, 8, 4, 32) == 2             # 32->32 16x16


def test_grouped_layers_count_only_their_own_weights(monkeypatch):
    """A depthwise layer's weights are F * KH * KW values, not F * C * KH * KW: MobileNet's
    1024-channel depthwise 3x3 at 7x7 keeps the byte budget's chunks, as its dense twin does not."""
    from minicnn.functional import conv_im2col
    monkeypatch.setattr(runtime, "cpu_count", lambda: 2)
    assert conv_im2col.chunk_size(32, 1024 * 9, 49, 4, 1024, groups=1024) == 1
    assert conv_im2col.chunk_size(32, 1024 * 9, 49, 4, 1024) == 8
