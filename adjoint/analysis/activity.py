"""Activity analysis: which values need an adjoint.

A value is *active* when it depends on a differentiated input (varied), reaches
the output (useful), and can hold a gradient at all (not an int, bool or
integer array). Only active values get an `_bar`; everything else is plain
forward computation.

A value computed from a varied one is dropped for one of two stated reasons
only: its op is registered as non-differentiable, or it was observed to hold
ints or bools (an int, a bool, an integer or boolean array, a tuple of ints)
and nothing that flows into it is a varied float. That second condition matters
because one run sees one path: `best = 0` then `best = max(best, v)` holds an
int while every v is negative, and a float on the next call.
Anything else, a namedtuple from an unknown function or an object of a kind
the compiler has no name for included, stays active, so that a gradient
reaching an op without a rule raises instead of being read as zero. The max that stabilises a log-sum-exp is never active: its
derivative cancels exactly (see stabilizers.py).
"""
from __future__ import annotations

import operator

import numpy as np

from adjoint import runtime
from adjoint.analysis.stabilizers import invariant_shifts
from adjoint.errors import NonDifferentiableError, UnsupportedError
from adjoint.ir.core import Block, Call, Const, For, Function, Global, If, Value, While, walk_ops
from adjoint.rules import registry
from adjoint.rules.complex import COMPLEX_MAKERS, COMPLEX_RULES, COMPLEX_SAFE


def _passes(op: Call) -> bool:
    e = registry.entry(op.prim)  # (np.imag has no derivative in a real operand, but its
    return e is None or not e.nondiff or op.prim.fn in COMPLEX_RULES  # complex one's)


def discrete(k) -> bool:
    """Was the value observed to hold only ints or bools (or nothing: None, a range)?
    Not `Kind.floating`, which names a few container kinds: a namedtuple such as
    slogdet's result is a tuple of floats under another type name."""
    if k is None:
        return False
    if k.type in ("int", "bool", "range", "none"):
        return True
    if k.type == "ndarray":
        return k.dtype in ("i", "u", "b")
    return k.dtype == "i" and k.type not in ("float", "complex")  # a tuple or list of ints


_BITWISE = ("bitand", "bitor", "bitxor", "lshift", "rshift", "invert")


def _empty(k) -> bool:
    """A list or tuple observed with no element, or whose length the data decides (its
    length forgotten): what it held here tells nothing of another call's elements."""
    return k is not None and k.type in ("list", "tuple") and (k.shape is None or 0 in k.shape)


def _tape_flow(op: Call):
    """A tape carries values from its pushes to its pops: (into, out of) for activity."""
    if op.prim.style == "tape_push":
        return op.args[1:], op.args[0]  # pushed values -> the tape
    if op.prim.style == "tape_pop":
        return (op.args[0],), op.result  # the tape -> the popped value
    return None


