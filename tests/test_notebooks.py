"""The exercise notebooks: generated from the skeletons, checked by the exercise checker, and run.

Every notebook is executed in a real kernel (nbclient + ipykernel, the test extra) twice:
as generated -- every check reports "not implemented" and the notebook runs to the end --
and with the exercise cells filled from the correct solution of tests/test_exercises.py --
every check passes and the pictures are drawn.  The committed copies in notebooks/ must be
exactly what the generator writes, so that they never drift from the skeletons.
"""
import json
import os
import pathlib
import re
import sys
import types

import nbclient
import nbformat
import pytest

from minicnn.exercises import FUNCTIONS, check_functions, checker, notebook_specs, notebooks, templates

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The correct solutions of tests/test_exercises*.py: every exercise function, written as a student would.
SOLUTION = "\n\n".join(p.read_text() for p in sorted((ROOT / "tests" / "fixtures").glob("*_solution.py")))
CHECK_CELL = re.compile(r"^check_functions\(globals\(\), \[(.*)\]\);$")


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def text(cell):
    return "".join(cell["source"])


def checked_names(cell):
    """The function names a check cell checks, or None if it is not a check cell."""
    match = CHECK_CELL.match(text(cell))
    if match is None:
        return None
    from minicnn.exercises import function_names
    return function_names([n.strip().strip("'") for n in match.group(1).split(",")])


def run(nb, tmp_path):
    """Execute a notebook dict in a fresh python3 kernel that imports this checkout's minicnn."""
    nb = nbformat.reads(notebooks.render(nb), as_version=4)   # as Jupyter reads the file
    env = dict(os.environ, MINICNN_NOTEBOOK_QUICK="1",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("MPLBACKEND", None)   # the kernel's inline backend, so that pictures become outputs
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)
    return nb


def stdout(cell):
    return "".join(o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream"
                   and o["name"] == "stdout")


