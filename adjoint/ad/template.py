"""Rule templates lowered into a transform's IR, simplified with shape facts.

A VJP or JVP template is plain Python (see adjoint/rules). The transforms lower it
with the caller's operands bound to its parameters; because the gradient is
specialised on the observed shapes, much of what a template writes for the general
case folds away here:

    np.ndim(g), np.shape(g)            ==>  constants
    unbroadcast(g, x), x of g's shape  ==>  g           (sums written out otherwise)
    expand_to(g, x, axis)              ==>  np.broadcast_to(np.expand_dims(g, axis), shape)
    written(g, i), i a basic index     ==>  save(g, i)  (element(g, i) for one element)
    -(-a * b), 1.0 * g, g + 0          ==>  a * b, g, g
"""
from __future__ import annotations

import operator

import numpy as np

from adjoint import runtime
from adjoint.analysis.shapes import matmul_shape
from adjoint.frontend.lower import _SAFE_FNS, Lowerer
from adjoint.rules.registry import elementwise_ufunc, prim_of
from adjoint.frontend.source import Parsed
from adjoint.ir.core import Call, Const, Global, Value
from adjoint.passes.fold import constant_factor, contraction, keepdims_dropped, simplify, \
    unbroadcast_operand


class TemplateLowerer(Lowerer):
    """Lowers one template; `template` binds "ans" (and "g", a VJP's cotangent)."""

    def __init__(self, parsed: Parsed, facts, template: dict):
        super().__init__(parsed, facts)
        self.template = template
        self._shapes: dict = {}  # shape() of the values it derived a shape for

    def _fold(self, prim, entry, args, kwargs):
        if entry is None or not entry.pure:
            return None
        fn = prim.fn
        if fn in (np.ndim, np.shape, np.size, runtime.size_of) and \
                isinstance(args[0], (Value, Global)) and len(args) == 1:  # a global's is guarded
            shape = self.shape(args[0])  # the gradient is specialised on shapes
            if shape is not None:
                return Const(len(shape) if fn is np.ndim else shape if fn is np.shape
                             else int(np.prod(shape)))
        if fn in (operator.is_, operator.is_not) and isinstance(args[0], Value) and \
                isinstance(args[1], Const) and args[1].value is None:
            k = self.facts.kind(args[0])  # `a_min is None` of an operand seen to be a number
            if k is not None and k.type != "none":
                return Const(fn is operator.is_not)
        if fn is operator.neg:
            flipped = self.unneg(args[0])
            if flipped is not None:
                return flipped
        if fn is runtime.unbroadcast:
            shape, source = self.facts.shape(args[1]), self.shape(args[0])
            if shape is not None and shape == source:
                return args[0]
            if shape is not None and source is not None:
                return self.sum_to(args[0], source, shape)  # x is read for its shape only
        if fn is runtime.zero_to_zero and isinstance(args[1], Const) and \
                type(args[1].value) in (int, float) and args[1].value != 0:
            return Const(False)  # only ever an exponent's correction, which keeps x's shape
        if fn is runtime.expand_to:
            folded = self.expand(args, dict(kwargs))
            if folded is not None:
                return folded
        if fn is runtime.written and basic_index(args[1], self.facts):
            return self.emit(prim_of(runtime.save), args)  # no index repeats a position
        if fn is runtime.save and self.shape(
                self.emit_shape_probe(args)) == ():
            return self.emit(prim_of(runtime.element), args)  # one element: already a copy
        if not any(self._not_float(a) for a in args):
            simpler = simplify(fn, args, self.defs)
            if simpler is not None:
                return simpler
            factor = constant_factor(fn, args, self.defs)
            if factor is not None:
                c, x = factor
                return x if c == 1 else self.emit(prim, (Const(c), x))
            rewritten = self._fold_broadcasts(prim, args, kwargs)
            if rewritten is not None:
                return rewritten
        return super()._fold(prim, entry, args, kwargs)

    def _not_float(self, o) -> bool:
        """A bool or int operand: `mask * 1` or `n * 1.0` changes its type, so it stays."""
        k = self.facts.kind(o) if isinstance(o, Value) else None
        if k is not None and (k.type in ("bool", "int") or (
                k.type == "ndarray" and k.dtype in ("b", "i", "u"))):
            return True
        op = self.defs.get(o) if isinstance(o, Value) else None
        return op is not None and op.prim.fn in _SAFE_FNS  # a comparison

    def _fold_broadcasts(self, prim, args, kwargs):
        """Broadcasts that NumPy would do by itself, and sums that are matrix products
        (see passes.fold)."""
        fn = prim.fn
        plan = unbroadcast_operand(fn, args, self.defs, self.shape)
        if plan is not None and plan[0] == "args":
            return self.emit(prim, plan[1])
        if plan is not None:
            return self.emit(prim_of(np.broadcast_to), (self.emit(prim, plan[1]), Const(plan[2])))
        if fn is np.reshape:
            dropped = keepdims_dropped(args, self.defs, self.shape)
            if dropped is not None:
                return self.emit(prim_of(np.sum), (dropped[0],), (("axis", Const(dropped[1])),))
        if fn is np.sum:
            pair = contraction(args, kwargs, self.defs, self.shape)
            if pair is not None:
                return self.emit(prim_of(operator.matmul), pair)
        return None

    def shape(self, o, depth: int = 0):
        """The static shape of an operand inside a rule template, if known.

        A template's cotangent `g` has the shape of `ans`; `g[i]` and `save(g, i)`
        have the shape of the indexed region; elementwise results broadcast. A value
        observed has its observed shape; the walk up the definitions stops after a few
        steps (a long straight-line function would otherwise be walked to its start for
        every rule, and past Python's recursion limit): unknown is always safe."""
        if o is self.template.get("g"):
            return self.facts.shape(self.template["ans"])
        known = self.facts.shape(o)
        call = self.defs.get(o) if isinstance(o, Value) else None
        if known is not None or call is None or depth > 16:
            return known
        if o not in self._shapes:  # x * x: each operand once
            self._shapes[o] = self._derived_shape(call, depth + 1)
        return self._shapes[o]

    def _derived_shape(self, call: Call, up: int):
        if call.prim.fn in (operator.getitem, runtime.save, runtime.element):
            return _indexed_shape(self.shape(call.args[0], up), call.args[1], self.facts)
        if call.prim.fn is np.broadcast_to and isinstance(call.args[1], Const):
            s = call.args[1].value
            return (s,) if isinstance(s, int) else tuple(s)
        if call.prim.fn is operator.matmul:
            a, b = (self.shape(x, up) for x in call.args)  # a contraction, not a broadcast
            return matmul_shape(a, b) if a is not None and b is not None else None
        if (call.prim.style in ("infix", "prefix") and call.prim.precedence >= 10) or \
                (elementwise_ufunc(call.prim.fn) and not call.kwargs) or \
                (call.prim.fn is np.where and len(call.args) == 3):
            shapes = [self.shape(a, up) for a in call.args]
            if all(s is not None for s in shapes):
                try:
                    return np.broadcast_shapes(*shapes)
                except ValueError:
                    return None
        return None

    def expand(self, args, kwargs):
        """`expand_to(g, x, axis, keepdims)` with x's shape known: x is read for its shape
        only, so write the broadcast out and let x go (it need not be kept)."""
        g, x = args[0], args[1]
        axis = args[2] if len(args) > 2 else kwargs.get("axis", Const(None))
        keep = args[3] if len(args) > 3 else kwargs.get("keepdims", Const(False))
        shape = self.shape(x)
        if shape is None or not isinstance(axis, Const) or not isinstance(keep, Const):
            return None
        if axis.value is not None and not keep.value:
            g = self.emit(prim_of(np.expand_dims), (g, axis))
        return self.emit(prim_of(np.broadcast_to), (g, Const(shape)))

    def sum_to(self, g, source: tuple, shape: tuple):
        """`unbroadcast(g, x)` with both shapes known: the sums written out."""
        lead = len(source) - len(shape)
        if lead < 0:
            return None
        kept = tuple(i + lead for i, n in enumerate(shape) if n == 1 and source[i + lead] != 1)
        if kept:
            g = self.emit(prim_of(np.sum), (g,), (("axis", Const(kept if len(kept) > 1 else
                                                                kept[0])),
                                              ("keepdims", Const(True))))
        if lead:
            g = self.emit(prim_of(np.sum), (g,), (("axis", Const(
                tuple(range(lead)) if lead > 1 else 0)),))
        return g

    def unneg(self, o):
        """An operand equal to `-o` without a negation, if `o`'s leftmost factor is one:
        `-(-a * b / c)` is `a * b / c`."""
        if isinstance(o, Const) and type(o.value) in (int, float):
            return Const(-o.value)
        call = self.defs.get(o) if isinstance(o, Value) else None
        if call is None:
            return None
        if call.prim.fn is operator.neg:
            return call.args[0]
        if call.prim.fn in (operator.mul, operator.truediv):
            inner = self.unneg(call.args[0])
            if inner is not None:
                return self.emit(call.prim, (inner, call.args[1]))
        return None

    def emit_shape_probe(self, args):
        """A stand-in operand whose shape is that of `args[0][args[1]]`."""
        probe = Value("_probe")
        self.defs[probe] = Call(prim_of(operator.getitem), tuple(args), probe)
        return probe


def basic_index(index, facts) -> bool:
    """An int, a slice, or a tuple of them: no position is indexed twice, so
    `x_bar[i] += g` accumulates correctly and `x[i] = v` keeps every write."""
    if isinstance(index, Const):
        if isinstance(index.value, str):
            return True  # a dict's key
        parts = index.value if isinstance(index.value, tuple) else (index.value,)
        return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)
    k = facts.kind(index)
    return k is not None and (k.type in ("int", "str") or (k.type == "tuple" and k.dtype == "i"))


def _indexed_shape(shape, index, facts):
    """The shape of `a[index]` for `a` of `shape`, when the index is simple enough."""
    if shape is None:
        return None
    if isinstance(index, Const):
        try:
            return np.empty(shape)[index].shape
        except (IndexError, TypeError, ValueError):
            return None
    k = facts.kind(index)
    if k is None:
        return None
    if k.type == "int" and shape:
        return shape[1:]
    if k.type == "tuple" and k.dtype == "i" and k.shape and k.shape[0] <= len(shape):
        return shape[k.shape[0]:]
    return None
