"""Assignment-style exercises with an automatic checker.

    minicnn exercise new all --out my_layers.py     # a skeleton: docstrings, shapes, blank bodies
    minicnn exercise check my_layers.py             # passed / FAILED / not implemented, with hints
    minicnn exercise check my_layers.py relu        # only the relu functions (or name functions)
    minicnn exercise check my_layers.py --json      # one JSON object, for an autograder
    minicnn exercise notebook layers --out .        # the same exercises as a Jupyter notebook

``new NAME`` writes the functions of one exercise (``linear``, ``relu``, ``conv``,
``maxpool``, ``avgpool``, ``batchnorm``, ``dropout``, ``lrn``, ``softmax``, ``residual``) or
of ``all`` of those; ``architecture`` (the CNN-architectures lecture's questions: sizes,
parameters, memory, operation counts) and ``blocks`` (Inception, bottleneck, depthwise-
separable, SE and dense blocks built from minicnn.nn's layers) are a second assignment.
``check`` imports the file and checks every exercise function it defines (or the ones
named) against minicnn's own ops and numeric gradients (see checker.py), and refuses
a function that is, or uses, minicnn's own code (integrity.py).  The exit code is 0
only when every checked function passed: "not implemented" is not a pass (report.py).

From Python: ``skeleton(name) -> str``, ``main_new(name, out, force=False) -> exit code``,
``main_check(path, names=None, as_json=False) -> exit code``, ``check_file(path,
names=None) -> list of Result``; ``check_functions(namespace, names=None) -> list of
Result`` checks the functions a notebook defined (its ``globals()``) and prints the same
report (notebooks.py writes the notebooks); and ``add_subparser(subparsers)`` adds the
``exercise`` command to an argparse parser.

Writing a skeleton needs nothing beyond minicnn; checking one runs hypothesis (a
dependency of minicnn), which is imported only when a file is checked.
"""
import os
import sys
import tempfile

from minicnn.exercises import templates

__all__ = ["NAMES", "FUNCTIONS", "skeleton", "main_new", "main_check", "check_file", "check_functions",
           "add_subparser", "function_names", "ALL_FUNCTIONS"]

NAMES = templates.NAMES + ("all",)
# Every exercise function, in the order of the exercises; ALL_FUNCTIONS: those of ``all``.
FUNCTIONS = tuple(f for name in templates.NAMES for f in templates.load(name).FUNCTIONS)
ALL_FUNCTIONS = tuple(f for name in templates.ALL for f in templates.load(name).FUNCTIONS)

HEADER = '''"""minicnn exercises: {names}.

Write the body of every function below (each raises NotImplementedError until you do),
then check your work:

    minicnn exercise check {out}

The checker compares each function with minicnn's own ops (minicnn.functional) on small
random inputs, checks each backward pass against numeric gradients, and names the classic
mistake when it recognises one.  Conventions are minicnn's: NCHW layout, conv weights
(F, C, KH, KW), linear weights (out, in).  Check a few functions at a time with
`minicnn exercise check {out} relu_forward relu_backward` (or an exercise's name); the
file passes when every function does.  Your functions must be your own: one that calls
minicnn is REFUSED (except what a skeleton offers: the residual block may use minicnn's
conv and relu ops, the architecture blocks minicnn.nn's plain layers).
"""
import numpy as np
'''


def skeleton(name, out="my_layers.py"):
    """The source text of the exercise file for ``name`` (one of NAMES)."""
    chosen = templates.ALL if name == "all" else (name,)
    parts = [templates.load(n).SOURCE for n in chosen]   # load() rejects unknown names
    return HEADER.format(names=", ".join(chosen), out=os.path.basename(out)) + "".join(
        "\n\n" + p.strip("\n") + "\n" for p in parts)


