"""docs/transfer.md's table is the one docs/scripts/transfer.py makes from the recorded JSON.

(tests/test_docs.py checks the page's numbers against the recorded log and re-runs the
script on 200 images; this checks that the committed JSON -- every seed's accuracy -- gives
that same table, so the two records cannot drift apart.)
"""
import importlib.util
import json
import pathlib

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _script():
    spec = importlib.util.spec_from_file_location("transfer_script", DOCS / "scripts" / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_json_gives_the_pages_table(capsys):
    recorded = json.loads((DOCS / "results" / "transfer.json").read_text())
    _script().print_table(recorded["accuracy"], 0, 0)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(recorded["accuracy"])
    log = (DOCS / "results" / "transfer.txt").read_text()
    page = (DOCS / "transfer.md").read_text()
    for row in rows:
        assert row in log
        for cell in row.strip("| ").split(" | ")[1:]:
            assert cell in page, cell
    assert recorded["args"]["shots"] == "10,50,all" and recorded["args"]["seeds"] == 3
