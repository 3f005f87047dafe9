"""The checker behind ``minicnn exercise check FILE``.

For every exercise function found in the student's file it

0. refuses the function if it is minicnn's own or uses minicnn (integrity.py: minicnn
   ships every answer, so a grade must mean the student wrote the code);
1. runs one small fixed case: a NotImplementedError there means "not implemented"
   (the skeleton's blank), any other exception is reported with its message;
2. runs hypothesis-drawn cases (small random shapes and hyper-parameters, derandomised
   so that a run is reproducible) comparing the result with minicnn's own op and every
   backward with numeric gradients (``minicnn.gradcheck``) -- on a failure hypothesis
   shrinks the case to a minimal one, which the report shows;
3. on a failure, tries the classic mistakes on fixed inputs (``checks/``): each is
   computed and compared with what the function returned, and a match names the hint.

Everything runs in float64, so a relative error above a check's tolerance is a bug,
not round-off.  Each check states its tolerance and the error a correct float64
solution gives (measured with tests/fixtures/exercise_solution.py): a forward compared
with minicnn's op agrees to ~1e-15; a backward is also compared with centred numeric
gradients, whose own error (~1e-8) sets how close it can look.  report.py prints both.
"""
import contextvars
import importlib.util
import inspect
import os
import sys
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, given, reporting, settings

from minicnn.exercises import integrity
from minicnn.gradcheck import compare, numeric_gradient

# Tolerances (relative error) and what a correct solution gives, by kind of check.
FORWARD_TOL, FORWARD_TYPICAL = 1e-7, 1e-15      # compared with minicnn's op
BACKWARD_TOL, BACKWARD_TYPICAL = 1e-5, 1e-8     # ... and with numeric gradients
TOL = FORWARD_TOL
FLOOR = 1e-6    # least denominator of the relative error (entries ~0 are compared absolutely)

PASSED, FAILED, NOT_IMPLEMENTED, ERROR, SKIPPED, REFUSED = (
    "passed", "FAILED", "not implemented", "ERROR", "skipped", "REFUSED")

# The tolerance of the check that is running (Check.run sets it; expect() reads it).
_tolerance = contextvars.ContextVar("tolerance", default=TOL)


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


class Refused(Exception):
    """A student function called into minicnn while it ran (see integrity.py)."""

    def __init__(self, fn_name, what):
        super().__init__(f"{fn_name} called {what}, minicnn's own code")
        self.fn_name = fn_name


def call(fn, *args, copy=True):
    """Call a student function, translating its exceptions; ``copy``: on copies of its
    array arguments (False where the function must update them in place)."""
    if copy:
        args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        with integrity.watch(fn.__name__) as reached:
            result = fn(*args)
    except NotImplementedError:
        raise NotImplementedYet(fn.__name__) from None
    except (Mismatch, StudentError, NotImplementedYet, Refused):
        raise
    except Exception as exc:  # the student's bug: report it, do not crash the checker
        raise StudentError(fn.__name__, exc) from None
    if reached:
        raise Refused(fn.__name__, reached[0])
    return result


def unpack(fn_name, result, names):
    """Check that a student function returned a tuple of len(names); return it."""
    if not isinstance(result, tuple) or len(result) != len(names):
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise Mismatch(f"{fn_name} should return ({', '.join(names)}), returned {got}")
    return result


def where_text(label, index):
    return f"{label}[{', '.join(str(i) for i in index)}]" if index else label


def expect(label, got, want, case="", tol=None, floor=FLOOR):
    """Compare one returned array with the expected one; raise Mismatch or return the rel. error.

    ``tol``: None for the running check's tolerance."""
    tol = _tolerance.get() if tol is None else tol
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
    tolerance: float = None  # the relative error it must stay below
    typical: float = None    # about what a correct float64 solution gives


@dataclass
class Check:
    """How to check one exercise function.

    - body(mod, case, notes) -> worst relative error; raises Mismatch on a wrong result
    - strategy: hypothesis strategy of case dicts; first: a fixed small case run first
    - diagnose(mod) -> hint ids of recognised mistakes (run after a failure)
    - needs: functions the body calls before this one (a forward for a backward)
    - tol, typical: the relative error to stay below, and what a correct solution gives
    """
    name: str
    body: object
    strategy: object
    first: dict
    diagnose: object = None
    needs: tuple = ()
    max_examples: int = 10
    tol: float = None
    typical: float = None

    def __post_init__(self):
        backward = "backward" in self.name
        if self.tol is None:
            self.tol = BACKWARD_TOL if backward else FORWARD_TOL
        if self.typical is None:
            self.typical = BACKWARD_TYPICAL if backward else FORWARD_TYPICAL

    def run(self, mod):
        token = _tolerance.set(self.tol)
        try:
            result = self._run(mod)
        finally:
            _tolerance.reset(token)
        result.tolerance, result.typical = self.tol, self.typical
        return result

    def _run(self, mod):
        why = integrity.refusal(getattr(mod, self.name), self.name)
        if why is not None:
            return Result(self.name, REFUSED, message=why)
        notes = set()
        try:
            worst = self.body(mod, self.first, notes)
            worst = max(worst, self._hypothesis(mod, notes))
        except Refused as e:
            return Result(self.name, REFUSED, message=str(e))
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
        except (NotImplementedYet, StudentError, Mismatch, Refused):
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
            except (Mismatch, NotImplementedYet, Refused) as e:
                found.append(e)
                raise

        with reporting.with_reporter(lambda *_: None):
            try:
                prop()
            except (Mismatch, StudentError, NotImplementedYet, Refused):
                raise
            except Exception:   # noqa: BLE001 - hypothesis's Flaky wrapper: report what was raised
                if found:
                    raise found[-1] from None
                raise
        return worst[0]


def _case_text(case):
    return ", ".join(f"{k}={v}" for k, v in case.items() if k != "seed")


def _arity(fn):
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
    name = "student_exercise_" + str(abs(hash(path)))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(os.path.dirname(path))
    return mod


def check_module(mod, names=None):
    """Check the exercise functions of ``mod`` (those in ``names``, or every one present);
    return a list of Result, in the order of the exercises.  A name in ``names`` that
    ``mod`` does not define is "not implemented"."""
    from minicnn.exercises.checks import CHECKS
    results = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")   # overflow warnings of a naive softmax are the point
        for chk in CHECKS:
            if names is not None and chk.name not in names:
                continue
            if callable(getattr(mod, chk.name, None)):
                results.append(chk.run(mod))
            elif names is not None:
                results.append(Result(chk.name, NOT_IMPLEMENTED, tolerance=chk.tol, typical=chk.typical,
                                      message="not defined (in a notebook: run the cell that defines it)"))
    return results
