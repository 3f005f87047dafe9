"""VGG: why 3x3 stacks, and where VGG-16's memory and parameters go (the CS231n table)."""
import _tour

import minicnn.models as models
from minicnn.nn.layers import Conv2d
from minicnn.nn.module import Sequential

C = 64
stack = Sequential(*(Conv2d(C, C, 3, padding=1, bias=False, rng=0) for _ in range(3)))
one = Sequential(Conv2d(C, C, 7, padding=3, bias=False, rng=0))
rf = _tour.summary(stack, (C, 16, 16)).receptive_field()
print(f"three stacked 3x3 convs (stride 1): receptive field {rf.size[0]}x{rf.size[1]}")
print(f"one 7x7 conv: receptive field {_tour.summary(one, (C, 16, 16)).receptive_field().size[0]}")
print(f"weights for C = {C} channels in and out: three 3x3 = 3*(3^2 C^2) = 27 C^2 = {_tour.params(stack):,}; "
      f"one 7x7 = 7^2 C^2 = 49 C^2 = {_tour.params(one):,}; ratio {27 / 49:.2f}")
C = 512
print(f"at C = 512: 27 C^2 = {27 * C * C:,} vs 49 C^2 = {49 * C * C:,}")

s = _tour.summary(models.create("vgg16", rng=0), (3, 224, 224))
print(f"\nVGG-16 on 224x224x3 (Simonyan & Zisserman 2014): the lecture's table, CONV / POOL / FC rows")
print(f"{'layer':30s} {'output':>12s} {'memory':>12s} {'parameters':>13s}")
print(f"{'INPUT':30s} {'224x224x3':>12s} {224 * 224 * 3:>12,} {0:>13,}")
table = _tour.rows_of(s)
for r in table:
    print(f"{r.layer:30s} {_tour.hwc(r.output_shape):>12s} {r.activations:>12,} {r.params:>13,}")
acts = 224 * 224 * 3 + sum(r.activations for r in table)
print(f"TOTAL memory (CONV/POOL/FC outputs and the input): {acts:,} values per image")
print(f"  x 4 bytes = {acts * 4 / 1e6:.1f} MB ({_tour.mib(acts):.1f} MiB) per image, forward only; "
      f"about twice that, {2 * acts * 4 / 1e6:.0f} MB, with the gradients of the backward pass")
print(f"TOTAL parameters: {s.total_params:,} ({s.total_params * 4 / 1e6:.0f} MB as float32)")

first_two = sum(r.activations for r in table[:2])
print(f"most memory is early: the first two convs hold {first_two:,} values, "
      f"{100 * first_two / acts:.0f}% of the total")
fc = [r for r in table if r.layer.startswith("Linear")]
print(f"most parameters are late: FC6 has {fc[0].params:,} ({100 * fc[0].params / s.total_params:.0f}%), "
      f"the three FC layers {sum(r.params for r in fc):,} "
      f"({100 * sum(r.params for r in fc) / s.total_params:.0f}%)")
conv_ma = sum(r.mult_adds for r in table if r.layer.startswith("Conv2d"))
print(f"multiply-adds: {s.total_mult_adds:,} ({_tour.human(s.total_mult_adds)}) per image, "
      f"{100 * conv_ma / s.total_mult_adds:.1f}% in the convs")
print(f"what minicnn actually stores in a forward (every layer's output, ReLU included, no in-place ops): "
      f"{s.total_activations:,} values = {_tour.mib(s.total_activations):.1f} MiB per image")

# How minicnn runs those 3x3 convs on the CPU: Winograd's F(2x2, 3x3) (Lavin & Gray 2016).
import numpy as np  # noqa: E402

import minicnn.functional as F  # noqa: E402
from minicnn.functional import winograd  # noqa: E402

print("\nWinograd F(2x2, 3x3): a 2x2 block of outputs of a 3x3 filter from one 4x4 input tile")
print(f"multiplies per 2x2 outputs and channel pair: direct 2*2*9 = {2 * 2 * 9}, Winograd 4*4 = {4 * 4}, "
      f"{2 * 2 * 9 / 16:.2f}x fewer")
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 8, 14, 14))
w = rng.standard_normal((16, 8, 3, 3))
direct, _ = F.conv2d_forward_naive(x, w, None, 1, 1)
diff = np.abs(winograd.conv3x3_forward(x, w, None, 1) - direct).max()
print(f"float64, a 8->16 3x3 pad-1 layer on 14x14: largest difference to the direct conv {diff:.0e} "
      f"({'within' if diff < 1e-12 else 'NOT within'} 1e-12 of the direct conv)")
