"""The Markdown tables of benchmarks/run.py: a figure with its spread over rounds, ratios
between libraries, and one column pair per library compared with minicnn."""

NAMES = {"minicnn": "minicnn", "baseline": "baseline", "torch": "PyTorch", "textbook": "textbook"}


def fmt_spread(stat, fmt):
    """'median (min-max)' of a harness.over_rounds result; just the median when the rounds
    agree or there was one; '-' for no figure."""
    if stat is None:
        return "-"
    med, lo, hi = (fmt(v) for v in stat)
    return med if lo == hi else f"{med} ({lo}-{hi})"


def ms(seconds):
    return f"{seconds * 1e3:.1f}"


def per_second(rate):
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}"


def megabytes(nbytes):
    return f"{nbytes / 2 ** 20:.1f}"


def ratio(a, b):
    """a / b of two over_rounds results' medians (or plain numbers), '-' when one is missing."""
    a = a[0] if isinstance(a, tuple) else a
    b = b[0] if isinstance(b, tuple) else b
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def compared_heads(others, unit):
    """Column heads for minicnn's figure and, for each other library, its figure and the
    ratio minicnn / that library."""
    heads = [f"minicnn {unit}"]
    for lib in others:
        heads += [f"{NAMES[lib]} {unit}", f"minicnn / {NAMES[lib]}"]
    return heads


def compared_cells(stats, others, fmt):
    """The cells under compared_heads: ``stats`` maps a library to its over_rounds result."""
    cells = [fmt_spread(stats.get("minicnn"), fmt)]
    for lib in others:
        cells += [fmt_spread(stats.get(lib), fmt), ratio(stats.get("minicnn"), stats.get(lib))]
    return cells


def print_table(heads, rows):
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for row in rows:
        print("| " + " | ".join(row) + " |")
