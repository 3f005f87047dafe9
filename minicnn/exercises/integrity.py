"""Is a submitted function the student's own work?  The rule behind REFUSED.

minicnn ships the answer to every exercise (``minicnn.functional`` is the reference the
checker compares with), so a file that only says

    from minicnn.functional import conv2d_forward as conv_forward_naive

would pass with a relative error of 0.  ``exercise check`` therefore refuses a checked
function -- status REFUSED, exit code 1 -- when

1. it *is* minicnn's: the function object comes from a ``minicnn.`` module (an alias or
   a ``functools.partial`` of one of minicnn's functions);
2. its code reaches minicnn: a global name it reads, an attribute of a module it reads
   (``F.conv2d_forward``), an ``import minicnn...`` inside it, a default argument or a
   closure cell -- followed into the helper functions of the same file it calls;
3. it calls into minicnn while it runs: every call the checker makes is watched
   (``sys.setprofile``), which catches what the code hides (``importlib.import_module``,
   ``getattr`` with a computed name).

Importing minicnn at the top of the file is fine; using it inside a checked function
is not, except for the ops an exercise's skeleton offers: ``ALLOWED`` (the residual
block may be built from minicnn's conv2d and relu ops, the subject of the exercises
before it; the blocks of the architecture assignment from minicnn.nn's plain layers --
but not from its blocks, which are the answers).  A checked class is judged by its
methods.  A determined cheat can still copy minicnn's source into the file; the
rule is there so that a grade means the student wrote the code that was graded.
"""
import contextlib
import dis
import functools
import importlib
import inspect
import os
import sys
import types

import minicnn

# Under this directory is minicnn's code; a call from outside into it is "using minicnn"
# (except into the checker's own directory: watch() itself runs there).
_PACKAGE_DIR = os.path.dirname(os.path.abspath(minicnn.__file__)) + os.sep
_CHECKER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Checked function name -> minicnn objects it may use (filled by the checks that allow any).
ALLOWED = {}


def allow(fn_name, *objects):
    """Let the checked function ``fn_name`` use these minicnn functions (e.g. the residual
    block: conv2d_forward, relu_forward, ...)."""
    ALLOWED.setdefault(fn_name, set()).update(id(o) for o in objects)
    ALLOWED[fn_name].update(id(o.__code__) for o in objects if hasattr(o, "__code__"))


def allow_classes(fn_name, *classes):
    """Let ``fn_name`` use these minicnn classes: build them, call them and their methods
    (those of their minicnn base classes too: Module.__call__, Module.__setattr__, ...)."""
    for cls in classes:
        for klass in cls.__mro__:
            if is_minicnn(klass):
                allow(fn_name, klass, *[v for v in vars(klass).values() if inspect.isfunction(v)])


def _module_name(obj):
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, functools.partial):
        return _module_name(obj.func)
    obj = getattr(obj, "__func__", obj)     # a bound method
    name = getattr(obj, "__module__", None)
    if not isinstance(name, str) and not isinstance(obj, type):
        name = getattr(type(obj), "__module__", None)   # an instance (a minicnn Module)
    return name if isinstance(name, str) else ""


def is_minicnn(obj):
    """True if ``obj`` is minicnn, one of its modules, or something defined in them."""
    name = _module_name(obj)
    return name == "minicnn" or name.startswith("minicnn.")


def describe(obj):
    """'minicnn.functional.conv.conv2d_forward' (module and name of a minicnn object)."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, functools.partial):
        return f"functools.partial({describe(obj.func)})"
    obj = getattr(obj, "__func__", obj)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{_module_name(obj)}.{name}"


def _codes(code):
    """A code object and every code object nested in it (inner functions, lambdas)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _module_uses(module, names, seen):
    """The minicnn objects that attribute names ``names`` reach in ``module`` (recursively
    into submodules named among them: ``minicnn.functional.conv2d_forward``)."""
    found = []
    for n in names:
        try:
            v = getattr(module, n, None)
        except Exception:  # noqa: BLE001 - a lazy module attribute that fails to import
            continue
        if v is None or not is_minicnn(v):
            continue
        if isinstance(v, types.ModuleType):
            if v.__name__ not in seen:
                seen.add(v.__name__)
                found += _module_uses(v, names, seen)
        else:
            found.append(v)
    return found


