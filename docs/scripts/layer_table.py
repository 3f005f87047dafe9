"""The model's layer table as an image: minicnn.summary rendered to a PNG.

    python docs/scripts/layer_table.py --model alexnet --shape 3x227x227 --out docs/img/alexnet_table.png

``plot_layer_table(summary, path)`` is written to be moved into minicnn/viz.py as is
(matplotlib's object API, no pyplot state; written atomically).
"""
import argparse
import os
import sys

import _tour

import minicnn.models as models


def plot_layer_table(summary, path, title=None, highlight=("Conv2d", "Linear")):
    """Render ``summary`` (a minicnn.summary.Summary) as a table image at ``path`` (PNG).

    One row per layer (name, type, output HxWxC, parameters, multiply-adds), then the totals;
    rows of the ``highlight`` layer types -- the ones with weights -- are shaded.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    header = ["layer", "type", "output", "parameters", "mult-adds"]
    cells, shade = [], []
    for r in summary.rows:
        cells.append([r.name, r.layer, _tour.hwc(r.output_shape), f"{r.params:,}", f"{r.mult_adds:,}"])
        shade.append(r.layer.split("(")[0] in highlight)
    cells.append(["total", "", "", f"{summary.total_params:,}", f"{summary.total_mult_adds:,}"])
    shade.append(False)
    fig = Figure(figsize=(11, 0.4 + 0.2 * (len(cells) + 1)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=header, loc="upper center", cellLoc="left",
                     colLoc="left", colWidths=[0.16, 0.36, 0.14, 0.14, 0.2])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#dddddd")
        if row == 0 or row == len(cells):
            cell.set_text_props(weight="bold")
        elif shade[row - 1]:
            cell.set_facecolor("#eef3fb")
        if col >= 3:
            cell.set_text_props(ha="right")
            cell._loc = "right"
    shape = "x".join(map(str, summary.input_shape[1:]))
    ax.set_title(title or f"{summary.model_name}, input {shape}: {summary.total_params:,} parameters, "
                          f"{_tour.human(summary.total_mult_adds)} multiply-adds per image", fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    fig.savefig(tmp, format="png", bbox_inches="tight")
    os.replace(tmp, path)
    return path


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
