"""Skip the gradient with respect to the images in a training step.

A training step needs dL/dparam for every layer but never dL/dx of the data batch, and in a
network's first conv that input gradient (a GEMM and a col2im over the largest maps of the
network) is about half the layer's backward -- ~10% of a LeNet-5 step.  PyTorch skips it
because the input tensor does not require grad; here the layer is told: ``Conv2d.input_grad
= False`` makes its backward return None instead of dx.

Which layer reads the data is a property of the model's wiring, found by watching one
forward pass.  It is only safe to switch off where nothing else uses that gradient: the
layer must receive the batch itself, and every module between it and the model must hand
its dx up unchanged -- a Sequential (its backward does), or a model class that declares it
with ``input_layer = "conv1"`` (the ResNets).  A residual block at the input (its shortcut
also carries the data) or any other custom model class is left alone.

    with skip_data_gradient(model, x_batch):
        for x, y in batches:
            ...  model.backward(dscores)   # returns None; every param.grad as before
"""
import contextlib

from minicnn.nn.hooks import forward_hook
from minicnn.nn.layers import Conv2d
from minicnn.nn.module import Sequential
from minicnn.nn.probe import untouched


def data_layer(model, x):
    """The Conv2d of ``model`` that reads ``x`` directly, reached through Sequentials or a
    model that names it in ``input_layer``; None if there is no such layer (module doc).

    Runs model(x[:1]) once in eval mode and leaves the model as it was (modes, caches,
    BatchNorm statistics, Generators: minicnn.nn.probe.untouched).
    """
    probe = x[:1]
    calls = []                         # (module, whether it received the batch itself)
    with untouched(model, training=False), \
            forward_hook(lambda m, inp, out: calls.append((m, inp is probe))):
        model(probe)
    receivers = [m for m, got_batch in calls if got_batch]
    leaves = [m for m in receivers if not any(True for _ in m.children())]
    if len(leaves) != 1 or not isinstance(leaves[0], Conv2d):
        return None
    layer = leaves[0]
    # A layer used twice (shared weights) must still return dx for its other use.
    if sum(m is layer for m, _ in calls) != 1:
        return None
    # Every other module that saw the batch must hand the layer's dx up untouched: a
    # Sequential with Sequential's own backward, or a model that says so by naming the layer
    # in ``input_layer`` (the ResNets: their backward ends ``return self.conv1.backward(d)``).
    for m in receivers:
        if m is layer:
            continue
        declared = getattr(m, "input_layer", None)
        if declared is not None and getattr(m, declared, None) is layer:
            continue
        if not isinstance(m, Sequential) or type(m).backward is not Sequential.backward:
            return None
    return layer


@contextlib.contextmanager
def skip_data_gradient(model, x):
    """While the block runs, the layer found by ``data_layer(model, x)`` skips its input
    gradient (``model.backward`` returns None); restored on leaving.  Yields that layer, or
    None when there is no such layer (then nothing changes)."""
    layer = data_layer(model, x)
    if layer is None:
        yield None
        return
    old = layer.input_grad
    layer.input_grad = False
    try:
        yield layer
    finally:
        layer.input_grad = old
