"""Lowering: a normalised gast FunctionDef to the structured SSA IR.

Each Python variable is mapped to its current SSA value; an assignment makes a
new value named after the variable. `if`, `for` and `while` become region ops
whose results are the variables they rebind. Calls to other user functions are
inlined (their source is lowered in place, arguments bound to operands), and so
are derivative-rule templates: one mechanism serves both. Calls whose operands
are all constants fold at once, so a template's `if axis is None:` costs nothing.

This module lowers statements, expressions, calls, names and control flow. What a
name is bound to besides an operand is in bindings.py; constructs lowered through
other code are functions of the Lowerer beside it: objects.py (a user's objects,
records, frozen distributions), sugar.py (the loop or comprehension written in a
construct's place, itertools), ordering.py (max, min, sorted), strings.py
(formatting), casts.py and containers.py (tuple(), list(), dict(), sets).

>>> import numpy as np
>>> def f(x, y):
...     z = x * y + 1.0
...     return np.sin(z)
>>> from adjoint.ir.printer import print_function
>>> print(print_function(lower_function(f)))  # doctest: +SKIP
func f(%x, %y):
  %_t = mul(%x, %y)
  %z = add(%_t, 1.0)
  %_t_1 = np.sin(%z)
  return %_t_1
"""
from __future__ import annotations

import builtins
import collections
import functools
import inspect
import itertools
import math
import operator
import os
import sys
import types
import warnings
from typing import Any, Callable

import gast
import numpy as np

from adjoint import runtime
from adjoint.frontend.bindings import (FUNCTIONS, TEMP, Built, Frozen, Instance, Local, Method,
                                       Partial, Static, dict_view, dotted, hint_of, is_call_to,
                                       is_library, is_literal, is_user_object, qualname,
                                       type_module)
# (strings.py first: the primitives it registers come before sugar.py's in the registry,
# whose order docs/rules.md lists)
from adjoint.frontend.strings import joined_str, str_format
from adjoint.frontend.casts import (CASTS, NUMERIC_KINDS, astype, dtype_of, dtype_position,
                                    narrowed, narrows, scalar_cast)
from adjoint.frontend.containers import conversion, copied_dict, set_of
from adjoint.frontend.check import check, unsupported_expression, unsupported_statement
from adjoint.frontend.markers import checkpoint, checkpointed
from adjoint.errors import AdjointError, RecursionDepthError, SourceError, UnsupportedError
from adjoint.frontend.normalize import WALK, normalize
from adjoint.frontend.objects import (built, built_attribute, dataclass_record, freeze,
                                      frozen_from, frozen_method, instance_attribute,
                                      is_distribution, is_namedtuple_class, is_plain_class,
                                      record, store_attribute)
from adjoint.frontend.sugar import (ITERTOOLS, as_rebinding, copy_loop, dict_get, diff_with_ends,
                                    is_map, itertool, list_pop, mapped, reduce_call,
                                    squared_norm, ufunc_method, updated_dict)
from adjoint.frontend.ordering import extremum, keyed_extremum, sorted_list
from adjoint.frontend.source import SET_MARKER, Parsed, parse_function, partial_bindings, \
    read_class_attribute, unwrap, unwrap_partial
from adjoint.ir.core import (Block, Call, Const, For, Function, Global, If, Loc, Operand, Prim,
                             Value, While)
from adjoint.rules import registry
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import (ARRAY_ATTRIBUTES, and_, assertion, attribute, dict_of,
                                      field, in_, keys, list_of, mapping, not_in, or_,
                                      raise_if, replaced, sequence, STR_METHODS, tolist, item,
                                      tuple_of)


class Facts:
    """What is known statically about values (from observing a call); see analysis.shapes."""

    def kind(self, v: Operand):  # -> analysis.shapes.Kind | None
        return None

    def shape(self, v: Operand):  # -> tuple | None
        return None

    def ndim(self, v: Operand):
        return None


NO_FACTS = Facts()


def is_constant(o) -> bool:
    return isinstance(o, Const)


