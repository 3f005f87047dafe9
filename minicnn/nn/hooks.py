"""Forward hooks: watch every module call of a forward pass, without changing any module.

``minicnn.summary`` builds its layer table this way, ``minicnn.viz`` grabs feature maps,
and ``minicnn.nn.input_grad`` finds the layer that reads the images.  ``Module.__call__``
runs the active hooks after each forward; composite modules call their children as
``child(x)`` (never ``child.forward(x)``) so that every layer is reported.

    records = []
    with forward_hook(lambda m, x, out: records.append((type(m).__name__, out.shape))):
        model(x)

One consequence lives in ``minicnn.nn.fused``: a fused kernel computes BN + ReLU without
calling either module, so while a hook is active the blocks call the two layers instead.
"""
import contextlib

# The functions registered with forward_hook(fn), in the order they were added.  A plain
# list, tested for emptiness on every module call: the common case (no hook) costs one
# truth test.
ACTIVE = []


@contextlib.contextmanager
def forward_hook(fn):
    """While the block runs, call ``fn(module, x, out)`` after every module's forward.

    ``x`` is the first positional input of the call and ``out`` its result.  Children
    run before their parent finishes, so the calls come in post-order (a Sequential's
    layers first, then the Sequential itself).  Hooks nest: an inner ``with`` adds a
    second function, and leaving it removes only that one.
    """
    if not callable(fn):
        raise ValueError(f"forward_hook: expected a callable fn(module, x, out), received {fn!r}")
    ACTIVE.append(fn)
    try:
        yield fn
    finally:
        # Remove this very entry (by identity) even if the same fn was added twice.
        for i in range(len(ACTIVE) - 1, -1, -1):
            if ACTIVE[i] is fn:
                del ACTIVE[i]
                break


# Both spellings are in use in the team's code; they are the same context manager.
forward_hooks = forward_hook


def active():
    """True while at least one ``forward_hook`` is in effect."""
    return bool(ACTIVE)


def run(module, args, kwargs, out):
    """Report the call ``module(*args, **kwargs) -> out`` to every active hook."""
    x = args[0] if args else next(iter(kwargs.values()), None)
    for fn in list(ACTIVE):   # a copy: a hook may open or close another hook
        fn(module, x, out)
