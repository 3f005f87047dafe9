"""``no_grad()``: forward passes that keep nothing for a backward pass (inference).

Every module's forward stores a cache -- its input, a ReLU's mask, a max pool's argmax --
that backward reads (the CS231n contract).  For inference that is waste: the cache keeps
every layer's output alive until the next forward, so memory cannot be reused within a
pass and each layer's output is fresh memory (page faults, on every call).  Inside
``with no_grad():`` (the name and meaning of PyTorch's ``torch.no_grad``) each module drops
its cache as soon as its forward returns.  Results are the same numbers; a ``backward``
after such a forward raises a clear error.  BatchNorm in training mode still updates its
running statistics, as in PyTorch.

    model.eval()
    with no_grad():
        scores = model(x)

The setting is per thread (as PyTorch's), and contexts nest: leaving one restores what
was in effect before it, also after an exception.
"""
import contextlib
import threading

_state = threading.local()


def is_grad_enabled():
    """False inside ``no_grad()`` on this thread."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Context manager: modules keep no forward caches inside (see the module docstring)."""
    before = is_grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = before