def assert_no_error(nb):
    errors = [(text(c)[:80], o) for c in code_cells(nb) for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors


# ----------------------------------------------------------------------------- no divergence
@pytest.mark.parametrize("name", notebook_specs.NAMES)
def test_committed_notebook_is_what_the_generator_writes(name):
    committed = ROOT / "notebooks" / f"{name}.ipynb"
    assert committed.read_text(encoding="utf-8") == notebooks.render(notebooks.build(name)), (
        f"notebooks/{name}.ipynb is stale: run `minicnn exercise notebook all --out notebooks --force`")
    nbformat.validate(nbformat.reads(committed.read_text(encoding="utf-8"), as_version=4))


def test_every_committed_notebook_has_a_spec():
    assert sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(notebook_specs.NAMES), (
        "refresh the copies: `minicnn exercise notebook all --out notebooks --force`")


def test_generated_text_is_what_jupyter_saves():
    # Saving an untouched notebook from Jupyter must not show up as a change.
    nb = notebooks.build("layers")
    assert notebooks.render(nb) == nbformat.writes(nbformat.from_dict(nb)) + "\n"


@pytest.mark.parametrize("name", notebook_specs.NAMES)
def test_exercise_cells_are_the_templates_and_every_function_is_checked(name):
    nb = notebooks.build(name)
    sources = [text(c) for c in code_cells(nb)]
    written = [f for f in FUNCTIONS if any(re.search(rf"^(def|class) {f}\b", s, re.M) for s in sources)]
    assert written
    for f in written:
        # The skeleton's exact text, cut from templates/*.py SOURCE (what `exercise new` writes).
        owner = next(t for t in templates.NAMES if f in templates.load(t).FUNCTIONS)
        assert notebooks.template_function(f) in templates.load(owner).SOURCE
        assert sum(notebooks.template_function(f) in s for s in sources) == 1
    checked = set()
    for cell in code_cells(nb):
        checked.update(checked_names(cell) or ())
    assert checked == set(written)
    questions = [c for c in nb["cells"] if text(c).startswith("**Inline question")]
    assert len(questions) >= 2
    assert [text(q).split(":")[0] for q in questions] == [f"**Inline question {i}" for i in
                                                            range(1, len(questions) + 1)]


# ----------------------------------------------------------------------------- executed
@pytest.mark.parametrize("name", notebook_specs.NAMES)
def test_skeleton_notebook_runs_to_the_end_and_reports_not_implemented(name, tmp_path):
    nb = run(notebooks.build(name), tmp_path)
    assert_no_error(nb)
    checks = [(c, checked_names(c)) for c in code_cells(nb) if checked_names(c)]
    assert checks
    for cell, names in checks:
        out = stdout(cell)
        for f in names:
            assert re.search(rf"^  {f} +not implemented$", out, re.M), out
        assert f"{len(names)} not implemented" in out and "not passed" in out, out
        assert not re.search(r"FAILED|ERROR|REFUSED|skipped|Traceback", out), out


@pytest.mark.parametrize("name", notebook_specs.NAMES)
def test_solved_notebook_passes_every_check_and_draws_its_pictures(name, tmp_path):
    nb = run(notebooks.build(name, SOLUTION), tmp_path)
    assert_no_error(nb)
    checks = [(c, checked_names(c)) for c in code_cells(nb) if checked_names(c)]
    for cell, names in checks:
        out = stdout(cell)
        assert f"{len(names)} passed" in out and "passed: every checked function passed" in out, out
        # Each line shows the error with its tolerance and expected size, as CS231n's checks do.
        assert out.count("passes below") == len(names), out
    pictures = [o for c in code_cells(nb) for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert len(pictures) >= 2
    everything = "".join(stdout(c) for c in code_cells(nb))
    assert "yet" not in everything and "not timed" not in everything   # every picture was drawn
    assert not (tmp_path / ".hypothesis").exists()   # the checker leaves nothing in the student's directory


# ----------------------------------------------------------------------------- check_functions
def namespace(source):
    ns = {"__name__": "__main__"}
    exec(compile(source, "<notebook cell>", "exec"), ns)   # as a notebook's cells define them
    return ns


def test_check_functions_grades_a_notebooks_namespace(capsys):
    results = check_functions(namespace(SOLUTION), ["relu", "linear_forward"])
    assert [(r.name, r.status) for r in results] == [("linear_forward", checker.PASSED),
                                                     ("relu_forward", checker.PASSED),
                                                     ("relu_backward", checker.PASSED)]
    out = capsys.readouterr().out
    assert "3 passed" in out and "passes below 1e-7" in out


def test_check_functions_names_the_mistake_and_refuses_minicnns_own(capsys):
    wrong = SOLUTION.replace("return np.maximum(x, 0), x", "return np.max(x, 0), x")
    [r] = check_functions(namespace(wrong), ["relu_forward"])
    assert r.status == checker.FAILED and "relu_max_vs_maximum" in r.hints
    assert "hint:" in capsys.readouterr().out
    ns = namespace("import minicnn.functional as F\nrelu_forward = F.relu_forward\n")
    [r] = check_functions(ns, ["relu_forward"])
    assert r.status == checker.REFUSED
    assert "REFUSED" in capsys.readouterr().out


def test_check_functions_on_a_cell_not_yet_run(capsys):
    [r] = check_functions({}, ["softmax_cross_entropy"])
    assert r.status == checker.NOT_IMPLEMENTED and "run the cell" in r.message
    assert check_functions({"x": 1}) == []
    assert "none of the exercise functions" in capsys.readouterr().out
    with pytest.raises(ValueError, match="received 'relu_fwd'"):
        check_functions({}, ["relu_fwd"])


# ----------------------------------------------------------------------------- the command
def test_notebook_command_writes_refuses_to_overwrite_and_fills_a_solution(tmp_path, capsys):
    from minicnn import cli
    assert cli.main(["exercise", "notebook", "layers", "--out", str(tmp_path)]) == 0
    path = tmp_path / "layers.ipynb"
    assert path.read_text(encoding="utf-8") == notebooks.render(notebooks.build("layers"))
    path.write_text("my work")
    assert cli.main(["exercise", "notebook", "layers", "--out", str(tmp_path)]) == 1
    assert path.read_text() == "my work" and "not overwriting" in capsys.readouterr().err
    # 'all' writes all or none: no notebook is written when one of them is in the way.
    assert cli.main(["exercise", "notebook", "all", "--out", str(tmp_path)]) == 1
    assert [p.name for p in tmp_path.glob("*.ipynb")] == ["layers.ipynb"]
    solution = tmp_path / "solution.py"
    solution.write_text(SOLUTION)
    assert cli.main(["exercise", "notebook", "all", "--out", str(tmp_path), "--force",
                     "--solution", str(solution)]) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.ipynb")) == sorted(notebook_specs.NAMES)
    filled = json.loads(path.read_text(encoding="utf-8"))
    assert not any("raise NotImplementedError" in text(c) for c in code_cells(filled))
    assert "return np.maximum(x, 0), x" in "".join(text(c) for c in code_cells(filled))


def test_notebook_command_rejects_bad_arguments(tmp_path, capsys):
    from minicnn.exercises import main
    with pytest.raises(SystemExit) as e:
        main(["notebook", "convolution", "--out", str(tmp_path)])
    assert e.value.code == 2 and "invalid choice: 'convolution'" in capsys.readouterr().err
    assert main(["notebook", "layers", "--out", str(tmp_path / "missing")]) == 2
    assert "expected --out to be an existing directory" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("def relu_forward(x):\n    return (\n")
    assert main(["notebook", "layers", "--out", str(tmp_path), "--solution", str(broken)]) == 2
    assert capsys.readouterr().err.startswith("exercise notebook: expected Python source in the solution")
    assert main(["notebook", "layers", "--out", str(tmp_path), "--solution", str(tmp_path / "no.py")]) == 2
    assert "could not read the solution" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.ipynb"))
    with pytest.raises(ValueError, match="expected an exercise function name .* received 'relu_fwd'"):
        notebooks.template_function("relu_fwd")


def test_a_solutions_helpers_go_in_the_first_cell_that_uses_them(monkeypatch):
    solution = ("def _square(v):\n    return _times(v, v)\n\n\ndef _times(a, b):\n    return a * b\n\n\n"
                "def relu_forward(x):\n    return _square(x) * 0 + (x > 0) * x, x\n\n\n"
                "def relu_backward(dout, cache):\n    return _square(dout) * 0 + dout * (cache > 0)\n")
    spec = types.ModuleType("minicnn.exercises.notebook_specs.helped")
    spec.CELLS = [notebooks.exercise("relu_forward"), notebooks.exercise("relu_backward")]
    monkeypatch.setitem(sys.modules, spec.__name__, spec)
    monkeypatch.setattr(notebook_specs, "NAMES", notebook_specs.NAMES + ("helped",))
    first, second = [text(c) for c in notebooks.build("helped", solution)["cells"]]
    assert first.index("def _square") < first.index("def _times") < first.index("def relu_forward")
    assert second.startswith("def relu_backward")   # defined once, in the first cell that needs them
    ns = namespace(first + "\n" + second)
    assert [r.status for r in check_functions(ns, ["relu"])] == [checker.PASSED] * 2


# ----------------------------------------------------------------------------- a new notebook
def test_a_new_notebook_is_a_short_spec(monkeypatch):
    # What adding e.g. the architecture notebook takes: a module with CELLS, and its name in NAMES.
    spec = types.ModuleType("minicnn.exercises.notebook_specs.tiny")
    spec.CELLS = [notebooks.md("# ReLU only"), notebooks.exercise("relu_forward"),
                  notebooks.check("relu_forward"), notebooks.question("Why max(0, x)?"),
                  notebooks.code("print(1)")]
    monkeypatch.setitem(sys.modules, spec.__name__, spec)
    monkeypatch.setattr(notebook_specs, "NAMES", notebook_specs.NAMES + ("tiny",))
    nb = notebooks.build("tiny")
    assert [(c["cell_type"], text(c)) for c in nb["cells"]] == [
        ("markdown", "# ReLU only"), ("code", notebooks.template_function("relu_forward")),
        ("code", "check_functions(globals(), ['relu_forward']);"),
        ("markdown", "**Inline question 1:** Why max(0, x)?"),
        ("markdown", "**Your answer:** *write it here*"), ("code", "print(1)")]
    assert [c["id"] for c in nb["cells"]] == [f"tiny-{i:03d}" for i in range(6)]
    spec.CELLS = [notebooks.check("relu_fwd")]
    with pytest.raises(ValueError, match="received 'relu_fwd'"):
        notebooks.build("tiny")
    spec.CELLS = [("table", "?")]
    with pytest.raises(ValueError, match="received a cell of kind 'table'"):
        notebooks.build("tiny")
