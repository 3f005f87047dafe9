"""The pre-activation residual block (He, Zhang, Ren & Sun 2016b, "Identity Mappings in
Deep Residual Networks"), also the block of Wide ResNets (Zagoruyko & Komodakis 2016).

The original block ends with a ReLU after the addition, so the signal that skips a
block still passes through a non-linearity.  Moving BN and ReLU *before* each conv, and
putting nothing after the addition, makes the path x_l -> x_L through the identities a
pure sum (x_L = x_l + sum F), and the gradient of any block reaches every earlier block
undiminished: 1001-layer networks train.
"""
from minicnn.checks import as_generator, check_int, check_prob
from minicnn.nn import fused
from minicnn.nn.layers import BatchNorm2d, Conv2d, Dropout, ReLU, check_feature_map
from minicnn.nn.module import Module
from minicnn.nn.shortcuts import ZeroPadShortcut


class PreActBlock(Module):
    """Pre-activation basic block (He et al. 2016b, Fig. 1b / 4e):

        a = relu1(bn1(x))
        out = conv2([dropout] relu2(bn2(conv1(a)))) + shortcut

    - x: (N, in_channels, H, W) -> (N, channels, (H-1)//stride+1, (W-1)//stride+1)
    - shortcut when the shape changes: "B" (default) a 1x1 conv (no BN) applied to the
      pre-activated ``a`` (the paper shares the first BN-ReLU with the projection; so do
      Wide-ResNets), "A" zero padding of ``x``; otherwise the identity on ``x``.
    - dropout: p of a Dropout between relu2 and conv2 (Wide-ResNet, Zagoruyko &
      Komodakis 2016, use 0.3); 0 = none.

    The BN -> ReLU pairs run fused in one pass (minicnn.nn.fused).
    """

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, shortcut="B", dropout=0.0, rng=None):
        super().__init__()
        op = "PreActBlock"
        self.in_channels = check_int(op, "in_channels", in_channels, 1)
        self.channels = check_int(op, "channels", channels, 1)
        self.out_channels = self.channels
        self.stride = check_int(op, "stride", stride, 1)
        if shortcut not in ("A", "B"):
            raise ValueError(f"PreActBlock: expected shortcut 'A' or 'B', received {shortcut!r}")
        dropout = check_prob(op, "dropout", dropout)
        rng = as_generator(rng, op)
        self.bn1 = BatchNorm2d(in_channels)
        self.relu1 = ReLU()
        self.conv1 = Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(channels)
        self.relu2 = ReLU()
        self.dropout = Dropout(dropout, rng=rng) if dropout > 0 else None
        self.conv2 = Conv2d(channels, channels, 3, padding=1, bias=False, rng=rng)
        identity = stride == 1 and in_channels == channels
        if identity:
            self.downsample = None
        elif shortcut == "A":
            self.downsample = ZeroPadShortcut(in_channels, channels, stride)
        else:
            self.downsample = Conv2d(in_channels, channels, 1, stride=stride, bias=False, rng=rng)
        # Projection reads the pre-activated input; identity and zero padding read x.
        self.shortcut_from_preact = shortcut == "B" and not identity
        self._cache = None

    def forward(self, x):
        check_feature_map("PreActBlock", x, self.in_channels)
        a, bn1_cache = fused.bn_relu(self.bn1, self.relu1, x)        # relu1(bn1(x))
        if self.downsample is None:
            identity = x
        else:
            identity = self.downsample(a if self.shortcut_from_preact else x)
        out = self.conv1(a)
        out, bn2_cache = fused.bn_relu(self.bn2, self.relu2, out)    # relu2(bn2(out))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        self._cache = (bn1_cache, bn2_cache)
        return out + identity

    def backward(self, dout):
        bn1_cache, bn2_cache = self._get_cache()
        d = self.conv2.backward(dout)
        if self.dropout is not None:
            d = self.dropout.backward(d)
        d = fused.bn_relu_backward(self.bn2, self.relu2, d, bn2_cache)
        da = self.conv1.backward(d)
        if self.shortcut_from_preact:
            # a fed both the branch and the projection: its gradient is the sum.
            da = da + self.downsample.backward(dout)
            return fused.bn_relu_backward(self.bn1, self.relu1, da, bn1_cache)
        dx_branch = fused.bn_relu_backward(self.bn1, self.relu1, da, bn1_cache)
        dx_shortcut = dout if self.downsample is None else self.downsample.backward(dout)
        return dx_branch + dx_shortcut      # x fed both paths: the gradients add

    def extra_repr(self):
        return f"{self.in_channels}, {self.channels}, stride={self.stride}"
