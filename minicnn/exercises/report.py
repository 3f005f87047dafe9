"""What ``minicnn exercise check`` prints and returns: the report, its JSON, the exit code.

The exit code grades: 0 only when every checked function passed.  A function that is
not implemented yet, failed, raised, could not be checked (its forward failed) or was
refused (it is, or uses, minicnn's own code: integrity.py) makes it 1.  So an untouched
skeleton exits 1, and ``minicnn exercise check FILE relu_forward relu_backward`` checks
just those (exit 0 once they pass) for working step by step.

``--json`` prints one object instead of the text, for autograders::

    {"file": "my_layers.py", "passed": false,
     "counts": {"pass": 19, "fail": 1, "not-implemented": 1, "refused": 0},
     "functions": [{"name": "conv_backward_naive", "status": "fail", "detail": "wrong result",
                    "error": 0.52, "tolerance": 1e-06, "typical_error": 1e-08,
                    "message": "relative error 0.52 at dw[1, 0, 2, 2] ...",
                    "hints": [{"id": "batch_sum", "text": "The parameter gradient ..."}],
                    "notes": []}, ...]}

status is one of pass, fail, not-implemented, refused; detail says more about a fail
(wrong result, raised an exception, or what it needs first).
"""
import contextlib
import json
import math
import re
import sys
import tempfile
import traceback
import types

import hypothesis.configuration

from minicnn.exercises import hints as _hints
from minicnn.exercises.checker import (ERROR, FAILED, NOT_IMPLEMENTED, PASSED, REFUSED, SKIPPED,
                                       check_module, load_student_file)

# The four statuses of the JSON (and of the grade), and what a "fail" was.
_JSON_STATUS = {PASSED: "pass", FAILED: "fail", ERROR: "fail", SKIPPED: "fail",
                NOT_IMPLEMENTED: "not-implemented", REFUSED: "refused"}
_DETAIL = {FAILED: "wrong result", ERROR: "raised an exception"}

RULE = ("a checked function may not be, or use, minicnn's own code (minicnn.functional holds every "
        "answer); only the residual block may call minicnn's conv2d and relu ops, and the architecture "
        "blocks minicnn.nn's plain layers (not its blocks), as their skeletons say")


def exit_code(results):
    """0 iff there is at least one result and every one passed."""
    return 0 if results and all(r.status == PASSED for r in results) else 1


def number(v):
    """3.2e-11 -> '3.2e-11', 1e-07 -> '1e-7', 0.0 -> '0'."""
    if v == 0:
        return "0"
    text = f"{v:.2g}" if 1e-3 <= abs(v) < 1e3 else f"{v:.1e}".replace(".0e", "e")
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2), text)


def error_text(r):
    """'relative error 3.2e-11 (passes below 1e-7; a correct float64 solution gives about 1e-15)'."""
    if r.error is None or r.tolerance is None:
        return ""
    return (f"relative error {number(r.error)} (passes below {number(r.tolerance)}; a correct float64 "
            f"solution gives about {number(r.typical)})")


def format_report(results, out=sys.stdout):
    """Print one line per function (status, error and tolerance), its message and hints, then
    the counts and the verdict."""
    width = max([len(r.name) for r in results] + [10])
    for r in results:
        print(f"  {r.name:<{width}}  {r.status:<16} {error_text(r)}".rstrip(), file=out)
        if r.message:
            print(f"      {r.message}", file=out)
        for h in r.hints:
            print(f"      hint: {_hints.text(h)}", file=out)
        for h in r.notes:
            print(f"      note: {_hints.text(h)}", file=out)
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    order = (PASSED, FAILED, ERROR, SKIPPED, NOT_IMPLEMENTED, REFUSED)
    print("  " + ", ".join(f"{counts[s]} {s.lower()}" for s in order if s in counts), file=out)
    if REFUSED in counts:
        print(f"  REFUSED: {RULE}", file=out)
    if exit_code(results) == 0:
        print("  passed: every checked function passed", file=out)
    else:
        print("  not passed: every checked function must pass (not implemented counts as not passed)",
              file=out)


def _finite(v):
    return None if v is None or not math.isfinite(v) else float(v)


def to_json(results, path):
    """The report as one JSON-ready dict (see the module docstring)."""
    functions = []
    for r in results:
        detail = _DETAIL.get(r.status) or (r.message if r.status == SKIPPED else None)
        functions.append({
            "name": r.name, "status": _JSON_STATUS[r.status], "detail": detail,
            "error": _finite(r.error), "tolerance": r.tolerance, "typical_error": r.typical,
            "message": r.message,
            "hints": [{"id": h, "text": _hints.text(h)} for h in r.hints],
            "notes": [{"id": h, "text": _hints.text(h)} for h in r.notes]})
    counts = {s: sum(f["status"] == s for f in functions) for s in ("pass", "fail", "not-implemented", "refused")}
    report = {"file": str(path), "passed": exit_code(results) == 0, "counts": counts, "functions": functions}
    if counts["refused"]:
        report["rule"] = RULE
    return report


def _problem(path, as_json, message, code, out):
    """A file that cannot be checked at all: the message (and, with --json, an object saying so)."""
    print(message, file=sys.stderr)
    if as_json:
        print(json.dumps({"file": str(path), "passed": False, "error": message.splitlines()[0]}), file=out)
    return code


def check_quietly(mod, names=None):
    """``check_module`` with the student's prints sent to stderr, away from the report, and
    hypothesis's example cache in a temporary directory (it would leave ./.hypothesis in the
    student's directory)."""
    with tempfile.TemporaryDirectory(prefix="minicnn-check-") as home:
        hypothesis.configuration.set_hypothesis_home_dir(home)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return check_module(mod, names)
        finally:
            hypothesis.configuration.set_hypothesis_home_dir(None)


def check_namespace(namespace, names=None, out=None):
    """Check the exercise functions defined in ``namespace`` (a notebook's ``globals()``), print
    the report as ``exercise check`` does, and return the list of Result."""
    out = sys.stdout if out is None else out
    results = check_quietly(types.SimpleNamespace(**namespace), names)
    if not results:
        print("exercise check: none of the exercise functions is defined here yet (run the cells "
              "that define them first)", file=out)
        return results
    format_report(results, out)
    return results


def main_check(path, names=None, as_json=False, out=None):
    """``minicnn exercise check PATH [NAME ...] [--json]``: print the report; return the exit code.

    ``names``: function names to check (None: every exercise function the file defines).
    """
    out = sys.stdout if out is None else out
    try:
        with contextlib.redirect_stdout(sys.stderr):   # the student's own prints stay out of the report
            mod = load_student_file(path)
    except FileNotFoundError as e:
        return _problem(path, as_json, str(e), 2, out)
    except Exception:  # noqa: BLE001 - a syntax error or failing import in the student's file
        return _problem(path, as_json, f"exercise check: could not import {path}:\n"
                        + traceback.format_exc(limit=-1), 1, out)
    results = check_quietly(mod, names)
    if not results:
        return _problem(path, as_json, f"exercise check: {path} defines none of the exercise functions "
                        f"(create one with `minicnn exercise new all --out FILE`)", 2, out)
    if as_json:
        print(json.dumps(to_json(results, path), indent=1), file=out)
    else:
        print(f"checking {path}", file=out)
        format_report(results, out)
    return exit_code(results)
