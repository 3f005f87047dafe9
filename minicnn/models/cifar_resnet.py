"""CIFAR-10 ResNets (resnet20/32/44/56/110) and their plain twins (plain20/32/44/56/110),
He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition", Sec 4.2.

The idea these models exist to show: the *degradation problem*.  A deeper plain
network (plain56) has a HIGHER training error than a shallower one (plain20) -- not
overfitting, an optimisation failure -- while adding identity shortcuts (resnet56 vs
resnet20) turns extra depth into lower error (the paper's Fig. 1 and Fig. 6).  Train
``plain20``/``plain56`` and ``resnet20``/``resnet56`` side by side to see it.

The paper's CIFAR architecture, 6n + 2 weighted layers::

    output map   32x32     16x16     8x8
    layers       1 + 2n    2n        2n          (the 1 is the first 3x3 conv)
    filters      16        32        64
    then global average pool, 10-way fc, softmax

    conv1 3x3 (16) -> bn1 -> relu -> layer1 (n basic blocks, 16) -> layer2 (n, 32, stride 2)
    -> layer3 (n, 64, stride 2) -> avgpool -> fc

with n = 3, 5, 7, 9, 18 for 20, 32, 44, 56, 110 layers.  The shortcuts are option A
(identity, with stride-2 subsampling and zero-padded extra channels when the shape
changes), so a ResNet has exactly the parameters of its plain twin:

    resnet20 / plain20   269,722        resnet32 / plain32   464,154
    resnet44 / plain44   658,586        resnet56 / plain56   853,018
    resnet110 / plain110 1,727,962      (num_classes=10; the paper: 0.27M ... 1.7M)

and 40.6 M (resnet20) to 252.9 M (resnet110) multiply-adds per 32x32 image.

Every model takes ``num_classes`` (default 10), ``rng`` (Generator, seed or None),
``shortcut`` ("A", the paper's CIFAR choice; "B" for projections; plain nets use "none")
and ``survival_prob`` for stochastic depth (Huang et al. 2016, "Deep Networks with
Stochastic Depth": ``create("resnet110", survival_prob=0.5)`` is their CIFAR setting,
blocks dropped in training with linearly growing probability, all kept at test time).
Input (N, 3, 32, 32) -> scores (N, num_classes); other sizes work (global pooling).
"""
from minicnn.checks import as_generator, check_int
from minicnn.models._common import final_linear
from minicnn.models.registry import register
from minicnn.nn import fused
from minicnn.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool2d, ReLU
from minicnn.nn.module import Module, Sequential
from minicnn.nn.residual import BasicBlock
from minicnn.nn.stochastic_depth import linear_decay

# depth -> n, the number of basic blocks per stage (depth = 6n + 2).
DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}
STAGE_CHANNELS = (16, 32, 64)


class CifarResNet(Module):
    """The 6n+2-layer CIFAR network of He et al. 2016, Sec 4.2 (see the module docstring).

    - x: (N, 3, H, W) (32x32 in the paper) -> scores (N, num_classes)
    - n: basic blocks per stage; shortcut: "A" (zero padding), "B" (projection) or
      "none" (the plain network)
    - survival_prob: p_L of stochastic depth (Huang et al. 2016, who train resnet110 with
      p_L = 0.5): block l of L = 3n survives training steps with probability
      1 - l/L (1 - p_L); 1.0 (default) = the ordinary network
    """

    # backward() returns conv1's input gradient untouched, so a training step may skip it
    # (minicnn.nn.input_grad).
    input_layer = "conv1"
    classifier_names = ("fc",)   # the layer reset_classifier replaces (minicnn.nn.classifier)

    def __init__(self, n, num_classes=10, shortcut="A", zero_init_residual=False,
                 survival_prob=1.0, rng=None):
        super().__init__()
        op = "CifarResNet"
        self.n = n = check_int(op, "n (blocks per stage)", n, 1)
        self.num_classes = check_int(op, "num_classes", num_classes, 1)
        rng = as_generator(rng, op)
        self.conv1 = Conv2d(3, 16, 3, padding=1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(16)
        self.relu = ReLU()
        self._cache = None
        in_channels = 16
        for i, channels in enumerate(STAGE_CHANNELS):
            blocks = [BasicBlock(in_channels if j == 0 else channels, channels,
                                 stride=2 if (i > 0 and j == 0) else 1, shortcut=shortcut,
                                 zero_init_residual=zero_init_residual,
                                 survival_prob=linear_decay(i * n + j + 1, 3 * n, survival_prob)
                                 if survival_prob != 1.0 else 1.0, rng=rng)
                      for j in range(n)]
            in_channels = channels
            setattr(self, f"layer{i + 1}", Sequential(*blocks))
        self.avgpool = GlobalAvgPool2d()
        self.fc = final_linear(64, num_classes, rng=rng)

    def forward(self, x):
        if getattr(x, "ndim", None) != 4 or x.shape[1] != 3:
            raise ValueError(f"CifarResNet: expected x of shape (N, 3, H, W), received "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        x, self._cache = fused.bn_relu(self.bn1, self.relu, self.conv1(x))   # relu(bn1(conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x))

    def backward(self, dout):
        d = self.avgpool.backward(self.fc.backward(dout))
        d = self.layer1.backward(self.layer2.backward(self.layer3.backward(d)))
        return self.conv1.backward(fused.bn_relu_backward(self.bn1, self.relu, d, self._get_cache()))


def _make(depth, residual):
    n = DEPTHS[depth]
    kind = "ResNet" if residual else "plain network"

    def build(num_classes=10, rng=None, **kw):
        if not residual and kw.get("shortcut", "none") != "none":
            raise ValueError(f"plain{depth}: a plain network has no shortcut, received "
                             f"shortcut={kw['shortcut']!r}")
        kw.setdefault("shortcut", "A" if residual else "none")
        return CifarResNet(n, num_classes=num_classes, rng=rng, **kw)

    name = f"{'resnet' if residual else 'plain'}{depth}"
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"CIFAR {kind} of {depth} layers (n={n}, He et al. 2016 Sec 4.2)"
                     + (", option-A shortcuts." if residual else ", no shortcuts (degradation baseline)."))
    return register(name, family="ResNet (CIFAR)" if residual else "plain net (CIFAR)",
                    dataset="CIFAR-10", input_size=(3, 32, 32), title=f"6n+2 = {depth} layers, n={n}",
                    forwards_to=CifarResNet)(build)


resnet20 = _make(20, True)
resnet32 = _make(32, True)
resnet44 = _make(44, True)
resnet56 = _make(56, True)
resnet110 = _make(110, True)
plain20 = _make(20, False)
plain32 = _make(32, False)
plain44 = _make(44, False)
plain56 = _make(56, False)
plain110 = _make(110, False)
