"""`+` and `*` on lists and tuples build sequences; they are not arithmetic.

Lowering cannot tell `a + b` of numbers from `a + b` of lists: both are an `add`.
The observed kinds can, so before differentiating, an `add` of two lists (or two
tuples) becomes a `concat`, whose adjoint splits the cotangent in two, and a `mul`
of a sequence and an int becomes a `repeat`, whose adjoint sums the copies:

    %l_1 = add(%l, %_t)       ==>     %l_1 = concat(%l, %_t)

Without an observed call (the generic code `adjoint emit` writes without --args), a
value built as a list or tuple display, or carried or extended from one, is known to
be a sequence by construction. Python raises for a sequence added to anything else,
so one operand known to be a sequence is enough.

`x.shape` (and x.T, .size, .ndim, .real, .imag, .flat) is lowered as `attribute(x,
'shape')` too, and made a field of that name where x was seen to be a namedtuple or a
dataclass (Gamma(shape, rate).shape), the array attribute's NumPy function elsewhere.
"""
from __future__ import annotations

import operator
import weakref
from dataclasses import replace

from adjoint import runtime
from adjoint.errors import UnsupportedError
from adjoint.rules.registry import prim_of
import numpy as np

from adjoint.ir.core import (Block, Call, Const, For, Function, Global, If, Value, While,
                             map_blocks, walk_ops)
from adjoint.rules.arith import unsum
from adjoint.rules.reductions import no_zeros
from adjoint.rules.structure import ARRAY_ATTRIBUTES, and_, attribute, field, in_, list_of, \
    not_in, or_, replaced, sequence, tolist, tuple_of
from adjoint.rules.tape import iadd, iadd_at, tape_pop, tape_push


# (x.tolist() and sorted(xs) make lists; a 0-d array's tolist() is a number, which
# generic code then reads as a list: `+` and `*` of it run, their cotangents raise)
_SEQUENCES = {tuple_of: "tuple", list_of: "list", runtime.index_tuple: "tuple", tolist: "list"}
# the reverse sweep's helpers: a cotangent, which `+` adds (a list's is an array, or
# runtime.Cotangents, whose `+` adds entry by entry)
_COTANGENTS = {runtime.unbroadcast, runtime.sum_to, runtime.expand_to, runtime.zeros_like,
               runtime.accum, runtime.add_at, runtime.unrepeat, runtime.unsequence, unsum,
               runtime.zero_outside, iadd, iadd_at}
# the rules' own helpers: arrays or numbers, as the NumPy functions they stand for
_RULE_HELPERS = {runtime.abs_slope, runtime.larger_share, runtime.tie_weights,
                 runtime.zero_to_zero, runtime.ones_at_zeros}
_INTS = {len, int, round, bool, np.ndim, np.size, operator.floordiv, operator.mod,
         operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne,
         operator.is_, operator.is_not, operator.not_, in_, not_in}
# NumPy functions whose result is a tuple or a list (every other one gives an array or a
# NumPy scalar, which `+` and `*` treat as numbers, converting a list they meet)
_NUMPY_SEQUENCES = {np.shape, np.nonzero, np.split, np.array_split, np.hsplit, np.vsplit,
                    np.dsplit, np.meshgrid, np.gradient, np.histogram, np.histogram2d,
                    np.histogramdd, np.broadcast_arrays, np.atleast_1d, np.atleast_2d,
                    np.atleast_3d, np.unravel_index, np.diag_indices, np.diag_indices_from,
                    np.tril_indices, np.triu_indices, np.tril_indices_from,
                    np.triu_indices_from, np.mask_indices, np.unique, np.ix_, np.where,
                    np.polyfit, np.indices, np.linalg.eig, np.linalg.eigh, np.linalg.svd,
                    np.linalg.qr, np.linalg.slogdet, np.linalg.lstsq}

# NumPy functions whose result is an array or a tuple of arrays: an entry taken at an int
# (`u, s, vt = np.linalg.svd(x)`, a row where the result is one array) is a number to `*`
_ARRAY_TUPLES = {np.linalg.eig, np.linalg.eigh, np.linalg.svd, np.linalg.qr}

