"""runtime.empty_output: op outputs whose memory is recycled once nothing refers to them, and
the ops that take their outputs from it (a held output is never handed out again)."""
import threading

import numpy as np
import pytest

import minicnn.functional as F
from minicnn import backend, runtime

BIG = (runtime.RECYCLE_MIN_BYTES // 4 + 100,)       # float32 elements over the recycling floor


@pytest.fixture(autouse=True)
def fresh_pool():
    runtime.clear_recycled()
    yield
    runtime.clear_recycled()


def test_empty_output_is_an_empty_array_of_the_shape_and_dtype():
    for dtype in (np.float32, np.float64, np.int32, bool):
        a = runtime.empty_output((3, 70, 200), dtype)
        assert a.shape == (3, 70, 200) and a.dtype == np.dtype(dtype)
        assert a.flags.c_contiguous and a.flags.writeable
        a[...] = 1
        assert (a == 1).all()


def test_an_array_in_use_is_never_handed_out_again():
    """Held directly, through a view, in a tuple (a cache) or a memoryview: new memory each time."""
    a = runtime.empty_output(BIG, np.float32)
    view = runtime.empty_output(BIG, np.float32).reshape(-1, 4)[::2]
    cache = (runtime.empty_output(BIG, np.float32), 3)
    mem = memoryview(runtime.empty_output(BIG, np.float32))
    held = [a, view, cache[0], np.asarray(mem)]
    more = runtime.empty_output(BIG, np.float32)
    assert not any(np.shares_memory(more, h) for h in held)
    for i, x in enumerate(held):
        for y in held[i + 1:]:
            assert not np.shares_memory(x, y)


def test_a_dead_array_is_recycled_for_any_shape_of_the_same_size():
    a = runtime.empty_output((100, 400), np.float32)
    address = a.__array_interface__["data"][0]
    del a
    b = runtime.empty_output((400, 25, 4), np.int32)            # same bytes, another shape and dtype
    assert b.__array_interface__["data"][0] == address and b.shape == (400, 25, 4)
    c = b.reshape(-1)
    del b
    d = runtime.empty_output((100, 400), np.float32)            # c still refers to it
    assert not np.shares_memory(c, d)


def test_small_and_huge_arrays_are_left_to_malloc(monkeypatch):
    small = runtime.empty_output((10,), np.float32)
    assert small.shape == (10,) and runtime.recycled_nbytes() == 0
    monkeypatch.setattr(runtime, "RECYCLE_MAX_BYTES", 4 * BIG[0] * 2)
    huge = runtime.empty_output((3 * BIG[0],), np.float32)
    assert huge.shape == (3 * BIG[0],) and runtime.recycled_nbytes() == 0


def test_kept_bytes_stay_bounded_and_unused_sizes_make_room(monkeypatch):
    """Past RECYCLE_MAX_BYTES, unused arrays of other sizes are dropped to make room; arrays in
    use are never dropped from under their users, and the request is still served."""
    size = 4 * BIG[0]
    monkeypatch.setattr(runtime, "RECYCLE_MAX_BYTES", 3 * size + size // 2)
    a = runtime.empty_output(BIG, np.float32)
    b = runtime.empty_output(BIG, np.float32)
    del b                                                         # kept, unused
    c = runtime.empty_output((BIG[0] + 1,), np.float32)
    assert runtime.recycled_nbytes() <= runtime.RECYCLE_MAX_BYTES
    d = runtime.empty_output((BIG[0] + 2,), np.float32)           # b's memory dropped for it
    assert runtime.recycled_nbytes() <= runtime.RECYCLE_MAX_BYTES
    e = runtime.empty_output((BIG[0] + 3,), np.float32)           # no room left: plain np.empty
    assert runtime.recycled_nbytes() <= runtime.RECYCLE_MAX_BYTES
    live = [a, c, d, e]
    for i, x in enumerate(live):
        x[...] = i
    for i, x in enumerate(live):
        assert (x == i).all()


def test_threads_never_share_an_array_in_use():
    got, barrier = [], threading.Barrier(4)

    def take():
        barrier.wait()
        for _ in range(50):
            got.append(runtime.empty_output(BIG, np.float32))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    addresses = [a.__array_interface__["data"][0] for a in got]
    assert len(set(addresses)) == len(got)


@pytest.mark.skipif(backend.cython_kernels(np, "activations") is None or backend.cython_kernels(np, "pool") is None,
                    reason="the kernels that use recycled outputs are not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_hand_out_recycled_outputs_only_once_the_old_ones_are_dead(dtype):
    """relu and max pool, forward and backward, called again while the first results are held:
    the held results keep their values; once dropped, the next call reuses their memory."""
    assert 32 * 6 * 14 * 14 * 4 >= runtime.RECYCLE_MIN_BYTES
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 28, 28)).astype(dtype)       # every array over the floor
    dout = rng.standard_normal((32, 6, 14, 14)).astype(dtype)
    out, mask = F.relu_forward(x)
    pooled, pcache = F.max_pool2d_forward(out, 2, 2)
    dx = F.max_pool2d_backward(dout, pcache)
    drelu = F.relu_backward(dx, mask)
    first = [a.copy() for a in (out, mask, pooled, pcache[1], dx, drelu)]
    again = [F.relu_forward(-x), F.max_pool2d_forward(-out, 2, 2), F.max_pool2d_backward(-dout, pcache),
             F.relu_backward(-dx, mask)]
    for held, copy in zip((out, mask, pooled, pcache[1], dx, drelu), first):
        np.testing.assert_array_equal(held, copy)
    address = out.__array_interface__["data"][0]
    del out, again
    reused = F.relu_forward(x)[0]
    assert reused.__array_interface__["data"][0] == address
    np.testing.assert_array_equal(reused, np.maximum(x, 0))
