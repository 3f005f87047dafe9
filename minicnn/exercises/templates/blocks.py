FUNCTIONS = ("InceptionModule", "BottleneckBlock", "DepthwiseSeparableBlock", "SEBlock", "DenseBlock")

SOURCE = '''
# Build the lecture's blocks from minicnn's layers (minicnn.nn: Conv2d, Linear, ReLU,
# Sigmoid, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Module, Sequential, ...).  The point is
# the WIRING: concatenation, addition, the 1x1 bottleneck, the channel scaling.  Write
# forward(x) and backward(dout) yourself: backward returns dx and lets each layer's own
# backward fill its parameters' .grad (layer.backward(d) returns that layer's dx).
#   - A layer instance caches its input for its backward: use a separate instance (a
#     separate nn.ReLU() too) for every place a layer is used.
#   - Where one tensor feeds two paths (a shortcut, the branches of an Inception module,
#     a dense block's concatenation) the gradients of the paths ADD.
#   - Call each layer as layer(x), not layer.forward(x) (minicnn.summary watches calls).
# The checker reads the layers by the attribute names the docstrings give, compares your
# forward with minicnn's computation from those layers' weights, your parameter count
# with minicnn's own block of the same configuration, and every gradient (dx and each
# parameter's) with numeric gradients in float64.  minicnn's own blocks (nn.Inception,
# nn.Bottleneck, nn.ParallelConcat, ...) are refused: they are the answers.
import minicnn.nn as nn


class InceptionModule(nn.Module):
    """GoogLeNet's Inception module with 1x1 bottlenecks (defaults: inception 3a's widths).

    Four branches on the same x (N, C, H, W), each conv with a bias and followed by a ReLU:
        b1:                         1x1 conv C -> ch1x1
        b2_reduce, b2:              1x1 conv C -> ch3x3red, then 3x3 conv (pad 1) -> ch3x3
        b3_reduce, b3:              1x1 conv C -> ch5x5red, then 5x5 conv (pad 2) -> ch5x5
        (pool), b4:                 3x3 max pool (stride 1, pad 1), then 1x1 conv C -> pool_proj
    out: the four outputs concatenated on the channel axis IN THIS ORDER (b1, b2, b3, b4):
    (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W) -- (N, 256, 28, 28) for 3a on (N, 192, 28, 28).
    Backward: split dout by channel, one slice per branch; x fed all four, so their dx add.
    Parameters as nn.Inception(in_channels, ...) with the same widths.
    """

    def __init__(self, in_channels, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32,
                 rng=None):
        super().__init__()
        raise NotImplementedError("InceptionModule: write me")

    def forward(self, x):
        raise NotImplementedError("InceptionModule.forward: write me")

    def backward(self, dout):
        raise NotImplementedError("InceptionModule.backward: write me")


class BottleneckBlock(nn.Module):
    """ResNet's bottleneck block (without its BatchNorms), identity shortcut:

        conv1: 1x1 conv channels -> channels // 4, ReLU      (the 1x1 "bottleneck": the 3x3
        conv2: 3x3 conv (pad 1) on channels // 4, ReLU        then works on 4x fewer channels)
        conv3: 1x1 conv channels // 4 -> channels
        out = relu(x + conv3(...))                           the shortcut adds x itself
    Convs WITHOUT bias (as in minicnn's nn.Bottleneck, whose BatchNorms this leaves out).
    x: (N, channels, H, W) -> out: same shape; channels divisible by 4.
    Backward: the final ReLU first, then the gradient reaches BOTH x (the shortcut) and the branch.
    """

    def __init__(self, channels, rng=None):
        super().__init__()
        raise NotImplementedError("BottleneckBlock: write me")

    def forward(self, x):
        raise NotImplementedError("BottleneckBlock.forward: write me")

    def backward(self, dout):
        raise NotImplementedError("BottleneckBlock.backward: write me")


class DepthwiseSeparableBlock(nn.Module):
    """MobileNet v1's depthwise-separable convolution (without its BatchNorms):

        depthwise: 3x3 conv C -> C, pad 1, `stride`, groups=C (one 3x3 filter per channel), ReLU
        pointwise: 1x1 conv C -> out_channels (mixes the channels), ReLU
    Convs WITHOUT bias, as in minicnn's nn.DepthwiseSeparableConv.
    x: (N, C, H, W) -> out: (N, out_channels, (H - 1) // stride + 1, (W - 1) // stride + 1).
    """

    def __init__(self, in_channels, out_channels, stride=1, rng=None):
        super().__init__()
        raise NotImplementedError("DepthwiseSeparableBlock: write me")

    def forward(self, x):
        raise NotImplementedError("DepthwiseSeparableBlock.forward: write me")

    def backward(self, dout):
        raise NotImplementedError("DepthwiseSeparableBlock.backward: write me")


class SEBlock(nn.Module):
    """Squeeze-and-excitation: reweight each CHANNEL by a gate computed from all channels.

        s = mean of x over H and W                         squeeze: (N, C)
        g = sigmoid(fc2(relu(fc1(s))))                     fc1: Linear C -> max(1, C // reduction),
                                                           fc2: Linear back to C, both with bias
        out = x * g[:, :, None, None]                      ONE gate per channel, for every position
    x: (N, C, H, W) -> out: same shape.  Parameters as nn.SqueezeExcitation(channels, reduction).
    Backward: x is used twice (scaled, and through the gate), so dx = dout * g + (the squeeze's
    share of dg), with dg = sum over H, W of dout * x.
    """

    def __init__(self, channels, reduction=16, rng=None):
        super().__init__()
        raise NotImplementedError("SEBlock: write me")

    def forward(self, x):
        raise NotImplementedError("SEBlock.forward: write me")

    def backward(self, dout):
        raise NotImplementedError("SEBlock.backward: write me")


class DenseBlock(nn.Module):
    """A DenseNet block (without its BatchNorms): every layer reads ALL earlier feature maps.

        features = x                                        (N, k0, H, W)
        for l = 1 .. num_layers:
            new = conv{l}(relu(reduce{l}(relu(features))))  reduce{l}: 1x1 conv -> bn_size * growth_rate,
                                                            conv{l}: 3x3 conv (pad 1) -> growth_rate
            features = concat(features, new) on channels
        out = features: (N, k0 + num_layers * growth_rate, H, W)
    Convs WITHOUT bias, attributes named reduce1, conv1, reduce2, conv2, ... (setattr(self,
    f"reduce{l}", ...)), as minicnn's nn.DenseBlock without its BatchNorms.
    Backward: in reverse; the last growth_rate channels of a layer's output gradient went
    through that layer, the first ones ARE its input -- which it also read: they add.
    """

    def __init__(self, num_input_features, num_layers, growth_rate, bn_size=4, rng=None):
        super().__init__()
        raise NotImplementedError("DenseBlock: write me")

    def forward(self, x):
        raise NotImplementedError("DenseBlock.forward: write me")

    def backward(self, dout):
        raise NotImplementedError("DenseBlock.backward: write me")
'''
