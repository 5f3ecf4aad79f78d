"""IR -> Python source text, written line by line (an AST unparser would drop the
comments that tie each line to the source statement it comes from).

A single-use compiler temporary is printed inside the expression that uses it,
so `_t1 = -z; _t2 = np.exp(_t1); y = 1.0 / (1.0 + _t2)` reads as the source did:
`y = 1.0 / (1.0 + np.exp(-z))`.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import contextvars
import enum
import inspect
import keyword
import math
import operator
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from adjoint import runtime
from adjoint.analysis.liveness import WRITES
from adjoint.analysis.shapes import kind_of
from adjoint.codegen import xp as xp_table
from adjoint.codegen.naming import RESTACKED, Namer, alias_classes
from adjoint.ir.core import Block, Call, Const, For, Function, Global, If, Loc, Operand, Value, \
    While, uses
from adjoint.passes.buffers import STYLE as IN_PLACE
from adjoint.rules import registry
from adjoint.rules.registry import elementwise_ufunc

_STATEMENTS = ("setitem", "append", "tape_push", "iadd_at", "add_at", "section", "iadd", IN_PLACE,
               "snap_store", "snap_free", "assert", "raise_if")
_BUILTIN_NAMES = set(dir(builtins))
_ARITHMETIC = {"+", "-", "*", "/", "//", "%", "**", "@"}
_COMPARISONS = {"==", "!=", "<", ">", "<=", ">="}

# The backend a module is written for: "numpy", or "numba" (each function decorated with
# `numba.njit`, reverse loops as index loops, tapes of floats in arrays, lists stacked by
# a loop: what numba's nopython mode compiles), with the kinds observed on the call when
# there was one. A context variable, so that every stage between the API and the
# emitter runs unchanged; `backend()` sets it around one compilation.
BACKEND: contextvars.ContextVar[tuple] = contextvars.ContextVar("adjoint_backend",
                                                                default=("numpy", None))


@contextlib.contextmanager
def backend(name: str, facts=None):
    token = BACKEND.set((name, facts))
    try:
        yield
    finally:
        BACKEND.reset(token)


# Set: print the module against its arguments' array namespace (`xp.exp`, from
# array_api_compat.array_namespace) instead of NumPy; the same emitter, whose calls
# are spelled through the table in adjoint.codegen.xp. Needs the kinds observed
# (BACKEND's facts): an np.transpose's axes, which argument is an array. The value is
# the library the code is for: "array_api_strict", or "any" (a file for any namespace).
ARRAY_API: contextvars.ContextVar[str] = contextvars.ContextVar("adjoint_array_api",
                                                                default="")

# libraries whose x[i] (every axis an int) is a copy, as NumPy's is: array_api_strict
# is NumPy underneath. torch and CuPy give a 0-d view, which a later x[i] = v changes
COPYING_ELEMENTS = ("array_api_strict",)
# libraries whose arrays cannot be written (JAX's, whose module is jaxlib): a write is
# the functional update x = at(x)[i].set(v) (adjoint.codegen.xp.at), a new array, so
# an x[i] read before it keeps its value whatever the library's x[i] is
FUNCTIONAL_WRITES = ("jaxlib",)


@contextlib.contextmanager
def array_api(library: str = "any"):
    token = ARRAY_API.set(library)
    try:
        yield
    finally:
        ARRAY_API.reset(token)


# numba's np.array takes no list of arrays (the batched tapes stack one): this does, in
# the generated module itself, so that it stays one readable file
_NUMBA_STACK = '''@numba.njit(cache=True)
def stack(xs):
    """np.array(xs), for a list of equally shaped arrays or of numbers."""
    first = np.asarray(xs[0])  # an empty list raises IndexError: there is no shape to give
    out = np.empty((len(xs),) + first.shape, first.dtype)
    for k in range(len(xs)):
        out[k] = xs[k]
    return out'''

# numba's np.max and np.min take no axis: these reduce over the first one (and, for a
# matrix, over its rows by its transpose)
_NUMBA_REDUCE = '''@numba.njit(cache=True)
def {name}_axis0(a):
    """np.{name}(a, axis=0)."""
    if a.shape[0] == 0:
        raise ValueError("zero-size array to reduction operation {long} which has no identity")
    out = a[0].copy()
    for k in range(1, a.shape[0]):
        out = np.{long}(out, a[k])
    return out'''
# Python's math raises where a result is nan or infinite and the arguments are not
# (math.log(-1.0), math.exp(1000.0)); numba's returns the nan or inf, which a gradient may
# never read (the value of log(x) is not needed for its derivative). These calls are
# checked, so that the numba gradient raises where Python's would.
_NUMBA_CHECKED = '''@numba.njit(cache=True)
def checked(value, x, y=0.0):
    """value, math's function of x (and y), raising as Python's math does."""
    if not math.isfinite(value) and math.isfinite(x) and math.isfinite(y):
        if math.isnan(value):
            raise ValueError("math domain error")
        raise OverflowError("math range error")
    return value'''
# math functions that never raise on finite arguments, or give no float
_MATH_SAFE = {"sin", "cos", "tan", "atan", "atan2", "tanh", "erf", "erfc", "fabs",
              "copysign", "floor", "ceil", "trunc", "isfinite", "isnan", "isinf", "degrees",
              "radians", "fsum"}
_INT_GROWTH = (operator.pow, pow, operator.lshift, operator.mul, operator.add, operator.sub)
_REDUCED = {np.max: "max", np.amax: "max", np.min: "min", np.amin: "min"}

_NUMBA_GROW = '''@numba.njit(cache=True)
def grow(tape):
    """The tape, twice as long (a while loop's tape is full)."""
    out = np.empty((2 * len(tape),) + tape.shape[1:], tape.dtype)
    out[:len(tape)] = tape
    return out'''

# How tightly Python binds, loosest first (the language reference's precedence table; a
# Prim's precedence uses the same numbers). An operand is parenthesised when its own
# binding is looser than the place it is printed in needs.
_NOT, _COMPARE, _UNARY, _POWER, _POSTFIX = 4, 5, 12, 13, 15
# where an operand is printed inside `x[...]`: True at the top (a tuple there loses its
# parentheses, a slice is `a:b`), _ITEM for an element of that top tuple (a slice is
# still `a:b`, but a tuple keeps its parentheses: x[(1, 2), 3] is not x[1, 2, 3])
_ITEM = "item"


@dataclass
class Module:
    """What the generated module needs besides its functions."""

    imports: set[str] = field(default_factory=set)  # modules besides numpy: "math", "random"
    helpers: dict[str, object] = field(default_factory=dict)  # name -> runtime function
    globals: dict[str, str | None] = field(default_factory=dict)  # user name -> its module
    pasted: dict[str, str] = field(default_factory=dict)  # name -> source, always pasted
    not_compiled: dict[str, str] = field(default_factory=dict)  # numba: function -> why
    array_api: bool = False  # set by an Emitter in array-API mode: no NumPy import

    def header(self, standalone: bool = False) -> list[str]:
        lines = []
        lines += [f"import {m}" for m in sorted(self.imports)]
        lines.append("from array_api_compat import array_namespace" if self.array_api
                     else "import numpy as np")
        if self.helpers and not standalone:
            by_module: dict[str, list[str]] = {}
            for name, fn in sorted(self.helpers.items()):
                by_module.setdefault(fn.__module__, []).append(name)
            for mod, names in sorted(by_module.items()):
                lines.append(f"from {mod} import {', '.join(names)}")
        for name, mod in sorted(self.globals.items()):  # the user's own objects
            if mod and mod != "__main__" and is_dotted_name(mod):
                lines.append(f"from {mod} import {name}")
            elif mod and mod != "__main__":  # my-model.py: no import statement names it;
                # __import__ does, and adjoint's loader answers it as it answers `from`
                lines.append(f"{name} = __import__({mod!r}, fromlist=[{name!r}]).{name}")
        # a closure's cell, an object's attribute, a script's global: no import reaches
        # them (adjoint's loader gives them); say so, rather than leave a bare NameError
        given = sorted(n for n, mod in self.globals.items() if not mod or mod == "__main__")
        if given:
            lines.append(f"# not importable, set on this module before calling it: "
                         f"{', '.join(given)}")
        if standalone and self.helpers:
            import inspect
            for name, fn in _with_dependencies(self.helpers).items():
                lines.append("")
                lines.append("")
                lines.extend(inspect.getsource(fn).rstrip().splitlines() if callable(fn)
                             else [f"{name} = {fn!r}"])
        for name, text in sorted(self.pasted.items()):
            lines += ["", ""] + text.splitlines()
        if self.not_compiled:  # read by adjoint.codegen.numba_backend, which warns
            lines += ["", "# functions numba is not trusted with: they run as Python",
                      f"_numba_refused = {dict(sorted(self.not_compiled.items()))!r}"]
        return lines


def is_dotted_name(module: str) -> bool:
    """Whether an import statement can name `module` (`pkg.train`, not `my-model`)."""
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in module.split("."))


def _names_read(code) -> set:
    """The global names a code object and the functions, lambdas and comprehensions
    inside it read."""
    if code is None:
        return set()
    names = set(code.co_names)
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            names |= _names_read(c)
    return names


def _with_dependencies(helpers: dict) -> dict:
    """The helpers and what their code names from their own module (zeros_like makes a
    CotangentDict): a standalone file pastes them all."""
    out, todo = {}, list(helpers.items())
    while todo:
        name, fn = todo.pop()
        if name in out:
            continue
        out[name] = fn
        if not callable(fn):  # a constant (einsum's _LETTERS): pasted as an assignment
            continue
        home = sys.modules.get(fn.__module__)
        names = _names_read(getattr(fn, "__code__", None))
        if isinstance(fn, type):  # its methods' names, and its bases
            for m in vars(fn).values():
                names |= _names_read(getattr(m, "__code__", None))
            names |= {b.__name__ for b in fn.__bases__}
        for n in names:
            dep = getattr(home, n, None)
            if (inspect.isfunction(dep) or inspect.isclass(dep)) and \
                    getattr(dep, "__module__", "").startswith("adjoint.") or \
                    type(dep) in (str, int, float, tuple, frozenset) and n.isupper() or \
                    type(dep) in (str, int, float, tuple, frozenset) and n.startswith("_") \
                    and n[1:].isupper():
                todo.append((n, dep))
    # classes first, a base before what derives from it (a file defines them in order)
    return dict(sorted(out.items(), key=lambda kv: (not isinstance(kv[1], type),
                                                   len(getattr(kv[1], "__mro__", ())), kv[0])))


# calls whose result numba makes a new C-contiguous array, whatever their operands' layout
_C_ORDER = (np.reshape, np.ravel, np.ascontiguousarray, np.zeros, np.ones, np.empty,
            np.full, np.arange, np.linspace, np.eye, np.outer, np.dot, np.matmul,
            np.concatenate, np.stack)
# calls whose result is an ndarray whatever their arguments (a ufunc's too, but for a
# scalar, which no index reaches): a scatter-add into it is np.add.at
_MAKES_ARRAYS = (np.zeros, np.ones, np.empty, np.full, np.array, np.asarray, np.copy,
                 np.ones_like, np.full_like, np.empty_like, np.arange, np.linspace, np.eye)


def enum_class(cls) -> tuple[str, str, type, str | None]:
    """How generated code names the enum class `cls`: (the path it prints, `Outer.Act`;
    the name that binds, `Outer`; the object bound; the module the file imports it from,
    None where no import reaches it: a class made in a function, or a module not in
    sys.modules, whose class the loader gives the generated module).
    Its members are printed through it (Act.TANH): the member's value alone would differ
    from it under `is`, type() and str(), and the member itself has no importable name."""
    path = cls.__qualname__
    top = path.split(".")[0]
    bound = getattr(sys.modules.get(cls.__module__), top, None)
    reached = bound
    for part in path.split(".")[1:]:
        reached = getattr(reached, part, None)
    if "<" in path or reached is not cls:
        return cls.__name__, cls.__name__, cls, None
    return path, top, bound, cls.__module__


def _flat(value) -> list:
    """A constant's scalars: the constant itself, or a tuple's elements, nested."""
    return [e for item in value for e in _flat(item)] if isinstance(value, tuple) else [value]


def named_globals(operands):
    """The globals that operands name in generated code: each Global, and the class of
    each enum member a constant holds (Act, for Act.TANH)."""
    for o in operands:
        if isinstance(o, Global):
            yield o
        elif isinstance(o, Const):
            for e in _flat(o.value):
                if isinstance(e, enum.Enum):
                    yield Global(*enum_class(type(e))[1:])


class Emitter:
    def __init__(self, fn: Function, module: Module, sections: dict[int, str] | None = None,
                 main_file: str | None = None):
        self.fn, self.module = fn, module
        self.numba = BACKEND.get()[0] == "numba"
        self._aliases = None  # naming.alias_classes(fn), when numba's in-place adds ask
        self.facts = BACKEND.get()[1]
        self.xp = ARRAY_API.get()
        self._loc = fn.loc  # the op being printed: where an array-API refusal points
        if self.xp:
            module.array_api = True
        self.sections = sections or {}
        self.main_file = main_file or (fn.loc.filename if fn.loc else None)
        self.counts = uses(fn.body)
        self.arity = entry_arity(fn)
        self.inlined: dict[Value, Call] = {}
        self._globals: dict[str, Global] = {}  # printed name -> the object it stands for
        self._user_fns: dict[str, object] = {}  # a user function called by its own name
        self.unpacked = {op.body.args[0] for op in _all_ops(fn.body) if isinstance(op, For)} | {
            op.result for op in _all_ops(fn.body) if isinstance(op, Call) and (
                op.prim.style in ("tape_pop", "snap_load") or op.prim.fn is None)}
        self._producers_of = {op.result: op for op in _all_ops(fn.body) if isinstance(op, Call)}
        self._find_inlined(fn.body)
        reserved = {"np", "math", "adjoint", fn.name} | _BUILTIN_NAMES
        if self.xp:
            reserved |= {"xp", "xp_float", "array_namespace"}
        reserved |= self._external_names(fn.body)
        self.names = Namer(fn, self.inlined, reserved)
        self.lines: list[str] = []
        self.last_loc: tuple | None = None
        self.loop_depth = 0
        self.skip: set = set()  # ops printed as part of another statement
        self._index_names: set[str] = set()  # numba's reverse-loop indices
        self._counts: dict[Value, str] = {}  # numba's array tapes: their counts' names
        self.residuals: list[str] = []
        self.seed: Value | None = None  # the out_bar whose default is 1.0 (see function)

    # ------------------------------------------------------------ inlining
    def _find_inlined(self, block: Block) -> None:
        """Single-use temporaries whose consumer is the next ops in the same block."""
        defs = {}
        unpacked = _unpacked_pops(block, self.arity).skip
        for i, op in enumerate(block.ops):
            for b in op.blocks:
                self._find_inlined(b)
            if isinstance(op, Call) and op not in unpacked:
                for k, o in enumerate(op.operands):
                    if k == 0 and op.prim.style in WRITES + (IN_PLACE,):
                        continue  # the array written into is a variable, not an expression
                    if o in defs and self._inlinable(o, defs[o], block.ops, i):
                        self.inlined[o] = op
                if op.prim.style not in _STATEMENTS and op.prim.name != "tape_pop":
                    defs[op.result] = i
            elif isinstance(op, If) and op.cond in defs and self._inlinable(
                    op.cond, defs[op.cond], block.ops, i):
                self.inlined[op.cond] = op  # `if x > 0:` rather than `_c = x > 0; if _c:`
            elif isinstance(op, For) and op.iter in defs and self._inlinable(
                    op.iter, defs[op.iter], block.ops, i):
                self.inlined[op.iter] = op  # `for i, p in zip(...):`
            elif isinstance(op, While):
                cond = op.cond
                c = cond.results[0]
                if cond.ops and isinstance(cond.ops[-1], Call) and cond.ops[-1].result is c \
                        and self.counts.get(c) == 1 and _pure(cond.ops[-1]):
                    self.inlined[c] = op  # `while x < 10:` when the test is one expression
            elif isinstance(op, While):
                pass

    def _inlinable(self, v: Value, at: int, ops, use: int) -> bool:
        if not v.name.startswith("_") or self.counts.get(v, 0) != 1 or v.name in RESTACKED:
            return False
        producer = ops[at]
        if producer.prim.style == "subscript" and producer.args[0] in self.unpacked:
            return False  # printed as part of `for a, b in ...` / `a, b = _tape.pop()`
        if producer.prim.style in _STATEMENTS or not _pure(producer):
            return False
        reads = self._expression_reads(producer)
        return all(_pure(op) and not (isinstance(op, Call) and op.prim.style in _STATEMENTS)
                   or (isinstance(op, Call) and op.prim.style == IN_PLACE
                       and op.args[0] not in reads)
                   for op in ops[at + 1:use])

    def _expression_reads(self, op: Call) -> set:
        """The values an expression reads, in the temporaries printed inside it too: it
        may move past a write into a buffer it does not read (passes/buffers.py)."""
        out = set()
        for o in op.operands:
            if isinstance(o, Value):
                out.add(o)
                if o in self.inlined:
                    out |= self._expression_reads(self._producers_of[o])
        return out

    def _external_names(self, block: Block) -> set[str]:
        out = set()
        for op in _all_ops(block):
            if isinstance(op, Call) and op.prim.style == "call":
                out.add(self._callee(op).split(".")[0])
            for o in named_globals(op.operands):
                if isinstance(o, Global):
                    seen = self._globals.setdefault(o.name, o)
                    if seen.value is not o.value:
                        # both would print (and be imported) as one name: the code would
                        # read the same object twice
                        from adjoint.errors import UnsupportedError
                        raise UnsupportedError(
                            f"two different objects are both read as `{o.name}` (from "
                            f"{seen.module} and {o.module})", getattr(op, "loc", None),
                            "pass one of them as an argument, or give it another name "
                            "in its module")
                    out.add(o.name)
                    self.module.globals[o.name] = o.module
        return out

    # ------------------------------------------------------------ expressions
    def operand(self, o: Operand, prec: int = 0, index=False) -> str:
        """`o` as an expression that means `o` wherever an operator of binding power
        `prec` puts it (0: anywhere)."""
        if isinstance(o, Value):
            if o in self.inlined:
                return self.call_expr(self.defs_op(o), prec, index)
            return self.names(o)
        if isinstance(o, Global):
            return self._xp_global(o) if self.xp else o.name
        return self.const(o.value, index, prec)

    def defs_op(self, v: Value) -> Call:
        return self._producers[v]

    def const(self, x, index=False, prec: int = 0) -> str:
        if isinstance(x, slice):
            parts = [self.const(p) for p in (x.start, x.stop, x.step)]
            if not index:  # slice(a, b): no step is a step of None
                return f"slice({', '.join(parts[:2] if x.step is None else parts)})"
            parts = ["" if p is None else text for p, text in zip(
                (x.start, x.stop, x.step), parts)]
            return f"{parts[0]}:{parts[1]}" + (f":{parts[2]}" if x.step is not None else "")
        if isinstance(x, tuple):
            if index is True and x:  # x[a, b:c]; a 1-tuple keeps its comma: x[a,]
                return ", ".join(self.const(e, _ITEM) for e in x) + ("," if len(x) == 1 else "")
            inner = [self.const(e) for e in x]
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        if x is Ellipsis:
            return "..."
        if isinstance(x, enum.Enum):  # repr's <Act.TANH: 'tanh'> is no Python
            path = enum_class(type(x))[0]
            if x._name_ and type(x).__members__.get(x._name_) is x:
                return f"{path}.{x._name_}"
            return f"{path}({self.const(x._value_)})"  # flags combined: Perm(5)
        if isinstance(x, (np.integer, np.bool_)):
            x = x.item()
        if isinstance(x, np.floating):
            x = float(x)
        if isinstance(x, np.complexfloating):
            x = complex(x)
        if isinstance(x, float) and not math.isfinite(x):
            self.module.imports.add("math")
            text = "math.nan" if math.isnan(x) else "math.inf" if x > 0 else "-math.inf"
        elif isinstance(x, complex):
            text = self._complex(x)
        elif x is None or isinstance(x, (bool, int, float, str, bytes)):
            text = repr(x)
        else:  # pragma: no cover - the IR holds no other constants
            raise AssertionError(f"internal error: no literal for the constant {x!r}; "
                                 f"please report it")
        if text.startswith("-"):  # a negative number is a unary minus: -1 ** k is -(1 ** k)
            return f"({text})" if prec > _UNARY else text
        if type(x) is int and prec >= _POSTFIX:  # (1).real: `1.` would read as a float
            return f"({text})"
        return text

    def _complex(self, z: complex) -> str:
        """A literal where Python has one (2j), else complex(re, im): repr's (-0-2j) would
        read back as an expression that loses the sign of the zero."""
        if z.real == 0 and math.copysign(1.0, z.real) > 0 and math.isfinite(z.imag) and \
                math.copysign(1.0, z.imag) > 0:
            return repr(z)
        return f"complex({self.const(z.real)}, {self.const(z.imag)})"

    def _callee(self, op: Call) -> str:
        fn, name = op.prim.fn, op.prim.name
        if fn is None:  # a function of the generated module itself (a step function)
            return name
        module = getattr(fn, "__module__", "") or ""
        if self.xp and (name.startswith("scipy.") or module.split(".")[0] == "scipy"):
            self._refuse(f"`{name}` (SciPy computes with NumPy)", op.loc)
        if name.startswith(("np.", "math.")):
            if name.startswith("math."):
                self.module.imports.add("math")
            return name
        root = name.split(".")[0]
        # random.random: a module's bound method; scipy.special.logsumexp: SciPy's functions
        # by their public names (the modules that define them are private)
        if "." in name and isinstance(sys.modules.get(root), type(sys)) and (
                not module or root == "scipy"):
            self.module.imports.add(root)
            return name
        if getattr(builtins, getattr(fn, "__name__", ""), None) is fn:
            return fn.__name__
        if "." in name and isinstance(getattr(builtins, root, None), type):
            return name  # a method of a builtin type, called through it: str.startswith
        if module.startswith("adjoint."):
            if self.xp and fn.__name__ in xp_table.FORMS:  # its array-API form
                self.module.helpers[fn.__name__] = xp_table.FORMS[fn.__name__]
                return fn.__name__
            if self.xp and fn.__name__ not in xp_table.HELPERS:
                self._refuse(f"adjoint's helper {fn.__name__}() (it computes with NumPy)",
                             op.loc)
            self.module.helpers[fn.__name__] = fn
            return fn.__name__
        # a user function with its own rule: imported from where it lives; one reached
        # through a class (a static method, `Q.ste`) is called by its own name, which
        # the loader gives the module
        plain = getattr(fn, "__name__", name)
        if plain != name and plain.isidentifier():
            if self._user_fns.setdefault(plain, fn) is not fn:
                from adjoint.errors import UnsupportedError
                raise UnsupportedError(f"two functions with rules are both named `{plain}`",
                                       op.loc, "give one of them another name")
            self.module.globals[plain] = None
            return plain
        self.module.globals[plain] = module
        return name

    def call_expr(self, op: Call, prec: int = 0, index=False) -> str:
        p, style = op.prim, op.prim.style
        a = op.args
        if style == "infix":
            if p.symbol == "**":  # right-associative, and its right side may be unary: 2 ** -k
                lp, rp = _POWER + 1, _UNARY
            elif p.precedence == _COMPARE:  # comparisons chain: a < b < c is no (a < b) < c
                lp = rp = _COMPARE + 1
            else:  # left-associative: a - (b - c), a / (b * c)
                lp, rp = p.precedence, p.precedence + 1
            left, right = self.operand(a[0], lp), self.operand(a[1], rp)
            if self.xp and p.symbol.strip() in _ARITHMETIC:  # NumPy reads True as 1.0; the standard
                # has no arithmetic on bools (np.max's gradient multiplies by x == max)
                left, right = (f"xp.astype({self.operand(x)}, {self._mask_dtype(x)})"
                               if self._bool(x) and not self._numbers_compared(x) else t
                               for x, t in ((a[0], left), (a[1], right)))
            sym = p.symbol if p.symbol.startswith(" ") else f" {p.symbol} "
            text = f"{left}{sym}{right}"
            return f"({text})" if p.precedence < prec else text
        if style == "prefix":
            text = f"{p.symbol}{self.operand(a[0], p.precedence)}"
            return f"({text})" if p.precedence < prec else text
        if style == "subscript":
            if self.numba and self._is_range(a[0]):  # numba's range has no indexing
                r = self.operand(a[0], _POSTFIX)
                bounds = self._producers[a[0]].args
                if isinstance(a[1], Const) and isinstance(a[1].value, slice) and all(
                        isinstance(b, Const) for b in bounds):  # a constant range's slice
                    part = range(*(b.value for b in bounds))[a[1].value]
                    return f"range({part.start}, {part.stop}, {part.step})"
                if isinstance(a[1], Const) and a[1].value == slice(None, None, -1):
                    # reversed(range(...)): the same numbers from the last
                    return (f"range({r}.start + (len({r}) - 1) * {r}.step, "
                            f"{r}.start - {r}.step, -{r}.step)")
                if not isinstance(a[1], Const) or not isinstance(a[1].value, slice):
                    text = f"{r}.start + {self.operand(a[1], 11)} * {r}.step"
                    return f"({text})" if prec > 10 else text
                # another slice: Python's, where numba then falls back to NumPy
            return f"{self.operand(a[0], _POSTFIX)}[{self._index(a[0], a[1])}]"
        if style == "slice" and index:
            parts = ["" if isinstance(x, Const) and x.value is None else self.operand(x)
                     for x in a]
            return f"{parts[0]}:{parts[1]}" + (f":{parts[2]}" if parts[2] else "")
        if style == "tuple":
            if index is True and a:  # x[a, b:c]; a 1-tuple keeps its comma: x[a,]
                return ", ".join(self.operand(x, 0, _ITEM) for x in a) + \
                    ("," if len(a) == 1 else "")
            inner = [self.operand(x) for x in a]
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        if style == "list":
            return "[" + ", ".join(self.operand(x) for x in a) + "]"
        if style == "method":  # rng.uniform(size=3): p.symbol, a method of a[0]
            rest = [self.operand(x) for x in a[1:]] + [f"{k}={self.operand(v)}"
                                                       for k, v in op.kwargs]
            return f"{self.operand(a[0], _POSTFIX)}.{p.symbol}({', '.join(rest)})"
        if style == "field":  # field(x, 'name')
            return f"{self.operand(a[0], _POSTFIX)}.{a[1].value}"
        if style == "dict":  # dict_of(keys, *values)
            return "{" + ", ".join(f"{k!r}: {self.operand(x)}"
                                   for k, x in zip(a[0].value, a[1:])) + "}"
        if style == "format":
            text = self._format(p, a)
            return f"({text})" if p.precedence < prec else text
        if style == "snap_load":
            return f"{self.operand(a[0], _POSTFIX)}[{self.operand(a[1])}]"
        if style == "tape_new":
            return "[]"
        if style == "alias":
            return self.operand(a[0], prec, index)
        if style == "tape_pop":
            return f"{self.operand(a[0], _POSTFIX)}.pop()"
        if self.numba and _REDUCED.get(p.fn) and self._axis_reduce(op) is not None:
            return self._axis_reduce(op)
        if self.numba and p.fn is np.array and len(a) == 1 and not op.kwargs and not (
                isinstance(a[0], Value) and a[0] in self._producers
                and self._producers[a[0]].prim.style == "list") and not (
                isinstance(a[0], Const) and isinstance(a[0].value, (int, float))):
            # (np.array(2.0) of a number numba makes itself: stack() is for a list)
            self.module.pasted["stack"] = _NUMBA_STACK
            return f"stack({self.operand(a[0])})"
        if self.xp and p.fn in (isinstance, issubclass) and any(
                _numpy_class(x) or isinstance(x, Value) and x in self._producers and any(
                    _numpy_class(y) for y in self._producers[x].args) for x in a[1:]):
            from adjoint.errors import UnsupportedError
            raise UnsupportedError(
                f"{p.fn.__name__}() with a NumPy class: observing the call saw NumPy copies "
                "of the arrays, so the path f took there may not be the one it takes on "
                "the arrays passed", op.loc or self._loc,
                "test what the code needs (x.ndim, x.shape, x.dtype), or pass NumPy arrays "
                "(np.asarray(x))")
        if self.numba and p.fn is np.copy and len(a) == 1 and self._made_array(a[0]):
            return f"{self.operand(a[0], _POSTFIX)}.copy()"  # numba's np.copy copies no
            # strided array
        a = _without_defaults(op.prim.fn, a)
        if self.xp and p.fn is len and len(a) == 1 and isinstance(a[0], Value) and \
                self._xp_array(a[0]):  # the standard's arrays have no len()
            return f"{self.operand(a[0], _POSTFIX)}.shape[0]"
        if self.xp and p.name.startswith("np."):
            return self._xp_call(op, a)
        named = dict(op.kwargs)
        axis = a[1] if len(a) == 2 else named.get("axis")
        if self.numba and p.fn in (np.sum, np.mean) and len(a) <= 2 and isinstance(axis, Const) \
                and type(axis.value) is int and set(named) <= {"axis", "keepdims"}:
            # numba's np.sum takes no keepdims, its np.mean no axis (a mean of a named array:
            # an expression's would be computed twice)
            k, keep = axis.value, named.get("keepdims")
            text = f"np.sum({self.operand(a[0])}, axis={k})"
            if p.fn is np.mean:
                text += f" / {self.operand(a[0], _POSTFIX)}.shape[{k}]"
            if isinstance(keep, Const) and keep.value is True and not (
                    p.fn is np.mean and a[0] in self.inlined):
                return f"np.expand_dims({text}, {k})"
            if (keep is None or isinstance(keep, Const) and keep.value is False) and \
                    p.fn is np.mean and a[0] not in self.inlined:
                return f"({text})" if prec > 11 else text
        args = [self.operand(x) for x in a]
        if self.numba and p.fn is np.reshape and a and not self._c_order(a[0]):
            # numba reshapes a C-contiguous array only: a transpose's raises
            # NotImplementedError when it runs, a slice's or a broadcast's is not compiled
            args[0] = f"np.ascontiguousarray({args[0]})"
        args += [f"{k}={self.operand(v)}" for k, v in op.kwargs]
        text = f"{self._callee(op)}({', '.join(args)})"
        if self.numba and p.name.startswith("math.") and p.name[5:] not in _MATH_SAFE and \
                1 <= len(args) <= 2 and not op.kwargs:
            self.module.imports.add("math")
            self.module.pasted["checked"] = _NUMBA_CHECKED
            return f"checked({text}, {', '.join(args)})"
        return text

    def _xp_call(self, op: Call, a) -> str:
        """A NumPy call spelled as the standard's function on `xp`, or refused at its line."""
        named = []
        if op.prim.name[3:] in xp_table.REDUCTIONS and len(a) > 2:
            # np.std(B, 0, None, None, 1): past the axis, the standard takes keywords only
            # (NumPy's defaults left out: out=None, dtype=None, ddof=0)
            params = list(inspect.signature(op.prim.fn).parameters.values())
            if len(a) > len(params):
                self._refuse(f"{op.prim.name}() with {len(a)} arguments", op.loc)
            named = [(q.name, x) for q, x in zip(params[2:], a[2:]) if not (
                isinstance(x, Const) and (x.value is q.default or x.value is None or
                                          x.value is np._NoValue or x.value == q.default))]
            a = a[:2]
        kinds = [self.facts.kind(x) if self.facts is not None and isinstance(x, Value)
                 else None for x in a]
        # not known to be an array (a number, or a value made by the transform, whose
        # kind was not observed): where the standard takes an array, xp.asarray makes one
        # (a no-op on an array)
        scalar = [isinstance(x, Const) and type(x.value) in (int, float, bool, complex) or
                  isinstance(x, Value) and (k is None or k.type != "ndarray") and
                  not self._xp_array(x) for x, k in zip(a, kinds)]
        ndims = [None if k is None or k.shape is None else len(k.shape) for k in kinds]
        args = [self.operand(x) for x in a]
        if op.prim.name in ("np.sum", "np.prod", "np.mean", "np.cumsum") and a and \
                self._bool(a[0]):  # counting Trues: the standard sums no bools
            args[0] = f"xp.astype({args[0]}, {self._mask_dtype(a[0])})"
        kwargs = [(k, self._xp_dtype(v) if k == "dtype" else self.operand(v))
                  for k, v in named + list(op.kwargs)]
        floats = [s and (isinstance(x, Const) and type(x.value) is float or
                         isinstance(x, Value) and (k is None or k.type == "float"))
                  for s, x, k in zip(scalar, a, kinds)]
        text = xp_table.call_text(op.prim.name, args, kwargs, scalar, ndims, floats)
        if text is not None and "dtype=xp_float" in text:
            self._uses_xp_float = True
        if text is None:
            self._refuse(f"{op.prim.name}()" + (
                f" with {', '.join(k for k, _ in op.kwargs)}=" if op.kwargs else ""), op.loc)
        if text.startswith("math."):
            self.module.imports.add("math")
        for helper in ("xp_stack", "xp_dot"):
            if text.startswith(helper + "("):
                self.module.helpers[helper] = getattr(xp_table, helper)
        return text

    def _xp_array(self, v: Value, depth: int = 0) -> bool:
        """Is `v` known to be an array: observed as one, made by a standard function
        (each returns an array, a reduction a 0-d one), or by arithmetic on an array."""
        k = self.facts.kind(v) if self.facts is not None else None
        if k is not None:
            return k.type == "ndarray"
        op = self._producers.get(v)
        if op is None or depth > 20:
            return False
        if op.prim.name.startswith("np."):
            return op.prim.name not in ("np.ndim", "np.shape", "np.size")
        if op.prim.style in ("infix", "prefix") and op.prim.symbol.strip() not in (
                "and", "or", "not", "is", "is not", "in", "not in"):
            return any(isinstance(x, Value) and self._xp_array(x, depth + 1)
                       for x in op.args)
        return False

    def _xp_dtype(self, o) -> str:
        """dtype=int, dtype=np.float64: the namespace's dtype of the same name."""
        value = o.value if isinstance(o, (Global, Const)) else None
        try:
            name = np.dtype(value).name if isinstance(value, (type, np.dtype)) else None
        except TypeError:
            name = None
        if name in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float32", "float64", "complex64", "complex128"):
            return f"xp.{name}"
        return self.operand(o)

    def _index(self, base, key) -> str:
        """`key` printed inside `base[...]`. In array-API mode an array (of observed
        shape) indexed by fewer ints and slices than it has axes gets a trailing `...`:
        the standard leaves `x[i]` of a matrix unspecified (array_api_strict refuses it)."""
        text = self.operand(key, 0, index=True)
        shape = self._xp_shape(base) if self.xp else None
        if shape is None:
            return text
        if isinstance(key, Const):
            parts = tuple(Const(v) for v in (
                key.value if isinstance(key.value, tuple) else (key.value,)))
        else:
            op = self._producers.get(key) if isinstance(key, Value) else None
            if op is not None and op.prim.style == "tuple":
                parts = op.args
            else:
                parts = (key,)
        def plain(p):  # an int or a slice, as a constant or as observed
            if isinstance(p, Const):
                return isinstance(p.value, (int, slice)) and not isinstance(p.value, bool)
            k = self.facts.kind(p) if self.facts is not None and isinstance(p, Value) else None
            if k is not None:
                return k.type == "int"
            op = self._producers.get(p) if isinstance(p, Value) else None
            return op is not None and op.prim.style == "slice"
        # only where the result keeps an axis: x[i, ...] of a vector is a 0-d view,
        # which a later x[i] = 0.0 would change (x[i] is a copy in NumPy)
        if len(parts) >= len(shape) or not all(plain(p) for p in parts):
            return text
        return f"{text}, ..." if text and not text.endswith(",") else f"{text} ..."

    def _xp_shape(self, v, depth: int = 0):
        """The shape of array `v`: observed, or that of the array it was made like
        (zeros_like(x), a copy, a write into it, a loop's carried value)."""
        if not isinstance(v, Value) or self.facts is None or depth > 50:
            return None
        k = self.facts.kind(v)
        if k is not None:
            return k.shape if k.type == "ndarray" else None
        op = self._producers.get(v) or self._carried.get(v)
        if isinstance(op, Value):
            return self._xp_shape(op, depth + 1)
        if op is None or not op.args:
            return None
        if op.prim.name in ("np.zeros_like", "np.ones_like", "np.full_like", "np.copy") or \
                op.prim.style in ("setitem", "iadd_at", "iadd"):
            return self._xp_shape(op.args[0], depth + 1)
        return None

    def _int_write(self, target, value) -> bool:
        """Does this write put a float into an integer or bool array (as observed)?"""
        if self.facts is None:
            return False
        t = self.facts.kind(target) if isinstance(target, Value) else None
        v = self.facts.kind(value) if isinstance(value, Value) else None
        if isinstance(value, Const) and isinstance(value.value, float):
            v = kind_of(value.value)
        return t is not None and t.type == "ndarray" and t.dtype in ("i", "u", "b") and \
            v is not None and (v.type in ("float", "complex") or v.dtype in ("f", "c"))

    def _mask_dtype(self, v) -> str:
        """The dtype a comparison's Trues count in: that of the array compared (x == m
        of a float32 x counts in float32), else the namespace's float64."""
        op = self._comparison(v)
        first = self.operand(op.args[0]) if op is not None and isinstance(
            op.args[0], Value) and self._xp_array(op.args[0]) else ""
        return f"{first}.dtype" if first.isidentifier() else "xp.float64"

    def _bool(self, v) -> bool:
        """Is `v` a comparison's result (an array of bools, or a bool)?"""
        op = self._comparison(v)
        return op is not None and op.prim.style == "infix" and \
            op.prim.symbol.strip() in _COMPARISONS

    def _numbers_compared(self, v) -> bool:
        """Is `v` a comparison of Python ints (`i == 0` of a loop index): a bool, which
        Python's arithmetic reads as 0 or 1, and xp.astype would not take. (A float
        observed may be a 0-d array here: NumPy's reductions give floats.)"""
        op = self._comparison(v)
        return all(isinstance(o, Const) and type(o.value) in (int, bool) or
                   isinstance(o, Value) and self.facts is not None and
                   self.facts.kind(o) is not None and
                   self.facts.kind(o).type in ("int", "bool") for o in op.args)

    def _comparison(self, v):
        """The op that made `v`, seen through shape-only ops (a rule's x == 0 broadcast
        back to the input's shape is still bools)."""
        op = self._producers.get(v) if isinstance(v, Value) else None
        while op is not None and op.prim.name in _RESHAPES and op.args and \
                isinstance(op.args[0], Value):
            op = self._producers.get(op.args[0])
        return op

    def _xp_global(self, o: Global) -> str:
        if o.name in xp_table.CONSTANTS:
            return xp_table.CONSTANTS[o.name]
        if isinstance(o.value, np.ndarray):
            from adjoint.errors import UnsupportedError
            raise UnsupportedError(
                f"`{o.name}` is a NumPy array read from outside the function: the "
                "array-API form of the gradient runs on the arguments' namespace, which "
                "cannot mix with NumPy's", self._loc,
                f"pass `{o.name}` as an argument, or pass NumPy arrays")
        if o.name.startswith("np."):
            self._refuse(f"`{o.name}`", self._loc)
        return o.name

    def _refuse(self, what: str, loc) -> None:
        from adjoint.errors import UnsupportedError
        raise UnsupportedError(
            f"{what} has no equivalent in the Python array API standard that adjoint "
            "knows, so the array-API form of this gradient cannot call it", loc or self._loc,
            "write it with standard functions (xp.exp, xp.sum, xp.matmul, ...), or pass "
            "NumPy arrays (np.asarray(x)) to get the NumPy gradient")

    def _format(self, p, args) -> str:
        """A template like `{1} in {0}.stored`: each operand parenthesised for where it
        stands (the base of `.`/`[`, an argument of a call, or an operand of the
        template's own operator)."""
        out = []
        pieces = re.split(r"(\{\{|\}\}|\{\d+\})", p.symbol)
        for k, piece in enumerate(pieces):
            if piece in ("{{", "}}"):
                out.append(piece[0])
            elif re.fullmatch(r"\{\d+\}", piece):
                before = pieces[k - 1][-1:] if k else ""
                after = pieces[k + 1][:1] if k + 1 < len(pieces) else ""
                if after in (".", "[", "("):
                    need = _POSTFIX
                elif before in ("(", "[", ",") and after in (")", "]", ","):
                    need = 0  # an argument, an element
                else:
                    need = p.precedence + 1
                out.append(self.operand(args[int(piece[1:-1])], need))
            else:
                out.append(piece)
        return "".join(out)

    # ------------------------------------------------------------ statements
    def comment(self, loc: Loc | None, ind: str) -> None:
        if loc is None:
            return
        key = (loc.filename, loc.line)
        if key == self.last_loc:
            return
        self.last_loc = key
        where = f"line {loc.line}" if loc.filename == self.main_file else \
            f"{os.path.basename(loc.filename)}, line {loc.line}"
        self.lines.append(f"{ind}# {where}: {loc.text.strip()}")

    def block(self, block: Block, ind: str, top: bool = False) -> None:
        pops = _unpacked_pops(block, self.arity)
        for i, op in enumerate(block.ops):
            if top and i in self.sections:
                self.lines.append(f"{ind}# --- {self.sections[i]} ---")
                self.last_loc = None
            if isinstance(op, Call):
                if op.result in self.inlined or op in pops.skip or op in self.skip:
                    continue
                if op.prim.style != "section":
                    self.comment(op.loc, ind)
                self.statement(op, ind, pops)
            elif isinstance(op, If):
                self.if_stmt(op, ind)
            elif isinstance(op, For):
                self.for_stmt(op, ind)
            elif isinstance(op, While):
                self.while_stmt(op, ind)

    def statement(self, op: Call, ind: str, pops) -> None:
        style, a = op.prim.style, op.args
        self._loc = op.loc or self._loc
        if self.xp and style == "add_at":
            self._refuse("np.add.at (a scatter-add, for repeated indices)", op.loc)
        if self.xp and style in ("setitem", "iadd_at") and \
                self.xp not in COPYING_ELEMENTS + FUNCTIONAL_WRITES:
            from adjoint.errors import UnsupportedError
            where = "arrays of " + self.xp if self.xp != "any" else "every namespace"
            raise UnsupportedError(
                "the gradient writes into an array element by element (x[i] = v), and "
                f"its array-API form is trusted with that only on {', '.join(COPYING_ELEMENTS)}"
                f", not on {where}: the code reads x[i] as a copy, as NumPy's is, where "
                "torch and CuPy give a view that the write would change", op.loc,
                "run it on NumPy or array_api_strict arrays, or write the function without "
                "element writes")
        if self.xp and style in ("setitem", "iadd_at") and self._int_write(a[0], a[2]):
            from adjoint.errors import UnsupportedError
            raise UnsupportedError(
                "a float written into an integer array: NumPy truncates it, the array API "
                "standard casts no float into an integer array", op.loc,
                "make the array a float one (xp.zeros(n), np.zeros(n)), or pass NumPy arrays")
        if style == "section":
            self.lines.append(f"{ind}# --- {a[0].value} ---")
            if self.residuals:
                self.lines.append(f"{ind}# reads from the forward sweep: "
                                  f"{', '.join(self.residuals)}")
            self.last_loc = None
        elif style == IN_PLACE:
            self._in_place(op, ind)
        elif style == "iadd":
            target = self.names(op.result)
            if isinstance(a[0], Value) and self.names(a[0]) == target:
                added = self.operand(a[1])
                if self.numba and self._overlaps(a[0], a[1]):
                    # numba adds element by element where NumPy buffers: B_bar += B_bar.T
                    # would read entries it has already changed
                    added = f"{added}.copy()" if added.isidentifier() else f"({added}).copy()"
                self.lines.append(f"{ind}{target} += {added}")
            else:
                self.lines.append(f"{ind}{target} = {self.operand(a[0], 10)} + "
                                  f"{self.operand(a[1], 11)}")
        elif style in ("setitem", "iadd_at", "add_at"):
            target = self.names(op.result)
            if not isinstance(a[0], Value) or self.names(a[0]) != target:
                self.lines.append(f"{ind}{target} = {self.copy_of(a[0], a[1], style)}")
            if style == "add_at" and not self.numba and not self.xp and \
                    self._container(a[0]) != "ndarray":  # perhaps a dict (generic code)
                self.module.helpers["add_into"] = runtime.add_into
                self.lines.append(f"{ind}add_into({target}, {self.operand(a[1])}, "
                                  f"{self.operand(a[2])})")
            elif style == "add_at":
                index = self.operand(a[1])
                if "slice(" in index and not self.numba:  # as it reads in a subscript
                    index = f"np.s_[{self._index(a[0], a[1])}]"
                self.lines.append(f"{ind}np.add.at({target}, {index}, {self.operand(a[2])})")
            else:
                sign = "=" if style == "setitem" else "+="
                value = self.operand(a[2])
                if self.numba and self._overlaps(a[0], a[2]):  # y_bar[::-1] += y_bar
                    value = f"{value}.copy()" if value.isidentifier() else f"({value}).copy()"
                if self.xp in FUNCTIONAL_WRITES:
                    self.module.helpers["at"] = xp_table.at
                    method = "set" if style == "setitem" else "add"
                    self.lines.append(f"{ind}{target} = at({target})[{self._index(a[0], a[1])}]"
                                      f".{method}({value})")
                else:
                    self.lines.append(f"{ind}{target}[{self._index(a[0], a[1])}] {sign} {value}")
        elif style == "append":
            target = self.names(op.result)
            if not isinstance(a[0], Value) or self.names(a[0]) != target:
                self.lines.append(f"{ind}{target} = list({self.operand(a[0])})")
            self.lines.append(f"{ind}{target}.append({self.operand(a[1])})")
        elif style == "snap_store":
            values = [self.operand(x) for x in a[2:]]
            item = values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
            self.lines.append(f"{ind}{self.operand(a[0], 15)}[{self.operand(a[1])}] = {item}")
        elif style == "assert":  # check(condition, message)
            message = "" if a[1].value is None else f", {a[1].value!r}"
            self.lines.append(f"{ind}assert {self.operand(a[0])}{message}")
        elif style == "raise_if":  # raise_if(condition, error, message)
            message = "" if a[2].value is None else repr(a[2].value)
            self.lines.append(f"{ind}if {self.operand(a[0])}:")
            self.lines.append(f"{ind}    raise {a[1].value.__name__}({message})")
        elif style == "snap_free":
            self.lines.append(f"{ind}del {self.operand(a[0], 15)}[{self.operand(a[1])}]")
        elif style == "tape_new" and op.result in self.array_tapes:
            width, size = self.array_tapes[op.result]
            rows = f"len({self.operand(size)})" if size is not None else "16"
            shape = rows if width == 1 else f"({rows}, {width})"
            why = "one row a step" if size is not None else "doubled when full"
            self.lines.append(f"{ind}{self.names(op.result)} = np.empty({shape})  # {why}")
            self.lines.append(f"{ind}{self._count_name(op.result)} = 0")
        elif style == "tape_push" and a[0] in self.array_tapes:
            tape, n = self.operand(a[0]), self._count_name(a[0])
            if self.array_tapes[a[0]][1] is None:
                self.module.pasted["grow"] = _NUMBA_GROW
                self.lines.append(f"{ind}if {n} == len({tape}):")
                self.lines.append(f"{ind}    {tape} = grow({tape})")
            values = [self.operand(x) for x in a[1:]]
            item = values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
            self.lines.append(f"{ind}{tape}[{n}] = {item}")
            self.lines.append(f"{ind}{n} += 1")
        elif style == "tape_push":
            values = [self.operand(x) for x in a[1:]]
            item = values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
            self.lines.append(f"{ind}{self.operand(a[0], 15)}.append({item})")
        elif style == "tape_pop" and a[0] in self.array_tapes and op in pops.unpack:
            n = self._count_name(a[0])
            targets = [self.names(v) if v is not None and self.counts.get(v) else "_"
                       for v in pops.unpack[op]]
            self.lines.append(f"{ind}{n} -= 1")
            self.lines.append(f"{ind}{', '.join(targets)} = {self.operand(a[0], 15)}[{n}]")
        elif style == "tape_pop" and a[0] in self.array_tapes:
            n = self._count_name(a[0])
            self.lines.append(f"{ind}{n} -= 1")
            self.lines.append(f"{ind}{self.names(op.result)} = {self.operand(a[0], 15)}[{n}]")
        elif op in pops.unpack:
            targets = [self.names(v) if v is not None and self.counts.get(v) else "_"
                       for v in pops.unpack[op]]
            self.lines.append(f"{ind}{', '.join(targets)} = {self.call_expr(op)}")
        else:
            self.lines.append(f"{ind}{self.names(op.result)} = {self.call_expr(op)}")

    def _in_place(self, op: Call, ind: str) -> None:
        """An op that writes its result into its first operand's buffer (passes/buffers.py):
        under the buffer's name, or under the result's after a move that says so. Numba's
        and the array API's code compute it as an expression (no `out=` there)."""
        buffer, symbol = op.args[0], op.prim.symbol
        target, old = self.names(op.result), self.names(buffer)
        if self.numba or self.xp:
            if symbol == "neg":
                expr = f"-{self.operand(buffer, 13)}"
            else:
                left, right = (op.args[1], buffer) if symbol in ("r-", "r/") else op.args
                expr = f"{self.operand(left, 12)} {symbol[-1]} {self.operand(right, 13)}"
            self.lines.append(f"{ind}{target} = {expr}")
            return
        other = self.operand(op.args[1]) if len(op.args) > 1 else ""
        if len(op.args) > 1 and op.args[1] is buffer:
            other = target  # `t * t`: the buffer moved is read under its new name
        if target != old:
            self.lines.append(f"{ind}{target} = {old}  # reuses {old}'s buffer: "
                              f"{old} is not read again")
        if symbol == "*" and op.args[1] is self.seed:  # x * 1.0 is x: the default seed
            self.lines.append(f"{ind}if {other} != 1.0:")  # costs a comparison
            self.lines.append(f"{ind}    {target} *= {other}")
        elif symbol == "r-":  # one pass over the buffer (the frontend reads it back)
            self.lines.append(f"{ind}np.subtract({other}, {target}, out={target})")
        elif symbol == "neg":
            self.lines.append(f"{ind}np.negative({target}, out={target})")
        else:
            self.lines.append(f"{ind}{target} {symbol}= {other}")

    def copy_of(self, o: Operand, key: Operand, style: str = "setitem") -> str:
        """A copy of what an op writes into while its old value is read on: an array, or
        a list or dict (known by its kind, by the op that made it, or by a str key)."""
        kind = "dict" if isinstance(key, Const) and isinstance(key.value, str) else \
            {"dict": "dict", "list": "list", "ndarray": "np.array"}.get(self._container(o))
        if style == "iadd_at" and kind in ("dict", "list") and not (self.numba or self.xp):
            # `c[k] += g` adds into the entry's array in place: dict(c) would share it
            self.module.helpers["private_entries"] = runtime.private_entries
            return f"private_entries({self.operand(o)})"
        if kind is None and not (self._index_kind(key) and (self.numba or self.xp)):
            # not known to be an array (a str key would name a dict entry, and a list
            # may be indexed as one): a copy of its own kind
            if self.xp:  # private() copies with .copy(), which the standard has not
                self._refuse("a copy of a value of unknown kind before a write", self._loc)
            if style == "iadd_at" and not self.numba:  # perhaps a list's or dict's: as above
                self.module.helpers["private_entries"] = runtime.private_entries
                return f"private_entries({self.operand(o)})"
            self.module.helpers["private"] = runtime.private
            return f"private({self.operand(o)})"
        if kind == "np.array" and self.numba and self._made_array(o):  # numba's np.array
            # takes no copy=
            return f"{self.operand(o, _POSTFIX)}.copy()"
        return f"{kind}({self.operand(o)})" if kind not in (None, "np.array") else \
            f"{'xp.asarray' if self.xp else 'np.array'}({self.operand(o)}, copy=True)"

    def _index_kind(self, key) -> bool:
        """Whether `key` is known to index an array (a number, slice or tuple), not a dict."""
        if isinstance(key, Const):
            return not isinstance(key.value, str)
        kind = self.facts.kind(key) if self.facts is not None else None
        return kind is not None and kind.type in ("int", "tuple", "slice", "ndarray", "bool")

    def _container(self, o, depth: int = 0):
        """"dict", "list", "ndarray"... or None (not known): from the kinds, else from the
        op that made `o` (a tangent or cotangent has no kind of its own)."""
        kind = self.facts.kind(o) if self.facts is not None and isinstance(o, Value) else None
        if kind is not None or not isinstance(o, Value) or depth > 50:
            return kind.type if kind is not None else None
        op = self._producers.get(o) or self._carried.get(o)
        if isinstance(op, Value):  # a loop's carried value: as it enters the loop
            return self._container(op, depth + 1)
        if op is None:
            return None
        if op.prim.style in ("dict", "list"):
            return op.prim.style
        if isinstance(op.prim.fn, np.ufunc) or op.prim.fn in _MAKES_ARRAYS:
            return "ndarray"
        if op.prim.style in ("setitem", "iadd_at", "add_at", "append") or \
                op.prim.fn in (np.zeros_like, runtime.zeros_like):  # a cotangent: as its primal
            return self._container(op.args[0], depth + 1)
        return None

    def moves(self, targets, sources, ind: str) -> None:
        """Parallel assignment of `sources` to the names of `targets`, skipping no-ops."""
        # a branch value exported for the reverse sweep is read only under the same
        # condition, so the other path leaves it unset; inside a loop it is pushed, so set it
        pairs = [(self.names(t), self.operand(s)) for t, s in zip(targets, sources)
                 if not (isinstance(s, Const) and s.value is None and t in self._exports
                         and not self.loop_depth)]
        pairs = [(t, s) for t, s in pairs if t != s]
        if not pairs:
            return
        lhs = ", ".join(t for t, _ in pairs)
        rhs = ", ".join(s for _, s in pairs)
        self.lines.append(f"{ind}{lhs} = {rhs}")

    def if_stmt(self, op: If, ind: str) -> None:
        self.comment(op.loc, ind)
        # a branch's first statement from the `if` line itself needs no second comment
        here = (op.loc.filename, op.loc.line) if op.loc is not None else None
        cond = self.operand(op.cond)
        start = len(self.lines)
        self.lines.append(f"{ind}if {cond}:")
        self.last_loc = here
        self.block(op.then, ind + "    ")
        self.moves(op.results, op.then.results, ind + "    ")
        if not _has_code(self.lines[start + 1:]):  # comments alone are no body
            del self.lines[start + 1:]
        then_empty = len(self.lines) == start + 1
        mark = len(self.lines)
        self.lines.append(f"{ind}else:")
        self.last_loc = here
        self.block(op.orelse, ind + "    ")
        self.moves(op.results, op.orelse.results, ind + "    ")
        if not _has_code(self.lines[mark + 1:]):
            del self.lines[mark + 1:]
        if len(self.lines) == mark + 1:
            del self.lines[mark]
            if then_empty:
                del self.lines[start:]
        elif then_empty:
            self.lines[start] = f"{ind}if not {self.operand(op.cond, 12)}:"
            del self.lines[mark]
        else:
            _elif(self.lines, mark, ind)
        self.last_loc = None

    def for_stmt(self, op: For, ind: str) -> None:
        self.comment(op.loc, ind)
        if op.checkpoint is not None and op.checkpoint[0] == "call" and not op.reverse:
            # a checkpointed call runs once, inline; its inside is not kept
            self.lines.append(f"{ind}# checkpointed call of {op.checkpoint[1]}: "
                              f"recomputed in the backward sweep")
            self.block(op.body, ind)
            self.moves(op.results, op.body.results, ind)
            self.last_loc = None
            return
        if op.checkpoint is not None and not op.reverse:
            self.lines.append(f"{ind}# checkpointed loop: keeps the snapshots the plan names")
        self.moves(op.body.args[1:], op.inits, ind)
        target = self.target(op.body)
        walked = self._walked_backwards(op)
        if walked is not None:  # numba: no reversed(); an index runs down instead
            self.index_loop(walked, target, ind, op.body)
        else:
            it = self.operand(op.iter)
            if self.xp and isinstance(op.iter, Value) and self._xp_array(op.iter):
                it = f"xp.unstack({it})"  # the standard's arrays do not iterate
            if op.reverse:
                it = f"reversed({it})"
            self.lines.append(f"{ind}for {target} in {it}:")
        self.last_loc = None
        n = len(self.lines)
        self.loop_depth += 1
        self.block(op.body, ind + "    ")
        self.loop_depth -= 1
        self.moves(op.body.args[1:], op.body.results, ind + "    ")
        if not _has_code(self.lines[n:]):
            self.lines.append(f"{ind}    pass")
        self.moves(op.results, op.body.args[1:], ind)
        self.last_loc = None

    def _walked_backwards(self, op: For) -> list | None:
        """With numba: the sequences a reverse loop walks from their last item (its
        iterable, or both of zip(reversed(a), reversed(b))); None when it walks forward."""
        if not self.numba:
            return None
        if op.reverse:
            return [op.iter]
        made = self._producers.get(op.iter) if isinstance(op.iter, Value) else None
        if made is not None and made.prim.name == "zip_reversed":
            return list(made.args)
        return None

    def _array_tapes(self) -> dict:
        """With numba: the tapes whose entries are floats, kept in a preallocated array
        (one row an entry) with a count, instead of a list: tape -> (values an entry,
        the range whose length is its size, or None: 16 rows, doubled when full). Only
        tapes that are made, pushed, popped and walked backwards, nothing else."""
        if not self.numba or self.facts is None:
            return {}
        made, pushes, others = {}, {}, set()

        def visit(block: Block, loop) -> None:
            for i, op in enumerate(block.ops):
                style = op.prim.style if isinstance(op, Call) else None
                if style == "tape_new":
                    made[op.result] = (block, i)
                elif style == "tape_push":
                    pushes.setdefault(op.args[0], []).append((op, loop))
                    others.update(op.args[1:])
                elif style == "tape_pop":
                    pass
                elif isinstance(op, Call) and op.prim.name == "zip_reversed":
                    others.add(op.args[0])
                elif isinstance(op, For) and op.reverse:
                    others.update(op.inits)
                else:
                    others.update(op.operands)
                for b in op.blocks:
                    visit(b, (op, block, i) if isinstance(op, For) and b is op.body else None)
            others.update(block.results)

        visit(self.fn.body, None)
        out = {}
        for tape, (block, at) in made.items():
            entries = pushes.get(tape, [])
            if tape in others or not entries or len({len(p.args) for p, _ in entries}) != 1:
                continue
            kinds = [self.facts.kind(v) for p, _ in entries for v in p.args[1:]]
            if not all(k is not None and k.type == "float" for k in kinds):
                continue
            size, loop = None, entries[0][1]
            if len(entries) == 1 and loop is not None and loop[1] is block and \
                    self._is_range(loop[0].iter) and loop[0].iter not in self.inlined and \
                    any(op.results == (loop[0].iter,) for op in block.ops[:at]):
                size = loop[0].iter  # one push a trip of a range made before the tape
            out[tape] = (len(entries[0][0].args) - 1, size)
        return out

    def _overflows(self) -> str | None:
        """Why numba's int64 could give another answer than Python's unbounded ints:
        an int power or shift by a variable, or int arithmetic that feeds a loop's
        carried int back into itself (k = k * 3, a, b = b, a + b; a counter, k + 1,
        is safe). None when nothing can pass int64 but a count of steps."""
        carried = set()
        for op in _all_ops(self.fn.body):
            if isinstance(op, For):
                carried.update(op.body.args[1:])
            elif isinstance(op, While):
                carried.update(op.body.args + op.cond.args)
        for op in _all_ops(self.fn.body):
            if not isinstance(op, Call) or op.prim.fn not in _INT_GROWTH:
                continue
            kind = self.facts.kind(op.result) if self.facts is not None else None
            if (kind is None or kind.type != "int") and op.prim.fn in (operator.pow, pow) \
                    and self._int_power(op):
                where = f" (line {op.loc.line})" if op.loc is not None else ""
                return (f"{self.call_expr(op)}{where} is int ** int: numba's is an int "
                        f"(2 ** -1 is 0), Python's a float")
            if kind is None or kind.type != "int":
                continue
            variable = [o for o in op.args if not isinstance(o, Const)]
            fn = op.prim.fn
            if fn in (operator.pow, pow, operator.lshift) and variable or \
                    fn is operator.mul and any(o in carried for o in variable) or \
                    fn in (operator.add, operator.sub) and len(variable) == 2 and \
                    any(o in carried for o in variable):
                where = f" (line {op.loc.line})" if op.loc is not None else ""
                return (f"{self.call_expr(op)}{where} is integer arithmetic that may pass "
                        f"int64, where Python's ints do not overflow")
        return None

    def _made_array(self, o: Operand) -> bool:
        """`o` is an array made by a call or carried by a loop (not a value an if merges,
        which is None on the path that does not set it)."""
        return isinstance(o, Value) and (o in self._producers or o in self._carried) and \
            self._container(o) == "ndarray"

    def _c_order(self, o: Operand, depth: int = 0) -> bool:
        """numba's `o` is known to be a number or a C-contiguous array: made by a call that
        makes one, or computed elementwise from such (numba gives an elementwise op of
        transposes a transpose's layout)."""
        if isinstance(o, Const):
            return not isinstance(o.value, np.ndarray) or o.value.flags.c_contiguous
        kind = self.facts.kind(o) if self.facts is not None and isinstance(o, Value) else None
        if kind is not None and kind.type in ("float", "int", "bool"):
            return True
        op = self._producers.get(o) if isinstance(o, Value) else None
        if op is None or depth > 20:
            return False
        if op.prim.fn in _C_ORDER or op.prim.symbol == "@":
            return True
        elementwise = elementwise_ufunc(op.prim.fn) or op.prim.style == "prefix" or \
            op.prim.style == "infix" and op.prim.symbol.strip() in _ARITHMETIC
        return elementwise and all(self._c_order(x, depth + 1) for x in op.args)

    def _overlaps(self, a, b) -> bool:
        """`b`, an array, may share memory with `a` (a view of one buffer)."""
        k = self.facts.kind(b) if self.facts is not None and isinstance(b, Value) else None
        if k is None or k.type != "ndarray" or not k.shape:
            return False
        if self._aliases is None:
            self._aliases = alias_classes(self.fn)
        return self._aliases.get(a, a) is self._aliases.get(b, b)

    def _int_power(self, op: Call) -> bool:
        """Both operands ints (numbers or int arrays), the exponent not a constant >= 0."""
        def integral(o) -> bool:
            if isinstance(o, Const):
                return type(o.value) is int
            k = self.facts.kind(o) if self.facts is not None else None
            return k is not None and (k.type == "int" or k.type == "ndarray" and
                                      k.dtype in ("i", "u"))
        base, exponent = op.args[:2]
        safe = isinstance(exponent, Const) and type(exponent.value) is int and \
            exponent.value >= 0
        return integral(base) and integral(exponent) and not safe

    def _count_name(self, tape: Value) -> str:
        """The name of the count of entries in an array tape."""
        if tape not in self._counts:
            taken = set(self.names.names.values()) | self._index_names | \
                set(self._counts.values())
            base = self.names(tape) + "_n"
            self._counts[tape] = next(n for n in [base] + [f"{base}{j}" for j in range(1, 99)]
                                      if n not in taken and n not in self.names.reserved)
        return self._counts[tape]

    def _axis_reduce(self, op: Call) -> str | None:
        """numba: np.max(a, axis=0) as max_axis0(a) (np.min too; axis 1 or -1 of a
        matrix as max_axis0(a.T)); None for any other call."""
        axis = dict(op.kwargs).get("axis", op.args[1] if len(op.args) == 2 else None)
        extra = [k for k, _ in op.kwargs if k != "axis"]
        kind = self.facts.kind(op.args[0]) if self.facts is not None else None
        if extra or not isinstance(axis, Const) or type(axis.value) is not int or \
                len(op.args) > 1 + ("axis" not in dict(op.kwargs)) or kind is None or \
                kind.type != "ndarray" or not kind.shape or len(kind.shape) < 2:
            return None
        ndim, k = len(kind.shape), axis.value % len(kind.shape)
        if not -ndim <= axis.value < ndim or not (k == 0 or k == 1 and ndim == 2):
            return None
        name = _REDUCED[op.prim.fn]
        self.module.pasted[f"{name}_axis0"] = _NUMBA_REDUCE.format(
            name=name, long={"max": "maximum", "min": "minimum"}[name])
        return f"{name}_axis0({self.operand(op.args[0], _POSTFIX)}{'.T' if k else ''})"

    def _is_range(self, o: Operand) -> bool:
        made = self._producers.get(o) if isinstance(o, Value) else None
        return made is not None and (made.prim.fn is range or made.prim.fn is operator.getitem
                                     and isinstance(made.args[1], Const) and
                                     isinstance(made.args[1].value, slice) and
                                     self._is_range(made.args[0]))  # a range's slice: a range

    def index_loop(self, seqs: list, target: str, ind: str, body: Block) -> None:
        """`for k in range(len(a) - 1, -1, -1): target = a[k]` (or `a[k], b[k]`): the
        reverse loop numba compiles. A range's item is computed from its start and step
        (numba's range has no indexing). `reversed(a)` holds on to a's object, `a[k]`
        reads the name on every trip: a name the body binds again (an inner loop's tape
        may reuse `_tape`) is read from a name of its own."""
        bound = {self.names(v) for v in body.args if v in self.names.names or
                 self.names.find(v) in self.names.names}
        for op in _all_ops(body):
            for v in list(op.results) + [a for b in op.blocks for a in b.args]:
                if v not in self.inlined and (v in self.names.names or
                                              self.names.find(v) in self.names.names):
                    bound.add(self.names(v))
        taken = set(self.names.names.values()) | self._index_names
        k = next(name for name in ("_k",) + tuple(f"_k{j}" for j in range(1, 100))
                 if name not in taken and name not in self.names.reserved)
        self._index_names.add(k)
        texts = []
        for s in seqs:
            text = self.operand(s)
            if not text.isidentifier() or text in bound:  # evaluated once, before the loop
                name = f"{k}_seq{len(texts)}"
                self.lines.append(f"{ind}{name} = {text}")
                text = name
            if self._is_range(s):
                texts.append((text, f"{text}.start + {k} * {text}.step"))
            else:
                texts.append((text, f"{text}[{k}]"))
        last = seqs[-1]
        size = self._count_name(last) if last in self.array_tapes else f"len({texts[-1][0]})"
        self.lines.append(f"{ind}for {k} in range({size} - 1, -1, -1):")
        if target != "_":
            items = [item for _, item in texts]
            value = items[0] if len(items) == 1 else "(" + ", ".join(items) + ")"
            if len(items) > 1 and "," in target:
                value = ", ".join(items)
            self.lines.append(f"{ind}    {target} = {value}")

    def target(self, body: Block) -> str:
        """The loop variable, or `a, b, c` when the body starts by unpacking it."""
        t = body.args[0]
        if not self.counts.get(t):
            return "_"
        n = self.arity.get(t)
        parts: dict = {}  # position -> the subscript that reads it (dce drops dead ones)
        for op in body.ops:
            if (isinstance(op, Call) and op.prim.style == "subscript" and op.args[0] is t
                    and isinstance(op.args[1], Const) and type(op.args[1].value) is int
                    and op.args[1].value not in parts
                    and 0 <= op.args[1].value < (len(parts) + 1 if n is None else n)
                    and op.result not in self.inlined):
                parts[op.args[1].value] = op
            else:
                break
        if parts and len(parts) == self.counts.get(t) and (
                len(parts) > 1 and n is None or n is not None and 1 < n and len(parts) <= n):
            self.skip.update(parts.values())
            return ", ".join(self.names(parts[k].result) if k in parts and
                             self.counts.get(parts[k].result) else "_"
                             for k in range(max(n or 0, len(parts))))
        return self.names(t)

    def while_stmt(self, op: While, ind: str) -> None:
        # the test reads the carried values under the body's names: no move sets others
        if any(self.names(a) != self.names(c) for a, c in zip(op.body.args, op.cond.args)):
            raise AssertionError("internal error: a while loop's test and body name their "
                                 "carried values differently; please report it")
        self.comment(op.loc, ind)
        self.moves(op.body.args, op.inits, ind)
        n_before = len(self.lines)
        self.lines.append(f"{ind}while True:")
        self.block(op.cond, ind + "    ")
        simple = len(self.lines) == n_before + 1
        cond = self.operand(op.cond.results[0])
        if simple:
            self.lines[n_before] = f"{ind}while {cond}:"
        else:
            self.lines.append(f"{ind}    if not {self.operand(op.cond.results[0], 12)}:")
            self.lines.append(f"{ind}        break")
        self.last_loc = None
        n = len(self.lines)
        self.loop_depth += 1
        self.block(op.body, ind + "    ")
        self.loop_depth -= 1
        self.moves(op.body.args, op.body.results, ind + "    ")
        if not _has_code(self.lines[n:]):
            self.lines.append(f"{ind}    pass")
        self.moves(op.results, op.body.args, ind)
        self.last_loc = None

    def _residuals(self, body: Block) -> list[str]:
        """Names the backward sweep reads from the forward sweep: what the gradient keeps."""
        ops = body.ops
        split = next((i for i, op in enumerate(ops) if isinstance(op, Call)
                      and op.prim.style == "section"), None)
        if split is None:
            return []
        defined = {r for op in ops[:split] for r in op.results}
        read = {o for op in _all_ops(Block((), ops[split + 1:], ())) for o in op.operands}
        read |= {o for o in body.results}
        names: dict[str, None] = {}  # in order, each once (a list's `in` grew quadratic)
        for op in ops[:split]:
            for r in op.results:
                if r in read and r in defined and r not in self.inlined:
                    names.setdefault(self.names(r))
        return list(names)

    def function(self, defaults: dict[str, str] | None = None) -> list[str]:
        fn = self.fn
        self._producers = {op.result: op for op in _all_ops(fn.body) if isinstance(op, Call)}
        self._carried = {a: x for op in _all_ops(fn.body) if isinstance(op, (For, While))
                         for a, x in zip(op.body.args[isinstance(op, For):], op.inits)}
        self._exports = _export_results(fn.body)
        self.array_tapes = self._array_tapes()
        self.residuals = self._residuals(fn.body)
        defaults = defaults or {}
        # the seed out_bar=1.0 of grad and value_and_grad: a product by it can be skipped
        self.seed = fn.params[-1] if defaults.get(-1) == "1.0" and fn.params else None
        params = []
        for p in fn.params:
            name = self.names(p) if p in self.names.names or self.names.find(p) in \
                self.names.names else p.name
            k = fn.params.index(p) - len(fn.params)  # defaults are keyed by position from the end
            params.append(f"{name}={defaults[k]}" if k in defaults else name)
        if self.seed is not None and not self.numba:  # (numba: see api.source)
            params.insert(len(params) - 1, "*")  # an extra argument is refused, not a seed
        self.lines = [f"def {fn.name}({', '.join(params)}):"]
        refused = self._overflows() if self.numba else None
        if refused:
            self.module.not_compiled[fn.name] = refused
            self.lines.insert(0, f"# not compiled by numba: {refused}")
        elif self.numba:
            self.module.imports.add("numba")
            # cache=True: numba keeps the machine code beside the module (in its
            # __pycache__), so a new process does not compile it again
            self.lines.insert(0, "@numba.njit(cache=True, boundscheck=True)")
        if fn.docstring:
            self.lines.append(f'    """{fn.docstring}"""')
        if self.xp:
            self.lines.append(f"    xp = array_namespace({', '.join(self._xp_arrays(params))})")
            at, self._uses_xp_float = len(self.lines), False
        self.block(fn.body, "    ", top=True)
        if self.xp and self._uses_xp_float:
            floats = [p.split("=")[0] for p, v in zip(params, fn.params)
                      if (k := self.facts.kind(v)) is not None and k.type == "ndarray" and
                      k.dtype == "f"]
            self.lines.insert(at, "    xp_float = " + (
                f"xp.result_type({', '.join(floats)})" if floats else "xp.float64"))
        rets = [self.operand(r) for r in fn.body.results]
        self.lines.append("    return " + ", ".join(rets))
        return self.lines


    def _xp_arrays(self, params: list[str]) -> list[str]:
        """The parameters observed as arrays: the namespace comes from them."""
        from adjoint.errors import UnsupportedError
        if self.facts is None:
            raise UnsupportedError(
                "the array-API form is written for a call (its arguments' kinds and "
                "shapes), not as generic code", self.fn.loc, "give example arguments")
        names = [p.split("=")[0] for p, v in zip(params, self.fn.params)
                 if (k := self.facts.kind(v)) is not None and k.type == "ndarray"]
        if not names:
            raise UnsupportedError(
                "the array-API form takes its namespace from the array arguments, and "
                "this call has none (arrays inside a list, tuple or dict are not read "
                "for it yet)", self.fn.loc, "pass the arrays as arguments of their own, or "
                "pass NumPy arrays")
        return names


# ------------------------------------------------------------------ helpers


def _has_code(lines: list[str]) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in lines)


def _elif(lines: list[str], mark: int, ind: str) -> None:
    """`else:` holding nothing but one `if` statement becomes `elif`, so that a long
    elif chain prints flat (Python allows 100 levels of indentation). The `else`'s
    source comment moves to the end of the `elif` line, and a condition computed just
    before the `if` (`_c = k < 2; if _c:`) is named in the test: `elif (_c := k < 2):`."""
    inner = ind + "    "
    body = lines[mark + 1:]
    comments = 0
    while comments < len(body) and body[comments].startswith(inner + "#"):
        comments += 1
    if comments > 1:
        return
    note = "  " + body[0].strip() if comments else ""
    body = body[comments:]
    test = None
    if len(body) > 1 and body[0].startswith(inner) and not body[0].startswith(inner + " "):
        name, eq, expr = body[0][len(inner):].partition(" = ")
        if eq and name.isidentifier() and body[1] == f"{inner}if {name}:" and \
                not isinstance(ast.parse(expr, mode="eval").body, ast.Tuple):
            test, body = f"({name} := {expr})", body[1:]
    tops = [k for k, line in enumerate(body) if line.startswith(inner) and
            not line.startswith(inner + " ")]
    if not tops or not body[0].startswith(inner + "if ") or any(
            not (body[k].startswith(inner + "else:") or body[k].startswith(inner + "elif "))
            for k in tops[1:]):
        return
    head = f"{ind}elif {test}:" if test else ind + "el" + body[0][len(inner):]
    lines[mark:] = [head + note] + [line[4:] for line in body[1:]]


def _numpy_class(o) -> bool:
    """Is `o` a NumPy class (np.ndarray, np.float64), or a tuple holding one?"""
    value = o.value if isinstance(o, (Global, Const)) else None
    values = value if isinstance(value, tuple) else (value,)
    return any(isinstance(v, type) and v.__module__.split(".")[0] == "numpy" for v in values)


# functions that move a value's entries without changing them
_RESHAPES = ("np.broadcast_to", "np.expand_dims", "np.reshape", "np.transpose", "np.ravel")


def _without_defaults(fn, args: tuple) -> tuple:
    """Drop trailing constant arguments that equal the callee's defaults:
    `expand_to(g, x)` rather than `expand_to(g, x, None, False)`."""
    if not args or not isinstance(args[-1], Const):
        return args  # nothing to drop: no need to read the signature (most calls)
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return args
    # only parameters a positional argument binds to: f(a, *rest, key=None) called as
    # f(a, b, None) passes None in rest, not as key
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = params[:next((i for i, q in enumerate(params) if q.kind not in positional),
                          len(params))]
    args = list(args)
    while args and len(args) <= len(params):
        p, last = params[len(args) - 1], args[-1]
        if not (isinstance(last, Const) and p.default is not inspect.Parameter.empty
                and type(last.value) is type(p.default) and last.value == p.default):
            break
        args.pop()
    return tuple(args)


def _all_ops(block: Block):
    for op in block.ops:
        yield op
        for b in op.blocks:
            yield from _all_ops(b)


def _pure(op) -> bool:
    if not isinstance(op, Call):
        return False
    e = registry.entry(op.prim)
    return e is not None and e.pure


def _export_results(block: Block) -> set:
    """If results left unassigned on a path where they are None: branch values exported
    for the reverse sweep, read only under an `if` on the same condition, on the side that
    set them. Any other None (the user's `z = y if c else None`) is a value, and assigned.
    """
    unset = {}  # If result -> (its condition, the branch index that sets it)
    for op in _all_ops(block):
        if isinstance(op, If):
            for r, a, b in zip(op.results, op.then.results, op.orelse.results):
                none_a = isinstance(a, Const) and a.value is None
                none_b = isinstance(b, Const) and b.value is None
                if none_a != none_b:
                    unset[r] = (op.cond, 0 if none_b else 1)
    if not unset:
        return set()
    bad = set()

    def visit(b: Block, guards: tuple) -> None:
        for op in b.ops:
            for o in op.operands:
                if o in unset and unset[o] not in guards:
                    bad.add(o)
            if isinstance(op, If):
                for k, inner in enumerate((op.then, op.orelse)):
                    visit(inner, guards + ((op.cond, k),))
            else:
                for inner in op.blocks:
                    visit(inner, guards)
        for o in b.results:
            if o in unset and unset[o] not in guards:
                bad.add(o)

    visit(block, ())
    return set(unset) - bad


@dataclass
class _Pops:
    unpack: dict = field(default_factory=dict)  # pop op -> [element values]
    skip: set = field(default_factory=set)  # the getitem ops folded into the unpacking


def entry_arity(fn: Function) -> dict:
    """How many values each entry of a tape or snapshot set holds, by the value that
    holds it: the tape itself, the If/loop results it flows through, and what is popped,
    loaded or walked from it. 1 is a bare value, not a tuple."""
    arity: dict = {}
    ops = list(_all_ops(fn.body))
    for op in ops:
        if isinstance(op, Call) and op.prim.style in ("tape_push", "snap_store"):
            n = len(op.args) - (1 if op.prim.style == "tape_push" else 2)
            arity[op.args[0]] = n if arity.get(op.args[0], n) == n else None
    changed = True
    while changed:  # through the yields of regions, to their results and block arguments
        changed = False
        for op in ops:
            links = []
            if isinstance(op, If):
                links = [(r, y) for b in (op.then, op.orelse) for r, y in zip(op.results, b.results)]
            elif isinstance(op, (For, While)):
                args = op.body.args[1:] if isinstance(op, For) else op.body.args
                links = [(a, i) for a, i in zip(args, op.inits)] + \
                    [(r, y) for r, y in zip(op.results, op.body.results)] + \
                    [(a, y) for a, y in zip(args, op.body.results)]
            for to, frm in links:
                if frm in arity and to not in arity:
                    arity[to] = arity[frm]
                    changed = True
    for op in ops:
        if isinstance(op, Call) and op.prim.style in ("tape_pop", "snap_load") \
                and op.args[0] in arity:
            arity[op.result] = arity[op.args[0]]
        elif isinstance(op, For) and op.iter in arity:  # `for a, b in reversed(_tape)`
            arity[op.body.args[0]] = arity[op.iter]
    return arity


def _unpacked_pops(block: Block, arity: dict) -> _Pops:
    """`a, b = _tape.pop()` instead of a pop followed by two subscripts; `a, _ = ...`
    where the entry holds more values than are read."""
    out = _Pops()
    counts = None
    for i, op in enumerate(block.ops):
        if isinstance(op, Call) and (op.prim.style in ("tape_pop", "snap_load")
                                     or op.prim.fn is None):
            n = arity.get(op.result)
            reads: dict = {}  # position -> the subscript that reads it
            for nxt in block.ops[i + 1:]:
                # the element reads that follow the pop, at any positions (dead-code
                # elimination drops the reads of unused slots: `_saved[0]`, `_saved[2]`)
                if (isinstance(nxt, Call) and nxt.prim.style == "subscript"
                        and nxt.args[0] is op.result and isinstance(nxt.args[1], Const)
                        and type(nxt.args[1].value) is int and nxt.args[1].value not in reads
                        and 0 <= nxt.args[1].value < (len(reads) + 1 if n is None else n)):
                    reads[nxt.args[1].value] = nxt
                else:
                    break
            if counts is None:
                counts = uses(block)
            if reads and (op.prim.fn is None or n is not None and n > 1) and \
                    counts.get(op.result, 0) == len(reads):
                # not a bare entry (whose subscripts are its own), nor one of unknown size,
                # nor one read elsewhere too: the unpacking binds no name for the entry
                out.skip.update(reads.values())
                size = max(n or 0, len(reads))
                out.unpack[op] = [reads[k].result if k in reads else None for k in range(size)]
    return out


def emit_function(fn: Function, module: Module, sections=None, defaults=None,
                  main_file=None) -> str:
    return "\n".join(Emitter(fn, module, sections, main_file).function(defaults))
