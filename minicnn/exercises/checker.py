"""The checker behind ``minicnn exercise check FILE``.

For every exercise function found in the student's file it

1. runs one small fixed case: a NotImplementedError there means "not implemented"
   (the skeleton's blank), any other exception is reported with its message;
2. runs hypothesis-drawn cases (small random shapes and hyper-parameters, derandomised
   so that a run is reproducible) comparing the result with minicnn's own op and every
   backward with numeric gradients (``minicnn.gradcheck``) -- on a failure hypothesis
   shrinks the case to a minimal one, which the report shows;
3. on a failure, tries the classic mistakes on fixed inputs (``checks.py``): each is
   computed and compared with what the function returned, and a match names the hint.

Everything runs in float64, so a relative error above ``TOL`` is a bug, not round-off.
"""
import contextlib
import importlib.util
import os
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field

import hypothesis.configuration
import numpy as np
from hypothesis import HealthCheck, Phase, given, reporting, settings

from minicnn.exercises import hints as _hints
from minicnn.gradcheck import compare, numeric_gradient

TOL = 1e-5      # relative error above which a float64 result is wrong
FLOOR = 1e-6    # least denominator of the relative error (entries ~0 are compared absolutely)

PASSED, FAILED, NOT_IMPLEMENTED, ERROR, SKIPPED = "passed", "FAILED", "not implemented", "ERROR", "skipped"


class Mismatch(Exception):
    """The student's result differs from the expected one; ``error`` is the relative error."""

    def __init__(self, message, error=None):
        super().__init__(message)
        self.error = error


class StudentError(Exception):
    """A student function raised something other than NotImplementedError."""

    def __init__(self, fn_name, exc):
        tb = traceback.extract_tb(exc.__traceback__)
        line = next((f"line {fr.lineno}" for fr in reversed(tb) if fr.name == fn_name), None)
        where = f" ({line})" if line else ""
        super().__init__(f"{fn_name} raised {type(exc).__name__}: {exc}{where}")
        self.fn_name = fn_name


class NotImplementedYet(Exception):
    """A student function raised NotImplementedError."""

    def __init__(self, fn_name):
        super().__init__(fn_name)
        self.fn_name = fn_name


def call(fn, *args):
    """Call a student function on copies of its array arguments, translating its exceptions."""
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotImplementedYet(fn.__name__) from None
    except (Mismatch, StudentError, NotImplementedYet):
        raise
    except Exception as exc:  # the student's bug: report it, do not crash the checker
        raise StudentError(fn.__name__, exc) from None


def unpack(fn_name, result, names):
    """Check that a student function returned a tuple of len(names); return it."""
    if not isinstance(result, tuple) or len(result) != len(names):
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise Mismatch(f"{fn_name} should return ({', '.join(names)}), returned {got}")
    return result


def where_text(label, index):
    return f"{label}[{', '.join(str(i) for i in index)}]" if index else label


def expect(label, got, want, case="", tol=TOL, floor=FLOOR):
    """Compare one returned array with the expected one; raise Mismatch or return the rel. error."""
    suffix = f" for {case}" if case else ""
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise Mismatch(f"{label} is not an array of numbers (received {type(got).__name__}){suffix}") from None
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise Mismatch(f"{label} has shape {got.shape}, expected {want.shape}{suffix}")
    if not np.all(np.isfinite(got)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0])
        at = f" at {where_text(label, bad)}" if bad else ""
        raise Mismatch(f"{label} holds {got[bad]}{at}{suffix}")
    err = compare(got, want, floor)
    if err > tol:
        raise Mismatch(f"relative error {float(err):.3g} at {where_text(label, err.index)} "
                       f"(yours {err.analytic:.6g}, expected {err.numeric:.6g}){suffix}", float(err))
    return float(err)


def expect_numeric(label, got, f, at, dout, case="", floor=FLOOR):
    """Compare a returned gradient with the numeric gradient of ``sum(f(at) * dout)``.

    ``floor``: centred differences carry an absolute noise of about 1e-16 * |f| / h; raise
    it when the gradient has entries far below 1 (softmax probabilities of 1e-5).
    """
    return expect(label, got, numeric_gradient(f, at, dout), case + " (numeric gradient)" if case else "",
                  floor=floor)


def close(a, b, tol=1e-6):
    """True if a and b have one shape and agree to ``tol`` (for recognising mistakes)."""
    try:
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and float(compare(a, b, FLOOR)) <= tol


@dataclass
class Result:
    """The verdict on one function."""
    name: str
    status: str
    error: float = None     # worst relative error (passed: over every case; failed: the failing one)
    message: str = ""
    hints: list = field(default_factory=list)   # hint ids (see hints.py)
    notes: list = field(default_factory=list)   # "(fine)" remarks, hint ids too


