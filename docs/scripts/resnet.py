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

# The paper's Table 1 "FLOPs" (multiply-adds, Sec. 3.3) and VGG-19's from the same section.
PAPER = {"resnet18": "1.8G", "resnet34": "3.6G", "resnet50": "3.8G", "resnet101": "7.6G",
         "resnet152": "11.3G", "vgg19": "19.6G"}


def mult_adds(name, **kw):
    s = _tour.summary(models.create(name, rng=0, **kw), models.input_shape(name))
    return s.total_params, s.total_mult_adds


print("\nthe ImageNet ResNets at 224x224 (He et al. 2016, Table 1), multiply-adds of v1 (the paper's:")
print("stride 2 in the first 1x1 of a downsampling bottleneck) and v1.5 (torchvision's, minicnn's")
print("default: stride 2 in the 3x3), against the paper's FLOPs:")
for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
    params, v15 = mult_adds(name)
    # Basic blocks have no 1x1 to move the stride to: v1 and v1.5 are one network.
    v1 = mult_adds(name, stride_in_1x1=True)[1] if models.takes(name, "stride_in_1x1") else v15
    print(f"  {name:9s} {params:>11,} parameters  v1 {_tour.human(v1):>6s} ({v1:,})  "
          f"v1.5 {_tour.human(v15):>6s} ({v15:,})  paper {PAPER[name]}")
params, vgg = mult_adds("vgg19")
print(f"  {'vgg19':9s} {params:>11,} parameters  {_tour.human(vgg)} ({vgg:,})  paper {PAPER['vgg19']}")

print("\nthe CIFAR-10 ResNets (Sec. 4.2; 6n+2 layers, option-A identity shortcuts):")
for name in ("plain20", "resnet20", "plain56", "resnet56", "resnet110"):
    s = _tour.summary(models.create(name, rng=0), (3, 32, 32))
    print(f"  {name:9s} {s.total_params:>10,} parameters  {s.total_mult_adds:>13,} multiply-adds "
          f"({_tour.human(s.total_mult_adds)})")
