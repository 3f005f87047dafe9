"""The CuPy backend on a real GPU: every op agrees with the NumPy path.

Marked ``gpu``; skipped (with the reason) where CuPy or a CUDA device is missing, as
on the development and CI machines.  Without a GPU, the very same xp-generic code is
exercised by the other tests with NumPy as xp (``backend.use_cython(False)``).
"""
import numpy as np
import pytest

import minicnn.functional as F
from minicnn import backend

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    return backend.module_for("cupy")


def _ops(xp, x, w, rng_seed):
    out = {}
    o, c = F.conv2d_forward(x, w, None, stride=2, pad=1, groups=1)
    out["conv"] = (o, *F.conv2d_backward(o.copy(), c)[:2])
    o, c = F.max_pool2d_forward(x, 3, 2, 1)
    out["max_pool"] = (o, F.max_pool2d_backward(o.copy(), c))
    o, c = F.avg_pool2d_forward(x, 3, 2, 1)
    out["avg_pool"] = (o, F.avg_pool2d_backward(o.copy(), c))
    o, c = F.lrn_forward(x)
    out["lrn"] = (o, F.lrn_backward(o.copy(), c))
    ch = x.shape[1]
    o, c = F.batchnorm_forward(x, xp.ones(ch), xp.zeros(ch), xp.zeros(ch), xp.ones(ch), True)
    out["batchnorm"] = (o, *F.batchnorm_backward(o.copy(), c))
    o, c = F.relu_forward(x)
    out["relu"] = (o, F.relu_backward(o.copy(), c))
    loss, d = F.softmax_cross_entropy(x.reshape(x.shape[0], -1), xp.zeros(x.shape[0], dtype=xp.int64))
    out["loss"] = (xp.asarray([loss]), d)
    return out


def test_every_op_matches_numpy_on_the_gpu(cp):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 2))
    ref = _ops(np, x, w, 0)
    got = _ops(cp, cp.asarray(x), cp.asarray(w), 0)
    for name in ref:
        for a, b in zip(ref[name], got[name]):
            np.testing.assert_allclose(backend.asnumpy(b), a, rtol=1e-9, atol=1e-12, err_msg=name)


def test_mixing_devices_is_refused(cp):
    with pytest.raises(ValueError, match="one backend"):
        F.conv2d_forward(cp.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), None)