@dataclass
class Check:
    """How to check one exercise function.

    - body(mod, case, notes) -> worst relative error; raises Mismatch on a wrong result
    - strategy: hypothesis strategy of case dicts; first: a fixed small case run first
    - diagnose(mod) -> hint ids of recognised mistakes (run after a failure)
    - needs: functions the body calls before this one (a forward for a backward)
    """
    name: str
    body: object
    strategy: object
    first: dict
    diagnose: object = None
    needs: tuple = ()
    max_examples: int = 10
    describe: object = None

    def run(self, mod):
        notes = set()
        try:
            worst = self.body(mod, self.first, notes)
            worst = max(worst, self._hypothesis(mod, notes))
        except NotImplementedYet as e:
            if e.fn_name == self.name:
                return Result(self.name, NOT_IMPLEMENTED)
            return self._needs(mod, f"needs {e.fn_name}, which is not implemented yet")
        except StudentError as e:
            if e.fn_name != self.name:
                return self._needs(mod, f"needs {e.fn_name}, which failed: {e}")
            return Result(self.name, ERROR, message=str(e), hints=self._diagnose(mod))
        except Mismatch as m:
            return Result(self.name, FAILED, error=m.error, message=str(m),
                          hints=self._diagnose(mod), notes=sorted(notes))
        return Result(self.name, PASSED, error=worst, notes=sorted(notes))

    def _needs(self, mod, why):
        # The forward is missing: is this function itself still the skeleton's blank?
        try:
            getattr(mod, self.name)(*([None] * _arity(getattr(mod, self.name))))
        except NotImplementedError:
            return Result(self.name, NOT_IMPLEMENTED)
        except Exception:  # noqa: BLE001 - it got past its first line: it is implemented
            pass
        return Result(self.name, SKIPPED, message=why)

    def _diagnose(self, mod):
        if self.diagnose is None:
            return []
        try:
            found = self.diagnose(mod)
        except (NotImplementedYet, StudentError, Mismatch):
            found = []
        return list(dict.fromkeys(found))   # unique, in order

    def _hypothesis(self, mod, notes):
        worst = [0.0]
        found = []

        @settings(max_examples=self.max_examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), print_blob=False,
                  report_multiple_bugs=False, phases=(Phase.explicit, Phase.generate, Phase.shrink))
        @given(case=self.strategy)
        def prop(case):
            try:
                worst[0] = max(worst[0], self.body(mod, case, notes))
            except StudentError as e:
                if e.fn_name != self.name:
                    found.append(e)
                    raise
                # It works on some cases and raises on others: a failure, with the case.
                found.append(Mismatch(f"{e} for case {_case_text(case)}"))
                raise found[-1] from None
            except (Mismatch, NotImplementedYet) as e:
                found.append(e)
                raise

        with reporting.with_reporter(lambda *_: None):
            try:
                prop()
            except (Mismatch, StudentError, NotImplementedYet):
                raise
            except Exception:   # noqa: BLE001 - hypothesis's Flaky wrapper: report what was raised
                if found:
                    raise found[-1] from None
                raise
        return worst[0]


def _case_text(case):
    return ", ".join(f"{k}={v}" for k, v in case.items() if k != "seed")


def _arity(fn):
    import inspect
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                           p.POSITIONAL_OR_KEYWORD))


def load_student_file(path):
    """Import the student's file as a fresh module (its directory first on sys.path)."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"exercise check: expected a Python file, received {path!r} (no such file)")
    name = "minicnn_exercise_" + str(abs(hash(path)))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(os.path.dirname(path))
    return mod


def check_module(mod, names=None):
    """Check every exercise function present in ``mod``; return a list of Result."""
    from minicnn.exercises.checks import CHECKS
    results = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")   # overflow warnings of a naive softmax are the point
        for chk in CHECKS:
            if (names is None or chk.name in names) and callable(getattr(mod, chk.name, None)):
                results.append(chk.run(mod))
    return results


def format_report(results, out=sys.stdout):
    """Print one line per function (status, worst error, where), then hints and a total."""
    width = max([len(r.name) for r in results] + [10])
    for r in results:
        err = "" if r.error is None else f"worst rel. error {r.error:.2g}"
        print(f"  {r.name:<{width}}  {r.status:<16} {err}".rstrip(), file=out)
        if r.message:
            print(f"      {r.message}", file=out)
        for h in r.hints:
            print(f"      hint: {_hints.text(h)}", file=out)
        for h in r.notes:
            print(f"      note: {_hints.text(h)}", file=out)
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    order = (PASSED, FAILED, ERROR, SKIPPED, NOT_IMPLEMENTED)
    print("  " + ", ".join(f"{counts[s]} {s.lower()}" for s in order if s in counts), file=out)


def exit_code(results):
    """0 iff every implemented function passed (not-implemented ones do not count)."""
    return 0 if all(r.status in (PASSED, NOT_IMPLEMENTED) for r in results) else 1


def main_check(path, out=None):
    """``minicnn exercise check PATH``: print the report; return the exit code."""
    out = sys.stdout if out is None else out
    try:
        with contextlib.redirect_stdout(sys.stderr):   # the student's own prints stay out of the report
            mod = load_student_file(path)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - a syntax error or failing import in the student's file
        print(f"exercise check: could not import {path}:", file=sys.stderr)
        traceback.print_exc(limit=-1, file=sys.stderr)
        return 1
    # Hypothesis caches what it learns under ./.hypothesis; keep the student's directory clean.
    with tempfile.TemporaryDirectory(prefix="minicnn-check-") as home:
        hypothesis.configuration.set_hypothesis_home_dir(home)
        try:
            results = check_module(mod)
        finally:
            hypothesis.configuration.set_hypothesis_home_dir(None)
    if not results:
        print(f"exercise check: {path} defines none of the exercise functions "
              f"(create one with `minicnn exercise new all --out {os.path.basename(path)}`)", file=sys.stderr)
        return 2
    print(f"checking {path}", file=out)
    format_report(results, out)
    return exit_code(results)
