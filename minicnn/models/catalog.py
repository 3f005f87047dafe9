"""The zoo described for people: a table of every model, and model options written as text.

    print(zoo_table())                                # what `minicnn models` prints
    parse_options(["stride_in_1x1=true", "survival_prob=0.8"])
    # -> {"stride_in_1x1": True, "survival_prob": 0.8}, checked by check_options(name, ...)
"""
import ast
import json

from minicnn.models.registry import info, names, options, parameter_count


def parse_options(pairs, where="model option"):
    """["KEY=VALUE", ...] -> {key: value}: model options as a command line gives them.

    A VALUE is read as JSON (true, null, 0.8, [16, 32]), then as a Python literal (True,
    (16, 32), 'B'); anything else is the string itself (shortcut=B).  Dashes in a key
    become underscores.
    """
    parsed = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ValueError(f"{where}: expected KEY=VALUE (e.g. stride_in_1x1=true), "
                             f"received {pair!r}")
        parsed[key] = _literal(text.strip())
    return parsed


def _literal(text):
    for read in (json.loads, ast.literal_eval):
        try:
            return read(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return text


def zoo_table():
    """Every registered model, one line each: family, dataset, input C x H x W, classes,
    parameters (with the default options) and what it is."""
    head = ("model", "family", "dataset", "input", "classes", "parameters", "")
    rows = []
    for name in names():
        about = info(name)
        try:
            count = f"{parameter_count(name):,}"
        except Exception as e:  # one broken family must not hide the others
            count = f"error: {type(e).__name__}: {e}"
        shape = "x".join(map(str, about.input_size)) if about.input_size else "-"
        rows.append((name, about.family or "-", about.dataset or "-", shape,
                     str(options(name).get("num_classes", "-")), count, about.title or ""))
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i in (4, 5) else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in [head] + rows]
    lines.append("input: C x H x W of one image, as `minicnn summary NAME` feeds it; classes and "
                 "parameters with the default options (`minicnn summary NAME --model-arg KEY=VALUE` "
                 "to change them)")
    return "\n".join(lines)
