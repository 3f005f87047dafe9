"""ResNet: the bottleneck block's arithmetic and the family's parameters and cost."""
import _tour

import minicnn.models as models
from minicnn.nn.residual import BasicBlock, Bottleneck

print("a residual stage working on 256 channels at 56x56 (ResNet-50's conv2_x), weights only:")
basic = 2 * 3 * 3 * 256 * 256
print(f"  two 3x3 convs, 256 -> 256: 2 * 3*3*256*256 = {basic:,}")
bott = 256 * 64 + 3 * 3 * 64 * 64 + 64 * 256
print(f"  bottleneck 1x1 256->64, 3x3 64->64, 1x1 64->256: 256*64 + 3*3*64*64 + 64*256 = {bott:,} "
      f"({basic / bott:.1f}x fewer)")
b = Bottleneck(256, 64, rng=0)
bb = BasicBlock(256, 256, rng=0)
sb = _tour.summary(b, (256, 56, 56))
sbb = _tour.summary(bb, (256, 56, 56))
print(f"  minicnn.nn.residual.Bottleneck(256, 64): {sb.total_params:,} parameters (BatchNorm included), "
      f"{sb.total_mult_adds:,} ({_tour.human(sb.total_mult_adds)}) multiply-adds at 56x56")
print(f"  minicnn.nn.residual.BasicBlock(256, 256): {sbb.total_params:,} parameters, "
      f"{sbb.total_mult_adds:,} ({_tour.human(sbb.total_mult_adds)}) multiply-adds at 56x56")

print("\nthe ImageNet ResNets (He et al. 2016, Table 1):")
for name in ("resnet18", "resnet50"):
    s = _tour.summary(models.create(name, rng=0), (3, 224, 224))
    print(f"  {name:9s} {s.total_params:>12,} parameters  {s.total_mult_adds:>15,} multiply-adds "
          f"({_tour.human(s.total_mult_adds)})")
for name in ("resnet34", "resnet101", "resnet152"):
    print(f"  {name:9s} {_tour.params(models.create(name, rng=0)):>12,} parameters")

print("\nthe CIFAR-10 ResNets (Sec. 4.2; 6n+2 layers, option-A identity shortcuts):")
for name in ("plain20", "resnet20", "plain56", "resnet56", "resnet110"):
    s = _tour.summary(models.create(name, rng=0), (3, 32, 32))
    print(f"  {name:9s} {s.total_params:>10,} parameters  {s.total_mult_adds:>13,} multiply-adds "
          f"({_tour.human(s.total_mult_adds)})")
