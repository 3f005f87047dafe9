"""The backend: one place decides numpy or cupy, and the Cython kernels on the CPU."""
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

from minicnn import backend
import minicnn.functional as F


class FakeCupyArray:
    """Looks like a CuPy array to the backend (by its type's module), without CuPy."""
    __module__ = "cupy._core.core"
    shape, dtype = (1,), np.dtype(np.float32)


def test_numpy_arrays_give_numpy():
    assert backend.get_array_module(np.zeros(2), None, w=np.ones(1)) is np


def test_mixing_numpy_and_cupy_names_the_argument():
    with pytest.raises(ValueError) as info:
        backend.get_array_module(x=np.zeros(2), w=FakeCupyArray(), op="conv2d_forward")
    msg = str(info.value)
    assert "conv2d_forward" in msg and "x as NumPy" in msg and "w as CuPy" in msg


def test_import_minicnn_never_imports_cupy():
    code = ("import sys, minicnn, minicnn.functional, minicnn.nn, minicnn.models; "
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cupy_backend_without_cupy_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(RuntimeError, match="needs CuPy"):
        backend.set_backend("cupy")


def test_cupy_without_a_device_is_one_clear_error(monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(RuntimeError, match="CuPy is installed but no CUDA device is usable: cudaErrorNoDevice"):
        backend.set_backend("cupy")


def test_unknown_backend_and_environment_variable(monkeypatch):
    with pytest.raises(ValueError, match="'numpy', 'cupy'.*'torch'"):
        backend.set_backend("torch")
    monkeypatch.setitem(backend._state, "backend", None)
    monkeypatch.setenv("MINICNN_BACKEND", "numpy")
    assert backend.get_backend() == "numpy" and backend.array_module() is np


def test_missing_extension_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(backend, "_KERNELS", None)
    monkeypatch.setitem(backend._state, "warned", False)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, _ = F.conv2d_forward(x, w, None, pad=1)
        F.max_pool2d_forward(x, 2, 2)
        F.conv2d_forward(x, w, None)
    assert len([c for c in caught if "Cython kernels are not built" in str(c.message)]) == 1
    ref, _ = F.conv2d_forward_naive(x, w, None, pad=1)
    np.testing.assert_allclose(out, ref, rtol=1e-10)


def test_use_cython_switch_restores_state():
    before = backend._state["cython"]
    with backend.use_cython(False):
        assert backend.cython_kernels(np, "im2col") is None
    assert backend._state["cython"] == before


def test_the_extension_is_built():
    # `make test` builds it; this guards against a silently broken build (the fallback would hide it).
    assert backend.cython_available(), "minicnn._ext did not build; see the pip install output"


def test_asnumpy_and_to_backend():
    a = np.arange(3)
    assert backend.asnumpy(a) is a
    np.testing.assert_array_equal(backend.to_backend([1, 2], "numpy"), [1, 2])
