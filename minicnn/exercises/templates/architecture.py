FUNCTIONS = ("conv_output_shape", "conv_params", "pool_params", "vgg_memory", "stacked_convs",
             "inception_naive", "inception_bottleneck", "residual_params", "gap_vs_fc",
             "depthwise_separable_cost", "se_params", "dense_block")

SOURCE = '''
# The questions of the CS231n lecture "CNN Architectures", as functions of the layer's
# configuration.  Each returns numbers; the checker compares them with what minicnn
# computes (minicnn.summary of minicnn's own layers and blocks) on the lecture's case AND
# on random configurations, so an answer typed in from the slides does not pass.
# Conventions (minicnn's): shapes are (C, H, W) -- the slides write H x W x C, so the
# lecture's 55x55x96 is (96, 55, 55) here; parameters count weights AND biases unless the
# docstring says otherwise; operation counts are MULTIPLY-ADDS (one multiply and its add
# = 1 op, the lecture's and the papers' convention; FLOPs would be twice as many).


def conv_output_shape(input_shape, num_filters, kernel_size, stride, pad):
    """Output volume of a conv layer.

    Inputs: input_shape (C, H, W); num_filters F; kernel_size K (square); stride S; pad P.
    Returns (F, OH, OW) with OH = (H + 2P - K) // S + 1 (OW likewise): each of the F filters
    gives one output channel, whatever C is.
    Example: AlexNet CONV1, 96 11x11 filters at stride 4 on (3, 227, 227) -> (96, 55, 55).
    (A pooling layer has the same formula with F = C: it keeps the channels.)
    """
    raise NotImplementedError("conv_output_shape: write me")


def conv_params(in_channels, num_filters, kernel_size):
    """Learnable parameters of a conv layer with a bias.

    Each of the F filters spans ALL C input channels: K*K*C weights, plus one bias.
    Example: AlexNet CONV1 (3 -> 96, 11x11): (11*11*3 + 1) * 96 = 34,944.
    """
    raise NotImplementedError("conv_params: write me")


def pool_params(input_shape, size, stride):
    """Learnable parameters of a max-pooling layer on input_shape (C, H, W).

    Example: AlexNet POOL1 (3x3, stride 2) on (96, 55, 55): think about what a max is made of.
    """
    raise NotImplementedError("pool_params: write me")


def vgg_memory(config, input_shape, fc):
    """Memory of a VGG-style net for ONE image, forward only, and its parameters.

    - config: a VGG configuration, e.g. VGG-16 [64, 64, "M", 128, 128, "M", 256, 256, 256,
      "M", 512, 512, 512, "M", 512, 512, 512, "M"]: a number is a 3x3 conv (stride 1, pad 1,
      with bias) to that many channels, "M" a 2x2 max pool of stride 2
    - input_shape: (C, H, W); fc: widths of the fully connected layers after the last
      feature map is flattened, e.g. (4096, 4096, 1000), each with a bias
    Returns (activations, params):
    - activations: the values the lecture's table lists: the INPUT plus the output of every
      conv, pool and fc layer (ReLU works in place, so it adds none).  VGG-16 on
      (3, 224, 224): about 15.2 M values, ~61 MB at 4 bytes a float.  (The slide's total
      says "24M * 4 bytes ~= 96MB / image"; its own rows add up to ~15.2 M.)
    - params: every weight and bias.  VGG-16: 138 M (138,357,544), most in the first fc.
    """
    raise NotImplementedError("vgg_memory: write me")


def stacked_convs(num_layers, kernel_size, channels):
    """A stack of num_layers KxK convs (stride 1, C -> C channels) vs one conv that sees as much.

    Returns (receptive_field, stack_params, single_params):
    - receptive_field: side of the input region one output of the stack depends on (each
      extra layer widens it by K - 1)
    - stack_params: weights of the stack; single_params: weights of ONE conv whose kernel is
      the receptive field (C -> C).  WEIGHTS ONLY, no biases, as the lecture counts.
    Example: three 3x3 layers -> (7, 3 * (3*3*C*C), 7*7*C*C): 27C^2 vs 49C^2, and three
    non-linearities instead of one.
    """
    raise NotImplementedError("stacked_convs: write me")


def inception_naive(input_shape, ch1x1, ch3x3, ch5x5):
    """The naive Inception module: on input (C, H, W), side by side, a 1x1 conv to ch1x1,
    a 3x3 conv (pad 1) to ch3x3, a 5x5 conv (pad 2) to ch5x5 and a 3x3 max pool (stride 1,
    pad 1), the four outputs concatenated along channels.

    Returns (out_shape, mult_adds): the concatenated (C_out, H, W), and the conv layers'
    multiply-adds (a conv's: OH * OW * F * K * K * C).
    Example (the lecture): (256, 28, 28), 128, 192, 96 -> (672, 28, 28), 854 M ops.
    """
    raise NotImplementedError("inception_naive: write me")


def inception_bottleneck(input_shape, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
    """GoogLeNet's Inception module, with 1x1 "bottleneck" convs: 1x1 to ch1x1; 1x1 to
    ch3x3red then 3x3 (pad 1) to ch3x3; 1x1 to ch5x5red then 5x5 (pad 2) to ch5x5; 3x3 max
    pool (stride 1, pad 1) then 1x1 to pool_proj; the four outputs concatenated.

    Returns (out_shape, mult_adds) as inception_naive (every conv's multiply-adds).
    Example: inception (3a) on (192, 28, 28) with 64, 96, 128, 16, 32, 32 -> (256, 28, 28).
    """
    raise NotImplementedError("inception_bottleneck: write me")


def residual_params(channels, bottleneck):
    """Parameters of one ResNet block that keeps `channels` channels (identity shortcut),
    as minicnn's BasicBlock / Bottleneck build it: convs WITHOUT bias (a BatchNorm follows
    each, and its shift does a bias's job), each BatchNorm with a scale and a shift per
    channel.

    - bottleneck False: conv 3x3 (C -> C), BN, ReLU, conv 3x3 (C -> C), BN, + x, ReLU
    - bottleneck True: conv 1x1 (C -> C/4), BN, ReLU, conv 3x3 (C/4 -> C/4), BN, ReLU,
      conv 1x1 (C/4 -> C), BN, + x, ReLU  (C divisible by 4)
    Example: C = 256: ~1.18 M parameters for the basic block, ~70 K for the bottleneck.
    """
    raise NotImplementedError("residual_params: write me")


def gap_vs_fc(input_shape, num_outputs):
    """Global average pooling vs a fully connected layer on a (C, H, W) feature map.

    Returns (gap_shape, gap_params, fc_params):
    - gap_shape: the shape after global average pooling, one mean per channel, flattened
      as minicnn's GlobalAvgPool2d does: (C,)
    - gap_params: its parameters; fc_params: those of a fully connected layer (with bias)
      from the flattened map to num_outputs.
    Example: (1024, 7, 7) -> 1000 (GoogLeNet's end): GAP, then an fc from 1024 values,
    instead of an fc from 50,176.
    """
    raise NotImplementedError("gap_vs_fc: write me")


def depthwise_separable_cost(input_shape, out_channels, stride):
    """Multiply-adds of a standard 3x3 conv (pad 1) vs MobileNet's depthwise-separable one.

    - standard: 3x3 conv C -> F at `stride`
    - separable: a depthwise 3x3 conv (pad 1, at `stride`, one 3x3 filter per channel:
      groups = C) then a pointwise 1x1 conv C -> F
    Returns (standard_mult_adds, separable_mult_adds), bias additions not counted.
    """
    raise NotImplementedError("depthwise_separable_cost: write me")


def se_params(channels, reduction):
    """Parameters of a squeeze-and-excitation block (Hu et al.): global average pool (no
    parameters), fc C -> C // r, ReLU, fc C // r -> C, sigmoid, each fc with a bias.
    (minicnn keeps at least 1 hidden unit: max(1, C // r).)
    """
    raise NotImplementedError("se_params: write me")


def dense_block(num_input_features, num_layers, growth_rate, bn_size):
    """A DenseNet-B dense block: layer l reads the concatenation of the block's input and
    every earlier layer's output, and adds growth_rate new channels.  Each layer is
    BN, ReLU, conv 1x1 (-> bn_size * growth_rate), BN, ReLU, conv 3x3 (-> growth_rate),
    convs without bias, each BN with a scale and a shift per channel.

    Returns (out_channels, params): the channels of the block's output and its parameters.
    """
    raise NotImplementedError("dense_block: write me")
'''