# NumPy functions whose first operand is a sequence of arrays, read as such: every other
# NumPy function converts its first operand (a ufunc, every operand) with np.asarray
_TAKES_SEQUENCES = {np.stack, np.concatenate, np.hstack, np.vstack, np.dstack,
                    np.column_stack, np.block, np.linalg.multi_dot, np.select, np.einsum,
                    np.broadcast_arrays, np.meshgrid, np.array, np.asarray, np.asanyarray,
                    np.ascontiguousarray, np.piecewise, np.lexsort, np.ix_, np.choose,
                    *((np.concat,) if hasattr(np, "concat") else ())}


def sequence_operands(op: Call, facts) -> set:
    """The operands of a NumPy call that runs saw as lists or tuples (a namedtuple of
    arrays too): NumPy stacks them into one array, and a rule must read them that way
    (`2.0 * x`, `-x`, `x >= lo` of a list raise or repeat it), so they are bound to
    the rules as np.asarray(x), with their tangents."""
    fn = op.prim.fn
    if isinstance(fn, np.ufunc):
        operands = op.args
    elif _numeric(fn) and fn not in _TAKES_SEQUENCES and op.args:
        operands = op.args[:1]
    else:
        return set()
    types = getattr(facts, "types", None)
    return {o for o in operands if isinstance(o, Value) and types is not None and
            types(o) and types(o) <= {"list", "tuple"}}


def _category(types: set):
    """list, tuple, int (an int, or a number that may be one) or num (any other value,
    which `+` and `*` never join or repeat) from the types a value was seen with."""
    if types & {"list", "tuple"}:
        return types.pop() if len(types) == 1 else None
    if not types:
        return None
    return "int" if types & {"int", "bool"} else "num"


def _join(a, b):
    """The category of a value that is a or b (an if's two sides, a loop's carry)."""
    if a is _CYCLE or a == b:
        return b
    if b is _CYCLE:
        return a
    return "int" if {a, b} == {"int", "num"} else None


_CYCLE = object()  # a loop's carried value met again: no evidence either way


def joined(cats):
    """The category of a value that is any of `cats` (None: nothing is known)."""
    if not cats:
        return None
    cats = list(cats)
    out = cats[0]
    for k in cats[1:]:
        out = _join(out, k)
    return out


def _numeric(fn) -> bool:
    """A NumPy function or ufunc whose result is an array or a NumPy scalar."""
    if isinstance(fn, np.ufunc):
        return fn.nout == 1
    module = getattr(fn, "__module__", None) or ""
    return module.split(".")[0] == "numpy" and fn not in _NUMPY_SEQUENCES


# `+` and `*` ops judged arithmetic: a checkpointed loop's body, made a function of its
# own (ad/checkpoint.py), is differentiated again with what its parameters were cut off
# from (so nothing may be known of them), and is not judged twice
_JUDGED: "weakref.WeakSet[Call]" = weakref.WeakSet()


