"""Run a model without leaving a trace: the one helper behind every "look, don't touch" pass.

Several tools run a forward pass only to *learn* something -- the initial loss of a
training run, the layer table of ``summary``, which conv reads the images -- and must
leave the model exactly as they found it.  A forward pass changes more than it seems:

* BatchNorm in training mode moves its running statistics (buffers);
* Dropout and stochastic depth draw from the Generators the modules hold, so the run
  that follows would see other masks;
* every layer keeps its forward cache, which a backward the caller is about to run needs;
* ``train()`` / ``eval()`` flip every module's mode.

``untouched(model)`` saves all four and puts them back on exit, whatever happens inside::

    with untouched(model, training=False):
        scores = model(x)        # eval mode here; afterwards the model is as it was
"""
import contextlib

import numpy as np

_ABSENT = object()


def generator_states(model):
    """{"<module path>.<attribute>": bit-generator state} for every Generator a module holds.

    Models pass one Generator to all their children, so the same Generator is found
    under several names; each is recorded (restoring it twice is harmless).
    """
    states = {}
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                states[f"{prefix}.{attr}" if prefix else attr] = value.bit_generator.state
    return states


def set_generator_states(model, states):
    """Restore what ``generator_states`` recorded (names that are absent are left alone)."""
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            key = f"{prefix}.{attr}" if prefix else attr
            if isinstance(value, np.random.Generator) and key in states:
                value.bit_generator.state = states[key]


@contextlib.contextmanager
def untouched(model, training=None):
    """Context manager: forward passes inside leave ``model`` as it was.

    ``training``: None keeps the current modes; True / False switches the whole model to
    training / evaluation mode for the duration.  On exit every module's mode, forward
    cache, buffers (copied back into the same arrays) and Generator states are restored;
    parameters are not saved (a forward pass does not change them).
    """
    modules = list(model.modules())
    # The mode each module was asked for: a frozen BatchNorm reads as eval (``training`` is
    # its effective mode) but keeps the mode train()/eval() asked for, to use when unfrozen.
    modes = [getattr(m, "_asked_training", m.training) for m in modules]
    caches = [m.__dict__.get("_cache", _ABSENT) for m in modules]
    buffers = [(b, b.copy()) for m in modules for b in (getattr(m, n) for n in m._buffer_names)
               if b is not None]
    rngs = generator_states(model)
    if training is not None:
        model.train(bool(training))
    try:
        yield model
    finally:
        for m, mode, cache in zip(modules, modes, caches):
            # object.__setattr__: the mode and cache are plain attributes, not registered state.
            object.__setattr__(m, "training", mode)
            if cache is not _ABSENT:
                object.__setattr__(m, "_cache", cache)
            elif "_cache" in m.__dict__:
                object.__delattr__(m, "_cache")
        for live, saved in buffers:
            live[...] = saved
        set_generator_states(model, rngs)