class Lowerer:
    """Lowers one function body into the current op list; inlined callees reuse it."""

    def __init__(self, parsed: Parsed, facts: Facts = NO_FACTS, stack: tuple = ()):
        self.parsed = parsed
        self.facts = facts
        self.stack = stack + (parsed.func,)
        self.env: dict[str, Any] = {}
        self.ops: list = []
        self.defs: dict[Value, Call] = {}
        self.local_defs: dict[str, Any] = {}  # a def's name -> its node (error messages)
        self.seeds: dict[Value, Operand] = {}  # a loop's carried value -> its value on entry
        self.calling = None  # the callee expression of the call being lowered
        self.loop_names: list[set[str]] = []
        self.inplace: list[Value] = []  # results of `x op= y` on names
        # `c[k] op= y`: (the result, c, whether c is a list or dict made here)
        self.element_updates: list[tuple] = []
        self.handlers: list[tuple] = []  # (file, first line, last line, names, loc)
        self.catching: tuple = ()  # (names, loc) of the handlers of the `try` bodies we are in
        self.recursions = [0]  # recursive calls inlined, shared with inlined helpers
        self.depth = 0  # of comprehensions being lowered (their accumulators' names)
        self.active: tuple = ()  # the lambdas and nested defs being inlined
        # the lengths of values known here (None: not tracked); lowered for a call's
        # lengths (a recursion that splits a list), `len(xs)` folds, and so does its depth
        self.lengths: dict[Value, int] | None = None

    # ---------------------------------------------------------------- helpers
    def loc(self, node) -> Loc:
        return self.parsed.loc(node)

    def error(self, msg: str, node, hint: str = "", cls=UnsupportedError):
        return cls(msg, self.loc(node), hint)

    def emit(self, prim: Prim, args, kwargs=(), hint: str = TEMP, node=None) -> Operand:
        """Append `prim(*args, **kwargs)`, folding it when every operand is constant."""
        args, kwargs = tuple(args), tuple(kwargs)
        entry = registry.entry(prim)
        folded = self._fold(prim, entry, args, kwargs)
        if folded is not None:
            return folded
        if self.lengths is not None:
            n = _known_length(prim.fn, args, self.defs, self.lengths)
            if n is not None:
                return Const(n)
        result = Value(hint)
        call = Call(prim, args, result, kwargs, self.loc(node) if node is not None else None)
        self.ops.append(call)
        self.defs[result] = call
        if self.lengths is not None:
            n = _length_of(call, self.lengths)
            if n is not None:
                self.lengths[result] = n
        return result

    def _fold(self, prim, entry, args, kwargs):
        if entry is None or not entry.pure:
            return None
        fn = prim.fn
        if fn is operator.getitem and isinstance(args[0], Value) and isinstance(args[1], Const):
            src = self.defs.get(args[0])  # (a, b)[0] -> a
            if src is not None and src.prim.fn is tuple_of and isinstance(args[1].value, int):
                return src.args[args[1].value]
        if fn is runtime.stop_gradient:
            return None
        if all(is_constant(a) for a in args) and all(is_constant(v) for _, v in kwargs):
            try:
                value = fn(*[a.value for a in args], **{k: v.value for k, v in kwargs})
            except Exception:
                return None
            if is_literal(value):
                return Const(value)
        return None

    # ------------------------------------------------------------ statements
    def body(self, stmts: list):
        """Lower statements; returns the returned operand, or None if control falls through."""
        for s in stmts:
            ret = self.stmt(s)
            if ret is not None:
                return ret
        return None

    def stmt(self, s):
        if isinstance(s, gast.Assign):
            target = s.targets[0]
            value = self.expr(s.value, hint=hint_of(target) if isinstance(
                target, (gast.Name, gast.Tuple, gast.List)) else TEMP)
            for t in s.targets:
                self.assign(t, value, s)
        elif isinstance(s, gast.AnnAssign):
            if s.value is not None:
                self.assign(s.target, self.expr(s.value, hint=hint_of(s.target)), s)
        elif isinstance(s, gast.AugAssign):
            self.augassign(s)
        elif isinstance(s, gast.Return):
            return self.returned(s)
        elif isinstance(s, gast.If):
            return self.if_stmt(s)
        elif isinstance(s, gast.For):
            self.for_stmt(s)
        elif isinstance(s, gast.While):
            self.while_stmt(s)
        elif isinstance(s, gast.Expr):
            self.expr_stmt(s)
        elif isinstance(s, gast.Pass):
            pass
        elif isinstance(s, gast.Assert):
            # checked in the forward sweep, as Python checks it: the gradient fails where f
            # fails (a constant message is kept; another one is Python's to compute)
            msg = s.msg.value if isinstance(s.msg, gast.Constant) else None
            mark = len(self.ops)
            try:
                test = self.operand(s.test)
            except UnsupportedError:  # a test about types (x.dtype.kind): no value changes
                del self.ops[mark:]
            else:
                self.emit(prim_of(assertion), (test, Const(msg)), node=s)
        elif isinstance(s, gast.FunctionDef):
            self.local_defs.setdefault(s.name, s)
            self.bind(s.name, self.local_function(s, s.name), s)
        elif isinstance(s, gast.Try):
            self.try_stmt(s)
        else:
            raise unsupported_statement(s, self.loc(s))
        return None

    def raise_if(self, s) -> None:
        """`if bad: raise ValueError("...")`: checked in the forward sweep, as an assert
        is. The error is a builtin exception; a constant message is kept."""
        exc = s.body[0].exc
        call = exc if isinstance(exc, gast.Call) else None
        name = call.func if call is not None else exc
        error = None
        if isinstance(name, gast.Name) and name.id not in self.env:
            error = self.parsed.lookup(name.id)[1]
        if not (isinstance(error, type) and issubclass(error, Exception)
                and getattr(builtins, error.__name__, None) is error):
            raise self.error("only a builtin exception can be raised here", s.body[0],
                             "raise ValueError(...), TypeError(...) or another builtin error")
        args = call.args if call is not None else []
        message = args[0].value if len(args) == 1 and isinstance(args[0], gast.Constant) \
            and isinstance(args[0].value, str) else None
        if message is None and args:  # (an f-string: where f raises, and how)
            at = self.loc(s.body[0])
            message = f"{os.path.basename(at.filename)}:{at.line}: {at.text.strip()}"
        mark = len(self.ops)
        try:
            test = self.condition(s.test)
        except UnsupportedError:  # a test about types (x.dtype.kind): no value changes
            del self.ops[mark:]
            return
        if not (isinstance(test, Const) and not test.value):
            self.emit(prim_of(raise_if), (test, Const(error), Const(message)), node=s)

    def try_stmt(self, s) -> None:
        """`try`: the body, then `else`, then `finally`, as when nothing fails. A failure
        in the generated code propagates as it would without the handlers (it is never
        swallowed). So that every failure the handlers could catch stays in the generated
        code, each value the body makes must be used afterwards: code that makes a value
        no one reads (`np.linalg.cholesky(A)` as a test) may be optimised away."""
        inside = s.body + s.orelse + s.finalbody
        for n in (n for st in inside for n in gast.walk(st)):
            if isinstance(n, (gast.Return, gast.Break, gast.Continue)):
                raise self.error(f"`{type(n).__name__.lower()}` inside `try`", n,
                                 "assign the value and return (or break) after the try")
        for h in s.handlers:
            caught = h.type.elts if isinstance(h.type, gast.Tuple) else [h.type]
            names = {getattr(t, "id", getattr(t, "attr", None)) for t in caught}
            if h.type is None or names & _ARITHMETIC_ERRORS:
                raise self.error(
                    "a handler that catches arithmetic errors: the gradient computes on NumPy "
                    "floats, where 1.0 / 0.0 is inf and nothing is raised, so the handler "
                    "would never run", h, "test the condition with an `if` instead "
                    "(if d == 0.0: ... else: ... / d)")
        if s.handlers:
            loads = [n for n in gast.walk(self.parsed.node) if isinstance(n, gast.Name)
                     and isinstance(n.ctx, gast.Load)]
            for n in (n for st in s.body + s.orelse for n in gast.walk(st)):
                if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store) and not any(
                        m.id == n.id and (m.lineno, m.col_offset) > (n.lineno, n.col_offset)
                        for m in loads):
                    raise self.error(
                        f"`{n.id}` is not used after it is computed in this `try`: a "
                        f"failure that the handler catches might not happen in the "
                        f"generated code", n, "use the value, or check the condition with "
                                              "an `if` instead of an exception")
        if s.handlers:  # where a failure would have run a handler in f: observing says so
            last = max(getattr(n, "end_lineno", None) or n.lineno for st in s.body
                       for n in gast.walk(st) if hasattr(n, "lineno"))
            caught = {getattr(t, "id", getattr(t, "attr", None)) for h in s.handlers
                      for t in (h.type.elts if isinstance(h.type, gast.Tuple) else [h.type])}
            first = self.loc(s.body[0])
            self.handlers.append((first.filename, first.line, self.loc(s).line - s.lineno +
                                  last, frozenset(caught), self.loc(s.handlers[0])))
            outer = self.catching
            self.catching = outer + ((frozenset(caught), self.loc(s.handlers[0])),)
            try:
                self.body(s.body)
            finally:
                self.catching = outer
        else:
            self.body(s.body)
        self.body(s.orelse)
        self.body(s.finalbody)

    def handled_in(self, parsed, fn) -> None:
        """A helper `fn` inlined inside a `try` body: a failure in its lines is one the
        handler catches, as a failure in the body's own lines is (observing refuses it).
        (A call of it outside the `try` that fails is refused too, not only raised.)"""
        if not self.catching:
            return
        first = parsed.loc(fn)
        last = first.line - fn.lineno + max(getattr(n, "end_lineno", None) or n.lineno
                                            for n in gast.walk(fn) if hasattr(n, "lineno"))
        for names, where in self.catching:
            self.handlers.append((first.filename, first.line, last, names, where))

    def returned(self, s) -> tuple:
        if s.value is None:
            return (Const(None),)
        if isinstance(s.value, gast.Tuple):
            elts = [self.expr(e, hint=hint_of(e)) for e in s.value.elts]
            self.check_operands(elts, s)
            return tuple(elts) if len(elts) != 1 else (self.emit(prim_of(tuple_of), elts, node=s),)
        v = self.expr(s.value, hint=hint_of(s.value))
        if not (self.active and isinstance(v, (Local, Partial))):  # a closure's closure
            self.check_operands([v], s)
        return (v,)

    def check_operands(self, values, node) -> None:
        for v in values:
            if isinstance(v, Built):
                raise self.error(f"an object made in the function (`{v.cls.__name__}`) "
                                 f"cannot be a value here", node, "read its attributes or "
                                 "call its methods here, or build it outside the function "
                                 "and pass it as an argument")
            if isinstance(v, FUNCTIONS):
                raise self.error("a function or module cannot be a value here", node,
                                 "call it, or pass the value it computes")

    def expr_stmt(self, s) -> None:
        call = s.value
        if isinstance(call, gast.Constant):
            return  # a docstring, `...`, None: nothing is computed
        if isinstance(call, (gast.IfExp, gast.BoolOp)):
            # `print(x) if VERBOSE else None`, `verbose and print(x)`: the statement is
            # the `if` it stands for, each side a statement of its own
            self.if_stmt(_as_if(call))
            return
        if isinstance(call, gast.Call) and isinstance(call.func, gast.Attribute):
            base = self.expr(call.func.value)
            if isinstance(base, (Value, Global, Const)) and call.func.attr == "append":
                if len(call.args) != 1 or call.keywords:
                    raise self.error("append takes one value", call)
                if not isinstance(base, Value):  # the change would outlive the call
                    raise self.error("an append to a list made outside the function", call,
                                     "build a local list (hist = []) and return it")
                if not isinstance(call.func.value, gast.Name):  # d['h'].append(v)
                    raise self.error("an append to a list held by a dict, list or object",
                                     call, "append to a local name and store it back: "
                                     "h = d['h'] + [v]; d['h'] = h")
                value = self.expr(call.args[0])
                new = self.emit(prim_of(runtime.append), (base, value), hint=hint_of(call.func.value),
                                node=s)
                self.rebind_storage(base, new)
                return
        if isinstance(call, gast.Call) and isinstance(call.func, gast.Attribute) and \
                call.func.attr == "pop":
            self.expr(call)  # `xs.pop()`: the element is dropped, the list is shorter
            return
        rewritten = as_rebinding(call)
        if rewritten is not None:  # d.update({...}), xs.insert(i, v): a new value, rebound
            self.stmt(gast.copy_location(rewritten, s))
            return
        out = _out_name(call)
        if out is not None and isinstance(self.expr(call.func), Static) and \
                isinstance(self.expr(call.func).obj, np.ufunc):
            # np.subtract(1.0, t, out=t): NumPy computes, then writes into t's buffer, as
            # `t[...] = np.subtract(1.0, t)` does; the writes into an array that other
            # names see are checked as every element write is
            computed = gast.Call(func=call.func, args=call.args, keywords=[])
            target = gast.Subscript(value=gast.Name(id=out, ctx=gast.Load(), annotation=None,
                                                    type_comment=None),
                                    slice=gast.Constant(value=Ellipsis, kind=None),
                                    ctx=gast.Store())
            self.stmt(gast.copy_location(gast.Assign(targets=[target], value=computed,
                                                     type_comment=None), s))
            return
        if isinstance(call, gast.Call) and len(call.args) == 3 and not call.keywords and \
                self.is_add_at(call.func):
            # np.add.at(a, i, v): a written in place, repeated indices adding up
            base = self.expr(call.args[0])
            if not isinstance(base, Value):
                raise self.error("only local arrays can be written to", call,
                                 "copy the array into a local variable first: y = x.copy()")
            index, value = self.index(call.args[1]), self.operand(call.args[2])
            new = self.emit(prim_of(runtime.add_at), (base, index, value),
                            hint=hint_of(call.args[0]), node=s)
            self.rebind_storage(base, new)
            return
        if isinstance(call, gast.Call) and self.output_only(call.func):
            # print(...), log.info(...): output only, but an argument that may change
            # something (L.pop(), a helper that fills an array) is evaluated, as Python would
            for part in _printed(call):
                if any(isinstance(n, gast.Call) and (isinstance(n.func, gast.Attribute) or
                                                     self.user_function(n.func) is not None)
                       for n in gast.walk(part)):
                    self.expr(part)
            return
        if isinstance(call, gast.Call):
            fn = self.user_function(call.func)
            if fn is not None and _written_arguments(fn, call, ()):
                self.expr(call)  # a helper that fills an array it is passed
                return
        # a call that writes into what it is given (np.fill_diagonal, out=, L.sort(), a
        # nested function) is refused where it is lowered; what computes only constants
        # (`x.shape`, `len(xs)`, a name, a helper that prints) is left to dead code (and
        # `(n := len(xs))` binds n), and what computes with values (`x * 2.0`, a call of
        # a function without a rule) is refused: a slip, or a side effect the gradient
        # would not have
        mark = len(self.ops)
        self.expr(call)
        if all(isinstance(op, Call) and _inert(op) for op in self.ops[mark:]):
            return
        effects = [op for op in self.ops[mark:] if isinstance(op, Call) and not getattr(
            registry.entry(op.prim), "pure", True)]
        if isinstance(call, gast.Call) and effects:  # np.random.seed(0): for what it changes
            raise self.error(f"`{dotted(call.func)}(...)` is called for an effect (its result "
                             f"is not used), which the gradient would not have", s,
                             "differentiated code must be pure: assign the value, or make "
                             "the call outside the function (a random seed: seed before "
                             "calling f, or pass a np.random.Generator as an argument)")
        raise self.error("an expression statement has no effect on the result", s,
                         "differentiated code must be pure: assign the value, or remove the "
                         "call (print and logging are left out of the gradient; other side "
                         "effects are not supported)")

    def output_only(self, func) -> bool:
        """Whether `func` writes output and returns nothing f uses: print, the logging
        module's functions and a logger's methods, warnings.warn. The gradient leaves
        such a call out (a print of a value would print another one in each sweep)."""
        if isinstance(func, gast.Name) and func.id in self.env:
            return False
        mark, self.calling = len(self.ops), func  # `log.info` is a method, not a field
        try:
            callee = self.expr(func)
        except AdjointError:
            return False
        finally:
            del self.ops[mark:]
        if isinstance(callee, Partial) and not callee.kwargs:  # a logger's bound method
            callee = callee.fn
        fn = callee.obj if isinstance(callee, Static) else None
        return fn is builtins.print or fn is warnings.warn or \
            getattr(fn, "__module__", None) == "logging"

    def is_add_at(self, func) -> bool:
        """Is `func` NumPy's np.add.at (a fresh bound method at each read)?"""
        if not (isinstance(func, gast.Attribute) and func.attr == "at"):
            return False
        ufunc = self.expr(func.value)
        return isinstance(ufunc, Static) and ufunc.obj is np.add

    def assign(self, target, value, node) -> None:
        if isinstance(target, gast.Name):
            self.bind(target.id, value, node)
        elif isinstance(target, (gast.Tuple, gast.List)):
            elts = target.elts
            if any(isinstance(e, gast.Starred) for e in elts):
                raise self.error("starred assignment is not supported", target,
                                 "unpack by index: a, b = t[0], t[1:]")
            if isinstance(value, Const) and isinstance(value.value, tuple):
                parts = [Const(x) for x in value.value]
                if len(parts) != len(elts):
                    raise self.error("cannot unpack: wrong number of values", target)
            else:
                self.check_operands([value], node)
                parts = [self.emit(prim_of(operator.getitem), (value, Const(i)), hint=hint_of(e),
                                   node=node) for i, e in enumerate(elts)]
            for e, p in zip(elts, parts):
                self.assign(e, p, node)
        elif isinstance(target, gast.Subscript):
            base = self.expr(target.value)
            index = self.index(target.slice)
            self.setitem(target, base, index, value, node)
        elif isinstance(target, gast.Attribute) and isinstance(
                obj := self.expr(target.value), Built):  # `self.W = W` in its __init__
            store_attribute(self, obj, target.attr, value, target)
        else:
            raise self.error(f"cannot assign to {type(target).__name__.lower()}", target,
                             "assign to a local variable or an array element")

    def local_function(self, node, name: str) -> Local:
        """A lambda or nested `def`: its defaults are evaluated now, as Python does."""
        a = node.args
        params = [p.id for p in a.args]
        defaults = dict(zip(params[len(params) - len(a.defaults):],
                            [self.default(d) for d in a.defaults]))
        defaults.update({p.id: self.default(d) for p, d in zip(a.kwonlyargs, a.kw_defaults)
                         if d is not None})
        return Local(node, defaults, self, name)

    def default(self, node):
        """A nested function's default value: a value, or a function (`f=np.sin`)."""
        v = self.expr(node)
        if isinstance(v, Method):
            raise self.error("a method cannot be a default value", node, "call it directly")
        return v

    def bind(self, name: str, value, node) -> None:
        if isinstance(value, Method):
            raise self.error("a method cannot be stored in a variable", node, "call it directly")
        self.env[name] = value

    def setitem(self, target, base, index, value, node) -> None:
        inner = target.value
        if isinstance(inner, gast.Subscript) and self.is_container(self.defs[base].args[0] if (
                isinstance(base, Value) and base in self.defs and
                self.defs[base].prim.fn is operator.getitem) else None):
            # `L[i][j] = v` changes the object L[i] in place: any other name or slot that
            # holds it would see the change, which the container's new value does not show
            raise self.error("a write into an element of a list or dict", target,
                             "rebuild the element and store it: row = L[i].copy(); "
                             "row[j] = v; L[i] = row")
        if isinstance(inner, gast.Attribute) and inner.attr == "flat":
            # x.flat is read as np.ravel(x), which may be a copy: the write would be lost
            raise self.error("a write through `.flat` is not supported", target,
                             "write by index: x[np.unravel_index(i, x.shape)] = v")
        if not isinstance(base, Value):
            raise self.error("only local arrays can be written to", target,
                             "copy the array into a local variable first: y = x.copy()")
        self.check_operands([value], node)
        hint = hint_of(target.value)
        new = self.emit(prim_of(runtime.setitem), (base, index, value), hint=hint, node=node)
        self.rebind_storage(base, new)

    def walked(self, seq, node):
        """What `for v in seq` reads by position: a dict's keys (a dict made here), or
        `sequence(seq)` where seq's type is not seen here (a parameter, a loop's carried
        value, an element of a container), resolved once the kinds are observed."""
        if not isinstance(seq, Value):
            if isinstance(getattr(seq, "value", None), (dict, set, frozenset)):
                # a global's, a closure's or self's dict (or set) is walked by its keys,
                # read when the loop runs
                return self.emit(prim_of(keys), (seq,), hint="_keys", node=node)
            return seq
        if self.is_dict(seq):
            return self.emit(prim_of(keys), (seq,), hint="_keys", node=node)
        op = self.defs.get(seq)
        # a value read from somewhere (an element, a field), or a copy of one or a write
        # into one (`p['a'] = ..` on a dict parameter): its type is seen when it runs
        if self.is_container(seq) or op is not None and op.prim.name not in (
                "getitem", "field", "setitem", "private"):
            return seq
        return self.emit(prim_of(sequence), (seq,), hint="_seq", node=node)

    def is_dict(self, v, seen=()) -> bool:
        """Whether `v` is a dict made here (a display or comprehension, written to, or a
        loop's value that starts as one)."""
        if v in seen or not isinstance(v, Value):
            return False
        if v in self.seeds:
            return self.is_dict(self.seeds[v], seen + (v,))
        op = self.defs.get(v)
        return op is not None and (op.prim.fn is dict_of or op.prim.fn is runtime.setitem
                                   and self.is_dict(op.args[0], seen + (v,)))

    def stored(self, base, index):
        """What a display made here holds at a constant key or position (`d['l']` of
        `d = {'l': [a, b]}`), else None."""
        op = self.defs.get(base) if isinstance(base, Value) else None
        if op is None or not isinstance(index, Const):
            return None
        if op.prim.fn is dict_of:
            keys = op.args[0].value
            return op.args[1 + keys.index(index.value)] if index.value in keys else None
        if op.prim.fn is list_of and type(index.value) is int and \
                -len(op.args) <= index.value < len(op.args):
            return op.args[index.value]
        return None

    def is_container(self, v, seen=()) -> bool:
        """Whether `v` may be a list or dict made here: a display, a comprehension, appended to,
        repeated or joined (`[a] * 2`), or a loop's value that starts as one. (A yes
        only adds checks: analysis/views.py refuses a write that another name sees.)"""
        if v in seen or not isinstance(v, Value):
            return False
        if v in self.seeds:
            return self.is_container(self.seeds[v], seen + (v,))
        op = self.defs.get(v)
        if op is None:
            return False
        if op.prim.fn in (operator.mul, operator.add):
            return any(self.is_container(a, seen + (v,)) for a in op.args)
        return op.prim.fn in (list_of, dict_of, runtime.append, runtime.setitem,
                              runtime.private) and (op.prim.fn not in (
                                  runtime.setitem, runtime.private) or
                                  self.is_container(op.args[0], seen + (v,)))

    def rebind_storage(self, old, new) -> None:
        """After an in-place write, every name bound to the old value sees the new one."""
        for name, v in list(self.env.items()):
            if v is old:
                self.env[name] = new

    def augassign(self, s) -> None:
        op = _BINOPS.get(type(s.op))
        if op is None:
            raise self.error(f"operator {type(s.op).__name__} is not supported", s)
        t = s.target
        if isinstance(t, gast.Name) and isinstance(s.op, gast.BitOr) and \
                _keyed_display(s.value):
            # `q |= {'v': v}` updates the dict q in place: its other names see the entries
            old = self.name(t)
            self.rebind_storage(old, self.merged(old, s.value, t.id, s))
        elif isinstance(t, gast.Name):
            old = self.name(t)
            # a number rebinds `t`; an array or list is updated in place, which other names
            # of it would see: analysis/views.py refuses that once the kinds are observed
            value = s.value
            if isinstance(s.op, gast.Add) and isinstance(value, gast.Tuple) and \
                    self.is_container(old) and \
                    not any(isinstance(e, gast.Starred) for e in value.elts):
                # `L += (v,)` extends the list L as `L += [v]` does (`L + (v,)` raises);
                # an array adds either alike, a tuple would raise as soon as it is run
                value = gast.List(elts=value.elts, ctx=gast.Load())
                gast.copy_location(value, s.value)
            rhs = self.expr(value)
            made = self.defs.get(rhs)
            if isinstance(s.op, gast.Add) and self.is_container(old) and \
                    made is not None and made.prim.fn is tuple_of:
                # `L += t` extends the list L by the tuple t, as `L + list(t)` (`L + t`
                # raises; an array t is not this: NumPy's add takes `L += a` first)
                call = gast.Call(func=gast.Name(id="list", ctx=gast.Load(), annotation=None,
                                                type_comment=None), args=[s.value], keywords=[])
                rhs = self.expr(gast.copy_location(call, s.value))
            new = self.emit(prim_of(op), (old, rhs), hint=t.id, node=s)
            if isinstance(new, Value):
                self.inplace.append(new)
            self.bind(t.id, new, s)
        elif isinstance(t, gast.Subscript):
            base = self.expr(t.value)
            index = self.index(t.slice)
            current = self.emit(prim_of(operator.getitem), (base, index), node=s)
            value = s.value
            if isinstance(s.op, gast.Add) and isinstance(value, gast.Tuple) and \
                    self.is_container(self.stored(base, index)) and \
                    not any(isinstance(e, gast.Starred) for e in value.elts):
                # `d['l'] += (v,)` extends the list d['l'], as `L += (v,)` does
                value = gast.copy_location(gast.List(elts=value.elts, ctx=gast.Load()), value)
            rhs = self.expr(value)
            new = self.emit(prim_of(op), (current, rhs), node=s)
            if isinstance(new, Value):
                # `c[k] += v` on a list or dict updates the array it holds in place, which
                # every other name or slot holding it sees (analysis/views.py checks it)
                self.element_updates.append((new, base, self.is_container(base)))
            self.setitem(t, base, index, new, s)
        else:
            raise self.error("cannot update an attribute", t, "use a local variable")

    # ----------------------------------------------------------- control flow
    def if_stmt(self, s):
        if isinstance(s.body[0], gast.Raise) and len(s.body) == 1:  # as check.py allows
            self.raise_if(s)
            return self.body(s.orelse) if s.orelse else None
        if s.orelse and isinstance(s.orelse[0], gast.Raise):  # `else: raise` ends a chain
            # (what normalisation put after the raise never runs)
            negated = gast.copy_location(gast.UnaryOp(op=gast.Not(), operand=s.test), s.test)
            self.raise_if(gast.copy_location(gast.If(test=negated, body=s.orelse[:1],
                                                     orelse=[]), s.orelse[0]))
            return self.body(s.body)
        cond = self.condition(s.test)
        if isinstance(cond, Const):  # a static branch, as in templates: `if axis is None:`
            return self.body(s.body if cond.value else s.orelse)
        before = dict(self.env)
        then_ops, then_env, then_ret = self.region(s.body, before)
        else_ops, else_env, else_ret = self.region(s.orelse, before)
        if then_ret is not None or else_ret is not None:
            # normalisation moved what follows an exit into the branches: both end the function
            then_ret = then_ret or (Const(None),)
            else_ret = else_ret or (Const(None),)
            self.check_operands(then_ret + else_ret, s)
            # `return t` (a tuple from a loop, as normalised, or a number: `return l`
            # against `return l, preds` under a flag) against `return a, b`: one value
            # each, the tuple (a, b) made, so that t is read as what it is when f runs.
            # In a rule's template one cotangent is the first operand's, the rest None.
            short, n = min(len(then_ret), len(else_ret)), max(len(then_ret), len(else_ret))
            if self._adjoints_own() and short == 1:
                then_ret += (Const(None),) * (n - len(then_ret))
                else_ret += (Const(None),) * (n - len(else_ret))
            elif len(then_ret) == 1 and len(else_ret) > 1 and isinstance(then_ret[0], Value):
                else_ops, else_ret = self.packed(else_ops, else_ret, s)
            elif len(else_ret) == 1 and len(then_ret) > 1 and isinstance(else_ret[0], Value):
                then_ops, then_ret = self.packed(then_ops, then_ret, s)
            if len(then_ret) != len(else_ret):
                raise self.error("the branches return different numbers of values", s,
                                 "return a tuple of the same length from every branch")
            results = tuple(Value(_hint_of_operand(o, "ret")) for o in then_ret)
            self.ops.append(If(cond, Block((), then_ops, then_ret), Block((), else_ops, else_ret),
                               results, self.loc(s)))
            return results
        names = [n for n in _ordered_union(then_env, else_env)
                 if then_env.get(n) is not else_env.get(n)]
        yields_then, yields_else, results = [], [], []
        for n in names:
            a, b = then_env.get(n, before.get(n)), else_env.get(n, before.get(n))
            if isinstance(a, Built) or isinstance(b, Built):
                raise self.error(f"`{n}` is bound to an object made in the function in a "
                                 f"branch", s, "make it before the `if`, from values the "
                                 "branches compute")
            if isinstance(a, FUNCTIONS) or isinstance(b, FUNCTIONS):
                raise self.error(f"`{n}` is bound to a function in one branch only", s)
            yields_then.append(a if a is not None else Const(None))
            yields_else.append(b if b is not None else Const(None))
            results.append(Value(n))
        self.ops.append(If(cond, Block((), then_ops, tuple(yields_then)),
                           Block((), else_ops, tuple(yields_else)), tuple(results), self.loc(s)))
        self.env = dict(before)
        # a name both branches bind to one value (`lam = new` in each) is rebound to it:
        # no If result is needed, but it is not the value from before the `if` either
        for n in _ordered_union(then_env, else_env):
            if n in then_env and then_env.get(n) is else_env.get(n):
                self.env[n] = then_env[n]
        for n, r in zip(names, results):
            self.env[n] = r
        return None

    def packed(self, ops, values, node):
        """`ops` followed by making the tuple of `values`, and that tuple, alone."""
        saved, self.ops = self.ops, list(ops)
        try:
            made = self.emit(prim_of(tuple_of), values, node=node)
            return tuple(self.ops), (made,)
        finally:
            self.ops = saved

    def region(self, stmts, env, args=()):
        """Lower `stmts` as a nested block with its own op list; the outer one is kept."""
        saved_ops, saved_env = self.ops, self.env
        self.ops, self.env = [], dict(env)
        try:
            ret = self.body(stmts)
            return tuple(self.ops), self.env, ret
        finally:
            self.ops, self.env = saved_ops, saved_env

    def refuse_rebound_functions(self, before: dict, after: dict, loop) -> None:
        """A name bound to a function, a partial or an object made in f before a loop
        and to another one by its body: only values are carried from trip to trip, so
        the next trip would call the first one."""
        for n, v in before.items():
            w = after.get(n, v)
            if isinstance(v, FUNCTIONS) and w != v and not (
                    isinstance(v, Instance) and isinstance(w, Instance) and v.obj is w.obj):
                raise self.error(f"`{n}` is bound to a function or an object made in the "
                                 f"function before the loop, and to another in it", loop,
                                 "give the one the loop makes a name of its own, or pass "
                                 "the values it holds from trip to trip")

    def carried_names(self, loop, extra=()) -> list[str]:
        """Variables a loop rebinds that exist before it (or that code after it reads)."""
        assigned = _assigned_names(loop.body) | set(extra)
        # a write through one name (x[i] = .., xs.append) is a write through its aliases too
        written = self.written_in(loop.body)
        # ... and an alias the body makes (`b = a; b[1:] -= d`) writes into the old name
        copies = [({t.id for t in n.targets if isinstance(t, gast.Name)}, n.value.id)
                  for n in gast.walk(gast.Module(body=list(loop.body), type_ignores=[]))
                  if isinstance(n, gast.Assign) and isinstance(n.value, gast.Name)]
        while any(names & written and old not in written for names, old in copies):
            written |= {old for names, old in copies if names & written}
        for n in written:
            v = self.env.get(n)
            if isinstance(v, Value):
                assigned |= {m for m, w in self.env.items() if w is v}
        later = _loads_after(self.parsed.node, loop)
        out = []
        for n in sorted(assigned):
            if n in self.env and isinstance(self.env[n], (Value, Const, Global)):
                out.append(n)
            elif n not in self.env and n in later:
                out.append(n)
        return out

    def written_in(self, stmts, seen: tuple = ()) -> set[str]:
        """Names whose value `stmts` change in place: by a subscript write, `append`, or
        a call of a user function that writes into the argument it is passed."""
        out = _written_names(stmts)
        for s in stmts:
            for n in gast.walk(s):
                if isinstance(n, gast.Call):
                    fn = self.user_function(n.func)
                    if fn is not None and fn not in seen:
                        out |= {a.id for a in _written_arguments(fn, n, seen)
                                if isinstance(a, gast.Name)}
        return out

    def user_function(self, func):
        """The plain user function `func` names (it will be inlined), else None."""
        if not isinstance(func, gast.Name) or func.id in self.env:
            return None
        found, obj = self.parsed.lookup(func.id)
        plain = unwrap(obj) if found and callable(obj) else None
        if plain is None or registry.lookup(obj) is not None or isinstance(obj, checkpoint):
            return None
        return plain if inspect.isfunction(plain) and not is_library(plain) else None

    def for_stmt(self, s) -> None:
        items = self.static_items(s.iter)
        if items is not None:  # `for layer in self.layers: h = layer(h)`
            for item in items:
                self.bind_static(s.target, item, s)
                self.body(s.body)
            self.body(s.orelse)  # (no break: normalisation made such a loop a while)
            return
        target, it = s.target, s.iter
        seqs, index_name, start, walk, view = None, None, None, None, None
        checkpoint = None
        if is_call_to(self, it, checkpointed):
            checkpoint = self.checkpoint_option(it)
            it = it.args[0]
        if is_call_to(self, it, range):
            iterable = self.expr(it, hint="_range")
        elif is_call_to(self, it, reversed) and is_call_to(self, it.args[0], range):
            r = self.expr(it.args[0], hint="_range")
            iterable = self.emit(prim_of(operator.getitem), (r, Const(slice(None, None, -1))),
                                 hint="_range", node=s)
        elif is_call_to(self, it, enumerate) or is_call_to(self, it, zip):
            walk = self.zipped(it, target)
            seqs = _walked_sequences(walk)
            n = self.emit(prim_of(len), (seqs[0],), hint="_n", node=s)
            for q in seqs[1:]:
                n = self.emit(prim_of(min), (n, self.emit(prim_of(len), (q,), node=s)),
                              hint="_n", node=s)
            iterable = self.emit(prim_of(range), (n,), hint="_range", node=s)
            if walk[0] == "enumerate" and isinstance(target, gast.Tuple) and \
                    len(target.elts) == 2:  # `for i, x in enumerate(xs)`: the loop's own i
                index_name = target.elts[0]
        elif dict_view(it) or self.sorted_view(it):
            # for k, v in d.items(): a loop over the keys (a list) that reads d[k]; in
            # sorted(d.items()), over the keys sorted (they are unique: no value compared)
            ordered = not dict_view(it)
            view_call = it.args[0] if ordered else it
            view = view_call.func.attr
            mapping = self.operand(view_call.func.value)
            if view == "items" and not (isinstance(target, gast.Tuple) and
                                        len(target.elts) == 2):
                raise self.error("unpack items as `for k, v in d.items()`", target)
            seq = self.emit(prim_of(keys), (mapping,), [("ordered", Const(True))] + [
                (k.arg, self.operand(k.value)) for k in it.keywords] if ordered else (),
                hint="_keys", node=it)
            seqs, targets = [seq], [target.elts[0] if view == "items" else target]
            if view == "values":
                targets = [gast.copy_location(gast.Name(id="_key", ctx=gast.Store(),
                                                        annotation=None, type_comment=None),
                                              target)]
            n = self.emit(prim_of(len), (seq,), hint="_n", node=s)
            iterable = self.emit(prim_of(range), (n,), hint="_range", node=s)
        else:
            seq = self.walked(self.expr(it, hint="_seq"), it)
            self.check_operands([seq], it)
            seqs, targets = [seq], [target]
            n = self.emit(prim_of(len), (seq,), hint="_n", node=s)
            iterable = self.emit(prim_of(range), (n,), hint="_range", node=s)
        # the loop variable is Python's too: code after the loop reads its last value
        later = _loads_after(self.parsed.node, s)
        carried = self.carried_names(s, extra=[n.id for n in gast.walk(s.target) if isinstance(
            n, gast.Name) and n.id in later])
        before = dict(self.env)
        index = Value(hint_of(index_name) if index_name is not None else
                      (hint_of(target) if seqs is None else "_k"))
        args = [Value(n) for n in carried]
        self.seeds.update((a, before[n]) for a, n in zip(args, carried) if n in before)
        env = dict(before)
        env.update(zip(carried, args))
        saved_ops, saved_env = self.ops, self.env
        self.ops, self.env = [], env
        try:
            if seqs is None:
                self.assign(target, index, s)
            elif walk is not None:
                self.bind_walk(target, walk, index, s)
            else:
                if index_name is not None:
                    self.assign(index_name, index if start is None else self.emit(
                        prim_of(operator.add), (start, index), hint=hint_of(index_name),
                        node=s), s)
                for t, q in zip(targets, seqs):
                    self.assign(t, self.emit(prim_of(operator.getitem), (q, index),
                                             hint=hint_of(t), node=s), s)
                if view in ("items", "values"):
                    key = self.env[targets[0].id] if isinstance(targets[0], gast.Name) \
                        else None
                    value = target.elts[1] if view == "items" else target
                    if key is None:
                        raise self.error("name the key: `for k, v in d.items()`", target)
                    self.assign(value, self.emit(prim_of(operator.getitem), (mapping, key),
                                                 hint=hint_of(value), node=s), s)
            ret = self.body(s.body)
            if ret is not None:  # pragma: no cover - normalisation removes these
                raise self.error("return inside a loop", s)
            self.refuse_rebound_functions(before, self.env, s)
            yields = tuple(self.env.get(n, Const(None)) for n in carried)
            body_ops = tuple(self.ops)
        finally:
            self.ops, self.env = saved_ops, saved_env
        inits = tuple(_init(before, n) for n in carried)
        results = tuple(Value(n) for n in carried)
        self.ops.append(For(iterable, inits, Block((index, *args), body_ops, yields), results,
                            self.loc(s), checkpoint=checkpoint))
        self.env = dict(before)
        self.env.update(zip(carried, results))

    def sorted_view(self, node) -> bool:
        """`sorted(d.items())` (keys(), values(), reverse=) of a dict made or passed here,
        whose keys are known only when f runs (a module's dict is unrolled instead)."""
        return is_call_to(self, node, sorted) and len(node.args) == 1 and \
            dict_view(node.args[0]) and {k.arg for k in node.keywords} <= {"reverse"} and \
            isinstance(node.args[0].func.value, gast.Name) and \
            isinstance(self.env.get(node.args[0].func.value.id), Value)

    def static_items(self, node) -> list | None:
        """What `for ... in node` walks when node is a module's or an object's list or
        tuple holding objects or functions (layers, activations), which code calls: the
        loop is unrolled over them, one trip per element, each a compile-time object.
        None for any other loop."""
        counted = is_call_to(self, node, enumerate) and len(node.args) == 1 and \
            not node.keywords
        seq_node = node.args[0] if counted else node
        order = slice(None)  # reversed(PAIRS), PAIRS[1:]: some of them, in that order
        if isinstance(seq_node, gast.Call) and len(seq_node.args) == 1 and \
                not seq_node.keywords and is_call_to(self, seq_node, reversed):
            seq_node, order = seq_node.args[0], slice(None, None, -1)
        elif isinstance(seq_node, gast.Subscript) and isinstance(seq_node.slice, gast.Slice) \
                and all(isinstance(b, (gast.Constant, gast.UnaryOp)) or b is None for b in (
                    seq_node.slice.lower, seq_node.slice.upper, seq_node.slice.step)):
            order = self.index(seq_node.slice)
            if not isinstance(order, Const):
                return None
            seq_node, order = seq_node.value, order.value
        if not isinstance(seq_node, (gast.Name, gast.Attribute)):
            return None
        seq = self.expr(seq_node)
        if not (isinstance(seq, Global) and isinstance(seq.value, (list, tuple))):
            return None
        items = [self.static_element(seq, (i,), seq.value[i])
                 for i in range(len(seq.value))[order]]
        if not any(_holds_static(item) for item in items):
            return None
        return [(Const(i), item) for i, item in enumerate(items)] if counted else items

    def static_element(self, seq: Global, path: tuple, e):
        """A compile-time object for an object or function; a tuple of parts for a tuple
        that holds one; else the element read from `seq` when f runs."""
        name = "_".join([seq.name] + [str(i) for i in path])
        if is_user_object(e):
            return Instance(e, name)
        if callable(e) and not isinstance(e, (np.ndarray, type)):
            return Static(e)
        if isinstance(e, tuple) and any(is_user_object(p) or callable(p) for p in e):
            return tuple(self.static_element(seq, path + (i,), p) for i, p in enumerate(e))
        return Global(name, e, None) if not is_literal(e) else Const(e)

    def bind_static(self, target, item, node) -> None:
        if isinstance(item, tuple):
            if not (isinstance(target, (gast.Tuple, gast.List)) and
                    len(target.elts) == len(item)):
                raise self.error("unpack each element of a list of objects or functions "
                                 "into as many names", target)
            for t, part in zip(target.elts, item):
                self.bind_static(t, part, node)
        elif isinstance(target, gast.Name):
            self.bind(target.id, item, node)
        else:
            self.assign(target, item, node)

    def zipped(self, node, target=None) -> tuple:
        """What `for ... in node` walks, where node is enumerate(...) or zip(...), nested
        as deep as they come: ("enumerate", start or None, walk), ("zip", [walk, ...]) or
        ("sequence", the sequence) for anything else. `target`, what each trip is bound
        to, tells how many sequences `for a, b in zip(*pairs)` zips."""
        if is_call_to(self, node, zip) and len(node.args) == 1 and \
                isinstance(node.args[0], gast.Starred) and not node.keywords and \
                isinstance(target, (gast.Tuple, gast.List)):
            return ("zip", [("sequence", self.walked(v, node)) for v in self.rows(
                node.args[0], len(target.elts))])
        if is_call_to(self, node, enumerate):
            args, names = node.args, [k.arg for k in node.keywords]
            if not (len(args) == 2 and not names or len(args) == 1 and names in ([], ["start"])) \
                    or isinstance(args[0], gast.Starred):
                raise self.error("enumerate/zip take plain sequences here", node,
                                 "write zip(xs, ys) or enumerate(xs, start=k)")
            start = args[1] if len(args) == 2 else node.keywords[0].value if names else None
            inner = self.zipped(args[0], target.elts[1] if isinstance(
                target, (gast.Tuple, gast.List)) and len(target.elts) == 2 else None)
            return ("enumerate", None if start is None else self.operand(start), inner)
        if is_call_to(self, node, zip):
            if node.keywords:
                raise self.error("enumerate/zip take plain sequences here", node,
                                 "write zip(xs, ys) or enumerate(xs, start=k)")
            parts = []
            for a in node.args:  # zip(*pairs): a display's elements
                parts += [("sequence", self.walked(v, a)) for v in self.starred(a)] \
                    if isinstance(a, gast.Starred) else [self.zipped(a)]
            return ("zip", parts)
        return ("sequence", self.walked(self.expr(node), node))

    def bind_walk(self, target, walk, index, s) -> None:
        """Assign what `walk` (Lowerer.zipped) gives at `index` to `target`, unpacking
        a tuple target part by part as Python does."""
        parts = [("count", walk[1]), walk[2]] if walk[0] == "enumerate" else \
            walk[1] if walk[0] == "zip" else None
        if parts is not None and isinstance(target, (gast.Tuple, gast.List)) and \
                len(target.elts) == len(parts):
            for t, part in zip(target.elts, parts):
                self.bind_walk(t, part, index, s)
            return
        self.assign(target, self.walk_value(walk, index, hint_of(target), s), s)

    def walk_value(self, walk, index, hint, s):
        if walk[0] == "count":  # enumerate's count
            return index if walk[1] is None else self.emit(
                prim_of(operator.add), (walk[1], index), hint=hint, node=s)
        if walk[0] == "sequence":
            return self.emit(prim_of(operator.getitem), (walk[1], index), hint=hint, node=s)
        parts = [("count", walk[1]), walk[2]] if walk[0] == "enumerate" else walk[1]
        return self.emit(prim_of(tuple_of), [self.walk_value(p, index, TEMP, s) for p in parts],
                         hint=hint, node=s)

    def checkpoint_option(self, call) -> tuple:
        """`checkpointed(it, snapshots=k)` or `(it, budget=bytes)`: constants only."""
        options = dict((k.arg, self.operand(k.value)) for k in call.keywords)
        if len(call.args) != 1 or set(options) - {"snapshots", "budget"} or len(options) != 1 \
                or not all(isinstance(v, Const) and isinstance(v.value, int) and v.value > 0
                           for v in options.values()):
            raise self.error("write checkpointed(iterable, snapshots=k) or (iterable, "
                             "budget=bytes), with a positive constant", call)
        (key, value), = options.items()
        return (key, value.value)

    def checkpointed_call(self, fn, args, kwargs, node, hint):
        """`checkpoint(f)(args)`: f's body as a region run once, recomputed in reverse."""
        saved_ops = self.ops
        self.ops = []
        try:
            results = lower_inline(fn, args, kwargs, self, node)
            body_ops = tuple(self.ops)
        finally:
            self.ops = saved_ops
        outs = tuple(Value(_hint_of_operand(r, hint)) for r in results)
        once = self.emit(prim_of(range), (Const(1),), hint="_once", node=node)
        self.ops.append(For(once, tuple(Const(None) for _ in outs),
                            Block((Value("_"), *(Value(o.name) for o in outs)), body_ops,
                                  tuple(results)), outs, self.loc(node),
                            checkpoint=("call", fn.__name__)))
        if len(outs) == 1:
            return outs[0]
        return self.emit(prim_of(tuple_of), outs, hint=hint, node=node)

    def while_stmt(self, s) -> None:
        carried = self.carried_names(s)
        before = dict(self.env)
        cargs = [Value(n) for n in carried]
        bargs = [Value(n) for n in carried]
        self.seeds.update((a, before[n]) for a, n in zip(cargs + bargs, carried + carried)
                          if n in before)
        cond_env = dict(before)
        cond_env.update(zip(carried, cargs))
        saved_ops, saved_env = self.ops, self.env
        self.ops, self.env = [], cond_env
        try:
            flag = self.condition(s.test)
            cond_ops = tuple(self.ops)
        finally:
            self.ops, self.env = saved_ops, saved_env
        body_env = dict(before)
        body_env.update(zip(carried, bargs))
        body_ops, env_after, ret = self.region(s.body, body_env)
        if ret is not None:  # pragma: no cover
            raise self.error("return inside a loop", s)
        self.refuse_rebound_functions(before, env_after, s)
        yields = tuple(env_after.get(n, Const(None)) for n in carried)
        inits = tuple(_init(before, n) for n in carried)
        results = tuple(Value(n) for n in carried)
        self.ops.append(While(inits, Block(tuple(cargs), cond_ops, (flag,)),
                              Block(tuple(bargs), body_ops, yields), results, self.loc(s)))
        self.env = dict(before)
        self.env.update(zip(carried, results))

    def condition(self, node) -> Operand:
        c = self.expr(node, hint="_c")
        self.check_operands([c], node)
        return c

    # ------------------------------------------------------------ expressions
    def expr(self, node, hint: str = TEMP):
        method = getattr(self, "expr_" + type(node).__name__, None)
        if method is None:
            raise unsupported_expression(node, self.loc(node))
        return method(node, hint)

    def operand(self, node, hint: str = TEMP) -> Operand:
        v = self.expr(node, hint)
        self.check_operands([v], node)
        return v

    def expr_Constant(self, node, hint):
        return Const(node.value)

    def expr_Name(self, node, hint):
        return self.name(node)

    def name(self, node):
        if node.id in self.env:
            return self.env[node.id]
        found, obj = self.parsed.lookup(node.id)
        if not found and node.id in self.local_defs:  # bound in a loop's or branch's body
            line = self.loc(self.local_defs[node.id]).line
            raise self.error(f"`{node.id}` is the function defined at line {line}, inside a "
                             f"loop or a branch: it is not carried out of it", node,
                             "define the function before the loop or branch")
        if not found:
            raise self.error(f"name `{node.id}` is not defined", node,
                             "define it before the call (a global, an argument, or an earlier "
                             "assignment on every path)")
        value = self.classify(obj, node.id)
        if isinstance(value, Global) and node.id in self.parsed.func.__code__.co_freevars:
            # a closure variable (make_loss(data)'s data) is no module's name: generated
            # code is given the object itself (module None), as it is a bound method's
            return Global(node.id, obj, None)
        return value

    def classify(self, obj, name: str, module: str | None = None):
        """`module`: where generated code imports a plain object from (the user's
        module, unless it was read as an attribute of another module)."""
        if is_literal(obj):
            return Const(obj)
        if callable(obj) and is_user_object(obj) and registry.lookup(obj) is None:
            return Global(name, obj, module or self.parsed.func.__module__)  # layer(x)
        if isinstance(obj, (types.ModuleType, type)) or callable(obj):
            return Static(obj)
        return Global(name, obj, module or self.parsed.func.__module__)

    def expr_Attribute(self, node, hint):
        called = node is self.calling  # read before the base, which may hold calls
        base = self.expr(node.value)
        if isinstance(base, Instance):
            return instance_attribute(self, base, node, hint)
        if isinstance(base, Global) and is_user_object(base.value):  # model.W, model.loss
            return instance_attribute(self, Instance(base.value, base.name), node, hint)
        if isinstance(base, Global) and is_distribution(frozen_from(base.value)):
            # a module's `D = norm(0.0, 2.0)`
            frozen = base.value
            if not all(is_literal(v) for v in frozen.args + tuple(frozen.kwds.values())):
                raise self.error(f"`{base.name}` is a distribution frozen outside the "
                                 f"function with array parameters", node, "freeze it "
                                 "inside the function, or pass its parameters as arguments")
            base = freeze(self, frozen_from(frozen), [Const(v) for v in frozen.args],
                          [(k, Const(v)) for k, v in frozen.kwds.items()], node)
        if isinstance(base, Frozen):
            return frozen_method(self, base, node)
        if isinstance(base, Built):
            return built_attribute(self, base, node, hint)
        if isinstance(base, Static):
            try:
                obj = getattr(base.obj, node.attr)
            except AttributeError:
                raise self.error(f"{base.obj!r} has no attribute `{node.attr}`", node) from None
            if isinstance(base.obj, type) and not is_library(base.obj):
                read_class_attribute(base.obj, node.attr)  # `cls.scale`: guarded
            home = base.obj.__name__ if isinstance(base.obj, types.ModuleType) else None
            return self.classify(obj, node.attr, home)
        fn = ARRAY_ATTRIBUTES.get(node.attr)
        if fn is not None and isinstance(base, Value) and not self._adjoints_own():
            # a field of that name, or the array attribute: known once x's kind is
            # (Gamma(shape, rate).shape; rules and their helpers read arrays' attributes)
            return self.emit(prim_of(attribute), (base, Const(node.attr)), hint=hint, node=node)
        if fn is not None:
            return self.emit(prim_of(fn), (base,), hint=hint, node=node)
        if not called and isinstance(base, Value):
            # a namedtuple's or a dataclass's field: p.W
            return self.emit(prim_of(field), (base, Const(node.attr)),
                             hint=node.attr if hint == TEMP else hint, node=node)
        return Method(base, node.attr, self.loc(node))

    def _adjoints_own(self) -> bool:
        """Lowering adjoint's own code: a rule's template, or a helper of one."""
        return (getattr(self.parsed.func, "__module__", None) or "").startswith("adjoint.")

    def expr_BinOp(self, node, hint):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.error(f"operator {type(node.op).__name__} is not supported", node)
        if isinstance(node.op, gast.Pow) and isinstance(node.right, gast.Constant) and \
                node.right.value == 2 and isinstance(node.left, gast.Call):
            squared = squared_norm(self, node.left, hint, node)
            if squared is not None:
                return squared
        if isinstance(node.op, gast.BitOr) and _keyed_display(node.right):
            # `p | {'w': w2}`: a new dict, p's entries with the display's over them
            merged = self.emit(prim_of(runtime.private), (self.operand(node.left),),
                               hint=hint, node=node)
            return self.merged(merged, node.right, hint, node)
        a, b = self.operand(node.left), self.operand(node.right)
        if isinstance(node.op, gast.Mod) and isinstance(a, Const) and isinstance(a.value, str):
            op = runtime.percent_format  # "W%d" % i: formatting, which no gradient crosses
        return self.emit(prim_of(op), (a, b), hint=hint, node=node)

    def merged(self, base, display, hint, node):
        """`base` with the entries of a dict display written into it, in order."""
        for k, v in zip(display.keys, display.values):
            value = self.operand(v)
            base = self.emit(prim_of(runtime.setitem), (base, Const(k.value), value),
                             hint=hint, node=node)
        return base

    def expr_UnaryOp(self, node, hint):
        op = {gast.USub: operator.neg, gast.UAdd: operator.pos, gast.Not: operator.not_,
              gast.Invert: operator.invert}[type(node.op)]
        return self.emit(prim_of(op), (self.operand(node.operand),), hint=hint, node=node)

    def expr_Compare(self, node, hint):
        left = self.operand(node.left)
        result = None
        for op, right_node in zip(node.ops, node.comparators):
            right = self.operand(right_node)
            fn = _COMPARE[type(op)]
            c = self.emit(prim_of(fn), (left, right), hint=hint, node=node)
            result = c if result is None else self.emit(prim_of(and_), (result, c), hint=hint,
                                                        node=node)
            left = right
        return result

    def expr_BoolOp(self, node, hint):
        fn = and_ if isinstance(node.op, gast.And) else or_
        result = self.operand(node.values[0], hint)
        for v in node.values[1:]:
            if isinstance(result, Const):  # short-circuit on a known value
                if bool(result.value) == (fn is or_):
                    return result
                result = self.operand(v, hint)
                continue
            before = len(self.ops)
            right = self.conditional_operand(v, hint)
            if all(_safe(op) for op in self.ops[before:]) and self._boolean(result) and \
                    self._boolean(right) and not _guarding(node.values[:node.values.index(v)]):
                result = self.emit(prim_of(fn), (result, right), hint=hint, node=node)
            else:
                # evaluating the right side might fail, or the value returned is one of
                # the operands (a number that carries a gradient): Python's short circuit
                right_ops = tuple(self.ops[before:])
                del self.ops[before:]
                left = result
                result = Value(hint)
                taken = Block((), right_ops, (right,))
                skipped = Block((), (), (left,))
                then, orelse = (taken, skipped) if fn is and_ else (skipped, taken)
                self.ops.append(If(left, then, orelse, (result,), self.loc(node)))
        return result

    def conditional_operand(self, node, hint):
        """A part of an expression that runs on some calls only (the right of `and`/`or`,
        a side of `a if c else b`), lowered into a block of its own: a name it rebinds,
        as a call that changes an object does (`stack.pop()`, a helper that writes into
        its argument), would be seen after it as if it always ran. Refused."""
        before = dict(self.env)
        value = self.operand(node, hint)
        changed = [n for n, v in before.items() if self.env.get(n) is not v]
        if changed:
            raise self.error(f"`{changed[0]}` is changed by a part of an expression that runs "
                             "on some calls only", node, "write it as an if statement")
        return value

    def _boolean(self, o) -> bool:
        """A comparison's result or a bool constant: `a and b` of these is a bool."""
        if isinstance(o, Const):
            return isinstance(o.value, bool)
        op = self.defs.get(o) if isinstance(o, Value) else None
        return op is not None and _safe(op)

    def expr_NamedExpr(self, node, hint):  # `(c := k < 2)`: bound here, then read
        value = self.expr(node.value, hint=node.target.id)
        self.bind(node.target.id, value, node)
        return value

    def expr_IfExp(self, node, hint):
        cond = self.condition(node.test)
        if isinstance(cond, Const):
            return self.operand(node.body if cond.value else node.orelse, hint)
        result = Value(hint)
        blocks = []
        for branch in (node.body, node.orelse):
            saved = self.ops
            self.ops = []
            try:
                v = self.conditional_operand(branch, hint)
                blocks.append(Block((), tuple(self.ops), (v,)))
            finally:
                self.ops = saved
        self.ops.append(If(cond, blocks[0], blocks[1], (result,), self.loc(node)))
        return result

    def expr_JoinedStr(self, node, hint):  # f"W{i}": strings.py
        return joined_str(self, node, hint)

    def expr_Tuple(self, node, hint):
        elts = [self.operand(e) for e in node.elts]
        if all(isinstance(e, Const) for e in elts):
            return Const(tuple(e.value for e in elts))
        return self.emit(prim_of(tuple_of), elts, hint=hint, node=node)

    def expr_List(self, node, hint):
        """`[a, b]`; with `*xs` among them, the lists of the elements in order joined,
        `*xs` a copy of xs (`[*xs, c]` is `list(xs) + [c]`)."""
        if not any(isinstance(e, gast.Starred) for e in node.elts):
            elts = [self.operand(e) for e in node.elts]
            return self.emit(prim_of(list_of), elts, hint=hint, node=node)
        pieces, run = [], []
        for e in node.elts:
            if not isinstance(e, gast.Starred):
                run.append(self.operand(e))
                continue
            known = self.elements(e.value) if isinstance(e.value, (gast.List, gast.Tuple)) \
                else None
            if known is not None:  # `*(a, b)`
                run += known
                continue
            if run:
                pieces.append(self.emit(prim_of(list_of), run, node=node))
                run = []
            pieces.append(self.comprehension(copy_loop(self, e.value), "list", TEMP))
        if run:
            pieces.append(self.emit(prim_of(list_of), run, node=node))
        joined = pieces[0]
        for piece in pieces[1:]:
            joined = self.emit(prim_of(operator.add), (joined, piece), hint=hint, node=node)
        return joined

    def expr_Subscript(self, node, hint):
        base = self.expr(node.value)
        obj = base.obj if isinstance(base, Static) else base.value if isinstance(
            base, Global) else None
        if isinstance(base, (Static, Global)) and not isinstance(obj, _CONTAINERS):
            return self.object_subscript(base, obj, node, hint)
        self.check_operands([base], node.value)
        index = self.index(node.slice)
        return self.emit(prim_of(operator.getitem), (base, index), hint=hint, node=node)

    def object_subscript(self, base, obj, node, hint):
        """`obj[...]` on a module-level object that is not a plain container: NumPy's
        index tricks are understood; any other object's `__getitem__` is opaque, so
        only a constant index is allowed (what it returns could depend on a value the
        compiler would otherwise read as a constant)."""
        name = dotted(node.value)
        if obj is np.s_ or obj is np.index_exp:  # the index itself (index_exp: a tuple)
            if obj is np.index_exp and not isinstance(node.slice, gast.Tuple):
                return self.index(gast.Tuple(elts=[node.slice], ctx=gast.Load()))
            return self.index(node.slice)
        if obj is np.r_ or obj is np.c_:
            elts = node.slice.elts if isinstance(node.slice, gast.Tuple) else [node.slice]
            parts = [self.index(e) if isinstance(e, gast.Slice) else self.operand(e)
                     for e in elts]
            if any(isinstance(p, Const) and isinstance(p.value, str) for p in parts):
                raise self.error(f"string directives in `{name}[...]` are not supported",
                                 node, "join with np.concatenate, np.stack or np.column_stack")
            prim = registry.named("r_concat" if obj is np.r_ else "c_concat")
            packed = self.emit(prim_of(tuple_of), parts, node=node)
            return self.emit(prim, (packed,), hint=hint, node=node)
        index = self.index(node.slice)
        if not isinstance(index, Const):
            raise self.error(f"`{name}[...]` indexes an object adjoint does not know with a "
                             f"computed index", node,
                             "index with constants, or compute the value outside the "
                             "differentiated function")
        return self.emit(prim_of(operator.getitem), (base, index), hint=hint, node=node)

    def index(self, node) -> Operand:
        if isinstance(node, gast.Tuple):
            parts = [self.index(e) for e in node.elts]
            if all(isinstance(p, Const) for p in parts):
                return Const(tuple(p.value for p in parts))
            return self.emit(prim_of(runtime.index_tuple), parts, node=node)
        if isinstance(node, gast.Slice):
            parts = [self.operand(p) if p is not None else Const(None)
                     for p in (node.lower, node.upper, node.step)]
            if all(isinstance(p, Const) for p in parts):
                return Const(slice(*(p.value for p in parts)))
            return self.emit(prim_of(slice), parts, hint="_s", node=node)
        return self.operand(node)

    def expr_Call(self, node, hint):
        if isinstance(node.func, gast.Name) and node.func.id == SET_MARKER:
            return set_of(self, node.args[0], node)  # a set display (frontend/source.py)
        if isinstance(node.func, gast.Name) and node.func.id == WALK:  # (normalize.py's)
            return self.walked(self.expr(node.args[0], hint), node.args[0])
        self.calling = node.func  # `p.loss(...)` is a method call, `p.W` a field read
        callee = self.expr(node.func)
        if isinstance(callee, Static) and callee.obj in _CONSUMERS + (tuple, sorted) and \
                len(node.args) == 1 and is_map(self, node.args[0]):
            node = gast.copy_location(gast.Call(func=node.func, args=[mapped(
                self, node.args[0])], keywords=node.keywords), node)
        folds = isinstance(callee, Static) and callee.obj in (sum, math.prod)  # with start
        if isinstance(callee, Static) and node.args and (isinstance(
                node.args[0], (gast.GeneratorExp, gast.ListComp)) or folds) and (
                len(node.args) == 1 and not node.keywords or folds and len(
                node.args) + len(node.keywords) == 2 and all(k.arg == "start"
                                                             for k in node.keywords)):
            start = node.args[1] if len(node.args) == 2 else \
                node.keywords[0].value if node.keywords else None
            items = node.args[0]
            if not isinstance(items, (gast.GeneratorExp, gast.ListComp)):
                items = copy_loop(self, items)  # sum(xs, start): start + xs[0] + ...
            folded = self.reduction(callee.obj, items, hint, self.operand(start) if start
                                    is not None else Const(int(callee.obj is math.prod)))
            if folded is not None:
                return folded
        if self.sorted_view(node):  # `enumerate(sorted(d.items()))`: the list it walks
            d = self.operand(node.args[0].func.value)
            if not self.is_dict(d):  # (`.items()` of a list raises)
                self.emit(prim_of(mapping), (d,), node=node)
            return self.comprehension(copy_loop(self, node), "list", hint)
        if isinstance(callee, Static) and callee.obj in (tuple, list, dict) and \
                not any(isinstance(a, gast.Starred) for a in node.args) and \
                all(k.arg is not None for k in node.keywords):
            return conversion(self, callee.obj, node, hint)
        if isinstance(callee, Static) and callee.obj in (set, frozenset) and \
                len(node.args) == 1 and not node.keywords:
            return set_of(self, node.args[0], node)
        for a in node.args:
            if isinstance(a, gast.GeneratorExp) and not (
                    isinstance(callee, Static) and callee.obj in _CONSUMERS):
                raise self.error("a generator expression can be passed only to sum, min, max, "
                                 "math.fsum, list, any and all here", a,
                                 "build a list with a list comprehension: [... for ... in ...]")
        if isinstance(callee, Static) and callee.obj is functools.reduce:
            return reduce_call(self, node, hint)
        if isinstance(callee, Static) and callee.obj in (min, max) and node.args and not any(
                isinstance(a, gast.Starred) for a in node.args) \
                and [k.arg for k in node.keywords] == ["key"] or isinstance(callee, Static) \
                and callee.obj is sorted and len(node.args) == 1 and "key" in [
                    k.arg for k in node.keywords] and {k.arg for k in node.keywords} <= {
                    "key", "reverse"}:
            return keyed_extremum(self, callee.obj, node)
        if isinstance(callee, Static) and callee.obj is collections.defaultdict:
            raise self.error("a defaultdict made in the function is not supported", node,
                             "use a dict and d.get(k, 0.0): d[k] = d.get(k, 0.0) + v (a "
                             "defaultdict passed in as an argument is read as a dict)")
        if isinstance(callee, Static) and callee.obj is isinstance and len(node.args) == 2 \
                and not node.keywords:
            return self.emit(prim_of(isinstance), (self.operand(node.args[0]),
                                                 self.classes(node.args[1])), hint=hint, node=node)
        # a function passed on to a function that is inlined stays a function
        takes_functions = isinstance(callee, (Local, Partial)) or (
            isinstance(callee, Static) and (callee.obj in (checkpoint, functools.partial,
                                                           itertools.accumulate) or
                                            self.inlined(callee.obj) or
                                            is_plain_class(callee.obj)))
        evaluate = self.expr if takes_functions else self.operand
        dtype_at = dtype_position(callee)
        if isinstance(callee, Static) and callee.obj is getattr(np, "astype", None) and \
                not self._adjoints_own():  # NumPy 2's np.astype(x, np.float64) (a rule's
            dtype_at = 1  # np.astype(x_dot, dtype) passes its own parameter)
        args = []
        for i, a in enumerate(node.args):
            if isinstance(a, gast.Starred):
                args += self.starred(a)
            elif i == dtype_at and not isinstance(a, gast.Constant):
                args.append(self.classes(a))  # x.astype(np.float64), np.asarray(x, float)
            else:
                args.append(evaluate(a))
        kwargs = []
        for k in node.keywords:
            if k.arg is None:
                kwargs += self.double_starred(k.value)
            else:
                kwargs.append((k.arg, self.classes(k.value) if k.arg == "dtype" and not
                               isinstance(k.value, gast.Constant) else evaluate(k.value)))
        return self.call(callee, args, kwargs, node, hint)

    def double_starred(self, node) -> list:
        """`f(**kw)`: the entries of a dict whose keys are known here, passed by name."""
        entries = self.known_entries(self.operand(node))
        if entries is None:
            raise self.error("`**` of a mapping whose keys are not known here", node,
                             "pass the arguments by name one by one, or a dict display "
                             "made in this function, or a helper's own **kwargs")
        return entries

    def known_entries(self, v) -> list | None:
        """The (key, operand) entries of a dict whose keys are known here (a helper's
        `**kw`, a display, a module's dict of numbers), else None."""
        op = self.defs.get(v) if isinstance(v, Value) else None
        if op is not None and op.prim.fn is dict_of:  # (a write makes a new value)
            return list(zip(op.args[0].value, op.args[1:]))
        if isinstance(v, Global) and isinstance(v.value, dict) and all(
                isinstance(k, str) and is_literal(e) for k, e in v.value.items()):
            return [(k, Const(e)) for k, e in v.value.items()]
        return None

    def classes(self, node):
        """`float` or `(int, float)` in isinstance(x, ...), or a dtype= class: classes
        that generated code names."""
        if isinstance(node, gast.Tuple):
            return self.emit(prim_of(tuple_of), [self.classes(e) for e in node.elts], node=node)
        c = self.expr(node)
        if not (isinstance(c, Static) and isinstance(c.obj, type)):
            raise self.error("a class or a tuple of classes is needed here", node,
                             "name it: float, int, np.float64, (int, float)")
        return Global(c.obj.__name__, c.obj, c.obj.__module__)

    def inlined(self, fn) -> bool:
        """Whether a call of `fn` lowers its body in place (a user's function)."""
        plain = unwrap(fn)
        return (inspect.isfunction(plain) and not is_library(plain) and
                registry.lookup(fn) is None and not isinstance(fn, checkpoint))

    def starred(self, node) -> list:
        """`f(*xs)`: the elements of a tuple or list whose length is known here."""
        v = self.operand(node.value)
        if isinstance(v, Const) and isinstance(v.value, tuple):
            return [Const(e) for e in v.value]
        op = self.defs.get(v) if isinstance(v, Value) else None
        if op is not None and op.prim.fn in (tuple_of, list_of):  # (a write makes a new value)
            return list(op.args)
        known = self.elements_of(v) if op is not None and op.prim.fn is operator.getitem \
            else None  # `*rest[1:]`, `*pairs[0]` of a display
        if known is not None:
            return known
        raise self.error("`*` of a sequence whose length is not known here", node,
                         "pass the arguments one by one, or unpack a tuple display "
                         "made in this function")

    def rows(self, node, n: int) -> list:
        """The sequences `zip(*xs)` zips, where each trip unpacks into `n` names: xs's
        elements where they are known here, else xs[0], ..., xs[n - 1], xs checked when f
        runs to hold n of them (Python would not unpack the trips otherwise; with none,
        it would run no trip, which is refused too)."""
        v = self.operand(node.value)
        known = self.elements_of(v)
        if known is not None:
            return known
        self.check_operands([v], node)
        size = self.emit(prim_of(len), (v,), node=node)
        wrong = self.emit(prim_of(operator.ne), (size, Const(n)), node=node)
        self.emit(prim_of(raise_if), (wrong, Const(ValueError), Const(
            f"zip(*{dotted(node.value)}) unpacked into {n} names: differentiated "
            f"code needs {n} sequences to zip")), node=node)
        return [self.emit(prim_of(operator.getitem), (v, Const(i)), node=node)
                for i in range(n)]

    def call(self, callee, args, kwargs, node, hint):
        if isinstance(callee, Method):
            return self.method(callee, args, kwargs, node, hint)
        if isinstance(callee, Local):
            return self.inline_local(callee, args, kwargs, node, hint)
        if isinstance(callee, Partial):
            return self.call(callee.fn, list(callee.args) + list(args),
                             list(callee.kwargs) + list(kwargs), node, hint)
        if isinstance(callee, Global) and is_user_object(callee.value):
            callee = Instance(callee.value, callee.name)
        if isinstance(callee, (Instance, Built)):  # layer(x): its class's __call__
            method = inspect.getattr_static(callee.cls if isinstance(callee, Built) else
                                            type(callee.obj), "__call__", None)
            if not inspect.isfunction(method):
                raise self.error("only functions and objects with a __call__ method can be "
                                 "called", node)
            return self.call(Static(method), [callee] + list(args), kwargs, node, hint)
        if isinstance(callee, Static) and inspect.ismethod(callee.obj) and \
                is_user_object(callee.obj.__self__) and self.inlined(callee.obj.__func__):
            m = callee.obj  # a bound method reached some other way: self is read as above
            return self.call(Static(m.__func__), [Instance(m.__self__, m.__func__.__code__.
                                                          co_varnames[0])] + list(args),
                             kwargs, node, hint)
        if isinstance(callee, Static) and inspect.ismethod(callee.obj) and \
                isinstance(callee.obj.__self__, type) and \
                not is_library(callee.obj.__self__) and self.inlined(callee.obj.__func__):
            m = callee.obj  # a classmethod (Ops.loss): `cls` is the class, as `Ops` reads
            return self.call(Static(m.__func__), [Static(m.__self__)] + list(args), kwargs,
                             node, hint)
        if not isinstance(callee, Static):
            raise self.error("only functions can be called", node)
        fn = callee.obj
        same = _numpy_twin(fn, args, kwargs)
        if same is not None:  # scipy.linalg.inv(a) is np.linalg.inv(a)
            return self.call(Static(same[0]), args, same[1], node, hint)
        made = ufunc_method(self, fn, args, kwargs, node, hint)
        if made is not None:  # np.add.reduce(x) is np.sum(x, axis=0)
            return made
        if fn is functools.partial:
            if not args or not isinstance(args[0], (Static, Local, Partial)):
                raise self.error("functools.partial of something that is not a function",
                                 node)
            self.check_operands(args[1:] + [v for _, v in kwargs], node)
            return Partial(args[0], tuple(args[1:]), tuple(kwargs))
        if isinstance(fn, functools.partial):  # a partial made outside: its arguments
            bound = [self.classify(a, "_") for a in fn.args] + [  # must be plain numbers
                self.classify(v, "_") for v in fn.keywords.values()]
            if not all(isinstance(b, Const) for b in bound):
                raise self.error("a functools.partial made outside the function, with "
                                 "array arguments, cannot be inlined", node,
                                 "make the partial inside the differentiated function, or "
                                 "pass the arrays as arguments")
            return self.call(Static(fn.func), bound[:len(fn.args)] + list(args),
                             list(zip(fn.keywords, bound[len(fn.args):])) + list(kwargs),
                             node, hint)
        if _writes_out(fn, args, kwargs) or _mutates(fn):
            raise self.error(f"`{qualname(fn)}` writes into an array it is given (out=, or a "
                             f"NumPy function that changes its argument in place)", node,
                             "compute a new array instead: y = np.maximum(y, 0.0), "
                             "y = y.copy(); y[...] = v, or np.where")
        if not self.inlined(fn) and fn not in (checkpoint, itertools.accumulate) and \
                not is_plain_class(fn):
            self.check_operands(args + [v for _, v in kwargs], node)
        if fn is checkpoint:  # checkpoint(f): resolved now, called next
            if len(args) != 1 or kwargs:
                raise self.error("write adjoint.checkpoint(function)(arguments)", node)
            if not isinstance(args[0], Static):
                raise self.error("adjoint.checkpoint takes a module's function (a def at "
                                 "the top level of a file), not a function defined inside "
                                 "the differentiated one, a lambda or a value", node,
                                 "move the function to the module, passing what it reads "
                                 "from here as arguments")
            return Static(checkpoint(args[0].obj))
        if isinstance(fn, checkpoint):
            return self.checkpointed_call(unwrap(fn.fn), args, kwargs, node, hint)
        if fn is np.diff and any(k in ("prepend", "append") for k, _ in kwargs):
            return diff_with_ends(self, args, kwargs, node, hint)
        if fn is reversed and len(args) == 1 and not kwargs:
            # iterated, `reversed(xs)` is `xs[::-1]` (generated code walks its tapes so);
            # a dict's keys, as `for k in d` walks them
            return self.emit(prim_of(operator.getitem), (self.walked(args[0], node), Const(
                slice(None, None, -1))), hint=hint, node=node)
        if fn is math.fsum and len(args) == 1 and not kwargs:
            # a sum (fsum rounds once where the sum rounds at each step: a few ulps)
            total = self.call(Static(sum), args, kwargs, node, hint)
            return self.emit(prim_of(float), (total,), hint=hint, node=node)
        if fn is zip and not kwargs:  # `a, b = zip(*pairs)`: the transpose, known here
            columns = [self.elements_of(a) for a in args]
            if any(c is None for c in columns):
                raise self.error("zip outside a for loop of a sequence whose length is known "
                                 "only when the function runs", node,
                                 "loop over it: for a, b in zip(xs, ys): ...")
            rows = [self.emit(prim_of(tuple_of), row, node=node) for row in zip(*columns)]
            return self.emit(prim_of(tuple_of), rows, hint=hint, node=node)
        if (fn is max or fn is min) and (len(args) != 2 or kwargs):
            return extremum(self, fn, args, kwargs, node, hint)
        if fn is sorted and len(args) == 1 and isinstance(args[0], Value) and \
                {k for k, _ in kwargs} <= {"reverse"}:
            return sorted_list(self, args[0], dict(kwargs).get("reverse", Const(False)), node,
                               hint)
        if inspect.isclass(fn) and issubclass(fn, np.generic) and \
                np.dtype(fn).kind in NUMERIC_KINDS:  # np.float64(v), np.int32(v)
            return scalar_cast(self, fn, args, kwargs, node, hint)
        if fn in CASTS and len(args) >= 2:  # np.asarray(x, np.float32)
            if len(args) > 2 or any(k == "dtype" for k, _ in kwargs):
                raise self.error(f"`np.{fn.__name__}` with its settings by position", node,
                                 f"name them: np.{fn.__name__}(x, dtype=..., order=...)")
            args, kwargs = args[:1], [("dtype", args[1])] + list(kwargs)
        if is_namedtuple_class(fn):  # (before the registry, where record() puts the class)
            return record(self, fn, args, kwargs, node, hint)
        if inspect.isclass(fn) and hasattr(fn, "__dataclass_fields__"):
            return dataclass_record(self, fn, args, kwargs, node, hint)
        if is_distribution(fn):
            return freeze(self, fn, args, kwargs, node)
        if is_plain_class(fn) and registry.lookup(fn) is None:
            return built(self, fn, args, kwargs, node)
        if any(fn == tool for tool in ITERTOOLS):  # (chain.from_iterable is made anew)
            return itertool(self, fn, args, kwargs, node)
        entry = registry.lookup(fn)
        dtype = dtype_of(dict(kwargs).get("dtype"))
        if fn in CASTS and dtype is not None and narrows(dtype):
            rest = [(k, v) for k, v in kwargs if k != "dtype"]
            x = self.emit(entry.prim, args, rest, node=node) if rest or len(args) > 1 \
                else args[0]
            return narrowed(self, dtype, x, node, hint)
        if entry is not None:
            return self.emit(entry.prim, args, kwargs, hint=hint, node=node)
        plain = unwrap(fn)
        # a derivative called inside f, or made there (adjoint.grad(inner)(w): a MAML step)
        made_here = inspect.isfunction(plain) and plain.__module__ in _TRANSFORMS
        if made_here or type_module(fn).startswith("adjoint.") and \
                not getattr(type(fn), "calls_wrapped", False):  # (not f under @adjoint)
            what = f"`adjoint.{plain.__name__}` makes a derivative" if made_here else \
                f"`{qualname(fn)}` is a derivative made by adjoint"
            raise self.error(f"{what}; it cannot be called inside a function being "
                             f"differentiated", node,
                             "compose derivatives instead: adjoint.grad(adjoint.grad(f)), "
                             "adjoint.hvp(f), adjoint.hessian(f), adjoint.jvp(adjoint.grad(f))")
        if inspect.isfunction(plain) and not is_library(plain):
            return self.inline(plain, args, kwargs, node, hint)
        if inspect.isclass(fn) or not callable(fn) or not (
                inspect.isroutine(fn) or isinstance(fn, np.ufunc)):
            raise self.error(f"cannot call `{qualname(fn)}` in differentiated code", node,
                             "call a function; objects, classes and callable instances are "
                             "not supported (wrap the call in a function with a rule: "
                             "adjoint.defvjp)")
        # an unknown callable: allowed on inactive values, an error if a gradient flows in
        prim = registry.primitive(fn, qualname(fn), pure=False)
        return self.emit(prim, args, kwargs, hint=hint, node=node)

    def method(self, m: Method, args, kwargs, node, hint):
        if m.name == "astype":
            return astype(self, m.base, args, kwargs, node, hint)
        if m.name == "_replace":  # a namedtuple's: a new one, the fields given changed
            if args or not kwargs:
                raise self.error("`_replace` takes the fields by name", node,
                                 "write p._replace(field=value, ...)")
            x = m.base
            for name, value in kwargs:
                x = self.emit(prim_of(replaced), (x, Const(name), value), hint=hint, node=node)
            return x
        if m.name == "pop":
            return list_pop(self, m.base, args, kwargs, node, hint)
        if m.name == "get":
            return dict_get(self, m.base, args, kwargs, node, hint)
        if m.name in ("items", "keys", "values") and not args and not kwargs and isinstance(
                m.base, Global) and isinstance(m.base.value, dict) and is_literal(tuple(
                m.base.value.items())):  # a module's dict of constants: its view, known
            return Const(tuple(getattr(m.base.value, m.name)()))
        if m.name in ("items", "values", "keys") and not args and not kwargs and \
                isinstance(m.base, Value):
            # `ks = sorted(d.keys())`, `enumerate(d.items())`: the list of d's keys (or
            # entries, or pairs) that a loop over d makes, d checked to be a dict when f
            # runs where its kind is seen only then
            if not self.is_dict(m.base):
                self.emit(prim_of(mapping), (m.base,), node=node)
            if m.name == "keys":
                return self.emit(prim_of(keys), (m.base,), hint=hint, node=node)
            return self.comprehension(copy_loop(self, node), "list", hint)
        if m.name == "format" and isinstance(m.base, Const) and isinstance(m.base.value, str):
            return str_format(self, m.base.value, args, dict(kwargs), node, hint)
        if m.name in _DRAWS:  # rng.uniform(size=n): a draw, which no gradient crosses
            return self.emit(_draw_prim(m.name), [m.base] + list(args), kwargs, hint=hint,
                             node=node)
        if m.name in STR_METHODS:  # a key's or a label's (k.startswith('W')): a str's
            return self.call(Static(getattr(str, m.name)), [m.base] + list(args), kwargs,
                             node, hint)
        spec = _METHODS.get(m.name)
        if spec is None:
            raise self.error(f"method `.{m.name}()` is not supported", node,
                             "loop over `d.items()` directly (for k, v in d.items())"
                             if m.name in ("items", "keys", "values") else
                             "call the NumPy function instead, e.g. np.sum(x, axis=0)")
        fn, pack = spec
        if m.name == "item" and args and not kwargs:
            # x.item(i): the flat index's element, x.item(i, j) or x.item((i, j)): x[i, j],
            # as a number (a tuple built in f is seen here; any other index is taken as flat)
            base, index = m.base, args[0]
            if len(args) > 1:
                index = self.emit(prim_of(tuple_of), args, node=node)
            elif not (isinstance(index, Const) and isinstance(index.value, tuple) or
                      isinstance(index, Value) and index in self.defs and
                      self.defs[index].prim.fn is tuple_of):
                base = self.emit(prim_of(np.ravel), (base,), node=node)
            args = [self.emit(prim_of(operator.getitem), (base, index), node=node)]
            return self.call(Static(float), args, {}, node, hint)
        if m.name == "clip" and len(args) == 1 and not kwargs:
            args = [args[0], Const(None)]  # x.clip(lo): np.clip wants both bounds
        if pack and len(args) > 1:  # x.reshape(2, 3) == np.reshape(x, (2, 3))
            args = [self.emit(prim_of(tuple_of), args, node=node)]
        if m.name == "flatten":  # np.ravel's result, but a copy: never a view to write through
            flat = self.call(Static(fn), [m.base] + list(args), kwargs, node, TEMP)
            return self.call(Static(runtime.private), [flat], {}, node, hint)
        return self.call(Static(fn), [m.base] + list(args), kwargs, node, hint)

    # -------------------------------------------------------- comprehensions
    def expr_ListComp(self, node, hint):
        return self.comprehension(node, "list", hint)

    def expr_DictComp(self, node, hint):
        return self.comprehension(node, "dict", hint)

    def expr_Dict(self, node, hint):
        """`{'W': W, 'b': b}`: its keys are constants, so that its entries are known;
        `{**d, 'b': b}` unpacks a dict whose keys are known here (Lowerer.known_entries)
        into them, or else (a parameter, an entry of one) is built as Python builds it:
        a copy of d, or the entries so far updated with d's, then the later entries
        written into it in order."""
        merged: dict = {}  # {'a': x, 'a': y} is {'a': y} (and 1 == True: one key)
        made = None  # the dict so far, once d's keys are known only when f runs
        for k, v in zip(node.keys, node.values):
            if k is None:  # **d
                d = self.operand(v)
                entries = self.known_entries(d)
                if entries is None and made is None and not merged:
                    made = copied_dict(self, d, v, hint)
                    continue
                if entries is None:
                    made = made if made is not None else self.emit(prim_of(dict_of), (
                        Const(tuple(merged)), *merged.values()), hint=hint, node=node)
                    made = updated_dict(self, made, d, v, hint)
                    continue
            elif not isinstance(k, gast.Constant) or not isinstance(k.value, (str, int)):
                raise self.error("a dict display's keys must be constant strings or ints",
                                 k, "build it in a loop: d[k] = v")
            else:
                entries = [(k.value, self.operand(v))]
            if made is None:
                merged.update(entries)
            for key, value in entries if made is not None else ():
                made = self.emit(prim_of(runtime.setitem), (made, Const(key), value),
                                 hint=hint, node=node)
        if made is not None:
            return made
        return self.emit(prim_of(dict_of), (Const(tuple(merged)), *merged.values()),
                         hint=hint, node=node)

    def expr_GeneratorExp(self, node, hint):
        # only where it is consumed at once (sum, min, max, list, a for loop): its list
        return self.comprehension(node, "list", hint)

    def reduction(self, fn, arg, hint, start=Const(0)):
        """`sum(e for ...)` as the loop that adds the terms; `list(e for ...)` as the list."""
        if fn is sum or fn is math.fsum:
            total = self.comprehension(arg, "sum", hint, start)
            # fsum rounds once where the loop rounds at each step: equal to a few ulps
            return self.emit(prim_of(float), (total,), hint=hint, node=arg) \
                if fn is math.fsum else total
        if fn is math.prod:  # the loop that multiplies, from start (1)
            return self.comprehension(arg, "prod", hint, start)
        if fn is list:
            return self.comprehension(arg, "list", hint)
        return None

    def comprehension(self, node, kind: str, hint, start=Const(0)):
        """A comprehension lowered to the loop a person would write:

            ys = []                           s = 0
            for t in it:                      for t in it:
                if c:                             if c:
                    ys.append(e)                      s = s + e

        Its loop variables are its own (Python 3): they do not leak into the function."""
        if any(g.is_async for g in node.generators):
            raise self.error("async comprehensions are not supported", node)
        used = {n.id for n in gast.walk(node) if isinstance(n, gast.Name)}
        self.depth += 1
        acc = hint if hint != TEMP and hint not in used else f"_acc{self.depth}"

        def at(n):
            return gast.copy_location(n, node)

        def name(ctx):
            return at(gast.Name(id=acc, ctx=ctx, annotation=None, type_comment=None))

        if kind == "dict":  # acc[k] = v
            inner = [at(gast.Assign(targets=[at(gast.Subscript(
                value=name(gast.Load()), slice=node.key, ctx=gast.Store()))],
                value=node.value, type_comment=None))]
        elif kind == "list":
            add = at(gast.Attribute(value=name(gast.Load()), attr="append", ctx=gast.Load()))
            elt = node.elt
            if isinstance(elt, gast.ListComp):
                # a list made afresh on each trip: analysis/views.py takes the values one
                # loop op makes for one object, so the rows appended would seem to be
                # written after the outer list holds them; appending a copy says they differ
                elt = at(gast.Call(func=at(gast.Attribute(
                    value=at(gast.Name(id="_adjoint_runtime", ctx=gast.Load(), annotation=None,
                                       type_comment=None)), attr="private", ctx=gast.Load())),
                    args=[elt], keywords=[]))
            inner = [at(gast.Expr(value=at(gast.Call(func=add, args=[elt], keywords=[]))))]
        else:
            total = at(gast.BinOp(left=name(gast.Load()), op=gast.Mult() if kind == "prod"
                                  else gast.Add(), right=node.elt))
            inner = [at(gast.Assign(targets=[name(gast.Store())], value=total,
                                    type_comment=None))]
        for g in reversed(node.generators):
            for cond in reversed(g.ifs):
                inner = [at(gast.If(test=cond, body=inner, orelse=[]))]
            inner = [at(gast.For(target=g.target, iter=g.iter, body=inner, orelse=[],
                                 type_comment=None))]
        own = {acc, "_adjoint_runtime"} | {n.id for g in node.generators
                                           for n in gast.walk(g.target)
                                           if isinstance(n, gast.Name)}
        saved = {n: self.env[n] for n in own if n in self.env}
        self.env["_adjoint_runtime"] = Static(runtime)
        try:
            self.env[acc] = start if kind in ("sum", "prod") else self.emit(
                prim_of(list_of), (), hint=acc, node=node) if kind == "list" else self.emit(
                prim_of(dict_of), (Const(()),), hint=acc, node=node)
            self.for_stmt(inner[0])
            return self.env[acc]
        finally:
            self.depth -= 1
            for n in own:
                self.env.pop(n, None)
            self.env.update(saved)

    # ------------------------------------- tuple(), list(), dict() and sets
    def elements(self, node) -> list | None:
        """The operands a display, a sequence whose elements are known here, or a
        comprehension over such sequences (unrolled: its conditions must fold) holds, in
        order; None when the length is known only at run time."""
        if isinstance(node, (gast.GeneratorExp, gast.ListComp, gast.SetComp)):
            return self.unrolled(node.elt, node.generators)
        if isinstance(node, (gast.List, gast.Tuple)):
            if any(isinstance(e, gast.Starred) for e in node.elts):
                return None
            return [self.operand(e) for e in node.elts]
        return self.elements_of(self.operand(node))

    def elements_of(self, v) -> list | None:
        value = v.value if isinstance(v, (Const, Global)) else None
        if isinstance(value, (tuple, list, range)) and all(is_literal(e) for e in value):
            return [Const(e) for e in value]
        op = self.defs.get(v) if isinstance(v, Value) else None
        if op is not None and op.prim.fn in (tuple_of, list_of):  # (a write makes a new value)
            return list(op.args)
        if op is not None and op.prim.fn is operator.getitem and isinstance(
                op.args[1], Const) and type(op.args[1].value) is int:  # cols[0] of a display
            outer = self.elements_of(op.args[0])
            i = op.args[1].value
            return self.elements_of(outer[i]) if outer is not None and \
                -len(outer) <= i < len(outer) else None
        if op is not None and op.prim.fn is operator.getitem and isinstance(
                op.args[1], Const) and type(op.args[1].value) is slice:  # rest[1:]
            outer = self.elements_of(op.args[0])
            return outer[op.args[1].value] if outer is not None else None
        if op is not None and op.prim.fn is range and all(isinstance(a, Const) for a in op.args):
            return [Const(e) for e in range(*(a.value for a in op.args))]
        return None

    def unrolled(self, elt, generators) -> list | None:
        """A comprehension's elements, its loops run here (their iterables known)."""
        if not generators:
            return [self.operand(elt)]
        g, out = generators[0], []
        items = self.elements(g.iter)
        if items is None or g.is_async:
            return None
        names = {n.id for n in gast.walk(g.target) if isinstance(n, gast.Name)}
        saved = {n: self.env[n] for n in names if n in self.env}
        try:
            for item in items:
                if isinstance(g.target, gast.Name):
                    self.env[g.target.id] = item
                else:
                    parts = self.elements_of(item)
                    if not (isinstance(g.target, gast.Tuple) and parts is not None and all(
                            isinstance(t, gast.Name) for t in g.target.elts) and
                            len(parts) == len(g.target.elts)):
                        return None
                    self.env.update((t.id, p) for t, p in zip(g.target.elts, parts))
                conds = [self.operand(c) for c in g.ifs]
                if not all(isinstance(c, Const) for c in conds):
                    return None
                if all(c.value for c in conds):
                    more = self.unrolled(elt, generators[1:])
                    if more is None:
                        return None
                    out += more
            return out
        finally:
            for n in names:
                self.env.pop(n, None)
            self.env.update(saved)

    # ------------------------------------------------- lambdas and nested defs
    def expr_Lambda(self, node, hint):
        return self.local_function(node, "<lambda>")

    def inline_local(self, f: Local, args, kwargs, node, hint):
        """Inline a lambda or nested def: its parameters bound to the operands, its free
        names read from where it was defined, as they are now."""
        fn = f.node
        if any(fn is n for n in self.active):
            raise self.error(f"recursive call of `{f.name}`", node,
                             "write the recursion as a loop")
        params = [p.id for p in fn.args.args]
        names = params + [p.id for p in fn.args.kwonlyargs]
        if len(args) > len(params):
            raise self.error(f"`{f.name}` takes {len(params)} positional arguments, "
                             f"{len(args)} given", node)
        bound = dict(zip(params, args))
        for k, v in kwargs:
            if k in bound or k not in names:
                raise self.error(f"bad keyword argument `{k}` for `{f.name}`", node)
            bound[k] = v
        for p in names:
            if p not in bound:
                if p not in f.defaults:
                    raise self.error(f"`{f.name}` is missing the argument `{p}`", node)
                bound[p] = f.defaults[p]
        owner = f.owner
        inner = Lowerer(owner.parsed, owner.facts, owner.stack)
        inner.ops, inner.inplace, inner.defs = self.ops, self.inplace, self.defs
        inner.element_updates = self.element_updates
        inner.handlers, inner.catching = self.handlers, self.catching
        self.handled_in(owner.parsed, fn)
        inner.seeds, inner.lengths = self.seeds, self.lengths
        inner.active = self.active + (fn,)
        inner.env = dict(owner.env)
        inner.env.update(bound)
        if isinstance(fn, gast.Lambda):
            body = [gast.copy_location(gast.Return(value=fn.body), fn.body)]
        else:
            body = normalize(fn, owner.parsed.loc).body
        # a write in place into an argument or a closed-over array would have to reach
        # the caller's names, which inlining a closure does not follow: refused
        made = {n.id for s in body for n in gast.walk(s)
                if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store)} - set(names)
        outside = sorted(inner.written_in(body) - made)
        if outside:
            at = next((n for s in body for n in gast.walk(s) if _writes_into(n, outside[0])),
                      fn)
            raise inner.error(f"`{f.name}` writes in place into `{outside[0]}`, which it did "
                              f"not make", at, "write into a copy and return it "
                              f"(`{outside[0]} = {outside[0]}.copy()` first)")
        results = inner.body(body) or (Const(None),)
        if len(results) == 1:
            return results[0]
        return self.emit(prim_of(tuple_of), results, hint=hint, node=node)

    def inline(self, fn, args, kwargs, node, hint):
        if fn in self.stack:
            # a recursion whose depth constant arguments fix (`power(x, 5)`) unrolls: its
            # base case's condition folds; one that depends on data never ends, so stop
            self.recursions[0] += 1
            if self.recursions[0] > _RECURSION_BUDGET or \
                    self.stack.count(fn) > _RECURSION_DEPTH:
                raise self.error(f"recursive call of `{fn.__name__}` whose depth constant "
                                 f"arguments do not fix, or fix deeper than "
                                 f"{_RECURSION_DEPTH} levels ({_RECURSION_BUDGET} calls in "
                                 f"all)", node,
                                 "write the recursion as a loop, or make its depth follow "
                                 "from f's int arguments (an int it counts down) or the "
                                 "lengths of its list, tuple or array arguments (a list it "
                                 "splits); a depth that floats decide is not supported",
                                 RecursionDepthError)
        results = lower_inline(fn, args, kwargs, self, node)
        if len(results) == 1:
            return results[0]
        return self.emit(prim_of(tuple_of), results, hint=hint, node=node)

    # unsupported expressions get a located error through `expr`


