"""GoogLeNet: what a 1x1 bottleneck saves in an Inception module (counted by minicnn.summary)."""
import _tour

import minicnn.models as models
from minicnn.nn.blocks import Inception
from minicnn.nn.layers import Conv2d, ReLU
from minicnn.nn.module import Sequential

print("a 5x5 conv with 32 filters on a 28x28x192 input (pad 2, so the output is 28x28x32)")
print(f"  by hand: 28*28*32*5*5*192 = {28 * 28 * 32 * 5 * 5 * 192:,} multiply-adds")
naive = Sequential(Conv2d(192, 32, 5, padding=2, rng=0))
sn = _tour.summary(naive, (192, 28, 28))
print(f"  minicnn.summary: {sn.total_mult_adds:,} ({_tour.human(sn.total_mult_adds)}), "
      f"{sn.total_params:,} parameters")
reduced = Sequential(Conv2d(192, 16, 1, rng=0), ReLU(), Conv2d(16, 32, 5, padding=2, rng=0))
sr = _tour.summary(reduced, (192, 28, 28))
print(f"with a 1x1 bottleneck to 16 channels first:")
print(f"  by hand: 28*28*16*192 + 28*28*32*5*5*16 = {28 * 28 * 16 * 192:,} + {28 * 28 * 32 * 5 * 5 * 16:,} = "
      f"{28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16:,}")
print(f"  minicnn.summary: {sr.total_mult_adds:,} ({_tour.human(sr.total_mult_adds)}), "
      f"{sr.total_params:,} parameters; {sn.total_mult_adds / sr.total_mult_adds:.1f}x fewer multiply-adds")

# The lecture's module: 28x28x256 input, branches 1x1 128, 3x3 192, 5x5 96 and a 3x3 pool.
print("\nthe whole naive module on 28x28x256 (1x1 128, 3x3 192, 5x5 96, 3x3 pool):")
ops = {"1x1 conv, 128": 28 * 28 * 128 * 256, "3x3 conv, 192": 28 * 28 * 192 * 3 * 3 * 256,
       "5x5 conv, 96": 28 * 28 * 96 * 5 * 5 * 256}
for k, v in ops.items():
    print(f"  [{k}] {v:,}")
print(f"  total {sum(ops.values()):,} ({_tour.human(sum(ops.values()))}) multiply-adds; output depth "
      f"128 + 192 + 96 + 256 = {128 + 192 + 96 + 256}")
ops = {"1x1 conv, 128": 28 * 28 * 128 * 256, "1x1 conv, 64 (3x3 reduce)": 28 * 28 * 64 * 256,
       "3x3 conv, 192": 28 * 28 * 192 * 3 * 3 * 64, "1x1 conv, 64 (5x5 reduce)": 28 * 28 * 64 * 256,
       "5x5 conv, 96": 28 * 28 * 96 * 5 * 5 * 64, "1x1 conv, 64 (pool proj)": 28 * 28 * 64 * 256}
print("with 1x1 bottlenecks of 64 channels (and a 1x1 projection after the pool):")
by_hand = sum(ops.values())
block = Inception(256, 128, 64, 192, 64, 96, 64, rng=0)
sb = _tour.summary(block, (256, 28, 28))
print("  " + " + ".join(f"{v:,}" for v in ops.values()))
print(f"  by hand {by_hand:,}; minicnn.summary of Inception(256, 128, 64, 192, 64, 96, 64): "
      f"{sb.total_mult_adds:,} ({_tour.human(sb.total_mult_adds)}); output depth {block.out_channels}")

g = _tour.summary(models.create("googlenet", rng=0), (3, 224, 224))
fc = sum(r.params for r in g.rows if r.layer.startswith("Linear"))
print(f"\nGoogLeNet (Szegedy et al. 2014) at 224x224: {g.total_params:,} parameters "
      f"({fc:,} in its one FC layer), {g.total_mult_adds:,} ({_tour.human(g.total_mult_adds)}) multiply-adds")