def resolve_attributes(fn: Function, facts) -> Function:
    """`attribute(x, 'shape')` (`x.shape`, `x.T`...) becomes a field where x was seen to
    be a namedtuple or a dataclass only (Gamma(shape, rate).shape: its gradient was
    dropped as the array attribute's), else the array attribute's NumPy function (also
    in generic code, which has no kinds). Generic code reads a field where x is built as
    a record in f, and refuses the attribute where f builds records with a field of that
    name (a parameter's are checked when the gradient is called: driver's
    with_real_check)."""
    generic = not getattr(facts, "kinds", None)
    made = {op.result: op for op in walk_ops(fn.body) if isinstance(op, Call)}
    built = set()  # the field names of the records f builds
    for op in made.values():
        cls = op.prim.fn
        built.update(getattr(cls, "_fields", None) or getattr(cls, "__dataclass_fields__", ()))

    def one(op):
        if op.blocks:
            return map_blocks(op, block)
        if not (isinstance(op, Call) and op.prim.fn is attribute):
            return op
        x, name = op.args
        types = facts.types(x) if hasattr(facts, "types") else set()
        maker = made.get(x)
        while maker is not None and maker.prim.fn is replaced:  # back to the class's call
            maker = made.get(maker.args[0])
        fields = None if maker is None else getattr(maker.prim.fn, "_fields", None) or \
            getattr(maker.prim.fn, "__dataclass_fields__", None)
        if generic and fields is not None and name.value not in fields:
            raise UnsupportedError(
                f"`.{name.value}` of a {maker.prim.name} is not one of its fields (a property "
                f"or a method, computed by code adjoint does not differentiate)", op.loc,
                f"compute it in the function from the fields ({', '.join(fields)})")
        if types and types <= {"tuple", "record"} or generic and fields is not None:
            return replace(op, prim=prim_of(field))
        if generic and name.value in built:
            raise UnsupportedError(
                f"`.{name.value}` of a value whose type is known only when f runs, where f "
                f"builds a namedtuple or dataclass with a field `{name.value}`: the field or "
                f"the array attribute", op.loc,
                "generate the gradient for example arguments (adjoint emit ... --args ...)")
        if types & {"tuple", "record"}:  # a loop's namedtuple on one trip, array on the next
            raise UnsupportedError(
                f"`.{name.value}` of a value seen both as a namedtuple or dataclass and as "
                f"another type: a field on some calls, the array attribute on others",
                op.loc, "give the values one type, or read the field by position")
        return replace(op, prim=prim_of(ARRAY_ATTRIBUTES[name.value]), args=(x,))

    def block(b: Block) -> Block:
        return replace(b, ops=tuple(one(op) for op in b.ops))

    return replace(fn, body=block(fn.body))