def lower_inline(fn: Callable, args, kwargs, outer: Lowerer, node) -> tuple:
    """Lower `fn`'s body into `outer`'s op list, its parameters bound to operands."""
    try:
        parsed = parse_function(fn)
    except SourceError as e:
        if e.loc is not None:
            raise
        raise SourceError(e.message, outer.loc(node), e.hint) from None  # at the call
    check(parsed)  # a helper is held to the same subset as the function
    inner = Lowerer(parsed, outer.facts, outer.stack)
    inner.ops = outer.ops
    inner.inplace, inner.element_updates = outer.inplace, outer.element_updates
    inner.handlers, inner.catching = outer.handlers, outer.catching
    outer.handled_in(parsed, parsed.node)
    inner.recursions, inner.lengths = outer.recursions, outer.lengths
    inner.defs, inner.seeds = outer.defs, outer.seeds  # what the arguments are made of
    try:
        bound = inspect.signature(fn).bind(*args, **dict(kwargs))
    except TypeError as e:
        raise outer.error(f"bad call of `{fn.__name__}`: {e}", node) from None
    for name, value in bound.arguments.items():
        param = inspect.signature(fn).parameters[name]
        if param.kind == param.VAR_POSITIONAL:
            value = outer.emit(prim_of(tuple_of), value, node=node) if not all(
                isinstance(v, Const) for v in value) else Const(tuple(v.value for v in value))
        elif param.kind == param.VAR_KEYWORD:  # a dict whose keys are known here
            value = outer.emit(prim_of(dict_of), (Const(tuple(value)), *value.values()),
                               hint=name, node=node)
        inner.env[name] = value
    for name, param in inspect.signature(fn).parameters.items():
        if name not in inner.env and param.kind == param.VAR_POSITIONAL:  # none passed
            inner.env[name] = Const(())
        elif name not in inner.env and param.kind == param.VAR_KEYWORD:
            inner.env[name] = outer.emit(prim_of(dict_of), (Const(()),), hint=name, node=node)
        elif name not in inner.env and param.default is not inspect.Parameter.empty:
            value = inner.classify(param.default, name)
            if isinstance(value, Global):  # an array default: no module name holds it
                value = Global(f"{fn.__name__}_{name}", param.default, None)
            inner.env[name] = value
    tree = normalize(parsed.node, parsed.loc)
    written = inner.written_in(tree.body, (fn,)) & set(bound.arguments)
    if isinstance(node, gast.Call):
        for a in _written_arguments(fn, node, ()):
            if isinstance(a, (gast.Subscript, gast.Attribute)):  # x[0], x.T: views of x
                raise outer.error(f"`{fn.__name__}` writes into this argument, which may be a "
                                  f"view of another array", a,
                                  "assign the argument to a variable first (v = x[0].copy()), "
                                  "pass it, and read the variable afterwards")
    rebound = {n.id: n for s in tree.body for n in gast.walk(s)
               if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store)}
    clash = sorted(written & set(rebound))
    if clash:
        name = clash[0]
        raise inner.error(
            f"`{fn.__name__}` writes into its argument `{name}` and also rebinds the name",
            rebound[name], f"write into a copy (`{name} = {name}.copy()` first) and return it, "
                           f"or only write into `{name}`")
    ret = inner.body(tree.body)
    outer.defs.update(inner.defs)
    for name in sorted(written):  # the caller sees what the helper wrote into its argument
        before, after = bound.arguments[name], inner.env.get(name)
        if isinstance(before, Value) and isinstance(after, Value) and after is not before:
            outer.rebind_storage(before, after)
    return ret if ret is not None else (Const(None),)