def main_new(name, out, force=False):
    """``minicnn exercise new NAME --out FILE``: write the skeleton (never over a file unless force)."""
    try:
        text = skeleton(name, out)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if os.path.exists(out) and not force:
        print(f"exercise new: {out} exists; not overwriting your work (pass --force to replace it)",
              file=sys.stderr)
        return 1
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        print(f"exercise new: expected --out in an existing directory, received {out!r} "
              f"({directory} does not exist)", file=sys.stderr)
        return 2
    write_file(out, text)
    print(f"wrote {out}: fill in the functions, then run `minicnn exercise check {out}`")
    return 0


def write_file(path, text):
    """Write ``text`` to ``path`` (in an existing directory) atomically, as an ordinary file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".exercise-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes it private; a skeleton is an ordinary file
        os.replace(tmp, path)   # atomic: a reader never sees half a file
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def function_names(names):
    """Exercise and function names -> the function names they mean, in exercise order
    ('relu' -> relu_forward, relu_backward; 'all' -> every one); ValueError for others."""
    chosen = set()
    for n in names:
        if n == "all" or n in templates.NAMES:
            chosen.update(ALL_FUNCTIONS if n == "all" else templates.load(n).FUNCTIONS)
        elif n in FUNCTIONS:
            chosen.add(n)
        else:
            raise ValueError(f"exercise check: expected exercise names ({', '.join(NAMES)}) or "
                             f"function names ({', '.join(FUNCTIONS)}), received {n!r}")
    return [f for f in FUNCTIONS if f in chosen]


def main_check(path, names=None, as_json=False, out=None):
    """``minicnn exercise check PATH [NAME ...] [--json]``: print the report; return the exit
    code (report.py).  ``names``: exercise or function names to check (None: all in the file)."""
    try:
        names = None if not names else function_names(names)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        from minicnn.exercises import report
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "hypothesis":
            raise
        print("exercise check: the checker runs hypothesis, a dependency of minicnn that is not "
              "installed here: pip install hypothesis", file=sys.stderr)
        return 2
    return report.main_check(path, names, as_json, out)


def check_functions(namespace, names=None):
    """Check the exercise functions defined in ``namespace`` -- a notebook's ``globals()`` --
    (those in ``names``: exercise or function names; None: every one defined), print the
    report ``exercise check`` prints, and return the list of checker.Result."""
    names = None if not names else function_names(names)
    from minicnn.exercises import report
    return report.check_namespace(namespace, names)


def check_file(path, names=None):
    """Check a student's file; return the list of checker.Result (one per function found,
    or per name in ``names``: exercise or function names)."""
    from minicnn.exercises import checker
    names = None if not names else function_names(names)
    return checker.check_module(checker.load_student_file(path), names)


def add_subparser(subparsers):
    """Add ``exercise new``, ``check`` and ``notebook`` to an argparse ``add_subparsers()`` object.

    Each leaf parser sets ``func``: call ``args.func(args)`` and exit with what it returns.
    """
    p = subparsers.add_parser("exercise", help="assignment-style exercises with an automatic checker")
    sub = p.add_subparsers(dest="exercise_command", required=True)
    new = sub.add_parser("new", help="write an exercise skeleton")
    new.add_argument("name", choices=NAMES, help="which exercise ('all': every layer exercise; "
                     "'architecture' and 'blocks': the CNN-architectures assignment)")
    new.add_argument("--out", required=True, help="the Python file to write")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(func=lambda a: main_new(a.name, a.out, a.force))
    chk = sub.add_parser("check", help="check the functions in an exercise file (exit 0 only if all pass)")
    chk.add_argument("path", help="the exercise file")
    chk.add_argument("names", nargs="*", metavar="NAME",
                     help="check only these functions or exercises (e.g. relu, conv_forward_naive)")
    chk.add_argument("--json", action="store_true", help="print one JSON object (for autograders)")
    chk.set_defaults(func=lambda a: main_check(a.path, a.names, a.json))
    from minicnn.exercises import notebooks
    notebooks.add_subparser(sub)
    return p


def main(argv=None):
    """Stand-alone entry: ``python -m minicnn.exercises new|check ...``."""
    import argparse
    parser = argparse.ArgumentParser(prog="minicnn")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["exercise", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
