"""Mini-batches for training: seeded shuffling, augmentation, per-channel normalisation.

    loader = BatchLoader(x_train, y_train, 128, shuffle=True, augment=True, rng=0)
    val = BatchLoader(x_test, y_test, 256, shuffle=False, mean=loader.mean, std=loader.std)
    for xb, yb in loader:      # xb float32 (B, C, H, W), normalised; yb int64 (B,)
        ...

Augmentation is the CIFAR-10 recipe of He et al. (2016): pad each image with 4 zero
pixels on every side, take a random 32x32 crop, and flip it horizontally with
probability 1/2.  Padding happens in pixel space, before normalisation, as
torchvision's ``RandomCrop(32, padding=4)`` before ``Normalize`` does, so the border is
black.  The whole batch is cropped and flipped by one fancy-indexing gather (see
``random_crop_flip``) -- no Python loop over images.

All random numbers of an epoch (the permutation, the crop offsets and flips of every
image) are drawn from one ``numpy.random.Generator`` at the start of the epoch.  So the
batches depend only on the seed, and ``state_dict()`` -- the Generator's state at the
start of the current epoch plus how many batches were handed out -- is enough to resume
in the middle of an epoch with exactly the batches an uninterrupted run would have seen.
The random numbers are always drawn on the host with NumPy (so CPU and GPU runs see the
same batches); the arrays themselves may be NumPy or CuPy.
"""
import numpy as np

from minicnn.backend import asnumpy, get_array_module
from minicnn.checks import as_generator, check_int, check_xy


def _jsonable(v):
    """Bit-generator states hold NumPy arrays (MT19937) and ints; make them JSON-able."""
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return {"__ndarray__": v.tolist(), "dtype": v.dtype.str}
    if isinstance(v, np.integer):
        return int(v)
    return v


def _from_jsonable(v):
    if isinstance(v, dict):
        if "__ndarray__" in v:
            return np.asarray(v["__ndarray__"], dtype=v["dtype"])
        return {k: _from_jsonable(x) for k, x in v.items()}
    return v


def channel_stats(x, chunk=1024):
    """Per-channel mean and standard deviation of images ``x`` (N, C, H, W).

    Returns ``(mean, std)``, two float64 NumPy arrays of shape (C,), in the units of ``x``
    (0..255 for uint8 images).  Computed in float64 over chunks of ``chunk`` images, so
    50,000 CIFAR-10 images never need a 1.2 GB float64 copy.
    """
    if getattr(x, "ndim", None) != 4 or x.shape[0] == 0:
        raise ValueError(f"channel_stats: expected a non-empty image array (N, C, H, W), "
                         f"received shape {getattr(x, 'shape', type(x).__name__)}")
    xp = get_array_module(x)
    n, c = x.shape[0], x.shape[1]
    count = n * x.shape[2] * x.shape[3]
    total = xp.zeros(c, dtype=xp.float64)
    for i in range(0, n, chunk):
        total += x[i:i + chunk].astype(xp.float64).sum(axis=(0, 2, 3))
    mean = total / count
    # Second pass around the mean: E[(x - mean)^2] is accurate where E[x^2] - mean^2 is not.
    sq = xp.zeros(c, dtype=xp.float64)
    for i in range(0, n, chunk):
        d = x[i:i + chunk].astype(xp.float64) - mean[None, :, None, None]
        sq += (d * d).sum(axis=(0, 2, 3))
    std = xp.sqrt(sq / count)
    return asnumpy(mean), asnumpy(std)


