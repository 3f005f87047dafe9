"""The model's layer table as an image: minicnn.summary rendered to a PNG.

    python docs/scripts/layer_table.py --model alexnet --shape 3x227x227 --out docs/img/alexnet_table.png

The drawing is ``minicnn.viz.plot_layer_table``, the same one ``minicnn plot RUN_DIR`` uses.
"""
import argparse
import os
import sys

import _tour

import minicnn.models as models
from minicnn.viz import plot_layer_table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="alexnet")
    p.add_argument("--shape", default="3x227x227", help="one input without the batch axis, e.g. 3x32x32")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "img", "alexnet_table.png"))
    args = p.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split("x"))
    s = _tour.summary(models.create(args.model, rng=0), shape)
    plot_layer_table(s, args.out)
    print(f"{args.model}: {len(s.rows)} layers, {s.total_params:,} parameters; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