class Extras(int):
    """How many arguments `*rest` takes on the call compiled for: in `constants`, under
    the name of the differentiated function's `*rest` parameter."""


# the key in `constants` that lowers f for a recursion's depth (no parameter's name): the
# lengths of lists and tuples made in f, and of the Length arguments, are followed
FOR_DEPTH = "<depth>"


class Length(int):
    """The length of a list, tuple or array argument on the call compiled for: in
    `constants`, under the parameter's name. The parameter stays a value; `len` of it,
    and of its slices, folds, so that a recursion that splits it unrolls."""


def _is_const(o, value) -> bool:
    return isinstance(o, Const) and type(o.value) is type(value) and o.value == value


def _known_length(fn, args, defs: dict, lengths: dict):
    """`len(xs)`, `xs.shape[0]` or `np.shape(xs)[0]` of a value whose length is known."""
    if fn is len and len(args) == 1 and isinstance(args[0], Value):
        return lengths.get(args[0])
    if fn is operator.getitem and isinstance(args[0], Value) and args[0] in defs and \
            _is_const(args[1], 0):
        shape = defs[args[0]]  # an op of this lowering (an argument has none)
        of = shape.args[0] if shape.args and isinstance(shape.args[0], Value) else None
        if of in lengths and (shape.prim.fn is np.shape and len(shape.args) == 1 or
                              shape.prim.fn is attribute and _is_const(shape.args[1], "shape")):
            return lengths[of]
    return None