def sequence_ops(fn: Function, facts) -> Function:
    fn = resolve_attributes(fn, facts)
    concat, repeat = prim_of(runtime.concat), prim_of(runtime.repeat)
    observed = bool(getattr(facts, "kinds", None))

    made = {op.result: op for op in walk_ops(fn.body) if isinstance(op, Call)}
    sources = {}  # a merged value (an if's result, a loop's carry) -> what it may be
    walked = {}  # a for loop's target -> what it walks
    for op in walk_ops(fn.body):
        if isinstance(op, If):
            for r, a, b in zip(op.results, op.then.results, op.orelse.results):
                sources[r] = (a, b)
        elif isinstance(op, (For, While)):
            args = op.body.args[1:] if isinstance(op, For) else op.body.args
            for i, (a, init, out) in enumerate(zip(args, op.inits, op.body.results)):
                sources[a] = sources[op.results[i]] = (init, out)
                if isinstance(op, While):
                    sources[op.cond.args[i]] = (init, out)
            if isinstance(op, For):
                walked[op.body.args[0]] = op.iter
    pushes = {}  # a tape (as tape_new made it) -> the values each push saved

    def roots(tape, seen=()) -> set:
        """The tapes `tape` may be: carried by loops, or either side of an `if` (a tape
        made on each path of an early return)."""
        if tape in seen:
            return set()
        if tape not in sources:
            return {tape}
        return set().union(*(roots(t, seen + (tape,)) for t in sources[tape]))

    def saved_on(tape) -> list:
        return [p for r in roots(tape) for p in pushes.get(r, [])]

    for op in walk_ops(fn.body):
        if isinstance(op, Call) and op.prim.fn is tape_push:
            for r in roots(op.args[0]):
                pushes.setdefault(r, []).append(op.args[1:])

    def types(o) -> set:
        """The types runs saw `o` with (a tuple that grows in a loop has no one shape)."""
        if hasattr(facts, "types"):
            return set(facts.types(o))
        k = facts.kind(o)
        return {k.type} if k is not None else set()

    def kind(o, op):
        seen = types(o)
        if len(seen) > 1 and seen & {"list", "tuple"}:
            raise UnsupportedError(
                f"an operand of `{op.prim.name}` was a {' and then a '.join(sorted(seen))}: "
                "adding sequences concatenates them, adding numbers sums them", op.loc,
                "keep each variable one type")
        return _category(seen) if seen else static(o)

    def static(o, seen=()):
        """What `o` is by construction, where no run showed it (a branch the call that
        compiled did not take, a kind forgotten, generic code): `(x, y) + (z,)` is a
        tuple, `L = [0, 0]; L[0] = x` a list, `np.sum(x) * 2` a number."""
        if isinstance(o, (Const, Global)):
            v = o.value
            if v is None:  # a name one path leaves unbound: were it used, Python would raise
                return _CYCLE
            if isinstance(v, (list, tuple)):
                return type(v).__name__ if type(v) in (list, tuple) else "tuple"
            return "int" if isinstance(v, (int, np.integer)) else "num"
        if o in seen:
            return _CYCLE
        seen = seen + (o,)
        if types(o):
            return _category(types(o))
        if o in sources:
            a, b = sources[o]
            return _join(static(a, seen), static(b, seen))
        if o in walked:  # `for i in range(n)`: an int; an array's rows: numbers; a
            it = static(walked[o], seen)  # list's entries: what was put in it
            src = made.get(walked[o])
            if src is not None and src.prim.fn is range:
                return "int"
            return "num" if it == "num" else \
                joined(elements(walked[o], seen)) if it in ("list", "tuple") else None
        op = made.get(o)
        if op is None:
            return None
        f, args = op.prim.fn, op.args
        if f is tape_pop:  # what was pushed: one value, or a tuple of several
            saved = saved_on(args[0])
            if not saved or any(len(p) != 1 for p in saved):
                return "tuple" if saved else None
            return joined([static(p[0], seen) for p in saved])
        if f in _COTANGENTS or f in _RULE_HELPERS:
            return "num"
        if f in _SEQUENCES or f is np.shape:
            return _SEQUENCES.get(f, "tuple")
        if f is replaced or hasattr(f, "_fields"):  # a namedtuple, built or rebuilt
            return "tuple"
        if f in (operator.add, operator.mul, runtime.concat, runtime.repeat):
            return decide(op, *(static(a, seen) for a in args[:2]))[1]
        if f in (runtime.setitem, runtime.append, runtime.add_at):
            return static(args[0], seen) if f is not runtime.append else "list"
        if f in (and_, or_):
            return _join(static(args[0], seen), static(args[1], seen))
        if f in (runtime.private, sequence):  # `z.copy()`, a walk's list: what it holds
            return static(args[0], seen)
        if f in (runtime.zeros_tangent, no_zeros):  # a zero like its operand; v, checked
            return static(args[0], seen)
        if f in (operator.getitem, runtime.element):
            return element(args[0], args[1], seen)
        if f in _INTS:
            return "int"
        if f is sum and len(args) == 1 or f is abs or f in (min, max) and len(args) == 2:
            kinds = {static(a, seen) for a in args}  # a sum starts at the int 0
            return "num" if kinds == {"num"} else "int"
        if f is float or op.prim.style in ("infix", "prefix") or _numeric(f) or \
                op.prim.name.startswith("math."):
            # Python's other operators take no sequence; an int may come of them
            return "num" if f in (float, operator.truediv) or _numeric(f) and \
                f not in (np.ndim, np.size) else "int"
        return None

    def element(c, index, seen):
        """What `c[index]` is: a slice of a sequence is one, an array's entry a number."""
        container = static(c, seen)
        if container == "num":
            return "num"
        src = made.get(c)
        if src is not None and src.prim.fn in _ARRAY_TUPLES and isinstance(index, Const) and \
                type(index.value) is int:  # `u, s, vt = np.linalg.svd(x)`: an array
            return "num"
        if container not in ("list", "tuple"):
            return None
        src = made.get(index)
        if isinstance(index, Const) and isinstance(index.value, slice) or \
                src is not None and src.prim.fn is slice:
            return container
        src = made.get(c)
        if src is not None and src.prim.fn is tape_pop and isinstance(index, Const) and \
                type(index.value) is int:  # one of several values a push saved
            saved = saved_on(src.args[0])
            if saved and all(len(p) > index.value for p in saved):
                return joined([static(p[index.value], seen) for p in saved])
        return joined(elements(c, seen))

    def elements(c, seen) -> set | None:
        """The categories of the entries of the sequence `c`, where each is known."""
        if isinstance(c, Const) and c.value is None:
            return set()
        if isinstance(c, Const):
            return {static(Const(e)) for e in c.value} if isinstance(
                c.value, (list, tuple)) else None
        if c in seen:
            return set()
        seen = seen + (c,)
        k = facts.kind(c) if isinstance(c, Value) else None
        if k is not None and k.type in ("list", "tuple") and k.shape is not None and \
                len(k.shape) == 1:
            return {"int" if k.dtype == "i" else "num"}  # np.shape saw numbers only
        if c in sources:
            parts = [elements(a, seen) for a in sources[c]]
            return None if None in parts else parts[0] | parts[1]
        op = made.get(c)
        if op is None:
            return None
        f, args = op.prim.fn, op.args
        if f is np.shape:
            return {"int"}
        if f in (tuple_of, list_of):
            return {static(a, seen) for a in args} - {None} if None not in {
                static(a, seen) for a in args} else None
        if f in (operator.add, runtime.concat, operator.mul, runtime.repeat):
            parts = [elements(a, seen) for a in args[:2]
                     if static(a, seen) in ("list", "tuple")]
            return None if not parts or None in parts else set().union(*parts)
        if f in (runtime.private, sequence):
            return elements(args[0], seen)
        if f in (runtime.setitem, runtime.append):
            inner, new = elements(args[0], seen), static(args[-1], seen)
            return None if inner is None or new is None else inner | {new}
        return None

    def decide(op, a, b):
        """(the op `+` or `*` is, the category of its result): concat, repeat, add or
        mul; None where a and b do not tell."""
        seqs = ("list", "tuple")
        if a is _CYCLE or b is _CYCLE:  # a loop's `t = t + (v,)`, `s = s * 2`
            other = b if a is _CYCLE else a
            if op.prim.fn in (operator.add, runtime.concat) and other is not _CYCLE:
                return None, other  # t is what it is added to (Python raises otherwise)
            return None, "num" if other == "num" else _CYCLE  # `L * 2` keeps L a list
        if op.prim.fn in (operator.add, runtime.concat):
            if a in seqs or b in seqs:
                other = b if a in seqs else a
                if other in seqs or other is None and not observed:
                    return "concat", a if a in seqs else b  # L += (v,) extends the list
                if other is None:
                    return None, None  # an array would add to the list, entry by entry
                return "add", "num"
            if a is None and b is None:
                return None, None
            return "add", "int" if a == b == "int" else "num"  # a number added to a list raises
        if a in seqs or b in seqs:
            seq, other = (a, b) if a in seqs else (b, a)
            if other == "int" or other is None and not observed:
                return ("repeat" if other == "int" else "mul"), seq if other == "int" else None
            if other is None:
                return None, None
            return "mul", "num"
        if "num" in (a, b):
            return "mul", "num"
        if a is None or b is None:
            return None, None
        return "mul", "int"

    def one(op):
        if isinstance(op, Call) and op.prim.fn in (operator.add, operator.mul) and \
                not op.kwargs and len(op.args) == 2 and op not in _JUDGED:
            a, b = (kind(x, op) for x in op.args)
            how, _ = decide(op, a, b)
            if how == "concat":
                return replace(op, prim=concat)
            if how == "repeat":
                return replace(op, prim=repeat) if b == "int" else \
                    replace(op, prim=repeat, args=op.args[::-1])
            if how is None and observed:
                verb = "joins sequences or adds numbers" if op.prim.fn is operator.add \
                    else "repeats a sequence or multiplies numbers"
                raise UnsupportedError(
                    f"cannot tell whether this `{op.prim.symbol}` {verb}: the call that "
                    "compiled the function did not run this line (or reached it on a path "
                    "later calls may not take), and its operands' types do not follow "
                    "from how they were made", op.loc,
                    "say which: np.asarray(...) or float(...) for numbers, list(...) for "
                    "a list; or compile with arguments that run this line")
            _JUDGED.add(op)
            return op
        return map_blocks(op, block)

    def block(b: Block) -> Block:
        return replace(b, ops=tuple(one(op) for op in b.ops))

    return replace(fn, body=block(fn.body))
