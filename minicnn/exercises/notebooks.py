"""Jupyter notebooks of the exercises, generated from the same skeletons and checked by the same checker.

    minicnn exercise notebook layers --out .            # writes ./layers.ipynb
    minicnn exercise notebook all --out notebooks --force

A notebook is the CS231n form of an assignment: explanation with the maths and the
shapes, a code cell per function to write, a check cell under it, inline questions
and pictures.  It never holds its own copy of an exercise: an ``exercise`` cell is the
function's text cut out of the template (``templates/*.py`` SOURCE, what ``minicnn
exercise new`` writes), and a ``check`` cell calls ``check_functions(globals(),
[...])``, the checker of ``minicnn exercise check`` run on the functions the notebook
defined.  So the notebook and the command cannot diverge.

Each notebook is a short spec in ``notebook_specs/NAME.py``: a list ``CELLS`` made with
the constructors below -- ``md`` (explanation), ``code`` (setup, pictures), ``exercise``
(template functions by name), ``check`` (function or exercise names) and ``question``
(an inline question and the cell for its answer).  Adding a notebook is writing that
list and adding its name to ``notebook_specs.NAMES``.

The file is nbformat 4 JSON, written with the standard library (no new dependency),
outputs empty and cell ids derived from the position, so the same spec always gives
the same bytes: the copies committed under ``notebooks/`` are tested against it.
"""
import ast
import json
import os
import sys

from minicnn.exercises import function_names, templates

__all__ = ["md", "code", "exercise", "check", "question", "build", "render", "main_notebook",
           "template_function", "solution_functions"]

NBFORMAT, NBFORMAT_MINOR = 4, 5


# ------------------------------------------------------------------ the spec's cells
def md(text):
    """A markdown cell: the explanation, with the maths ($...$) and the shapes."""
    return ("markdown", text.strip("\n"))


def code(text):
    """A code cell that is not an exercise: setup, a picture, a timing."""
    return ("code", text.strip("\n"))


def exercise(*names):
    """A code cell holding the skeletons of these template functions (or classes: a block to
    build), the student's work."""
    return ("exercise", names)


def check(*names):
    """A code cell that checks these functions (or exercises, e.g. "relu") with the checker."""
    return ("check", names)


def question(text):
    """An inline question (numbered in order) and a markdown cell for the answer."""
    return ("question", text.strip("\n"))


# ------------------------------------------------------------------ function texts
def _function_sources(source, where):
    """name -> text of every top-level function or class of ``source`` (decorators included)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ValueError(f"exercise notebook: expected Python source in {where}, received a syntax "
                         f"error: {e}") from None
    lines = source.splitlines()
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            found[node.name] = "\n".join(lines[start - 1:node.end_lineno])
    return found


def template_function(name):
    """The skeleton text of exercise function (or class) ``name``, cut out of its template's SOURCE."""
    for exercise_name in templates.NAMES:
        template = templates.load(exercise_name)
        if name in template.FUNCTIONS:
            return _function_sources(template.SOURCE, f"templates/{exercise_name}.py")[name]
    raise ValueError(f"exercise notebook: expected an exercise function name (one of the FUNCTIONS "
                     f"of templates/{{{','.join(templates.NAMES)}}}.py), received {name!r}")


def solution_functions(source):
    """name -> function (or class) text of a solution file's source (fills the exercise cells)."""
    return _function_sources(source, "the solution")


# ------------------------------------------------------------------ the notebook
def _lines(text):
    """Cell source as nbformat stores it: a list of lines, each but the last ending in newline."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def _cell(kind, text, index, name):
    cell = {"cell_type": kind, "id": f"{name}-{index:03d}", "metadata": {}, "source": _lines(text)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _check_source(names):
    listed = ", ".join(repr(n) for n in names)
    # The trailing ';' keeps Jupyter from echoing the returned list under the printed report.
    return f"check_functions(globals(), [{listed}]);"


def _helpers(names, solution, placed):
    """The solution's own helpers (top-level functions or classes that are not exercises) that
    its ``names`` use, directly or through each other, and that no earlier cell holds -- in the
    solution's order, to go in the cell before them; adds them to ``placed``."""
    exercises = {f for n in templates.NAMES for f in templates.load(n).FUNCTIONS}
    needed, todo = set(), [n for n in names if n in solution]
    while todo:
        used = {node.id for node in ast.walk(ast.parse(solution[todo.pop()])) if isinstance(node, ast.Name)}
        for u in used - needed - placed - exercises:
            if u in solution:
                needed.add(u)
                todo.append(u)
    placed.update(needed)
    return [n for n in solution if n in needed]


