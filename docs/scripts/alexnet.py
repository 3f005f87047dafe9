"""AlexNet: the lecture's arithmetic (output volume, CONV1 parameters, POOL1), then the full table."""
import _tour

import minicnn.models as models

print("AlexNet on a 227x227x3 input (Krizhevsky, Sutskever & Hinton 2012; the CS231n walk-through)")
w, f, s, k = 227, 11, 4, 96
o = (w - f) // s + 1
print(f"CONV1 output: (227 - 11) / 4 + 1 = {o} -> {o}x{o}x{k}")
print(f"CONV1 parameters: (11*11*3 + 1) * 96 = {(f * f * 3 + 1) * k:,}")
p = (o - 3) // 2 + 1
print(f"POOL1 (3x3, stride 2): (55 - 3) / 2 + 1 = {p} -> {p}x{p}x{k}, parameters: 0")

model = models.create("alexnet", rng=0)
sm = _tour.summary(model, (3, 227, 227))
print(sm)

print("\nthe lecture's table (CONV / POOL / FC rows):")
print(f"{'layer':34s} {'output':>12s} {'parameters':>12s} {'mult-adds':>14s}")
for r in _tour.rows_of(sm):
    print(f"{r.layer:34s} {_tour.hwc(r.output_shape):>12s} {r.params:>12,} {r.mult_adds:>14,}")

conv = sum(r.params for r in sm.rows if r.layer.startswith("Conv2d"))
fc = sum(r.params for r in sm.rows if r.layer.startswith("Linear"))
conv_ma = sum(r.mult_adds for r in sm.rows if r.layer.startswith("Conv2d"))
print(f"parameters: {sm.total_params:,}; convs {conv:,} ({100 * conv / sm.total_params:.1f}%), "
      f"FC {fc:,} ({100 * fc / sm.total_params:.1f}%)")
print(f"multiply-adds: {sm.total_mult_adds:,} ({_tour.human(sm.total_mult_adds)}) per image; convs "
      f"{100 * conv_ma / sm.total_mult_adds:.1f}%")
print(f"activations (every layer's output, ReLU included): {sm.total_activations:,} per image = "
      f"{_tour.mib(sm.total_activations):.1f} MiB in float32")

# The paper splits CONV2, CONV4 and CONV5 over two GPUs (groups=2): each filter sees half the channels.
saved = sum((kh * kw * c_in // 2) * c_out for kh, kw, c_in, c_out in ((5, 5, 96, 256), (3, 3, 384, 384),
                                                                       (3, 3, 384, 256)))
print(f"with the paper's two-GPU groups in CONV2, CONV4, CONV5: {saved:,} fewer weights -> "
      f"{sm.total_params - saved:,} parameters")
