"""The architectures after ResNet: each one's idea in a number, from minicnn.summary.

ImageNet models are summarised at 224x224; the CIFAR ones (NiN, pre-activation ResNet-18,
Wide ResNets, FractalNet, the stochastic-depth ResNet-110) at 32x32.
"""
import _tour

import minicnn.models as models
from minicnn.nn.blocks import DepthwiseSeparableConv, Fire
from minicnn.nn.inverted_residual import InvertedResidual
from minicnn.nn.layers import Conv2d
from minicnn.nn.module import Sequential
from minicnn.nn.stochastic_depth import linear_decay


def line(name, shape, note=""):
    s = _tour.summary(models.create(name, rng=0), shape)
    print(f"{name:17s} {'x'.join(map(str, shape[1:])):>8s} {s.total_params:>12,} params "
          f"{s.total_mult_adds:>15,} mult-adds ({_tour.human(s.total_mult_adds)}){note}")
    return s


print("NiN (Lin et al. 2013): 1x1 convs as per-pixel MLPs, global average pooling instead of FC")
nin = line("nin", (3, 32, 32))
fc_params = nin.rows[-1].params
gap = [r for r in nin.rows if "GlobalAvgPool" in r.layer]
print(f"  its classifier is a 1x1 conv to 10 maps + global average pooling ({len(gap)} pool layer, 0 parameters); "
      f"an FC layer from the last 7x7x192 map to 10 classes would need {(7 * 7 * 192 + 1) * 10:,}")

print("\npre-activation ResNet (He et al. 2016b): BN-ReLU before each conv, a clean identity path")
line("preact_resnet18", (3, 32, 32))

print("\nWide ResNet (Zagoruyko & Komodakis 2016): wider, not deeper")
line("wrn16_4", (3, 32, 32), "  (WRN-16-4)")
line("wide_resnet", (3, 32, 32), "  (WRN-28-10)")
line("resnet110", (3, 32, 32), "  (110 layers, thin)")

print("\nResNeXt (Xie et al. 2017): cardinality, a grouped 3x3 conv in every bottleneck")
r50 = line("resnet50", (3, 224, 224))
line("resnext50_32x4d", (3, 224, 224))
g1 = _tour.summary(Sequential(Conv2d(128, 128, 3, padding=1, bias=False, rng=0)), (128, 56, 56))
g32 = _tour.summary(Sequential(Conv2d(128, 128, 3, padding=1, groups=32, bias=False, rng=0)), (128, 56, 56))
print(f"  a 3x3 conv 128 -> 128: {g1.total_params:,} weights; with 32 groups of 4 channels: {g32.total_params:,} "
      f"({g1.total_params // g32.total_params}x fewer), which pays for the wider bottleneck (128 instead of 64)")

print("\nstochastic depth (Huang et al. 2016): drop whole residual blocks in training")
blocks = 54
expected = sum(linear_decay(i, blocks, 0.5) for i in range(1, blocks + 1))
print(f"  ResNet-110 has {blocks} residual blocks; with survival p_l = 1 - l/{blocks} * 0.5 the expected number "
      f"kept in a training step is {expected:.2f} ({100 * expected / blocks:.0f}% of the branch compute); "
      f"all {blocks} are used at test time, parameters unchanged")

print("\nFractalNet (Larsson et al. 2016): many path lengths, no residuals")
line("fractalnet", (3, 32, 32), "  (minicnn's small CPU version)")

print("\nDenseNet (Huang et al. 2017): concatenate every earlier layer's maps")
dn = line("densenet121", (3, 224, 224))
print(f"  {dn.total_params / r50.total_params:.2f}x ResNet-50's parameters")

print("\nSqueezeNet (Iandola et al. 2016): AlexNet-level accuracy from 1x1-heavy Fire modules")
sq = line("squeezenet1_0", (3, 224, 224))
# AlexNet's parameters by the formula (docs/alexnet.md checks the same count against minicnn.summary).
alexnet_params = sum((k * k * c_in + 1) * c_out for k, c_in, c_out in (
    (11, 3, 96), (5, 96, 256), (3, 256, 384), (3, 384, 384), (3, 384, 256))) + sum(
    (n_in + 1) * n_out for n_in, n_out in ((9216, 4096), (4096, 4096), (4096, 1000)))
print(f"  AlexNet: {alexnet_params:,} parameters")
print(f"  AlexNet / SqueezeNet parameters: {alexnet_params / sq.total_params:.0f}x")
f = Fire(96, 16, 64, 64, rng=0)
plain = Sequential(Conv2d(96, 128, 3, padding=1, rng=0))
print(f"  Fire(96, squeeze 16, expand 64 + 64): {_tour.params(f):,} parameters vs a plain 3x3 conv 96 -> 128: "
      f"{_tour.params(plain):,}")

print("\nSENet (Hu et al. 2018): channel attention from a squeeze-and-excitation gate")
se = line("se_resnet50", (3, 224, 224))
# SE-ResNet-50 keeps the paper's stride in the first 1x1 conv; compare with ResNet-50 built alike.
v1 = _tour.summary(models.create("resnet50", rng=0, stride_in_1x1=True), (3, 224, 224))
print(f"  vs ResNet-50 with the stride in the 1x1 as well ({v1.total_mult_adds:,} mult-adds): "
      f"+{100 * (se.total_params / v1.total_params - 1):.1f}% parameters, "
      f"+{100 * (se.total_mult_adds / v1.total_mult_adds - 1):.2f}% multiply-adds")

print("\nMobileNet (Howard et al. 2017): depthwise-separable convs")
mb = line("mobilenet_v1", (3, 224, 224))
std = _tour.summary(Sequential(Conv2d(512, 512, 3, padding=1, bias=False, rng=0)), (512, 14, 14))
dws = _tour.summary(DepthwiseSeparableConv(512, 512, rng=0), (512, 14, 14))
print(f"  at 14x14x512 -> 512: standard 3x3 conv {std.total_mult_adds:,} mult-adds, depthwise-separable "
      f"{dws.total_mult_adds:,}: {std.total_mult_adds / dws.total_mult_adds:.1f}x fewer "
      f"(1 / (1/N + 1/9) = {1 / (1 / 512 + 1 / 9):.1f} for N = 512)")

print("\nMobileNet v2 (Sandler et al. 2018): inverted residuals, linear bottlenecks")
mb2 = line("mobilenet_v2", (3, 224, 224))
print(f"  vs MobileNet v1: {mb2.total_params / mb.total_params:.2f}x the parameters, "
      f"{mb2.total_mult_adds / mb.total_mult_adds:.2f}x the multiply-adds")
block = _tour.summary(InvertedResidual(24, 24, 1, 6, rng=0), (24, 56, 56))
print(f"  an inverted residual at 56x56x24 (expanded to 144): {block.total_params:,} parameters, "
      f"{block.total_mult_adds:,} mult-adds")

print("\nShuffleNet v2 (Ma et al. 2018): channel split, one branch, concat, channel shuffle")
sh = line("shufflenet_v2_x1_0", (3, 224, 224))
print(f"  vs MobileNet v2: {sh.total_mult_adds / mb2.total_mult_adds:.2f}x the multiply-adds")