def _imported(code):
    """Dotted names of the minicnn modules a code object imports: ``import minicnn.nn``,
    ``from minicnn.functional import ...``, or a literal given to ``__import__`` /
    ``importlib.import_module``."""
    names = [i.argval for i in dis.get_instructions(code) if i.opname == "IMPORT_NAME"]
    names += [k for k in code.co_consts if isinstance(k, str)]
    return [n for n in names if isinstance(n, str) and (n == "minicnn" or (
        n.startswith("minicnn.") and n.replace(".", "").isidentifier()))]


def _reached(fn, seen_fns):
    """The minicnn objects and modules that the code of ``fn`` reaches."""
    if is_minicnn(fn):
        return [fn]
    if inspect.isclass(fn):   # a student's class: its minicnn base classes, what its methods reach
        return [b for b in fn.__mro__[1:] if is_minicnn(b)] + [
            o for v in vars(fn).values() if inspect.isfunction(v) for o in _reached(v, seen_fns)]
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    if isinstance(fn, functools.partial):
        return _reached(fn.func, seen_fns) + [a for a in list(fn.args) + list(fn.keywords.values())
                                              if is_minicnn(a)]
    code = getattr(fn, "__code__", None)
    if code is None or id(fn) in seen_fns:
        return []
    seen_fns.add(id(fn))
    names, modules = set(), []
    for c in _codes(code):
        names.update(c.co_names)
        for dotted in _imported(c):
            try:
                modules.append(importlib.import_module(dotted))
            except Exception:  # noqa: BLE001 - not importable as written ("minicnn." + a name)
                pass
    env = getattr(fn, "__globals__", {})
    cells = [c.cell_contents for c in (fn.__closure__ or ()) if _filled(c)]
    defaults = list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
    found = []
    for value in [env[n] for n in names if n in env] + cells + defaults:
        if isinstance(value, types.ModuleType) and is_minicnn(value):
            modules.append(value)
        elif is_minicnn(value):
            found.append(value)
        elif inspect.isfunction(value) and value.__globals__ is env:   # a helper of the same file
            found += _reached(value, seen_fns)
    for module in modules:
        # What the function reads from the module (F.conv2d_forward): those are what it
        # uses; the module itself if nothing it names is there (getattr with a computed name).
        found += _module_uses(module, names, {module.__name__}) or [module]
    return found


def _filled(cell):
    try:
        cell.cell_contents
    except ValueError:   # an empty cell
        return False
    return True


def refusal(fn, checked_name):
    """Why ``fn`` (checked as ``checked_name``) is not the student's own work, or None."""
    allowed = ALLOWED.get(checked_name, set())
    for obj in _reached(fn, set()):
        if id(obj) not in allowed:
            what = "is" if obj is fn else "uses"
            return f"{checked_name} {what} {describe(obj)}, minicnn's own code"
    return None


@contextlib.contextmanager
def watch(fn_name):
    """Record, while active, the first call from outside minicnn into minicnn that
    ``fn_name`` may not make: yields a list that then holds its description (or stays empty)."""
    allowed = ALLOWED.get(fn_name, set())
    reached = []

    def profile(frame, event, arg):
        if reached or event not in ("call", "c_call"):
            return
        caller = frame if event == "c_call" else frame.f_back
        if caller is None or caller.f_code.co_filename.startswith(_PACKAGE_DIR):
            return   # minicnn calling itself (the checker, or an allowed op's insides)
        if event == "call" and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            if id(frame.f_code) not in allowed and not frame.f_code.co_filename.startswith(_CHECKER_DIR):
                reached.append(f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}")
        elif event == "c_call" and is_minicnn(arg) and id(arg) not in allowed:
            reached.append(describe(arg))

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield reached
    finally:
        sys.setprofile(previous)
