"""The one place that decides which array module (NumPy or CuPy) and which kernels run.

Like Chainer's ``get_array_module``: an op never imports CuPy.  It asks
``get_array_module(x=x, w=w)`` for ``xp`` -- the module its inputs live in -- and
writes ``xp.zeros(...)``, ``xp.matmul(...)``.  The same lines then run on the CPU
with NumPy and on a GPU with CuPy.

On the CPU, a few hot loops (im2col / col2im, max pooling) also have Cython
kernels in ``minicnn._ext``.  ``cython_kernels(xp)`` hands them to an op when the
arrays are NumPy arrays, the extension was built, and they are not switched off;
otherwise the op takes its plain xp path (the path CuPy runs).  Tests switch the
kernels off with ``use_cython(False)`` to check the two paths against each other.

The backend for *new* arrays (models, data) is chosen with ``set_backend`` or the
environment variable ``MINICNN_BACKEND`` (``numpy``, the default, or ``cupy``).
CuPy is imported only when asked for.
"""
import contextlib
import importlib
import os
import warnings

import numpy as np

BACKENDS = ("numpy", "cupy")

_state = {"backend": None, "cython": True, "warned": False}


def _is_cupy_array(a):
    # Checked by type name so that asking the question never imports CuPy.
    return type(a).__module__.split(".")[0] == "cupy"


def device_of(a):
    """'numpy' or 'cupy': the backend the array ``a`` lives on (asking never imports CuPy)."""
    return "cupy" if _is_cupy_array(a) else "numpy"


def _import_cupy():
    """Import CuPy and make sure a CUDA device answers; one clear error otherwise."""
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(
            "the cupy backend needs CuPy: pip install 'minicnn[cuda12]' (or cupy-cudaXXx "
            f"matching your CUDA); import failed with: {e}") from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
        if n < 1:
            raise RuntimeError("no device found")
        cupy.zeros(1).sum()  # touches the driver, the runtime and a kernel launch
    except Exception as e:  # CuPy raises several unrelated types here
        raise RuntimeError(f"CuPy is installed but no CUDA device is usable: {e}") from None
    return cupy


def set_backend(name):
    """Choose where new arrays live: 'numpy' (CPU) or 'cupy' (GPU)."""
    if name not in BACKENDS:
        raise ValueError(f"set_backend: expected one of {BACKENDS}, received {name!r}")
    if name == "cupy":
        _import_cupy()
    _state["backend"] = name


def get_backend():
    """The name of the active backend, from set_backend or $MINICNN_BACKEND (default 'numpy')."""
    if _state["backend"] is None:
        name = os.environ.get("MINICNN_BACKEND", "numpy").strip().lower() or "numpy"
        set_backend(name)
    return _state["backend"]


def module_for(name):
    """The array module (numpy or cupy) of the backend called ``name``."""
    if name not in BACKENDS:
        raise ValueError(f"expected a backend in {BACKENDS}, received {name!r}")
    return _import_cupy() if name == "cupy" else np


def array_module():
    """The array module of the active backend (for creating new arrays)."""
    return module_for(get_backend())


def get_array_module(*arrays, **named):
    """The module (numpy or cupy) that the given arrays live in.

    Positional and keyword arrays are both accepted; ``None`` is skipped.  Pass them
    by name (``get_array_module(x=x, w=w, op="conv2d_forward")``) so that mixing
    NumPy and CuPy arrays is reported with the offending argument named.  CuPy
    refuses implicit host/device copies on purpose, and so do we.
    """
    op = named.pop("op", None)
    # The common case on the CPU, answered without building the lists below (they cost ~2 us
    # a call, felt in small networks whose layers run in 20-100 us): plain NumPy arrays only.
    if all(a is None or type(a) is np.ndarray for a in (*arrays, *named.values())):
        return np
    items = [(f"argument {i}", a) for i, a in enumerate(arrays)] + list(named.items())
    items = [(k, a) for k, a in items if a is not None]
    on_gpu = [k for k, a in items if _is_cupy_array(a)]
    if not on_gpu:
        return np
    on_cpu = [k for k, a in items if not _is_cupy_array(a)]
    if on_cpu:
        where = f"{op}: " if op else ""
        raise ValueError(
            f"{where}expected all arrays on one backend, received {', '.join(on_cpu)} as NumPy "
            f"and {', '.join(on_gpu)} as CuPy; move them together (model.to('cupy'), "
            "minicnn.backend.asnumpy)")
    import cupy  # already imported by whoever made the CuPy array
    return cupy


def asnumpy(a):
    """A NumPy array with the contents of ``a`` (a NumPy or CuPy array, or anything array-like)."""
    if _is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def to_backend(a, name):
    """``a`` as an array of backend ``name`` ('numpy' or 'cupy'), copying only if it must move."""
    if name == "numpy":
        return asnumpy(a)
    return module_for(name).asarray(a)


def _load_kernels():
    try:
        from minicnn._ext import im2col as im2col_kernels
        from minicnn._ext import pool as pool_kernels
    except ImportError:
        return None
    kernels = {"im2col": im2col_kernels, "pool": pool_kernels}
    # Kernels added later: an extension built before they existed takes their plain path.
    for name in ("batchnorm", "activations", "lrn", "winograd", "direct"):
        try:
            kernels[name] = importlib.import_module("minicnn._ext." + name)
        except ImportError:
            pass
    return kernels


_KERNELS = _load_kernels()


def cython_available():
    """True if the Cython extension was built and imports."""
    return _KERNELS is not None


def cython_kernels(xp, name):
    """The Cython kernel module ``name`` ('im2col', 'pool', 'batchnorm', 'activations', 'lrn',
    'winograd', 'direct') for arrays of module ``xp``, or None.

    None means: take the plain xp path.  That happens for CuPy arrays, when the
    kernels are switched off, and -- with one warning per process -- when the
    extension was not built.
    """
    if xp is not np or not _state["cython"]:
        return None
    if _KERNELS is None:
        if not _state["warned"]:
            _state["warned"] = True
            warnings.warn(
                "minicnn: the Cython kernels are not built; using the pure-NumPy path "
                "(slower). Reinstall with a C compiler: pip install .", RuntimeWarning, stacklevel=3)
        return None
    return _KERNELS.get(name)


@contextlib.contextmanager
def use_cython(enabled):
    """Temporarily switch the Cython kernels on or off (off runs the plain xp path, as CuPy does)."""
    old = _state["cython"]
    _state["cython"] = bool(enabled)
    try:
        yield
    finally:
        _state["cython"] = old