def _expand(spec_cells, solution):
    """The spec's cells -> (cell_type, text) pairs, in order."""
    out, asked, placed = [], 0, set()
    for kind, payload in spec_cells:
        if kind == "exercise":
            names = _helpers(payload, solution, placed) + list(payload)
            out.append(("code", "\n\n\n".join(solution.get(n) or template_function(n) for n in names)))
        elif kind == "check":
            function_names(payload)   # a name the checker does not know fails here, not in the kernel
            out.append(("code", _check_source(payload)))
        elif kind == "question":
            asked += 1
            out.append(("markdown", f"**Inline question {asked}:** {payload}"))
            out.append(("markdown", "**Your answer:** *write it here*"))
        elif kind in ("markdown", "code"):
            out.append((kind, payload))
        else:
            raise ValueError(f"exercise notebook: expected cells made by md, code, exercise, check or "
                             f"question, received a cell of kind {kind!r}")
    return out


def build(name, solution=None):
    """The notebook ``name`` (one of notebook_specs.NAMES) as an nbformat-4 dict.

    ``solution``: None for the skeletons, or the source text of a solution file whose
    functions and classes replace the skeletons of the same name, each cell led by the
    solution's helpers it uses (its other top-level code, imports included, is not copied:
    a notebook's setup cell imports what the exercises may use).
    """
    from minicnn.exercises import notebook_specs
    spec = notebook_specs.load(name)
    filled = {} if solution is None else solution_functions(solution)
    cells = [_cell(kind, text, i, name) for i, (kind, text) in enumerate(_expand(spec.CELLS, filled))]
    return {"cells": cells,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": NBFORMAT, "nbformat_minor": NBFORMAT_MINOR}


def render(notebook):
    """The file text, laid out as Jupyter saves it (so saving an unchanged notebook changes nothing)."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main_notebook(name, out_dir, force=False, solution=None):
    """``minicnn exercise notebook NAME|all --out DIR [--force] [--solution FILE]``: write
    DIR/NAME.ipynb (never over a notebook -- the student's work -- unless force) -> exit code."""
    from minicnn.exercises import notebook_specs, write_file
    if name != "all" and name not in notebook_specs.NAMES:
        print(f"exercise notebook: expected one of {', '.join(notebook_specs.NAMES)} or 'all', "
              f"received {name!r}", file=sys.stderr)
        return 2
    if not os.path.isdir(out_dir):
        print(f"exercise notebook: expected --out to be an existing directory, received {out_dir!r}",
              file=sys.stderr)
        return 2
    chosen = notebook_specs.NAMES if name == "all" else (name,)
    paths = [os.path.join(out_dir, f"{n}.ipynb") for n in chosen]
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not force:   # checked before writing any: 'all' writes all or none
        print(f"exercise notebook: {', '.join(existing)} exists; not overwriting your work "
              f"(pass --force to replace it)", file=sys.stderr)
        return 1
    try:
        if solution is not None:
            with open(solution, encoding="utf-8") as f:
                solution = f.read()
        texts = [render(build(n, solution)) for n in chosen]
    except OSError as e:
        print(f"exercise notebook: could not read the solution: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    for path, text in zip(paths, texts):
        write_file(path, text)
        print(f"wrote {path}: open it with `jupyter notebook {path}` (or JupyterLab, VS Code)")
    return 0


def add_subparser(sub):
    """Add ``notebook`` to the ``exercise`` command's subparsers."""
    from minicnn.exercises import notebook_specs
    nb = sub.add_parser("notebook", help="write an exercise as a Jupyter notebook (explanations, "
                        "skeleton cells, inline checks, questions, pictures)")
    nb.add_argument("name", choices=notebook_specs.NAMES + ("all",),
                    help="which notebook ('all' for every one)")
    nb.add_argument("--out", required=True, help="the directory to write NAME.ipynb into")
    nb.add_argument("--force", action="store_true", help="overwrite an existing notebook")
    nb.add_argument("--solution", metavar="FILE",
                    help="fill the exercise cells with this file's functions (an answer key)")
    nb.set_defaults(func=lambda a: main_notebook(a.name, a.out, a.force, a.solution))
    return nb