def _length_of(call: Call, lengths: dict):
    """The length of `call`'s result where lowering knows it: a list or tuple display;
    of a value of known length, a slice `xs[a:b]` (along the first axis of an array),
    `xs.append(v)` and a write `xs[0] = v` at a constant index that is no slice (the
    IR's values are never changed in place: a write or an append makes a new one)."""
    fn, args = call.prim.fn, call.args
    if fn in (list_of, tuple_of):
        return len(args)
    n = lengths.get(args[0]) if args and isinstance(args[0], Value) else None
    if n is None or len(args) < 2:
        return None
    if fn is runtime.append:
        return n + 1
    if not isinstance(args[1], Const):
        return None
    if fn is operator.getitem and isinstance(args[1].value, slice):
        return len(range(n)[args[1].value])
    if fn is runtime.setitem and not isinstance(args[1].value, slice):
        return n
    return None


def lower_function(fn: Callable, facts: Facts = NO_FACTS, constants=None) -> Function:
    """The IR of a user function (its callees inlined). `constants` maps parameter names
    to values the body reads instead (a recursion's depth: the parameters stay), and
    the name of a `*rest` parameter to the Extras it takes."""
    # reading an expression recurses once per operator, and generated code (sympy's) has
    # sums of hundreds of terms, which Python compiles: so may this
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        return _lower_function(fn, facts, constants)
    finally:
        sys.setrecursionlimit(limit)


