"""FractalNet's block (Larsson, Maire & Shakhnarovich, 2016, "FractalNet: Ultra-Deep Neural
Networks without Residuals"): depth without residual additions, and drop-path.

The network built from it is minicnn.models.fractalnet.
"""
from minicnn.checks import as_generator, check_int, check_prob
from minicnn.functional._validate import check_float_array, check_shape
from minicnn.nn.layers import BatchNorm2d, Conv2d, ReLU
from minicnn.nn.module import Module, Sequential


class FractalBlock(Module):
    """A fractal block (Larsson, Maire & Shakhnarovich, 2016, "FractalNet: Ultra-Deep
    Neural Networks without Residuals").

    The idea: depth without residuals, by a recursive expansion rule.  With ``f_1(z) =
    conv(z)``,

        f_{C+1}(z) = join( f_C(f_C(z)),  conv(z) )

    where ``join`` is the element-wise mean.  Unrolled, ``C`` columns sit side by side:
    column ``c`` (1 = shallowest) is a chain of ``2**(c-1)`` convs, and at the points where
    several columns end a conv together they are joined (the paper's Fig. 1 draws the
    nested joins of the rule as one join of all the columns that meet there, and so does
    this block).  The shortest path has 1 conv, the longest ``2**(C-1)``.

    Each "conv" is conv 3x3 (pad 1, no bias) -> BatchNorm -> ReLU; the first conv of every
    column maps ``in_channels -> out_channels``.  Children: ``column{c}_{k}`` (the k-th conv
    of column c), each a Sequential(Conv2d, BatchNorm2d, ReLU).

    **Drop-path** (the paper's regulariser), two kinds:

    * *local*: in training, each input of a join is dropped with probability ``drop_prob``
      (at least one is kept) and the join is the mean of the survivors; the masks come from
      the block's Generator ``rng``.  In evaluation every path is kept.
    * *global*: setting ``block.column = c`` (1-based; None = all) keeps column c alone:
      every join that column c enters passes only column c, so the block is the plain chain
      of column c's convs.  FractalNet sets it per mini-batch in training (one column for
      the whole network) and lets a user evaluate a single extracted column; it applies in
      training and evaluation alike, and takes precedence over local drop-path.

    - x: (N, in_channels, H, W) -> out: (N, out_channels, H, W)
    """

    def __init__(self, in_channels, out_channels, num_columns, drop_prob=0.0, rng=None):
        super().__init__()
        op = "FractalBlock"
        rng = as_generator(rng, op)
        self.num_columns = check_int(op, "num_columns", num_columns, 1)
        self.drop_prob = check_prob(op, "drop_prob", drop_prob, allow_one=False)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depth = 2 ** (self.num_columns - 1)
        # Column c (0-based) has 2**c convs, each spanning depth // 2**c steps of the deepest one.
        self.spans = tuple(self.depth // 2 ** c for c in range(self.num_columns))
        for c in range(self.num_columns):
            for k in range(2 ** c):
                cin = in_channels if k == 0 else out_channels
                self.add_module(f"column{c + 1}_{k + 1}", Sequential(
                    Conv2d(cin, out_channels, 3, padding=1, bias=False, rng=rng),
                    BatchNorm2d(out_channels), ReLU()))
        self.rng = rng
        self.column = None
        self._cache = None

    def _unit(self, c, step):
        """The conv of column c that ends at depth ``step`` (1-based)."""
        return getattr(self, f"column{c + 1}_{step // self.spans[c]}")

    def _ending(self, step):
        """Columns whose conv ends at ``step``: always a suffix c_min..C-1 (the deeper ones)."""
        return [c for c in range(self.num_columns) if step % self.spans[c] == 0]

    def _join_weights(self, ending):
        """Weights of the inputs of a join of columns ``ending``: 1/k each, one-hot on the
        global column, or mask/kept with local drop-path."""
        k = len(ending)
        if self.column is not None:
            c = check_int("FractalBlock", "column", self.column, 1) - 1
            if c >= self.num_columns:
                raise ValueError(f"FractalBlock: expected column in 1..{self.num_columns} or None, "
                                 f"received {self.column}")
            if c in ending:
                return [1.0 if e == c else 0.0 for e in ending]
            # Joins of deeper columns only: their output never reaches the block output.
            return [1.0 / k] * k
        if not (self.training and self.drop_prob > 0 and k > 1):
            return [1.0 / k] * k
        keep = self.rng.random(k) >= self.drop_prob
        if not keep.any():
            keep[self.rng.integers(k)] = True  # the paper keeps at least one input of a join
        return [float(kp) / int(keep.sum()) for kp in keep]

    def forward(self, x):
        op = "FractalBlock.forward"
        check_float_array(op, "x", x, ndim=4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{op}: expected x with {self.in_channels} channels, received shape "
                             f"{tuple(x.shape)}")
        cur = [x] * self.num_columns   # the input each column's next conv will read
        weights = {}
        for step in range(1, self.depth + 1):
            ending = self._ending(step)
            ys = [self._unit(c, step)(cur[c]) for c in ending]
            if len(ending) == 1:
                cur[ending[0]] = ys[0]
                continue
            wts = self._join_weights(ending)
            weights[step] = wts
            joined = sum(w * y for w, y in zip(wts, ys) if w != 0.0)
            for c in ending:
                cur[c] = joined
        self._cache = (weights, cur[-1].shape)
        return cur[-1]

    def backward(self, dout):
        weights, out_shape = self._get_cache()
        check_float_array("FractalBlock.backward", "dout", dout, ndim=4)
        check_shape("FractalBlock.backward", "dout", dout, out_shape)
        grad = [None] * self.num_columns   # dL/d(current input of each column)
        for step in range(self.depth, 0, -1):
            ending = self._ending(step)
            if step == self.depth:
                g_out = dout            # the block's output is the last join
            else:
                g_out = None            # the join output fanned out to every ending column
                for c in ending:
                    g_out = grad[c] if g_out is None else g_out + grad[c]
            wts = weights.get(step, [1.0])
            for c, w in zip(ending, wts):
                grad[c] = self._unit(c, step).backward(w * g_out)
        dx = grad[0]
        for g in grad[1:]:
            dx = dx + g                 # x fanned out to the first conv of every column
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, num_columns={self.num_columns}, "
                f"drop_prob={self.drop_prob}")
