"""ZFNet vs AlexNet: what the two changes (CONV1 7x7/2, wider CONV3-5) do to sizes, parameters, cost."""
import _tour

import minicnn.models as models

print("ZFNet (Zeiler & Fergus 2013) on 224x224x3, against AlexNet on 227x227x3")
a = _tour.summary(models.create("alexnet", rng=0), (3, 227, 227))
z = _tour.summary(models.create("zfnet", rng=0), (3, 224, 224))
print(z)
print(f"CONV1: AlexNet 11x11 stride 4 -> {_tour.hwc(a.rows[0].output_shape)}; "
      f"ZFNet 7x7 stride 2 -> {_tour.hwc(z.rows[0].output_shape)}")
print(f"CONV1 sampling step (jump) in input pixels: AlexNet {a.receptive_field('features.0').jump[0]}, "
      f"ZFNet {z.receptive_field('features.0').jump[0]}")
print(f"\n{'conv':6s} {'AlexNet output':>16s} {'params':>12s} {'ZFNet output':>16s} {'params':>12s}")
ca = [r for r in a.rows if r.layer.startswith("Conv2d")]
cz = [r for r in z.rows if r.layer.startswith("Conv2d")]
for i, (ra, rz) in enumerate(zip(ca, cz), 1):
    print(f"CONV{i:<2d} {_tour.hwc(ra.output_shape):>16s} {ra.params:>12,} {_tour.hwc(rz.output_shape):>16s} "
          f"{rz.params:>12,}")
for label, s in (("AlexNet", a), ("ZFNet", z)):
    conv = sum(r.params for r in s.rows if r.layer.startswith("Conv2d"))
    print(f"{label}: {s.total_params:,} parameters ({conv:,} in convs), "
          f"{s.total_mult_adds:,} multiply-adds ({_tour.human(s.total_mult_adds)})")
print(f"ZFNet / AlexNet multiply-adds: {z.total_mult_adds / a.total_mult_adds:.2f}x")
