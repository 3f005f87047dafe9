"""LeNet-5: every layer's output size and parameter count, by hand and by minicnn.summary."""
import _tour

import minicnn.models as models

print("LeNet-5 on a 1x32x32 input (LeCun et al. 1998)")
size = 32
for name, k, c_in, c_out in (("C1", 5, 1, 6), ("C3", 5, 6, 16)):
    out = size - k + 1
    print(f"{name}: conv {k}x{k}, {c_out} filters: ({size} - {k}) / 1 + 1 = {out}; "
          f"parameters ({k}*{k}*{c_in} + 1) * {c_out} = {(k * k * c_in + 1) * c_out:,}")
    size = out // 2
    print(f"  pool 2x2 stride 2 -> {size}x{size}x{c_out}, 0 parameters")
for name, n_in, n_out in (("F5", 16 * 5 * 5, 120), ("F6", 120, 84), ("output", 84, 10)):
    print(f"{name}: fc {n_in} -> {n_out}: parameters ({n_in} + 1) * {n_out} = {(n_in + 1) * n_out:,}")
# The 1998 C3 connected each of its 16 maps to only some of S2's 6 maps (its Table I):
# 6 maps see 3 inputs, 9 see 4, 1 sees all 6.
sparse_c3 = sum(n_maps * (25 * n_in + 1) for n_maps, n_in in ((6, 3), (9, 4), (1, 6)))
print(f"C3 with the paper's sparse connection table: {sparse_c3:,} parameters instead of {(25 * 6 + 1) * 16:,}")

s = _tour.summary(models.create("lenet5", rng=0), (1, 32, 32))
print(s)
conv = sum(r.params for r in s.rows if r.layer.startswith("Conv2d"))
fc = sum(r.params for r in s.rows if r.layer.startswith("Linear"))
print(f"parameters: {s.total_params:,} in total, {conv:,} in the convs ({100 * conv / s.total_params:.1f}%), "
      f"{fc:,} in the FC layers ({100 * fc / s.total_params:.1f}%)")
conv_ma = sum(r.mult_adds for r in s.rows if r.layer.startswith("Conv2d"))
print(f"multiply-adds: {s.total_mult_adds:,} per image, {conv_ma:,} in the convs "
      f"({100 * conv_ma / s.total_mult_adds:.1f}%)")
