"""Squeeze-and-excitation (Hu, Shen & Sun, 2018, "Squeeze-and-Excitation Networks"):
let the network reweight its own channels from global context.

``SqueezeExcitation`` is the module; ``SEBottleneck`` (minicnn.nn.residual) puts it on
the branch of a ResNet bottleneck, before the addition (SE-ResNet, the paper's Fig. 3).
"""
from minicnn.checks import as_generator, check_int
from minicnn.nn.layers import GlobalAvgPool2d, Linear, ReLU, Sigmoid, check_feature_map
from minicnn.nn.module import Module


class SqueezeExcitation(Module):
    """Squeeze-and-excitation: scale each channel by a gate computed from all channels.

        s = avgpool(x)                         squeeze: (N, C, H, W) -> (N, C)
        g = sigmoid(fc2(relu(fc1(s))))         excitation: C -> C/r -> C, gates in (0, 1)
        out = x * g[:, :, None, None]          scale each channel map

    - x: (N, channels, H, W) -> out: same shape
    - fc1: Linear(channels, channels // reduction), fc2: Linear(channels // reduction,
      channels), both with bias (the paper's FC layers; 2 C^2 / r weights per block).

    Backward: x is used twice (scaled, and through the gates), so
    dx = dout * g  +  avgpool.backward(d s), with dg = sum_{h,w} dout * x.
    """

    def __init__(self, channels, reduction=16, rng=None):
        super().__init__()
        op = "SqueezeExcitation"
        self.channels = check_int(op, "channels", channels, 1)
        self.reduction = check_int(op, "reduction", reduction, 1)
        hidden = max(1, channels // reduction)
        rng = as_generator(rng, op)
        self.avgpool = GlobalAvgPool2d()
        self.fc1 = Linear(channels, hidden, rng=rng)
        self.relu = ReLU()
        self.fc2 = Linear(hidden, channels, rng=rng)
        self.sigmoid = Sigmoid()
        self._cache = None

    def forward(self, x):
        check_feature_map("SqueezeExcitation", x, self.channels)
        g = self.sigmoid(self.fc2(self.relu(self.fc1(self.avgpool(x)))))
        self._cache = (x, g)
        return x * g[:, :, None, None]

    def backward(self, dout):
        x, g = self._get_cache()
        dg = (dout * x).sum(axis=(2, 3))
        ds = self.fc1.backward(self.relu.backward(self.fc2.backward(self.sigmoid.backward(dg))))
        dx_scaled = dout * g[:, :, None, None]
        dx_gate = self.avgpool.backward(ds)
        return dx_scaled + dx_gate      # x fed both paths: the gradients add

    def extra_repr(self):
        return f"{self.channels}, reduction={self.reduction}"