def varied(fn: Function, wrt: tuple[int, ...], kinds) -> set[Value]:
    """Values that depend (differentiably) on the parameters at positions `wrt`."""
    out = {fn.params[i] for i in wrt}
    shifts = invariant_shifts(fn)  # a log-sum-exp's max: its derivative is exactly zero

    generic = not getattr(kinds, "kinds", True)  # no call observed: no kinds to tell dtypes
    dtypes = array_dtypes(fn, wrt) if generic else {}
    made_complex = complex_values(fn)

    def floating(v: Value) -> bool:
        return v not in shifts and not discrete(kinds.kind(v)) and dtypes.get(v) != "int"

    def block(b: Block) -> bool:
        changed = False
        for op in b.ops:
            if isinstance(op, Call):
                flow = _tape_flow(op)
                if flow is not None:
                    sources, target = flow
                    if target not in out and any(o in out for o in sources):
                        out.add(target)
                        changed = True
                elif op.prim.name in _BITWISE and any(o in out for o in op.operands) and \
                        not discrete(kinds.kind(op.result)):
                    # `p | q` of dicts: a merge, which the registry's `|` of ints is not
                    raise NonDifferentiableError(
                        f"`{op.prim.symbol.strip()}` of a differentiated value that is not an "
                        "int or a bool (a dict merge?) is not differentiable here", op.loc,
                        "merge a dict display into it (q = p | {'w': w2}), or copy and write: "
                        "q = p.copy(); q['w'] = w2")
                elif op.result not in out and _passes(op) and any(o in out for o in op.operands) \
                        and (floating(op.result) or _selects(op, out, floating) or any(
                            o in out and (not floating(o) or _empty(kinds.kind(o)))
                            for o in op.operands)):
                    # (the last: arithmetic on a varied value this run saw as an int, or
                    # on a container it saw empty: sum([]) is the int 0, sum([v]) a float)
                    if generic or op.prim.fn not in COMPLEX_SAFE or \
                            op.prim.fn in (operator.pow, np.power) and op.args[1] in out:
                        # (x ** y's rule in y masks log(x) to x > 0: for real x only)
                        _refuse_complex(op, kinds, made_complex)
                    elif any(o in getattr(kinds, "complex_seen", ()) and not
                             _is_complex_kind(kinds.kind(o)) for o in op.operands):
                        raise NonDifferentiableError(
                            "a value seen complex that may be real on another trip, "
                            "branch or call (its kind is not one): which rule applies "
                            "is not known", op.loc, "make it complex on every path (x + 0j)")
                    if generic:
                        _refuse_truncating_write(op, dtypes, out)
                    out.add(op.result)
                    changed = True
                continue
            # region ops: iterate to a fixpoint, since loops feed values back
            while True:
                inner = False
                if isinstance(op, If):
                    inner |= block(op.then) | block(op.orelse)
                    pairs = list(zip(op.results, op.then.results)) + list(
                        zip(op.results, op.orelse.results))
                    inner |= _flow(pairs, out)
                elif isinstance(op, For):
                    pairs = list(zip(op.body.args[1:], op.inits)) + list(
                        zip(op.body.args[1:], op.body.results))
                    inner |= _flow(pairs, out)
                    inner |= block(op.body)
                    inner |= _flow(pairs, out)
                    inner |= _flow(list(zip(op.results, op.body.results)) +
                                   list(zip(op.results, op.inits)), out)
                elif isinstance(op, While):
                    pairs = list(zip(op.body.args, op.inits)) + list(
                        zip(op.body.args, op.body.results))
                    inner |= _flow(pairs, out)
                    inner |= _flow(list(zip(op.cond.args, op.body.args)), out)
                    inner |= block(op.cond) | block(op.body)
                    inner |= _flow(pairs, out)
                    inner |= _flow(list(zip(op.results, op.body.results)) +
                                   list(zip(op.results, op.inits)), out)
                changed |= inner
                if not inner:
                    break
        return changed

    block(fn.body)
    return out


_CONSTRUCTORS = ("arange", "zeros", "ones", "empty", "full", "array", "asarray")
_LIKE = ("zeros_like", "ones_like", "empty_like", "full_like")
_SAME = ("private", "np.copy", "np.array", "np.asarray", "np.ascontiguousarray", "pos",
         "neg", "np.negative", "np.reshape", "np.ravel", "np.transpose", "np.squeeze",
         "np.expand_dims", "np.flip", "np.roll", "np.tile", "np.repeat", "np.concatenate",
         "np.stack", "np.abs", "np.absolute", "np.maximum", "np.minimum", "np.clip",
         "np.where", "add", "sub", "mul", "pow", "mod", "matmul", "np.dot", "np.sum",
         "np.cumsum", "floordiv")
_FLOATS = ("truediv", "np.true_divide", "np.mean", "np.sqrt", "np.exp", "np.log", "np.sin",
           "np.cos", "np.tan", "np.tanh", "np.sinh", "np.cosh", "np.arctan", "np.arcsin",
           "np.arccos", "np.log1p", "np.expm1", "np.linspace")