def _lower_function(fn: Callable, facts: Facts, constants) -> Function:
    parsed = parse_function(fn)
    check(parsed)
    node = parsed.node
    a = node.args
    constants = dict(constants or {})
    extras = constants.pop(a.vararg.id, None) if a.vararg else None
    for_depth = constants.pop(FOR_DEPTH, False)
    lengths = {k: constants.pop(k) for k, v in list(constants.items()) if isinstance(v, Length)}
    if a.kwarg or getattr(a, "posonlyargs", None):
        what = "**" + a.kwarg.id if a.kwarg else "/"
        raise UnsupportedError(f"the parameter list of the differentiated function has "
                               f"`{what}`: only named parameters and *args are supported "
                               f"here", parsed.loc(node), "write def f(x, y, *rest, s=1.0): "
                               "...; a helper it calls may take **kwargs")
    if a.vararg and not isinstance(extras, Extras):
        raise UnsupportedError(f"`*{a.vararg.id}`: how many arguments it holds is known only "
                               f"from a call", parsed.loc(a.vararg), "give the arguments: "
                               "adjoint.grad(f)(x, a, b), adjoint.source(f, args=(x, a, b)), "
                               "adjoint emit --args")
    # `*rest` holding this call's n extra arguments: n parameters rest_0 ... rest_(n-1),
    # so that positions past the named ones select them (as JAX's argnums do)
    rest = tuple(f"{a.vararg.id}_{i}" for i in range(extras)) if a.vararg else ()
    names = tuple(p.id for p in a.args) + rest + tuple(p.id for p in a.kwonlyargs)
    plain = unwrap_partial(fn)
    for p, default in zip(a.args[::-1], (getattr(plain, "__defaults__", None) or ())[::-1]):
        if isinstance(default, types.ModuleType):  # `def f(x, np=np)`: calls on a value
            raise UnsupportedError(f"parameter `{p.id}` defaults to the module "
                                   f"`{default.__name__}`", parsed.loc(p),
                                   f"use the module by its global name, not a parameter")
    low = Lowerer(parsed, facts)
    if inspect.ismethod(plain):  # a bound method: `self`'s attributes are read as constants
        if not names:
            raise UnsupportedError("a method without a `self` parameter", parsed.loc(node))
        owner = plain.__self__  # a classmethod's `cls`: a class, read as one is in f
        low.env[names[0]] = Static(owner) if isinstance(owner, type) else \
            Instance(owner, names[0])
        names = names[1:]
    if isinstance(fn, functools.partial):  # its bound arguments are read as closure values
        bindings = partial_bindings(fn, names)
        if set(bindings) & set(rest):
            raise UnsupportedError(f"the functools.partial binds arguments of "
                                   f"`*{a.vararg.id}`", parsed.loc(a.vararg),
                                   "bind only named parameters; pass the rest in the call")
        for name, value in bindings.items():
            low.env[name] = Global(name, value, None) if isinstance(
                low.classify(value, name), Global) else low.classify(value, name)
        names = tuple(n for n in names if n not in low.env)
    params = tuple(Value(n) for n in names)
    low.env.update(zip(names, params))
    if a.vararg:  # inside f, `rest` is the tuple of those parameters
        low.env[a.vararg.id] = low.emit(prim_of(tuple_of), [low.env[n] for n in rest],
                                        hint=a.vararg.id, node=a.vararg)
    for name, value in constants.items():
        low.env[name] = low.classify(value, name)
    if for_depth:  # (a parameter a partial binds or a method's self is no value here)
        low.lengths = {low.env[k]: n for k, n in lengths.items()
                       if isinstance(low.env.get(k), Value)}
    tree = normalize(node, parsed.loc)
    ret = low.body(tree.body) or (Const(None),)
    doc = inspect.getdoc(parsed.func) or ""
    return Function(node.name, params, Block((), tuple(low.ops), tuple(ret)), parsed.loc(node),
                    names, doc, tuple(low.inplace), element_updates=tuple(low.element_updates),
                    handlers=tuple(low.handlers))


