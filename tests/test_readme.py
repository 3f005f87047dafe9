"""The README's examples run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_gradcheck_example_runs_and_catches_a_bug():
    block = next(b for b in python_blocks() if "leaky_relu" in b)
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    ns["test_leaky_relu"]()                 # the example's own hypothesis test passes
    # ... and the same check fails for a wrong backward (slope 0.2 instead of 0.1).
    ns["leaky_relu_backward"] = lambda dout, x, a=0.1: ns["np"].where(x > 0, dout, 0.2 * dout)
    try:
        ns["test_leaky_relu"]()
    except AssertionError:
        return
    raise AssertionError("the README's check did not catch a wrong backward")