def array_dtypes(fn: Function, wrt: tuple[int, ...]) -> dict[Value, str]:
    """Generic code (no call observed): "int", "float" or "container" for the values
    whose type is known by construction. `np.zeros(n, dtype=int)`, `np.arange(3)`,
    their copies, their sums and a loop that carries one are ints; `np.zeros(n)`, a
    transcendental's result, anything mixed with a float and the differentiated
    parameters are floats. A value not in the map (a parameter not differentiated, an
    element of a list) may be either."""
    out: dict[Value, str] = {p: "?" for p in fn.params}  # "?": not known
    out.update({fn.params[i]: "float" for i in wrt})

    def of(o):  # None: not reached yet (a loop's value before its carry is joined)
        if isinstance(o, Const):
            v = o.value
            return "float" if isinstance(v, float) else "int" if isinstance(v, (int, bool)) \
                else "float" if _all_floats(v) else "int" if _all_ints(v) else "?"
        return out.get(o)

    def made(op: Call):
        name = op.prim.name
        short = name.split(".")[-1]
        dtype = dict(op.kwargs).get("dtype")
        if dtype is not None:
            given = dtype.value if isinstance(dtype, (Const, Global)) else None
            return "?" if given is None else "int" if _integer_dtype(given) else \
                "float" if _float_dtype(given) else "?"
        numpy = getattr(op.prim.fn, "__module__", None) == "numpy"
        if numpy and short in ("zeros", "ones", "empty"):
            return "float"
        if numpy and short in _LIKE:  # full_like(a, 0.5) has a's dtype too
            return of(op.args[0])
        if numpy and short == "full":
            return of(op.args[1]) if len(op.args) > 1 else "?"
        if numpy and short == "arange":
            return _join([of(a) for a in op.args])
        if name in _FLOATS:
            return "float"
        if name in _SAME or numpy and short in ("array", "asarray"):
            return _join([of(a) for a in op.args if not isinstance(a, Const) or
                          isinstance(a.value, (int, float))])
        if op.prim.style == "setitem":
            return of(op.args[0])
        if op.prim.style in ("list", "dict", "append"):
            return "container"
        if name == "getitem" and isinstance(op.args[1], Const) and \
                isinstance(op.args[1].value, slice) and of(op.args[0]) == "container":
            return "container"  # a list's slice is a list
        return "?"

    def update(v, got) -> bool:
        if got is None or out.get(v) == got:
            return False
        out[v] = got
        return True

    def carry(pairs) -> bool:
        groups: dict = {}
        for r, x in pairs:
            groups.setdefault(r, []).append(of(x))
        return any([update(r, _join(xs)) for r, xs in groups.items()])

    changed = True
    while changed:
        changed = False
        for op in walk_ops(fn.body):
            if isinstance(op, Call):
                changed |= update(op.result, made(op))
            elif isinstance(op, If):
                changed |= carry([(r, y) for b in (op.then, op.orelse)
                                  for r, y in zip(op.results, b.results)])
            else:
                args = op.body.args[1:] if isinstance(op, For) else op.body.args
                changed |= carry([(a, x) for a, x in zip(args, op.inits)] +
                                 [(a, y) for a, y in zip(args, op.body.results)] +
                                 [(r, y) for r, y in zip(op.results, op.body.results)] +
                                 [(r, x) for r, x in zip(op.results, op.inits)])
    return {v: t for v, t in out.items() if t != "?"}


def _join(dtypes: list):
    """Over the values reached so far (None: not yet): all ints: int; a float among
    numbers: float; all lists or dicts: container; anything not known: "?"."""
    kinds = {t for t in dtypes if t is not None}
    if not kinds:
        return None
    if "?" in kinds or "container" in kinds and len(kinds) > 1:
        return "?"
    return "float" if "float" in kinds else kinds.pop()


def _float_dtype(t) -> bool:
    try:
        return np.dtype(t).kind in "fc"
    except TypeError:
        return False


def _all_floats(x) -> bool:
    if isinstance(x, (list, tuple)):
        return bool(x) and all(_all_floats(e) or _all_ints(e) for e in x) and any(
            _all_floats(e) for e in x)
    return isinstance(x, float)


def _integer_dtype(t) -> bool:
    try:
        return np.dtype(t).kind in "iub"
    except TypeError:
        return False


def _all_ints(x) -> bool:
    if isinstance(x, (list, tuple)):
        return all(_all_ints(e) for e in x)
    return isinstance(x, (int, bool))


def _refuse_truncating_write(op: Call, dtypes, out) -> None:
    """`y = np.zeros_like(n); y[1] = x` in generic code: whether the write truncates
    depends on n's dtype, which no call has shown."""
    if op.prim.fn in (runtime.setitem, operator.setitem) and \
            dtypes.get(op.args[0]) not in ("float", "container") and \
            any(a in out for a in op.args[2:]):
        raise UnsupportedError(
            "this writes a differentiated value into an array whose dtype is not known "
            "here (an int array would truncate it)", op.loc,
            "make the array with a float dtype (np.zeros(n), x * 1.0, "
            "np.arange(n, dtype=float)), or compile it for example arguments")


def complex_values(fn: Function) -> set[Value]:
    """Values made from a complex literal (`np.exp(1j * t)`), a complex dtype
    (`x.astype(complex)`) or by a transform (np.fft.fft), known without a call: generic
    code has no observed kinds to tell."""
    out: set[Value] = set()
    changed = True
    while changed:
        changed = False
        for op in walk_ops(fn.body):
            if isinstance(op, Call) and op.result not in out and \
                    op.prim.name not in _REAL_PARTS and (op.prim.fn in COMPLEX_MAKERS or any(
                        isinstance(a, Const) and isinstance(a.value, complex) or a in out or
                        _complex_dtype(a) for a in op.operands)):
                out.add(op.result)
                changed = True
    return out