# ---------------------------------------------------------------- tables


_BINOPS = {gast.Add: operator.add, gast.Sub: operator.sub, gast.Mult: operator.mul,
           gast.Div: operator.truediv, gast.Pow: operator.pow, gast.MatMult: operator.matmul,
           gast.FloorDiv: operator.floordiv, gast.Mod: operator.mod,
           gast.BitAnd: operator.and_, gast.BitOr: operator.or_, gast.BitXor: operator.xor,
           gast.LShift: operator.lshift, gast.RShift: operator.rshift}
_COMPARE = {gast.Lt: operator.lt, gast.LtE: operator.le, gast.Gt: operator.gt,
            gast.GtE: operator.ge, gast.Eq: operator.eq, gast.NotEq: operator.ne,
            gast.Is: operator.is_, gast.IsNot: operator.is_not,
            gast.In: in_, gast.NotIn: not_in}

# exceptions a float operation raises in Python but not on NumPy floats (a handler for
# them would not run in the generated code), and the bases that catch them too
_ARITHMETIC_ERRORS = {"ZeroDivisionError", "ArithmeticError", "FloatingPointError",
                      "OverflowError", "Exception", "BaseException"}

# the draws of NumPy's random generators (a Generator's, a RandomState's), called as
# methods of the generator f is given or makes: like np.random.normal(...), a call with no
# rule, which a gradient may not flow through
_DRAWS = ("random", "integers", "uniform", "normal", "standard_normal", "choice",
          "permutation", "binomial", "poisson", "exponential", "standard_exponential",
          "gamma", "standard_gamma", "beta", "laplace", "logistic", "lognormal", "standard_t",
          "chisquare", "dirichlet", "multivariate_normal", "rand", "randn", "randint",
          "random_sample")


