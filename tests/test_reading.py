"""docs/reading.md, the reading order: every file it names exists and defines what it says to read."""
import ast
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "reading.md")


def _text():
    with open(PAGE, encoding="utf-8") as f:
        return f.read()


def _steps():
    """[(number, [files in bold], [names after 'Read:'])] of the numbered path."""
    path = _text().split("## The path", 1)[1].split("\n## ", 1)[0]
    steps = []
    for number, body in re.findall(r"^(\d+)\. (.*?)(?=^\d+\. |\Z)", path, flags=re.S | re.M):
        files = re.findall(r"\*\*`(minicnn/[\w/]+\.py)`\*\*", body)
        names = []
        for sentence in re.findall(r"Read: (.*?)\.(?:\s|$)", body, flags=re.S):
            names += re.findall(r"`(\w+)`", sentence)
        steps.append((int(number), files, names))
    return steps


def _top_level_names(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_the_path_is_numbered_in_order_and_every_step_names_a_file_and_what_to_read():
    steps = _steps()
    assert [n for n, _, _ in steps] == list(range(1, len(steps) + 1))
    assert 8 <= len(steps) <= 14
    for n, files, names in steps:
        assert files, f"step {n} names no file in bold"
        assert names, f"step {n} says nothing to read"


def test_every_name_to_read_is_defined_in_the_steps_files():
    for n, files, names in _steps():
        defined = set().union(*(_top_level_names(f) for f in files))
        missing = [name for name in names if name not in defined]
        assert not missing, f"step {n} ({', '.join(files)}): {missing} not defined there"


def test_every_path_the_page_mentions_exists():
    text = _text()
    for path in set(re.findall(r"`(minicnn/[\w/.]+)`", text)):
        assert os.path.exists(os.path.join(ROOT, path)), path
    # Bare file names (`conv_im2col.py`) must exist somewhere in the package.
    for name in set(re.findall(r"`([\w]+\.(?:py|pyx))`", text)):
        assert glob.glob(os.path.join(ROOT, "minicnn", "**", name), recursive=True), name
    for link in re.findall(r"\]\(([\w./]+\.md)\)", text):
        assert os.path.exists(os.path.join(ROOT, "docs", link)), link


def test_the_page_is_linked_from_the_readme_and_the_docs_index():
    for page in ("README.md", os.path.join("docs", "README.md")):
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            assert "reading.md" in f.read(), page