def random_crop_flip(x, dy, dx, flip, pad):
    """Crop every image of ``x`` at its own offset after zero padding, flipping some.

    x: (B, C, H, W); dy, dx: int arrays (B,) in [0, 2 * pad], the top-left corner of each
    crop in the padded image; flip: bool array (B,), True = mirror left-right.
    Returns a new array (B, C, H, W) of x's dtype.

    The batch is padded once, then a single gather picks, for image b, rows
    ``dy[b] + i`` and columns ``dx[b] + j`` (or ``dx[b] + W - 1 - j`` when flipped):
    index arrays of shapes (B,1,1,1), (1,C,1,1), (B,1,H,1), (B,1,1,W) broadcast to the
    output.  A crop at offset ``pad`` without a flip returns the image unchanged.
    """
    xp = get_array_module(x)
    b, c, h, w = x.shape
    padded = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy, dx, flip = xp.asarray(dy), xp.asarray(dx), xp.asarray(flip)
    rows = dy[:, None] + xp.arange(h)[None, :]                          # (B, H)
    cols = dx[:, None] + xp.arange(w)[None, :]                          # (B, W)
    cols = xp.where(flip[:, None], cols[:, ::-1], cols)                 # mirror = reversed columns
    return padded[xp.arange(b)[:, None, None, None], xp.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


class BatchLoader:
    """Iterate over ``(x, y)`` in mini-batches, one epoch per ``for`` loop.

    x: images (N, C, H, W), uint8 or float (NumPy or CuPy); y: integer labels (N,).
    batch_size: images per batch; the last batch is smaller unless ``drop_last``.
    shuffle: a new seeded permutation every epoch (False: the stored order).
    augment: random crop after ``pad``-pixel zero padding and horizontal flip (training only).
    rng: a numpy Generator, an int seed or None (fresh entropy).
    mean, std: per-channel statistics (C,) in the units of x; None computes them from x
        with ``channel_stats`` -- right for the training set; give the validation loader
        the training loader's ``.mean`` and ``.std``.
    normalize: False yields x only cast to ``dtype`` (then mean and std must be None).
    dtype: the float dtype of the yielded images (float32 by default).

    Yields ``(xb, yb)``: xb ``dtype`` (B, C, H, W) = (x - mean) / std, yb int64 (B,).

    ``state_dict()`` / ``load_state_dict(state)`` save and restore the position (a JSON-able
    dict): after ``load_state_dict`` the next ``for`` loop yields exactly the batches the
    saved loader would have yielded next, in the middle of an epoch too.  A state taken
    after the k-th batch of an epoch was handed out resumes with batch k + 1.  Starting a
    new ``for`` loop without loading a state always starts a new epoch.
    """

    def __init__(self, x, y, batch_size, shuffle=True, augment=False, rng=None, mean=None,
                 std=None, drop_last=False, normalize=True, pad=4, dtype=np.float32):
        check_xy("BatchLoader", x, y)
        batch_size = check_int("BatchLoader", "batch_size", batch_size, 1)
        pad = check_int("BatchLoader", "pad", pad, 0)
        if np.dtype(dtype).kind != "f":
            raise ValueError(f"BatchLoader: expected a float dtype, received {dtype!r}")
        self.xp = get_array_module(x=x, y=y, op="BatchLoader")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle, self.augment, self.drop_last = bool(shuffle), bool(augment), bool(drop_last)
        self.pad = int(pad)
        self.dtype = np.dtype(dtype)
        self.rng = as_generator(rng, op="BatchLoader")
        self.normalize = bool(normalize)
        c = x.shape[1]
        if not self.normalize:
            if mean is not None or std is not None:
                raise ValueError("BatchLoader: mean/std given with normalize=False")
            self.mean = self.std = None
        else:
            if (mean is None) != (std is None):
                raise ValueError("BatchLoader: expected both mean and std, or neither "
                                 "(then they are computed from x)")
            if mean is None:
                mean, std = channel_stats(x)
            mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (c,)).copy()
            std = np.broadcast_to(np.asarray(std, dtype=np.float64), (c,)).copy()
            if not (np.all(np.isfinite(std)) and np.all(std > 0)):
                raise ValueError(f"BatchLoader: expected a positive std per channel, received "
                                 f"{std.tolist()} (is a channel constant?)")
            self.mean, self.std = mean, std
            self._shift = self.xp.asarray(mean.reshape(1, c, 1, 1), dtype=self.dtype)
            self._scale = self.xp.asarray((1.0 / std).reshape(1, c, 1, 1), dtype=self.dtype)
        self.epoch = 0            # completed epochs
        self._epoch_start = None  # Generator state when the epoch in progress began
        self._position = 0        # batches handed out in the epoch in progress
        self._resume = False      # load_state_dict asked the next loop to continue an epoch

    def __len__(self):
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _plan(self):
        """Draw all the randomness of one epoch, in a fixed order."""
        n = self.x.shape[0]
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        if self.augment:
            offsets = self.rng.integers(0, 2 * self.pad + 1, size=(2, n))
            flips = self.rng.random(n) < 0.5
        else:
            offsets = flips = None
        return order, offsets, flips

    def _batch(self, idx, offsets, flips):
        xp = self.xp
        xb = self.x[xp.asarray(idx)]
        if self.augment:
            xb = random_crop_flip(xb, offsets[0][idx], offsets[1][idx], flips[idx], self.pad)
        xb = xb.astype(self.dtype)
        if self.normalize:
            xb -= self._shift
            xb *= self._scale
        return xb, self.y[xp.asarray(idx)].astype(xp.int64)

    def __iter__(self):
        if self._resume:
            self.rng.bit_generator.state = self._epoch_start
            start = self._position
        else:
            self._epoch_start = self.rng.bit_generator.state
            start = 0
        self._resume = False
        self._position = start
        order, offsets, flips = self._plan()
        for k in range(start, len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            self._position = k + 1
            yield self._batch(idx, offsets, flips)
        self.epoch += 1
        self._epoch_start = None
        self._position = 0

    def state_dict(self):
        """The loader's position, a JSON-able dict: {"rng", "epoch", "position"}."""
        in_epoch = self._epoch_start is not None
        rng = self._epoch_start if in_epoch else self.rng.bit_generator.state
        return {"rng": _jsonable(rng), "epoch": int(self.epoch),
                "position": int(self._position if in_epoch else 0)}

    def load_state_dict(self, state):
        """Restore a position from ``state_dict()``; the next ``for`` loop continues from there."""
        try:
            rng, epoch, position = state["rng"], int(state["epoch"]), int(state["position"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"BatchLoader.load_state_dict: expected a dict with keys rng, "
                             f"epoch, position, received {state!r:.200}") from None
        if not 0 <= position <= len(self):
            raise ValueError(f"BatchLoader.load_state_dict: expected position in 0..{len(self)} "
                             f"for this loader, received {position}")
        rng = _from_jsonable(rng)
        name = type(self.rng.bit_generator).__name__
        if not isinstance(rng, dict) or rng.get("bit_generator") != name:
            raise ValueError(f"BatchLoader.load_state_dict: expected the state of a {name} "
                             f"bit generator, received {str(rng)[:120]}")
        self.rng.bit_generator.state = rng
        self.epoch = epoch
        self._epoch_start = rng
        self._position = position
        self._resume = True
