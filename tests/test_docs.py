"""The architecture tour in docs/: every page's script runs, and every number the page
quotes (marked ``<!-- check: VALUE -->`` in the Markdown) is one the script prints.

Conventions (docs/README.md):
- ``<!-- script: scripts/NAME.py [ARGS] -->``: a script the page relies on; ``{tmp}`` in
  ARGS is a temporary directory;
- ``<!-- check: VALUE -->``: VALUE appears in the output of the page's scripts and in the
  page's own text;
- ``<!-- recorded: PATH -->`` and ``<!-- check-recorded: VALUE -->``: numbers of a long run
  that the test cannot repeat, checked against the run's saved log PATH;
- ``<!-- makes: PATH -->``: a file the scripts must produce (``{tmp}`` as above).
"""
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md"))
MARK = re.compile(r"<!--\s*([a-z-]+):\s*(.*?)\s*-->", re.S)


def marks(page, kind):
    # Markers shown as examples (in indented code blocks or `inline code`) are not markers.
    text = re.sub(r"`[^`\n]*`", "", page.read_text())
    text = "\n".join(line for line in text.splitlines() if not line.startswith("    "))
    return [v for k, v in MARK.findall(text) if k == kind]


def visible(page):
    return MARK.sub("", page.read_text())


# One BLAS / OpenMP thread per script: on a machine whose cores are already busy, spinning
# BLAS threads cost far more than they gain (measured: 83 s of CPU for the resnet_depth
# smoke run with the default threads, 3 s with one).
SERIAL = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_scripts(page, tmp):
    out = []
    env = {**os.environ, **{k: v for k, v in SERIAL.items() if k not in os.environ}}
    for spec in marks(page, "script"):
        args = shlex.split(spec.replace("{tmp}", str(tmp)))
        proc = subprocess.run([sys.executable, str(DOCS / args[0]), *args[1:]], cwd=DOCS.parent,
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, f"{page.name}: {spec} failed:\n{proc.stderr[-3000:]}"
        out.append(proc.stdout)
    return "\n".join(out)


def test_pages_exist():
    names = {p.stem for p in PAGES}
    assert {"README", "lenet5", "alexnet", "zfnet", "vgg", "googlenet", "resnet", "later", "exercises"} <= names


def test_every_script_belongs_to_a_page():
    used = {shlex.split(s)[0] for p in PAGES for s in marks(p, "script")}
    scripts = {f"scripts/{p.name}" for p in (DOCS / "scripts").glob("*.py") if not p.name.startswith("_")}
    assert scripts == used


@pytest.mark.parametrize("page", [p for p in PAGES if marks(p, "script")], ids=lambda p: p.stem)
def test_quoted_numbers_are_printed_by_the_script(page, tmp_path):
    checks = marks(page, "check")
    assert checks or marks(page, "makes"), f"{page.name} runs a script but checks nothing"
    text = visible(page)
    for value in checks:
        # A marker may carry words that pin the number down in the output ("ZFNet 2");
        # its numbers themselves must be what the page says.
        for number in re.findall(r"\d[\d,.]*", value):
            assert number.rstrip(".,") in text, f"{page.name}: {number!r} of marker {value!r} is not in the text"
    output = run_scripts(page, tmp_path)
    missing = [v for v in checks if v not in output]
    assert not missing, f"{page.name}: quoted but not printed by its script: {missing}"
    for path in marks(page, "makes"):
        made = pathlib.Path(path.replace("{tmp}", str(tmp_path)))
        assert made.is_file() and made.stat().st_size > 0, f"{page.name}: {made} was not written"


@pytest.mark.parametrize("page", [p for p in PAGES if marks(p, "recorded")], ids=lambda p: p.stem)
def test_recorded_numbers_are_in_the_saved_log(page):
    log = "\n".join((DOCS / path).read_text() for path in marks(page, "recorded"))
    text = visible(page)
    values = marks(page, "check-recorded")
    assert values
    for value in values:
        assert value in log, f"{page.name}: {value!r} is not in the recorded log"
        for number in re.findall(r"\d[\d,.]*", value):
            assert number.rstrip(".,") in text, f"{page.name}: {number!r} of marker {value!r} is not in the text"


def test_relative_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (DOCS / target).exists(), f"{page.name} links to missing {target}"