def _complex_dtype(a) -> bool:
    """A dtype operand that names a complex type: complex, np.complex128, 'complex64'."""
    value = a.value if isinstance(a, (Const, Global)) else None
    if isinstance(value, str):  # (np.dtype of any str warns or raises: 'a', '03d')
        return value.startswith("complex") or value in ("c8", "c16", "c32", "F", "D", "G")
    try:
        return isinstance(value, (type, np.dtype)) and np.dtype(value).kind == "c"
    except (TypeError, ValueError):  # a class that is no dtype
        return False


_REAL_PARTS = ("np.abs", "np.absolute", "abs", "np.real", "np.imag", "np.angle", "len",
               "np.shape")


def _is_complex_kind(k) -> bool:
    return k is not None and (k.type == "complex" or k.dtype == "c")


def _is_complex(kinds, o) -> bool:
    """Whether `o` was seen complex on some run (or is a complex constant)."""
    if isinstance(o, Const):
        return isinstance(o.value, complex) or np.iscomplexobj(o.value)
    return _is_complex_kind(kinds.kind(o) if isinstance(o, (Value, Global)) else None) or \
        o in getattr(kinds, "complex_seen", ())


def _refuse_complex(op: Call, kinds, made_complex=frozenset()) -> None:
    """A complex value into or out of an op whose rule is for real numbers (an
    argument's or a global's too: np.linalg.norm(x * c) has a real result)."""
    if any(_is_complex(kinds, o) or o in made_complex for o in list(op.operands) + [op.result]):
        raise NonDifferentiableError(
            f"`{op.prim.name}` has no derivative rule for complex values", op.loc,
            "complex values pass through arithmetic, np.exp, sums, products, reshapes "
            "and np.fft, to a real value by np.abs, np.real, np.imag or np.angle; split "
            "the rest into real and imaginary parts")


def _selects(op: Call, out: set, floating) -> bool:
    """A result that is one of its operands, picked by the data: an int on this run may
    be a float on the next. `max(0, v)` with v a varied float, and an element of a varied
    list or tuple (`L = [0, 0]`, or `[x, x * x]` on the other path) are varied whatever
    this call's run saw them hold."""
    if op.prim.fn in (max, min):
        return any(o in out and floating(o) for o in op.operands)
    if op.prim.fn in (operator.getitem, runtime.element) and op.args[0] in out:
        return True
    return False


def _flow(pairs, out: set) -> bool:
    """Carry variedness across a merge (an if's result, a loop's carried value). The
    merged value is varied when a varied value flows into it, even if the observed run
    saw it hold an int (`k = 2 if c else x * 0.5`): its kind is the join of its inputs'."""
    changed = False
    for dst, src in pairs:
        if dst not in out and src in out:
            out.add(dst)
            changed = True
    return changed


def useful(fn: Function, within: set[Value] | None = None) -> set[Value]:
    """Values from which a returned value can be reached through differentiable ops;
    with `within` (the varied values), only through op results in it: a tuple of int
    arrays whose elements are read as ints passes nothing back to its inputs."""
    out = {o for o in fn.body.results if isinstance(o, Value)}

    def block(b: Block) -> bool:
        changed = False
        for op in reversed(b.ops):
            if isinstance(op, Call):
                flow = _tape_flow(op)
                if flow is not None:
                    sources, target = flow
                    if target in out:
                        for o in sources:
                            if isinstance(o, Value) and o not in out:
                                out.add(o)
                                changed = True
                elif op.result in out and _passes(op) and (within is None or
                                                           op.result in within):
                    for o in op.operands:
                        if isinstance(o, Value) and o not in out:
                            out.add(o)
                            changed = True
                continue
            while True:
                inner = False
                if isinstance(op, If):
                    pairs = list(zip(op.then.results, op.results)) + list(
                        zip(op.orelse.results, op.results))
                    inner |= _back(pairs, out)
                    inner |= block(op.then) | block(op.orelse)
                else:
                    args = op.body.args[1:] if isinstance(op, For) else op.body.args
                    # a loop that runs zero times returns its initial values
                    pairs = list(zip(op.body.results, op.results)) + list(
                        zip(op.body.results, args)) + list(zip(op.inits, args)) + list(
                        zip(op.inits, op.results))
                    inner |= _back(pairs, out)
                    inner |= block(op.body)
                    inner |= _back(pairs, out)
                changed |= inner
                if not inner:
                    break
        return changed

    block(fn.body)
    return out


def _back(pairs, out: set) -> bool:
    changed = False
    for src, dst in pairs:
        if dst in out and isinstance(src, Value) and src not in out:
            out.add(src)
            changed = True
    return changed


def active(fn: Function, wrt: tuple[int, ...], kinds) -> set[Value]:
    v = varied(fn, wrt, kinds)
    return v & useful(fn, v)
