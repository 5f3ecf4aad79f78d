"""The tangent (forward-mode) transform: primal IR -> JVP IR.

`forward(fn, wrt, facts)` builds `f_jvp(*params, *tangents) -> (value, value_dot)`.
It walks the primal ops in order and, after each op that an active operand
reaches, inlines the primitive's JVP template with its `<name>_dot` parameters
bound to the operands' tangents. Forward mode needs no tape: a loop simply
carries the tangents of its active carried values beside them, and an `if`
yields the tangents of its active results as extra results.

Zero tangents are never materialised up front. An operand with no tangent binds
its template's `_dot` parameter to a symbolic `Zero`, and lowering the template
simplifies around it: a product, quotient, reduction or reshape of a zero is
zero (a JVP is linear in its tangents), and a zero term of a sum is dropped when
the other term already has the sum's shape. So `x_dot * y + x * y_dot` with `y`
inactive emits `x_dot * y`, not `x_dot * y + x * 0.0`. Where a zero cannot be
simplified away (a zero term that would broadcast the sum to a larger shape, an
`if` whose other branch has a tangent, a loop-carried tangent, the returned
tangent) it is materialised from the primal value it stands for: `0.0` for a
number, `np.zeros_like(v)` for an array.
"""
from __future__ import annotations

import inspect
import operator
import warnings
from dataclasses import dataclass, replace

import numpy as np

from adjoint import runtime
from adjoint.ad.sequences import sequence_ops, sequence_operands
from adjoint.ad.template import TemplateLowerer
from adjoint.analysis.activity import useful, varied
from adjoint.errors import NonDifferentiableError
from adjoint.frontend.lower import TEMP, Lowerer
from adjoint.rules.complex import COMPLEX_RULES, meets_complex
from adjoint.rules.located import no_derivative_in
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import dict_of, list_of, tuple_of
from adjoint.frontend.source import parse_function
from adjoint.ir.core import Block, Call, Const, For, Function, Global, If, Operand, Value, \
    While, prune, relocate, walk_ops
from adjoint.rules import registry
from adjoint.rules.registry import primitive
from adjoint.rules.tape import iadd, iadd_at

# ops that write into their first operand in generated code
_ELEMENTWISE_SYMBOLS = {"+", "-", "*", "/", "**", "//", "%", "<", "<=", ">", ">=", "==", "!=",
                        "&", "|", "^", "~"}
_DUMMY_LIMIT = 100_000  # shape inference by evaluation only on small dummies


primitive(runtime.zeros_tangent, "zeros_tangent", nondiff=True)


@dataclass(frozen=True, eq=False)
class Zero:
    """A symbolic zero tangent, never emitted.

    `shape` is its shape when known; `like` a value of exactly that shape whose zero
    it is (materialised as `zeros_like(like)`); `recipe` the op that produced it from
    other zeros, `(prim, args, kwargs)`, replayed on materialised zeros as a last resort;
    `sources` the values whose shapes broadcast to its shape, when known.
    """

    shape: tuple | None = None
    like: Operand | None = None
    recipe: tuple | None = None
    sources: frozenset | None = None  # see Forward.sources

    def __repr__(self) -> str:
        return "Zero"


def _zero_value(x):
    if isinstance(x, tuple):
        return tuple(_zero_value(e) for e in x)
    if x is None or isinstance(x, str) or x is Ellipsis or isinstance(x, slice):
        return x
    return 0.0