@functools.lru_cache(maxsize=None)
def _out_name(call) -> str | None:
    """The name in `ufunc(..., out=t)` (or `out=(t,)`), its one keyword; else None."""
    if not (isinstance(call, gast.Call) and len(call.keywords) == 1 and
            call.keywords[0].arg == "out" and call.args):
        return None
    out = call.keywords[0].value
    if isinstance(out, gast.Tuple) and len(out.elts) == 1:
        out = out.elts[0]
    return out.id if isinstance(out, gast.Name) else None


def _draw_prim(name: str) -> Prim:
    """`rng.<name>(...)` as a primitive, printed as that method call."""
    def draw(rng, *args, **kwargs):
        return getattr(rng, name)(*args, **kwargs)
    draw.__name__ = draw.__qualname__ = name
    draw.__module__ = "numpy.random"  # a draw, as np.random.normal is: never run again
    # where its value must stay the same (a Hessian's rows, a recomputed region)
    return registry.primitive(draw, f"draw.{name}", "method", name, pure=False)


# adjoint's modules whose functions make derivatives (grad, hvp, jacobian, ...)
_TRANSFORMS = ("adjoint.api", "adjoint.higher", "adjoint.compose")

# value.method(...) -> (numpy function, whether varargs pack into one tuple argument)
_METHODS = {
    "sum": (np.sum, False), "mean": (np.mean, False), "prod": (np.prod, False),
    "max": (np.max, False), "min": (np.min, False), "var": (np.var, False),
    "std": (np.std, False), "dot": (np.dot, False), "reshape": (np.reshape, True),
    "ravel": (np.ravel, False), "flatten": (np.ravel, False), "copy": (runtime.private, False),
    "transpose": (np.transpose, True), "squeeze": (np.squeeze, False),
    "clip": (np.clip, False), "cumsum": (np.cumsum, False), "argmax": (np.argmax, False),
    "argmin": (np.argmin, False), "any": (np.any, False),
    "all": (np.all, False), "item": (item, False), "conj": (np.conj, False),
    "conjugate": (np.conj, False), "tolist": (tolist, False), "take": (np.take, False),
    "cumprod": (np.cumprod, False), "diagonal": (np.diagonal, False),
    "trace": (np.trace, False), "round": (np.round, False), "swapaxes": (np.swapaxes, False),
    "repeat": (np.repeat, False), "argsort": (np.argsort, False),
    "nonzero": (np.nonzero, False),
}


# what a generator expression may be passed to: it is consumed at once
_CONSUMERS = (sum, min, max, math.fsum, list, any, all)

# module-level objects that `obj[i]` reads as data (other objects are opaque)
_CONTAINERS = (np.ndarray, np.generic, list, tuple, dict, str, bytes, range)


# recursive calls inlined in one function (and nested in one another) before the
# recursion is taken not to end
_RECURSION_BUDGET, _RECURSION_DEPTH = 256, 20

# NumPy functions that change an argument in place (and return None)
_MUTATORS = (np.copyto, np.fill_diagonal, np.put, np.place, np.putmask, np.put_along_axis,
             np.random.shuffle)


# scipy.linalg's functions that compute what NumPy's of the same name do, given at most
# that many arguments by position and these keywords (besides the overwrite and
# finiteness flags, which change no value)
_SCIPY_LINALG_TWINS = {"inv": (1, ()), "det": (1, ()), "solve": (2, ()), "eigh": (1, ()),
                       "eigvalsh": (1, ()), "svd": (3, ("full_matrices", "compute_uv")),
                       "norm": (4, ("ord", "axis", "keepdims"))}
_UNCHANGING = ("overwrite_a", "overwrite_b", "check_finite")


def _numpy_twin(fn, args, kwargs):
    """(np.linalg's function, the keywords to pass it) where `fn(*args, **kwargs)` is a
    scipy.linalg function called as its NumPy twin computes; else None."""
    name = getattr(fn, "__name__", None)
    if not str(getattr(fn, "__module__", None) or "").startswith("scipy.linalg") or \
            name not in _SCIPY_LINALG_TWINS:
        return None
    positional, keywords = _SCIPY_LINALG_TWINS[name]
    kept = [(k, v) for k, v in kwargs if k not in _UNCHANGING]
    if len(args) > positional or any(k not in keywords for k, _ in kept):
        return None
    return getattr(np.linalg, name), kept


def _writes_out(fn, args, kwargs) -> bool:
    """Whether the call `fn(*args, **kwargs)` writes its result into an array it is
    given: `out=` (not None), an `out` passed by position (np.floor(h, h), a ufunc's
    arguments past its inputs; np.round(h, 1, h), np.clip(a, lo, hi, a)), or
    np.nan_to_num's copy=False."""
    def given(v):
        return not (isinstance(v, Const) and v.value is None)
    if any(k == "out" and given(v) for k, v in kwargs):
        return True
    if fn is np.nan_to_num and any(k == "copy" and not (isinstance(v, Const) and v.value)
                                   for k, v in kwargs):
        return True
    if isinstance(fn, np.ufunc):
        return any(given(v) for v in args[fn.nin:])
    if not str(getattr(fn, "__module__", None) or "").startswith(("numpy", "scipy")):
        return False  # a user's helper may well have a parameter named `out`
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = []  # up to *args (np.einsum(*operands, out=None) takes out by keyword)
    for p in params:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            break
        positional.append(p.name)
    at = positional.index("out") if "out" in positional else None
    return at is not None and len(args) > at and given(args[at])


def _mutates(fn) -> bool:
    """Whether calling `fn` writes into an argument: a mutator, or a ufunc's `.at`."""
    return any(fn is m for m in _MUTATORS) or (
        getattr(fn, "__name__", None) == "at" and isinstance(getattr(fn, "__self__", None),
                                                            np.ufunc))


def _guarding(tests) -> bool:
    """Whether one of `tests` guards what follows it: `x is None or v < x`, `w is not
    None and w > 0`, `isinstance(a, float) and a > 0`. A comparison cannot raise on
    numbers, but can on what such a test rules out (None < 1.0)."""
    return any(isinstance(n, gast.Compare) and any(isinstance(o, (gast.Is, gast.IsNot))
                                                   for o in n.ops) or
               isinstance(n, gast.Call) and isinstance(n.func, gast.Name) and
               n.func.id in ("isinstance", "hasattr", "callable")
               for t in tests for n in gast.walk(t))


def _safe(op) -> bool:
    """Ops that cannot raise, so `a and b` may evaluate b eagerly."""
    return isinstance(op, Call) and op.prim.fn in _SAFE_FNS


_SAFE_FNS = {operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne,
             operator.is_, operator.is_not, operator.not_, and_, or_}


def _inert(op) -> bool:
    """An op that computes a constant and nothing else (len, np.shape, a comparison), or
    reads an attribute (`x.shape`, which is a field where x is a namedtuple)."""
    entry = registry.entry(op.prim)
    return entry is not None and (entry.nondiff or op.prim.fn is attribute) and entry.pure


def _as_if(node):
    """The `if` statement an expression statement `a if c else b`, `c and a` or `c or a`
    stands for."""
    def stmt(e):
        return gast.copy_location(gast.Expr(value=e), e)

    if isinstance(node, gast.IfExp):
        test, body, orelse = node.test, [stmt(node.body)], [stmt(node.orelse)]
    else:
        rest = node.values[1] if len(node.values) == 2 else gast.copy_location(
            gast.BoolOp(op=node.op, values=node.values[1:]), node.values[1])
        test, body, orelse = node.values[0], [stmt(rest)], []
        if isinstance(node.op, gast.Or):  # `c or a` runs a when c is false
            test = gast.copy_location(gast.UnaryOp(op=gast.Not(), operand=test), test)
    return gast.copy_location(gast.If(test=test, body=body, orelse=orelse), node)


def _printed(call) -> list:
    """The expressions a print call evaluates: its arguments, and the `{...}` parts of
    its f-strings."""
    out = []
    for a in list(call.args) + [k.value for k in call.keywords]:
        if isinstance(a, gast.JoinedStr):
            out += [v.value for v in a.values if isinstance(v, gast.FormattedValue)]
        else:
            out.append(a)
    return out


def _holds_static(item) -> bool:
    return isinstance(item, (Instance, Static)) or isinstance(item, tuple) and any(
        _holds_static(p) for p in item)


def _walked_sequences(walk) -> list:
    """The sequences a walk (Lowerer.zipped) reads, in order: the loop runs over the
    shortest."""
    if walk[0] == "sequence":
        return [walk[1]]
    parts = [walk[2]] if walk[0] == "enumerate" else walk[1]
    return [q for p in parts for q in _walked_sequences(p)]


def _hint_of_operand(o, default: str) -> str:
    return o.name if isinstance(o, Value) and not o.name.startswith("_") else default


def _init(env, name):
    v = env.get(name)
    return v if isinstance(v, (Value, Const, Global)) else Const(None)


def _ordered_union(a: dict, b: dict) -> list:
    out = list(a)
    out += [k for k in b if k not in a]
    return out


def _keyed_display(node) -> bool:
    """A dict display whose keys are constants (`{'w': w2}`, no `**`)."""
    return isinstance(node, gast.Dict) and all(isinstance(k, gast.Constant) for k in node.keys)


def _assigned_names(stmts) -> set[str]:
    """Names a statement list rebinds or writes through (`x = ..`, `x[i] = ..`, `xs.append`)."""
    out: set[str] = set()
    for s in stmts:
        for n in gast.walk(s):
            if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store):
                out.add(n.id)
            elif isinstance(n, gast.Subscript) and isinstance(n.ctx, gast.Store):
                out.add(hint_of(n.value))
            elif isinstance(n, gast.AugAssign):
                out.add(hint_of(n.target))
            elif _list_method_of(n):
                out.add(n.func.value.id)
            elif _out_name(n) is not None:  # np.sin(z, out=z): z[...] = np.sin(z)
                out.add(_out_name(n))
    return out


def _written_arguments(fn, call, seen: tuple) -> list:
    """The argument nodes of `call` that user function `fn` writes into in place."""
    parsed = parse_function(fn)
    written = Lowerer(parsed).written_in(parsed.node.body, seen + (fn,))
    params = list(inspect.signature(fn).parameters)
    return [a for p, a in zip(params, call.args) if p in written] + [
        k.value for k in call.keywords if k.arg in written]


def _writes_into(node, name: str) -> bool:
    """Whether statement `node` writes into `name` in place (for error locations)."""
    if isinstance(node, gast.Assign):
        return any(isinstance(t, gast.Subscript) and hint_of(t.value) == name
                   for t in node.targets)
    if isinstance(node, gast.AugAssign):
        return hint_of(node.target) == name
    if isinstance(node, gast.Expr) and isinstance(node.value, gast.Call):
        return name in {n.id for n in gast.walk(node.value) if isinstance(n, gast.Name)}
    return False


def _list_method_of(n) -> bool:
    """Whether `n` is `xs.append(v)` or `xs.pop(..)` on a name, which changes the list in
    place. np.append(s, v) takes two values and returns a new array: a module's function
    is no write (taking `np` for a list made it a loop's carried value)."""
    return isinstance(n, gast.Call) and isinstance(n.func, gast.Attribute) and \
        isinstance(n.func.value, gast.Name) and (
            n.func.attr == "append" and len(n.args) == 1 and not n.keywords or
            n.func.attr == "pop")


def _written_names(stmts) -> set[str]:
    """Names whose value a statement list changes in place."""
    out: set[str] = set()
    for s in stmts:
        for n in gast.walk(s):
            if isinstance(n, gast.Subscript) and isinstance(n.ctx, gast.Store):
                out.add(hint_of(n.value))
            elif isinstance(n, gast.AugAssign) and isinstance(n.target, gast.Subscript):
                out.add(hint_of(n.target))
            elif _list_method_of(n) or _out_name(n) is not None:
                out.add(n.func.value.id if _list_method_of(n) else _out_name(n))
    return out


def _loads_after(fn_node, loop) -> set[str]:
    last = max(getattr(n, "lineno", 0) for n in gast.walk(loop))
    return {n.id for n in gast.walk(fn_node)
            if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Load)
            and getattr(n, "lineno", 0) > last}


__all__ = ["lower_function", "lower_inline", "Lowerer", "Facts", "NO_FACTS", "Length",
           "FOR_DEPTH", "Static", "math", "builtins"]


