"""Channel shuffle (Zhang, Zhou, Lin & Sun 2018, ShuffleNet; kept in ShuffleNet v2, Ma et al. 2018).

Grouped convolutions are cheap but each group only sees its own channels: stacked, the
groups would never talk.  Shuffling the channels between them fixes that for free.
With C channels in ``groups`` groups of C // groups, view the channel axis as a
(groups, C // groups) matrix and transpose it: output channel ``j * groups + g`` is input
channel ``g * (C // groups) + j``.  For C = 6, groups = 2: [0 1 2 | 3 4 5] -> [0 3 1 4 2 5].

It moves values without changing them -- a permutation -- so its backward is the inverse
permutation: the same reshape-transpose with the roles of the two factors swapped.
"""
from minicnn import backend
from minicnn.checks import check_int
from minicnn.functional._validate import check_float_array


def _shuffle(x, groups):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)


def channel_shuffle_forward(x, groups):
    """Interleave the channels of ``groups`` groups.

    - x: (N, C, H, W), C divisible by groups -> out: (N, C, H, W),
      out[:, j * groups + g] = x[:, g * (C // groups) + j]
    Returns (out, cache); cache holds ``groups``.
    """
    op = "channel_shuffle_forward"
    backend.get_array_module(x=x, op=op)
    check_float_array(op, "x", x, ndim=4)
    groups = check_int(op, "groups", groups, 1)
    if x.shape[1] % groups:
        raise ValueError(f"{op}: expected a channel count divisible by groups={groups}, "
                         f"received x of shape {tuple(x.shape)}")
    return _shuffle(x, groups), (groups, x.shape)


def channel_shuffle_backward(dout, cache):
    """The inverse permutation: dx[:, g * (C // groups) + j] = dout[:, j * groups + g].

    - dout: (N, C, H, W) -> dx: (N, C, H, W).  (Shuffling with C // groups groups undoes a
      shuffle with ``groups``: the transpose of the transpose.)
    """
    op = "channel_shuffle_backward"
    groups, shape = cache
    backend.get_array_module(dout=dout, op=op)
    check_float_array(op, "dout", dout, ndim=4)
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"{op}: expected dout of shape {tuple(shape)}, received {tuple(dout.shape)}")
    return _shuffle(dout, shape[1] // groups)
