"""BatchNorm layers whose batch is spread over several processes (``--sync-bn``).

``SyncBatchNorm2d`` / ``SyncBatchNorm1d`` are ``BatchNorm2d`` / ``BatchNorm1d`` with the
arithmetic of ``minicnn.functional.sync_batchnorm``: in training they normalise with the
statistics of the whole batch, summed over the processes by the layer's ``allreduce``
function; in evaluation they are the plain layers.  Same parameters, buffers and
state-dict names, so a checkpoint does not know whether it was trained synchronized.

``sync_batchnorm(model, allreduce)`` swaps every BatchNorm of a built model for its
synchronized twin, in place, keeping the very Parameter objects (an optimizer built before
keeps working) and the running-statistics arrays.  ``minicnn.distributed`` calls it for
``sync_bn=True``.  The fused BN + ReLU kernel (``minicnn.nn.fused``) runs only for exact
``BatchNorm2d`` layers, so a synchronized layer always runs as itself.
"""
from minicnn.functional._validate import check_float_array
from minicnn.functional.sync_batchnorm import sync_batchnorm_backward, sync_batchnorm_forward
from minicnn.nn.layers import BatchNorm1d, BatchNorm2d


class _SyncBatchNorm:
    """The forward/backward shared by both synchronized layers (mixed in before the plain class)."""

    allreduce = None

    def check_input(self, x):
        # The plain layer also wants two values per channel *here*; a process may hold one
        # image of a BatchNorm1d batch, or none: the whole batch is checked in the op.
        op = self._name
        check_float_array(op, "x", x, ndim=self._ndim)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{op}: expected x with {self.num_features} channels (axis 1), "
                             f"received shape {tuple(x.shape)}")

    def forward(self, x):
        if self.allreduce is None:
            raise ValueError(f"{self._name}: no allreduce function set (build it with "
                             "sync_batchnorm(model, allreduce))")
        self.check_input(x)
        out, self._cache = sync_batchnorm_forward(x, self.weight.data, self.bias.data,
                                                  self.running_mean, self.running_var,
                                                  self.training, self.allreduce,
                                                  self.momentum, self.eps)
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = sync_batchnorm_backward(dout, self._get_cache())
        self._accumulate(self.weight, dgamma)
        self._accumulate(self.bias, dbeta)
        return dx


class SyncBatchNorm1d(_SyncBatchNorm, BatchNorm1d):
    """BatchNorm1d over the batch of every process (see the module doc)."""

    _name = "SyncBatchNorm1d"


class SyncBatchNorm2d(_SyncBatchNorm, BatchNorm2d):
    """BatchNorm2d over the batch of every process (see the module doc)."""

    _name = "SyncBatchNorm2d"


_TWIN = {BatchNorm1d: SyncBatchNorm1d, BatchNorm2d: SyncBatchNorm2d}


def sync_batchnorm(model, allreduce):
    """Replace every BatchNorm1d/2d in ``model`` by its synchronized twin, in place; returns
    the number replaced.  ``allreduce(float64 vector) -> its sum over the processes``.

    Parameters, buffers, hyper-parameters and modes carry over (the same objects).  A layer
    already synchronized gets the new ``allreduce``.
    """
    if not callable(allreduce):
        raise ValueError(f"sync_batchnorm: expected a callable allreduce, received "
                         f"{type(allreduce).__name__}")
    count = 0
    for _, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _SyncBatchNorm):
                child.allreduce = allreduce
                count += 1
            elif type(child) in _TWIN:
                twin = _TWIN[type(child)].__new__(_TWIN[type(child)])
                # The same attributes (parameters, buffers, registries, mode): only the class differs.
                object.__setattr__(twin, "__dict__", dict(child.__dict__))
                twin.allreduce = allreduce
                setattr(parent, name, twin)
                count += 1
    return count