def _broadcast(*shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


class TangentLowerer(TemplateLowerer):
    """Lowers a JVP template, simplifying around symbolic zero tangents."""

    def __init__(self, template, fwd: "Forward", ans: Value):
        super().__init__(parse_function(template), fwd.facts, {"ans": ans})
        self.fwd = fwd
        self.defs = fwd.defs  # one table: folds `(a, b)[0]` on tangent tuples too
        self.primal_derived: set = set()

    def primal_only(self, o) -> bool:
        """Whether `o` is certainly free of tangents (If results count as tangents)."""
        if isinstance(o, Zero):
            return False
        if isinstance(o, (Const, Global)):
            return True
        return o in self.fwd.primal_values or o in self.primal_derived

    def raw(self, prim, args, kwargs=(), hint=TEMP):
        return Lowerer.emit(self, prim, args, kwargs, hint)

    def materialize(self, o):
        return self.fwd.materialize(o, self.raw) if isinstance(o, Zero) else o

    def emit(self, prim, args, kwargs=(), hint: str = TEMP, node=None):
        args, kwargs = tuple(args), _strip_defaults(prim, tuple(kwargs))
        args = _strip_trailing_defaults(prim, args)
        operands = args + tuple(v for _, v in kwargs)
        if all(self.primal_only(o) for o in operands):
            out = Lowerer.emit(self, prim, args, kwargs, hint, node)
            if isinstance(out, Value):
                self.primal_derived.add(out)
            return out
        zeros = [o for o in operands if isinstance(o, Zero)]
        if not zeros:
            return Lowerer.emit(self, prim, args, kwargs, hint, node)
        fn, entry = prim.fn, registry.entry(prim)
        dep = [o for o in operands if not self.primal_only(o)]
        if entry is not None and entry.nondiff or fn in (tuple_of, list_of, dict_of) and \
                len(zeros) != len(operands):
            return self._materialized(prim, args, kwargs, hint, node)
        if len(zeros) == len(dep):  # linear in its tangents, all of which are zero
            return self.fwd.zero_result(prim, args, kwargs, zeros)
        fwd = self.fwd
        if fn in (operator.add, iadd) and not kwargs:  # iadd: `a += b` as a value
            a, b = args
            if isinstance(a, Zero) and fwd.absorbs(b, a):
                return b
            if isinstance(b, Zero) and fwd.absorbs(a, b):
                return a
        elif fn is operator.sub and not kwargs:
            a, b = args
            if isinstance(b, Zero) and fwd.absorbs(a, b):
                return a
            if isinstance(a, Zero) and fwd.absorbs(b, a):
                return self.emit(prim_of(operator.neg), (b,), (), hint, node)
        elif fn in (runtime.add_at, iadd_at) and isinstance(args[2], Zero) and \
                not isinstance(args[0], Zero):
            return args[0]
        elif fn is runtime.setitem and isinstance(args[2], Zero) and \
                not isinstance(args[0], Zero):
            # an array's entries take the number 0.0; a dict's or a list's slot takes a
            # zero of its value's own kind (`q_dot['x'] = 0.0` for an array x, read by
            # `W @ q_dot['x']`, raised)
            zero = Const(0.0) if fwd.shape_of(args[0]) is not None or args[2].shape == () \
                else self.materialize(args[2])
            return Lowerer.emit(self, prim, (args[0], args[1], zero), kwargs, hint, node)
        if fwd.broadcasting(prim) and not kwargs and all(
                z.shape is not None for z in zeros):
            # a zero operand of an elementwise op is the scalar 0.0, if that keeps the shape
            others = [fwd.shape_of(o) for o in args if not isinstance(o, Zero)]
            if all(s is not None for s in others):
                full = _broadcast(*others, *[z.shape for z in zeros])
                if full is not None and full == _broadcast(*others):
                    args = tuple(Const(0.0) if isinstance(a, Zero) else a for a in args)
                    return Lowerer.emit(self, prim, args, kwargs, hint, node)
        return self._materialized(prim, args, kwargs, hint, node)

    def _materialized(self, prim, args, kwargs, hint, node):
        args = tuple(self.materialize(a) for a in args)
        kwargs = tuple((k, self.materialize(v)) for k, v in kwargs)
        return Lowerer.emit(self, prim, args, kwargs, hint, node)


class Forward:
    def __init__(self, fn: Function, wrt: tuple[int, ...], facts):
        fn = sequence_ops(fn, facts)
        self.fn, self.wrt, self.facts = fn, tuple(wrt), facts
        self.varied = varied(fn, self.wrt, facts)
        self.useful = useful(fn)
        self.active = self.varied & self.useful
        self.primal_values = set(fn.params)
        self.primal_defs: dict[Value, Call] = {}
        for op in walk_ops(fn.body):
            self.primal_values.update(op.results)
            for b in op.blocks:
                self.primal_values.update(b.args)
            if isinstance(op, Call):
                self.primal_defs[op.result] = op
        self.params: set = set()  # the tangent parameters
        self.tan: dict[Value, Operand] = {}  # primal value -> its tangent (absent: zero)
        self.defs: dict[Value, Call] = dict(self.primal_defs)  # every Call, for folding
        self.shapes: dict = {}
        self.source_sets: dict = {}
        self.primal_of: dict = {}  # tangent value -> a primal value of its shape
        self.ops: list = []
        self.pending: list = []  # tangent ops waiting for the primal ops of their line
        self.pending_line = None
        self.loc = fn.loc

    # ------------------------------------------------------------------ emitting
    def emit(self, prim, args, kwargs=(), hint: str = TEMP) -> Value:
        out = Value(hint)
        call = Call(prim, tuple(args), out, tuple(kwargs), self.loc)
        self.ops.append(call)
        self.defs[out] = call
        return out

    def emitter(self, ops: list):
        """An `emit` appending to `ops`."""
        def emit(prim, args, kwargs=(), hint: str = TEMP):
            out = Value(hint)
            call = Call(prim, tuple(args), out, tuple(kwargs), self.loc)
            ops.append(call)
            self.defs[out] = call
            return out
        return emit

    # ------------------------------------------------------------------ zeros
    def zero_of(self, v: Operand, emit) -> Operand:
        """A materialised zero tangent for primal operand `v`."""
        if isinstance(v, Const):
            return Const(_zero_value(v.value))
        if isinstance(v, Global):
            x = v.value
            if isinstance(x, np.ndarray):
                return emit(prim_of(np.zeros_like) if x.dtype.kind == "f" else
                            prim_of(runtime.zeros_like), (v,), (), "_zeros")
            if isinstance(x, (bool, int, float, complex, np.number)):
                return Const(0.0)
            return emit(prim_of(runtime.zeros_tangent), (v,), (), "_zeros")
        hint = _dot_name(v)
        k = self.facts.kind(v)
        if k is None:
            return emit(prim_of(runtime.zeros_tangent), (v,), (), hint)
        if k.type in ("float", "int", "bool", "complex"):
            return Const(0.0)
        if k.type == "none":
            return Const(None)
        if k.type == "ndarray":
            return emit(prim_of(np.zeros_like) if k.dtype == "f" else prim_of(runtime.zeros_like),
                        (v,), (), hint)
        if k.type == "tuple":  # a list is mutable: its zero is always a new list (below)
            d = self.primal_defs.get(v)
            if d is not None and d.prim.fn in (tuple_of, list_of):
                parts = [self.zero_of(a, emit) for a in d.args]
                return emit(d.prim, parts, (), hint)
        return emit(prim_of(runtime.zeros_tangent), (v,), (), hint)

    def materialize(self, z: Zero, emit) -> Operand:
        if z.shape == () and not (z.like is not None and self.facts.types(z.like) == {"ndarray"}):
            return Const(0.0)  # (a 0-d array's zero is one, which `z_dot[()] = v` can write)
        if z.like is not None:
            return self.zero_of(z.like, emit)
        if z.shape is not None:
            return emit(prim_of(np.zeros), (Const(z.shape),), (), "_zeros")
        if z.recipe is not None:
            prim, args, kwargs = z.recipe
            args = [self.materialize(a, emit) if isinstance(a, Zero) else a for a in args]
            kwargs = [(k, self.materialize(a, emit) if isinstance(a, Zero) else a)
                      for k, a in kwargs]
            return emit(prim, args, kwargs)
        return Const(0.0)

    def zero_result(self, prim, args, kwargs, zeros) -> Zero:
        shape = self.infer_shape(prim, args, kwargs)
        like = None
        if len(zeros) == 1 and zeros[0].like is not None and shape is not None and \
                shape == zeros[0].shape:
            like = zeros[0].like
        return Zero(shape, like, (prim, args, kwargs), self.op_sources(prim, args, kwargs))

    def absorbs(self, a: Operand, z: Zero) -> bool:
        """Whether `a + z` has `a`'s shape, so the zero term can be dropped: known
        shapes say so, or every shape that broadcasts into z's broadcasts into a's."""
        if z.shape == ():
            return True
        sa = self.shape_of(a)
        if z.shape is not None and sa is not None:
            return _broadcast(z.shape, sa) == tuple(sa)
        src = self.sources(a)
        return z.sources is not None and src is not None and z.sources <= src

    def sources(self, o):
        """Operands whose broadcast shape is `o`'s shape (a frozenset), or None.

        Scalars contribute nothing; a tangent has its primal's shape; an elementwise
        op broadcasts its operands'; any other value stands for itself. With unknown
        shapes (code generated without example arguments) this still shows that
        `w_dot * x + w * zero(x)` has the shape of its first term."""
        if isinstance(o, Zero):
            return o.sources
        if isinstance(o, (Const, Global)):
            s = self.shape_of(o)
            if s == ():
                return frozenset()
            return frozenset((o,)) if isinstance(o, Global) and s is not None else None
        if o in self.source_sets:
            return self.source_sets[o]
        self.source_sets[o] = frozenset((o,))  # a cycle guard
        if self.shape_of(o) == ():
            out = frozenset()
        elif o in self.primal_of:
            out = self.sources(self.primal_of[o])
        else:
            d = self.defs.get(o)
            out = self.op_sources(d.prim, d.args, d.kwargs) if d is not None else None
            out = out if out is not None else frozenset((o,))
        self.source_sets[o] = out
        return out

    def op_sources(self, prim, args, kwargs):
        """The sources of `prim(*args, **kwargs)`: the union of its operands' for an
        elementwise op; otherwise the op itself with each tangent replaced by its
        primal (a pure op of the same operands has the same shape: `zero(X) @ W`
        and `X @ W_dot` are both shaped like `X @ W`)."""
        if self.broadcasting(prim) and not kwargs:
            return self._union(self.sources(a) for a in args)
        e = registry.entry(prim)
        if e is None or not e.pure:
            return None
        canon = [self._canon(a) for a in args] + [(k, self._canon(v)) for k, v in kwargs]
        if any(c is None for c in canon):
            return None
        return frozenset((("op", prim.name, id(prim.fn), tuple(canon)),))

    def _canon(self, o):
        if isinstance(o, Zero):
            if o.like is not None:
                return self._canon(o.like)
            return ("zero", o.sources) if o.sources is not None else None
        if isinstance(o, Const):
            return ("const", type(o.value).__name__, repr(o.value))
        return self.primal_of.get(o, o)

    @staticmethod
    def _union(sets):
        out = frozenset()
        for s in sets:
            if s is None:
                return None
            out |= s
        return out

    # ------------------------------------------------------------------ shapes
    def shape_of(self, o):
        if isinstance(o, Zero):
            return o.shape
        if isinstance(o, Const):  # (a string is one value: no_derivative_in's message)
            x = o.value
            return () if isinstance(x, (bool, int, float, complex, np.number, str)) else None
        if isinstance(o, Global):
            x = o.value
            if isinstance(x, np.ndarray):
                return x.shape
            return () if isinstance(x, (bool, int, float, complex, np.number)) else None
        if o in self.shapes:
            return self.shapes[o]
        self.shapes[o] = None  # a cycle guard
        k = self.facts.kind(o)
        if k is not None:
            s = k.shape if k.type in ("float", "int", "bool", "complex", "ndarray") else None
        else:
            d = self.defs.get(o)
            s = self.infer_shape(d.prim, d.args, d.kwargs) if d is not None else None
        self.shapes[o] = s
        return s

    def broadcasting(self, prim) -> bool:
        """Elementwise ops whose result shape is the broadcast of their operands'."""
        if prim.style in ("infix", "prefix"):
            return prim.symbol.strip() in _ELEMENTWISE_SYMBOLS
        # (no_derivative_in(t, ...) never returns; held to t's shape, the zero term
        # `no_derivative_in(a_dot, ...)` of a constant a is dropped, and the call with it)
        return registry.elementwise_ufunc(prim.fn) or prim.fn in (np.where, no_derivative_in)

    def infer_shape(self, prim, args, kwargs):
        if prim.name.startswith("math."):
            return ()
        if self.broadcasting(prim) and not kwargs:
            shapes = [self.shape_of(a) for a in args]
            return _broadcast(*shapes) if all(s is not None for s in shapes) else None
        entry = registry.entry(prim)
        if entry is None or not entry.pure or prim.style in ("tuple", "list", "append"):
            return None
        try:
            dargs = [self._dummy(a) for a in args]
            dkw = {k: self._dummy(v) for k, v in kwargs}
        except _NoDummy:
            return None
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = prim.fn(*dargs, **dkw)
        except Exception:
            return None
        if isinstance(r, (np.ndarray, np.generic, bool, int, float, complex)):
            return tuple(np.shape(r))
        return None

    def _dummy(self, o):
        if isinstance(o, (Const, Global)):
            return o.value
        k = self.facts.kind(o) if isinstance(o, Value) else None
        if k is not None and k.type in ("int", "bool"):
            return False if k.type == "bool" else 0
        if k is not None and k.type == "ndarray" and k.dtype not in ("f", "c"):
            raise _NoDummy  # integer and boolean indices: the result shape depends on data
        s = self.shape_of(o)
        if s is None or (k is not None and k.type not in ("float", "ndarray", "complex")):
            raise _NoDummy
        if int(np.prod(s)) > _DUMMY_LIMIT:
            raise _NoDummy
        return np.random.default_rng(0).uniform(0.5, 1.5, size=s) if s else 0.75

    # ------------------------------------------------------------------ tangents
    def tangent(self, o) -> Operand | None:
        return self.tan.get(o) if isinstance(o, Value) else None

    def tangent_or_zero(self, o, emit=None) -> Operand:
        t = self.tangent(o)
        return t if t is not None else self.zero_of(o, emit or self.emit)

    def set_tangent(self, v: Value, t: Operand) -> None:
        self.tan[v] = t
        if isinstance(t, Value):
            self.primal_of.setdefault(t, v)
            if t not in self.shapes:
                self.shapes[t] = self.shape_of(v)
            # `z = a + b` with b inactive: a's tangent is z's, and reads best as z_dot
            if t.name.startswith("_") and t not in self.primal_values and \
                    t not in self.params and not _dot_name(v).startswith("_"):
                t.name = _dot_name(v)

    # ------------------------------------------------------------------ ops
    def ops_of(self, ops) -> None:
        """Process a block's ops. The tangent ops of a source line follow its primal
        ops (`z = ...` then `z_dot = ...`); an in-place write or a region flushes them."""
        saved, self.pending = self.pending, []
        try:
            for op in ops:
                if self.pending and (not isinstance(op, Call) or _line(op) != self.pending_line
                                     or op.prim.style in registry.WRITES):
                    self.flush()
                self.loc = op.loc
                if isinstance(op, Call):
                    self.call(op)
                elif isinstance(op, If):
                    self.if_(op)
                elif isinstance(op, For):
                    self.for_(op)
                else:
                    self.while_(op)
            self.flush()
        finally:
            self.pending = saved

    def flush(self) -> None:
        self.ops.extend(self.pending)
        self.pending = []

    def call(self, op: Call) -> None:
        if op.prim.style in ("tape_new", "tape_push", "tape_pop"):
            self.tape(op)
            return
        if op.result not in self.active or not any(
                self.tangent(o) is not None for o in op.operands):
            self.ops.append(op)
            return
        entry = registry.entry(op.prim)
        rule = COMPLEX_RULES.get(op.prim.fn) if meets_complex(op, self.facts, results=False) \
            else None
        if entry is not None and entry.nondiff and rule is None:
            self.ops.append(op)
            return
        self.pending_line = _line(op)
        if op.prim.fn in (tuple_of, list_of, dict_of):
            self.ops.append(op)
            emit = self.emitter(self.pending)
            keys = op.args[:1] if op.prim.fn is dict_of else ()  # the keys stay the keys
            parts = list(keys) + [self.tangent_or_zero(a, emit) for a in op.args[len(keys):]]
            self.set_tangent(op.result, emit(op.prim, parts, (), _dot_name(op.result)))
            return
        jvp = rule[1] if rule is not None else entry.jvp if entry is not None else None
        if jvp is None:
            raise NonDifferentiableError(
                f"`{op.prim.name}` has no forward-mode (JVP) rule, but a tangent flows "
                f"through it", op.loc,
                "register one with @adjoint.rules.registry.defjvp, or wrap an argument in "
                "adjoint.stop_gradient(...) if it should be treated as constant")
        ops, t = self.inline_jvp(jvp, op)
        if op.prim.style in registry.WRITES and not _reads(ops, op.result):
            # the tangent first, so the primal write can happen in place
            self.ops.extend(ops)
            self.ops.append(op)
        else:
            self.ops.append(op)
            self.pending.extend(ops)
        if t is not None:
            self.set_tangent(op.result, t)

    def tape(self, op: Call) -> None:
        """Tangents ride on a tape of their own, pushed and popped in step with the
        values' tape (the reverse sweep's tapes, when differentiating a gradient)."""
        self.flush()
        self.ops.append(op)
        style, tape = op.prim.style, op.args[0] if op.args else None
        if style == "tape_new":
            if op.result in self.active:
                t = Value("_tape_dot")
                self.ops.append(Call(op.prim, (), t, (), None))
                self.set_tangent(op.result, t)
        elif self.tangent(tape) is not None:
            if style == "tape_push":
                dots = tuple(self.tangent_or_zero(v) for v in op.args[1:])
                self.ops.append(Call(op.prim, (self.tangent(tape), *dots), Value("_"), (), None))
            else:
                t = Value(_dot_name(op.result))
                self.ops.append(Call(op.prim, (self.tangent(tape),), t, (), None))
                self.set_tangent(op.result, t)

    def inline_jvp(self, template, op: Call):
        """Lower the JVP rule with its `_dot` parameters bound to the operands' tangents;
        returns (ops, tangent), the tangent None when it is zero."""
        from adjoint.ad.reverse import _signature
        low = TangentLowerer(template, self, op.result)
        sig = _signature(template)[0]
        params = list(sig.parameters.values())
        primal = [p for p in params[1:] if not p.name.endswith("_dot")]
        dots = [p for p in params[1:] if p.name.endswith("_dot")]
        try:
            bound = inspect.Signature(primal).bind(*op.args, **dict(op.kwargs))
        except TypeError as e:
            raise NonDifferentiableError(f"cannot apply the JVP rule of `{op.prim.name}`: {e}",
                                         op.loc) from None
        low.env[params[0].name] = op.result
        stacked = sequence_operands(op, self.facts)
        for name, value in bound.arguments.items():
            p = sig.parameters[name]
            if p.kind == p.VAR_POSITIONAL:
                value = low.raw(prim_of(tuple_of), value)
            elif value in stacked:
                value = low.raw(prim_of(np.asarray), (value,))
            low.env[name] = value
        for p in primal:
            if p.name not in low.env and p.default is not inspect.Parameter.empty:
                low.env[p.name] = low.classify(p.default, p.name)
        for p in dots:
            base = p.name[:-len("_dot")]
            value = bound.arguments.get(base)
            if value is None:
                low.env[p.name] = Zero((), low.env.get(base), None, frozenset())
            elif sig.parameters[base].kind == inspect.Parameter.VAR_POSITIONAL:
                low.env[p.name] = low.raw(prim_of(tuple_of), [
                    self.tangent_or_zero(v, low.raw) for v in value])
            else:
                t = self.tangent(value)
                if t is not None and value in stacked:
                    t = low.raw(prim_of(np.asarray), (t,))
                low.env[p.name] = t if t is not None else Zero(
                    self.shape_of(value), value, None, self.sources(value))
        from adjoint.ad.reverse import _template_body, refuse_now
        ret = low.body(_template_body(template)) or (Const(None),)
        refuse_now(low.ops, op)
        t = ret[0]
        if isinstance(t, Zero) or (isinstance(t, Const) and t.value is None):
            return [], None
        ops = self.fix_zeros(low.ops)
        if isinstance(t, Value):
            ops = prune(ops, [t], registry.pure)
        made = {r for o in ops for r in o.results}
        for o in ops:  # the template's own names (x, ans) mean nothing in the output
            for r in o.results:
                if not r.name.startswith("_"):
                    r.name = TEMP
        if isinstance(t, Value) and t in made:
            # `y[i] = v` writes into y: its tangent is y_dot, whatever the hint of v
            t.name = _dot_name(op.args[0] if op.prim.style in registry.WRITES else op.result)
        if op.prim.style in registry.WRITES:
            # the storage a tangent write copies (a new zero array) is a named variable:
            # the emitter prints a write into a temporary it inlines as a name it lacks
            for o in walk_ops(Block((), tuple(ops), ())):
                if isinstance(o, Call) and o.prim.style in registry.WRITES and o.args and \
                        isinstance(o.args[0], Value) and o.args[0] in made and \
                        o.args[0].name.startswith("_"):
                    o.args[0].name = _dot_name(op.args[0])
        return relocate(ops, op.loc), t

    def fix_zeros(self, ops) -> list:
        """Materialise the zeros that reached an op the template lowering did not see
        (a yield of an `if`, a call inside an inlined helper)."""
        out: list = []
        emit = self.emitter(out)
        for op in ops:
            if isinstance(op, Call):
                if any(isinstance(o, Zero) for o in op.operands):
                    op = replace(op, args=tuple(self._mat(a, emit) for a in op.args),
                                 kwargs=tuple((k, self._mat(v, emit)) for k, v in op.kwargs))
            else:
                if isinstance(op, If) and isinstance(op.cond, Zero):
                    op = replace(op, cond=self.materialize(op.cond, emit))
                blocks = [self._fix_block(b) for b in op.blocks]
                if isinstance(op, If):
                    op = replace(op, then=blocks[0], orelse=blocks[1])
                elif isinstance(op, For):
                    op = replace(op, body=blocks[0],
                                 inits=tuple(self._mat(o, emit) for o in op.inits))
                else:
                    op = replace(op, cond=blocks[0], body=blocks[1],
                                 inits=tuple(self._mat(o, emit) for o in op.inits))
            out.append(op)
        return out

    def _fix_block(self, b: Block) -> Block:
        ops = self.fix_zeros(b.ops)
        results = tuple(self._mat(o, self.emitter(ops)) for o in b.results)  # (adds to ops)
        return replace(b, ops=tuple(ops), results=results)

    def _mat(self, o, emit):
        return self.materialize(o, emit) if isinstance(o, Zero) else o

    # ------------------------------------------------------------------ regions
    def region(self, ops, bind: dict):
        """Process `ops` as a nested block: returns (new ops, tangent map inside)."""
        saved_ops, saved_tan = self.ops, self.tan
        self.ops, self.tan = [], dict(saved_tan)
        self.tan.update(bind)
        try:
            self.ops_of(ops)
            return self.ops, self.tan
        finally:
            self.ops, self.tan = saved_ops, saved_tan

    def if_(self, op: If) -> None:
        slots = [k for k, r in enumerate(op.results) if r in self.active]
        branches = []
        for b in (op.then, op.orelse):
            ops, tan = self.region(b.ops, {})
            branches.append((b, ops, tan))
        keep, yields = [], ([], [])
        for k in slots:
            ts = [tan.get(b.results[k]) if isinstance(b.results[k], Value) else None
                  for b, _, tan in branches]
            if all(t is None for t in ts):
                continue
            keep.append(k)
            for i, ((b, ops, _), t) in enumerate(zip(branches, ts)):
                self.loc = op.loc
                yields[i].append(t if t is not None else
                                 self.zero_of(b.results[k], self.emitter(ops)))
        results = tuple(Value(_dot_name(op.results[k])) for k in keep)
        (tb, tops, _), (eb, eops, _) = branches
        self.loc = op.loc
        self.ops.append(replace(
            op, then=Block((), tuple(tops), tb.results + tuple(yields[0])),
            orelse=Block((), tuple(eops), eb.results + tuple(yields[1])),
            results=op.results + results))
        for k, r in zip(keep, results):
            self.set_tangent(op.results[k], r)

    def _slots(self, op, args) -> list[int]:
        out = []
        for k, (a, r, y) in enumerate(zip(args, op.results, op.body.results)):
            trio = (a, r, y)
            if any(v in self.varied for v in trio) and any(v in self.useful for v in trio):
                out.append(k)
        return out

    def _loop(self, op, args):
        """The loop's tangent slots: (slots, inits, body args, body ops, yields)."""
        slots = self._slots(op, args)
        inits = [self.tangent_or_zero(op.inits[k]) for k in slots]
        targs = [Value(_dot_name(args[k])) for k in slots]
        for k, t in zip(slots, targs):
            self.shapes[t] = self.shape_of(args[k])
            self.primal_of[t] = args[k]
        ops, tan = self.region(op.body.ops, dict(zip([args[k] for k in slots], targs)))
        saved, self.ops = self.ops, ops
        saved_tan, self.tan = self.tan, tan
        try:
            self.loc = op.loc
            yields = [self.tangent_or_zero(op.body.results[k]) for k in slots]
        finally:
            self.ops, self.tan = saved, saved_tan
        return slots, inits, targs, ops, yields

    def for_(self, op: For) -> None:
        args = op.body.args[1:]
        slots, inits, targs, ops, yields = self._loop(op, args)
        results = tuple(Value(_dot_name(op.results[k])) for k in slots)
        body = Block(op.body.args + tuple(targs), tuple(ops), op.body.results + tuple(yields))
        self.loc = op.loc
        self.ops.append(replace(op, inits=op.inits + tuple(inits), body=body,
                                results=op.results + results))
        for k, r in zip(slots, results):
            self.set_tangent(op.results[k], r)

    def while_(self, op: While) -> None:
        slots, inits, targs, ops, yields = self._loop(op, op.body.args)
        cargs = tuple(Value(_dot_name(op.cond.args[k])) for k in slots)
        results = tuple(Value(_dot_name(op.results[k])) for k in slots)
        body = Block(op.body.args + tuple(targs), tuple(ops), op.body.results + tuple(yields))
        cond = replace(op.cond, args=op.cond.args + cargs)
        self.loc = op.loc
        self.ops.append(replace(op, inits=op.inits + tuple(inits), cond=cond, body=body,
                                results=op.results + results))
        for k, r in zip(slots, results):
            self.set_tangent(op.results[k], r)

    # ------------------------------------------------------------------ the function
    def run(self, name: str) -> Function:
        fn = self.fn
        tparams = []
        for i in self.wrt:
            p = fn.params[i]
            t = Value(f"{p.name}_dot")
            tparams.append(t)
            self.params.add(t)
            if p in self.varied:
                self.set_tangent(p, t)
        self.ops_of(fn.body.ops)
        self.loc = fn.loc
        outs = fn.body.results
        dots = [self.tangent_or_zero(o) for o in outs]
        if len(outs) == 1:
            value, dot = outs[0], dots[0]
        else:
            value = self.emit(prim_of(tuple_of), outs, (), "_out")
            dot = self.emit(prim_of(tuple_of), dots, (), "_out_dot")
        names = tuple(fn.param_names[i] + "_dot" for i in self.wrt)
        body = Block((), tuple(self.ops), (value, dot))
        for op in walk_ops(body):  # symbolic zeros never reach the output
            assert not any(isinstance(o, Zero) for o in op.operands), op
            assert not any(isinstance(o, Zero) for b in op.blocks for o in b.results), op
        assert not any(isinstance(o, Zero) for o in body.results)
        return Function(name, fn.params + tuple(tparams), body, fn.loc, fn.param_names + names,
                        f"Value of {fn.name} and its derivative along ({', '.join(names)}).")


def forward(fn: Function, wrt: tuple[int, ...], facts, name: str | None = None) -> Function:
    """The JVP function of `fn`: `name(*params, *tangents) -> (value, value_dot)`, one
    tangent parameter `<param>_dot` per index in `wrt`."""
    return Forward(fn, wrt, facts).run(name or f"{fn.name}_jvp")


# ------------------------------------------------------------------ helpers


class _NoDummy(Exception):
    pass


def _dot_name(v) -> str:
    name = v.name if isinstance(v, Value) else TEMP
    return TEMP if name.startswith("_") else f"{name}_dot"


def _strip_defaults(prim, kwargs) -> tuple:
    """Drop keyword arguments a template passes on at their default value
    (`np.sum(a_dot, axis=axis, keepdims=keepdims)` with keepdims=False). The defaults
    are read from the primitive's rule templates, which name and default their
    inputs as the primitive does."""
    if not kwargs:
        return kwargs
    params = _rule_params(prim)
    if params is None:
        return kwargs
    out = []
    for k, v in kwargs:
        p = params.get(k)
        if isinstance(v, Const) and not isinstance(v, Zero) and p is not None and \
                p.default is not inspect.Parameter.empty and type(p.default) is type(v.value) \
                and p.default == v.value:
            continue
        out.append((k, v))
    return tuple(out)


def _strip_trailing_defaults(prim, args) -> tuple:
    """Drop trailing positional arguments at their default (`np.transpose(a_dot, None)`)."""
    params = _rule_params(prim)
    if params is None:
        return args
    primal = [p for p in params.values() if not p.name.endswith("_dot")]
    args = list(args)
    while args and len(args) <= len(primal):
        p, v = primal[len(args) - 1], args[-1]
        if not (isinstance(v, Const) and p.default is not inspect.Parameter.empty and
                p.kind == p.POSITIONAL_OR_KEYWORD and type(p.default) is type(v.value) and
                p.default == v.value):
            break
        args.pop()
    return tuple(args)


def _rule_params(prim):
    """The primal parameters of a primitive's rule (named and defaulted as it names
    them): the JVP template's after `ans`, else the VJP template's after `g, ans`."""
    e = registry.entry(prim)
    if e is None or (e.jvp is None and e.vjp is None):
        return None
    rule, skip = (e.jvp, 1) if e.jvp is not None else (e.vjp, 2)
    params = list(inspect.signature(rule).parameters.values())[skip:]
    return {p.name: p for p in params}


def _line(op):
    return (op.loc.filename, op.loc.line) if op.loc is not None else None



def _reads(ops, v: Value) -> bool:
    for op in ops:
        for inner in walk_ops(Block((), (op,), ())):
            if any(o is v for o in inner.operands):
                return True
        for b in op.blocks:
            if any(o is v for o in b.results):
                return True
    return False


__all__ = ["forward", "Forward", "Zero"]
