"""Python floats where a derivative is infinite: every transform calls its generated code
through `as_numpy_would`.

Python's float arithmetic raises on `1 / 0.0` and `0.0 ** -0.5` where NumPy's gives inf or
NaN: the derivative of np.log at the Python float 0.0 is `out_bar / x`. Unless f itself
raises on the arguments, the call is made again with NumPy's floats, as
f(np.float64(0.0)) would be; a division by zero that remains (math.sqrt(0.0)'s derivative,
a Python float whatever its argument) is a located NonDifferentiableError.
"""
from __future__ import annotations

import copy
import inspect
import linecache
from typing import Callable

import numpy as np

from adjoint.errors import AdjointError, NonDifferentiableError
from adjoint.ir.core import Loc
from adjoint.runtime import line_of_f, numpy_floats


def call_f(f, names: tuple, args: tuple):
    """f called on `args`, one per parameter in `names`: keyword-only ones by name."""
    params = inspect.signature(f).parameters
    keyword = {n for n in names if params[n].kind == inspect.Parameter.KEYWORD_ONLY}
    return f(*[a for n, a in zip(names, args) if n not in keyword],
             **{n: a for n, a in zip(names, args) if n in keyword})


def where(e: Exception, path: str, ir):
    """The line of f whose derivative the generated module at `path` was computing when
    it raised `e` (the `# line N: ...` comment above the line that raised)."""
    at = line_of_f(e, path)
    if at is None:
        return ir.loc
    filename, line, comment = at[0] or ir.loc.filename, at[1], at[2]
    text = linecache.getline(filename, line) or comment
    return Loc(filename, line, len(text) - len(text.lstrip()), text)


def located(e: ZeroDivisionError, path: str, ir) -> AdjointError:
    """A division by zero in the generated module at `path`, located at the line of f
    whose derivative it computes."""
    return NonDifferentiableError(
        f"the derivative divides by zero here ({e}): it is infinite or undefined at these "
        f"arguments", where(e, path, ir), "keep the argument away from this point, or "
        "compute with NumPy there (np.sqrt of an np.float64 0.0 has the derivative inf, not "
        "an error)")


def generated_file(fn) -> str:
    """The file of a generated function (under the decorators the driver may add)."""
    return inspect.unwrap(fn).__code__.co_filename


def as_numpy_would(call: Callable, args: tuple, extra: tuple, f, ir_of: Callable,
                   path_of: Callable):
    """`call(args, extra)`: the generated code on f's arguments (and `extra`: tangents, a
    cotangent). On a ZeroDivisionError, unless f raises on `args` itself (its own error is
    the answer), the same call with NumPy's floats. `ir_of()`: f lowered (its parameter
    names, its place), asked for on that path only (a module found through the cache's
    index runs without lowering f); `path_of(args)`: the generated module's file for
    those arguments, where a division by zero that remains is located."""
    try:
        return call(args, extra)
    except ZeroDivisionError as e:
        numpy_args, numpy_extra = numpy_floats(args), numpy_floats(extra)
        if numpy_args is args and numpy_extra is extra:
            raise located(e, path_of(args), ir_of()) from None
        call_f(f, ir_of().param_names, copy.deepcopy(args))
    try:
        return call(numpy_args, numpy_extra)
    except ZeroDivisionError as e:  # math.sqrt(0.0)'s derivative: a Python float
        raise located(e, path_of(numpy_args), ir_of()) from None
