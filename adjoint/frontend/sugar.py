"""Constructs lowered as other Python: the loop or comprehension a person would write
in their place, built as a gast tree or written as source (`desugared`), and lowered
where they stand; or calls of other functions.

    list(xs), sorted(d.items())     [e for e in xs]                     copy_loop
    list(map(f, xs))                [f(_m0) for _m0 in xs]              mapped
    functools.reduce(fn, xs)        acc = xs[0]; for v in xs[1:]: ...   reduce_call
    {'x': x, **d}                   for k, v in d.items(): made[k] = v  updated_dict
    d.update({'b': v})              d |= {'b': v}                       as_rebinding
    d.get(k, default)               d[k] if k in d else default         dict_get
    xs.pop()                        xs[-1]; xs = xs[:-1]                list_pop
    np.linalg.norm(x) ** 2          np.sum(x * x)                       squared_norm
    np.diff(a, prepend=p)           np.diff(np.concatenate((p, a)))     diff_with_ends
    itertools.chain(xs, ys)         out = [*xs, *ys]                    itertool

Each function takes the Lowerer `low` that lowers the code it makes.
"""
from __future__ import annotations

import builtins
import itertools
import operator
import textwrap

import gast
import numpy as np

from adjoint import runtime
from adjoint.frontend.bindings import TEMP, Static, dict_view, is_call_to
from adjoint.ir.core import Block, Const, If, Value
from adjoint.rules import registry
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import in_, mapping, tuple_of


def copy_loop(low, node):
    """`list(xs)` as the comprehension `[e for e in xs]` (`[(a, b) for a, b in zip(...)]`
    for zip, enumerate and .items(), whose loops unpack)."""
    n = len(node.args) if is_call_to(low, node, zip) else 2 if is_call_to(
        low, node, enumerate) or dict_view(node) and node.func.attr == "items" or \
        low.sorted_view(node) and node.args[0].func.attr == "items" else 0

    def name(i, ctx):
        return gast.copy_location(gast.Name(id=f"_e{i}", ctx=ctx, annotation=None,
                                            type_comment=None), node)
    if n:
        target = gast.Tuple(elts=[name(i, gast.Store()) for i in range(n)], ctx=gast.Store())
        elt = gast.Tuple(elts=[name(i, gast.Load()) for i in range(n)], ctx=gast.Load())
    else:
        target, elt = name(0, gast.Store()), name(0, gast.Load())
    gen = gast.comprehension(target=gast.copy_location(target, node), iter=node, ifs=[],
                             is_async=0)
    return gast.copy_location(gast.ListComp(elt=gast.copy_location(elt, node),
                                            generators=[gen]), node)


def is_map(low, node) -> bool:
    if not (isinstance(node, gast.Call) and isinstance(node.func, gast.Name) and
            node.func.id in ("map", "filter")):  # (lowering any other callee emits ops)
        return False
    return (is_call_to(low, node, map) and len(node.args) >= 2 or
            is_call_to(low, node, filter) and len(node.args) == 2) and not node.keywords


def mapped(low, node):
    """`map(f, xs, ys)` as `[f(_m0, _m1) for _m0, _m1 in zip(xs, ys)]`, `filter(f, xs)` as
    `[_m0 for _m0 in xs if f(_m0)]`: read where a consumer (list, sum, ...) takes the
    iterator at once, which is then that list."""
    fn, seqs = node.args[0], node.args[1:]
    names = [f"_m{i}" for i in range(len(seqs))]

    def name(n, ctx):
        return gast.Name(id=n, ctx=ctx, annotation=None, type_comment=None)

    def applied(args):
        return gast.Call(func=fn, args=args, keywords=[])

    it = seqs[0] if len(seqs) == 1 else gast.Call(func=name("zip", gast.Load()),
                                                  args=list(seqs), keywords=[])
    target = name(names[0], gast.Store()) if len(seqs) == 1 else gast.Tuple(
        elts=[name(n, gast.Store()) for n in names], ctx=gast.Store())
    if is_call_to(low, node, filter):
        keep = name(names[0], gast.Load())
        test = keep if isinstance(fn, gast.Constant) and fn.value is None else applied([keep])
        elt, ifs = name(names[0], gast.Load()), [test]
    else:
        elt, ifs = applied([name(n, gast.Load()) for n in names]), []
    comp = gast.ListComp(elt=elt, generators=[gast.comprehension(target=target, iter=it,
                                                                 ifs=ifs, is_async=0)])
    for child in gast.walk(comp):
        if "lineno" in getattr(child, "_attributes", ()) and not hasattr(child, "lineno"):
            gast.copy_location(child, node)
    return comp


def as_rebinding(call):
    """`d.update({'b': v})` (or `d.update(b=v)`) as `d |= {'b': v}`, `xs.insert(i, v)`
    as `xs = xs[:i] + [v] + xs[i:]`, `xs.extend(ys)` as `xs += list(ys)` and `x.fill(v)` as
    `x[...] = v`, for a local name: the new value the method leaves in place, which
    lowering binds to the name. None for any other call."""
    if not (isinstance(call, gast.Call) and isinstance(call.func, gast.Attribute) and
            isinstance(call.func.value, gast.Name)):
        return None
    name, method = call.func.value.id, call.func.attr

    def load():
        return gast.Name(id=name, ctx=gast.Load(), annotation=None, type_comment=None)

    if method == "update" and (len(call.args) == 1 and isinstance(call.args[0], gast.Dict)
                               and not call.keywords or not call.args and call.keywords and
                               all(k.arg for k in call.keywords)):
        merged = call.args[0] if call.args else gast.Dict(
            keys=[gast.Constant(value=k.arg, kind=None) for k in call.keywords],
            values=[k.value for k in call.keywords])
        return gast.AugAssign(target=gast.Name(id=name, ctx=gast.Store(), annotation=None,
                                               type_comment=None),
                              op=gast.BitOr(), value=merged)
    if method == "insert" and len(call.args) == 2 and not call.keywords:
        at, value = call.args

        def part(lower, upper):
            return gast.Subscript(value=load(), slice=gast.Slice(lower=lower, upper=upper,
                                                                 step=None), ctx=gast.Load())
        joined = gast.BinOp(left=gast.BinOp(left=part(None, at), op=gast.Add(),
                                            right=gast.List(elts=[value], ctx=gast.Load())),
                            op=gast.Add(), right=part(at, None))
        return gast.Assign(targets=[gast.Name(id=name, ctx=gast.Store(), annotation=None,
                                              type_comment=None)], value=joined,
                           type_comment=None)
    if method == "extend" and len(call.args) == 1 and not call.keywords:
        # `xs += list(ys)` extends the list in place, as extend does (aliases see it)
        whole = gast.Call(func=gast.Name(id="list", ctx=gast.Load(), annotation=None,
                                         type_comment=None), args=[call.args[0]], keywords=[])
        return gast.AugAssign(target=gast.Name(id=name, ctx=gast.Store(), annotation=None,
                                               type_comment=None), op=gast.Add(), value=whole)
    if method == "fill" and len(call.args) == 1 and not call.keywords:
        # `x[...] = v`: every entry of the array, in place
        return gast.Assign(targets=[gast.Subscript(value=load(), slice=gast.Constant(
            value=Ellipsis, kind=None), ctx=gast.Store())], value=call.args[0],
            type_comment=None)
    return None


def reduce_call(low, node, hint):
    """`functools.reduce(fn, xs[, initial])` over a sequence whose elements are known
    here: fn's calls, unrolled (`operator.add`, a lambda, a helper)."""
    args = node.args
    if node.keywords or not 2 <= len(args) <= 3 or any(isinstance(a, gast.Starred)
                                                       for a in args):
        raise low.error("write functools.reduce(function, sequence[, initial])", node)
    fn = low.expr(args[0])
    if is_call_to(low, args[1], zip) or is_call_to(low, args[1], enumerate):
        # over the list of the tuples that the loop over them makes
        pairs = low.comprehension(copy_loop(low, args[1]), "list", TEMP)
        return reduce_loop(low, fn, node, hint, pairs)
    items = low.elements(args[1])
    if items is None:
        return reduce_loop(low, fn, node, hint)
    if len(args) == 3:
        items = [low.operand(args[2])] + items
    if not items:
        raise low.error("functools.reduce of an empty sequence with no initial value",
                        node)
    acc = items[0]
    for item in items[1:]:
        acc = low.call(fn, [acc, item], [], node, hint)
    return acc


def reduce_loop(low, fn, node, hint, seq=None):
    """`functools.reduce(fn, xs[, initial])` over a sequence whose length is known
    only when f runs (a list parameter): the loop a person would write,

        acc = xs[0]                       acc = initial
        for v in xs[1:]:                  for v in xs:
            acc = fn(acc, v)                  acc = fn(acc, v)

    `seq`, where given, is xs already lowered (the list of a zip's tuples)."""
    used = {n.id for n in gast.walk(node) if isinstance(n, gast.Name)}
    low.depth += 1
    acc = hint if hint != TEMP and hint not in used else f"_acc{low.depth}"
    names = {"acc": acc} | {k: f"_{k}{low.depth}" for k in ("fn", "seq", "item")}

    def at(n):
        return gast.copy_location(n, node)

    def name(key, ctx=gast.Load()):
        return at(gast.Name(id=names[key], ctx=ctx, annotation=None, type_comment=None))

    saved = {n: low.env[n] for n in names.values() if n in low.env}
    try:
        low.env[names["fn"]], low.env[names["seq"]] = fn, seq if seq is not None \
            else low.operand(node.args[1])
        walk = name("seq")
        if len(node.args) == 3:
            low.env[acc] = low.operand(node.args[2])
        else:
            low.env[acc] = low.operand(at(gast.Subscript(
                value=name("seq"), slice=at(gast.Constant(value=0, kind=None)),
                ctx=gast.Load())))
            walk = at(gast.Subscript(value=walk, slice=at(gast.Slice(
                lower=at(gast.Constant(value=1, kind=None)), upper=None, step=None)),
                ctx=gast.Load()))
        step = at(gast.Assign(targets=[name("acc", gast.Store())], value=at(gast.Call(
            func=name("fn"), args=[name("acc"), name("item")], keywords=[])),
            type_comment=None))
        low.for_stmt(at(gast.For(target=name("item", gast.Store()), iter=walk,
                                 body=[step], orelse=[], type_comment=None)))
        return low.env[acc]
    finally:
        low.depth -= 1
        for n in names.values():
            low.env.pop(n, None)
        low.env.update(saved)


def updated_dict(low, made, d, node, hint):
    """`{'x': x, **d}` where d's keys are known only when f runs: the loop a person
    would write, d's entries written into the dict so far, in d's order.

        for k, v in d.items():
            made[k] = v"""
    if isinstance(d, Value) and not low.is_dict(d):
        low.emit(prim_of(mapping), (d,), node=node)
    low.depth += 1
    names = {n: f"_{n}{low.depth}" for n in ("acc", "entries", "key", "value")}

    def at(n):
        return gast.copy_location(n, node)

    def name(role, ctx=gast.Load()):
        return at(gast.Name(id=names[role], ctx=ctx, annotation=None, type_comment=None))

    loop = at(gast.For(
        target=at(gast.Tuple(elts=[name("key", gast.Store()), name("value", gast.Store())],
                             ctx=gast.Store())),
        iter=at(gast.Call(func=at(gast.Attribute(value=name("entries"), attr="items",
                                                 ctx=gast.Load())), args=[], keywords=[])),
        body=[at(gast.Assign(targets=[at(gast.Subscript(value=name("acc"), slice=name("key"),
                                                        ctx=gast.Store()))],
                             value=name("value"), type_comment=None))],
        orelse=[], type_comment=None))
    saved = {n: low.env[n] for n in names.values() if n in low.env}
    low.env[names["acc"]], low.env[names["entries"]] = made, d
    try:
        low.for_stmt(loop)
        return low.env[names["acc"]]
    finally:
        low.depth -= 1
        for n in names.values():
            low.env.pop(n, None)
        low.env.update(saved)


def dict_get(low, d, args, kwargs, node, hint):
    """`d.get(k, default)` as the branch it is: `d[k] if k in d else default`. The
    default is evaluated first, as Python evaluates arguments; only the branch taken
    passes a gradient (to d's entry, or to the default)."""
    if kwargs or not 1 <= len(args) <= 2:
        raise low.error("`.get()` takes a key and an optional default", node,
                        "write d.get(k) or d.get(k, default)")
    key, default = args[0], args[1] if len(args) == 2 else Const(None)
    has = low.emit(prim_of(in_), (key, d), hint="_c", node=node)
    if isinstance(has, Const):  # a module's dict and a constant key
        return low.emit(prim_of(operator.getitem), (d, key), hint=hint, node=node) \
            if has.value else default
    saved, low.ops = low.ops, []
    try:
        entry = low.emit(prim_of(operator.getitem), (d, key), hint=hint, node=node)
        found = Block((), tuple(low.ops), (entry,))
    finally:
        low.ops = saved
    result = Value(hint)
    low.ops.append(If(has, found, Block((), (), (default,)), (result,), low.loc(node)))
    return result


def squared_norm(low, call, hint, node):
    """`np.linalg.norm(x) ** 2` (the 2-norm or the Frobenius norm), `np.std(x) ** 2`
    and `np.hypot(a, b) ** 2` as the sum of squares, the variance and `a * a + b * b`
    they are: smooth where the norm, the deviation and hypot are not (a zero
    vector, a constant x), so that their second derivative there is the square's,
    not the 0 that the kink's convention would give."""
    if not isinstance(call.func, gast.Attribute) or not call.args:
        return None
    kw = {k.arg: k.value for k in call.keywords}
    fn = low.expr(call.func)
    if not isinstance(fn, Static):
        return None
    if fn.obj is np.hypot and len(call.args) == 2 and not kw:
        a, b = (low.operand(arg) for arg in call.args)
        squares = [low.emit(prim_of(operator.mul), (v, v), node=node) for v in (a, b)]
        return low.emit(prim_of(operator.add), tuple(squares), hint=hint, node=node)
    if fn.obj is np.std and len(call.args) == 1 and set(kw) <= {"axis", "ddof", "keepdims"}:
        kwargs = tuple((k, low.operand(v)) for k, v in kw.items())
        return low.emit(prim_of(np.var), (low.operand(call.args[0]),), kwargs,
                        hint=hint, node=node)
    ord_ = kw.pop("ord", None)
    if fn.obj is not np.linalg.norm or len(call.args) != 1 or \
            set(kw) - {"axis", "keepdims"} or ord_ is not None and not (
            isinstance(ord_, gast.Constant) and ord_.value in (None, "fro")):
        return None
    x = low.operand(call.args[0])
    squares = low.emit(prim_of(operator.mul), (x, x), node=node)
    kwargs = tuple((k, low.operand(v)) for k, v in kw.items())
    return low.emit(prim_of(np.sum), (squares,), kwargs, hint=hint, node=node)


def list_pop(low, xs, args, kwargs, node, hint):
    """`xs.pop()` or `xs.pop(0)`: the element, and `xs` rebound (every name of it) to
    the rest. The update is recorded as in place: analysis/views.py checks, once the
    kinds are observed, that `xs` is a list and that nothing else holds it."""
    where = args[0].value if len(args) == 1 and isinstance(args[0], Const) else None
    if isinstance(where, str) or len(args) == 2:  # d.pop('a'), d.pop('a', default)
        raise low.error("a dict's `.pop(key)` is not supported", node,
                        "read the entry, then make the dict without it: v = d[k]; "
                        "d = {key: d[key] for key in d if key != k}")
    if kwargs or len(args) > 1 or (args and where not in (0, -1)):
        raise low.error("only `.pop()`, `.pop(-1)` and `.pop(0)` are supported", node,
                        "read the element and rebuild the list: v = xs[i]; "
                        "xs = xs[:i] + xs[i + 1:]")
    if not isinstance(xs, Value):
        raise low.error("only a list built in the function can pop", node,
                        "copy it first: xs = list(...)")
    first = where == 0
    element = low.emit(prim_of(operator.getitem), (xs, Const(0 if first else -1)),
                       hint=hint, node=node)
    rest = low.emit(prim_of(operator.getitem), (xs, Const(
        slice(1, None) if first else slice(None, -1))), hint=xs.name, node=node)
    if isinstance(rest, Value):
        low.inplace.append(rest)
    low.rebind_storage(xs, rest)
    return element


def diff_with_ends(low, args, kwargs, node, hint):
    """`np.diff(a, n, axis, prepend=p, append=q)` as NumPy computes it: the differences
    of a with p and q joined to it along axis, a number broadcast to one entry there,
    so that the rules of np.diff, np.concatenate and np.broadcast_to give every mode."""
    names = ("a", "n", "axis", "prepend", "append")
    given = dict(zip(names, args))
    for k, v in kwargs:
        if k not in names or k in given:
            raise low.error(f"np.diff got an unexpected or repeated argument {k!r}",
                            node)
        given[k] = v
    if len(args) > len(names) or "a" not in given:
        raise low.error("write np.diff(a, n=1, axis=-1, prepend=..., append=...)", node)
    a, axis = given["a"], given.get("axis", Const(-1))
    parts = []
    for name in ("prepend", "a", "append"):
        end = given.get(name)
        if name == "a" or end is None:
            parts += [a] if name == "a" else []
            continue
        parts.append(diff_end(low, end, a, axis, f"_{name}", node))
    joined = low.emit(prim_of(np.concatenate), (low.emit(
        prim_of(tuple_of), parts, node=node),), [("axis", axis)], hint="_joined", node=node)
    return low.emit(prim_of(np.diff), (joined, given.get("n", Const(1)), axis), hint=hint,
                    node=node)


def diff_end(low, end, a, axis, hint, node):
    """np.diff's `prepend=` or `append=` value as NumPy joins it to `a`: a number
    broadcast to a's shape with one entry along axis (an array end has that shape
    already, and adding the zeros leaves it as it is)."""
    if isinstance(end, Const) and np.ndim(end.value) > 0:
        return end
    first = low.emit(prim_of(np.take), (a, Const((0,))), [("axis", axis)], node=node)
    zeros = low.emit(prim_of(np.zeros_like), (first,), node=node)
    return low.emit(prim_of(operator.add), (end, zeros), hint=hint, node=node)


# itertools' functions over sequences, lowered to the list they yield: their keywords
ITERTOOLS = {itertools.accumulate: {"func", "initial"}, itertools.chain: set(),
             itertools.chain.from_iterable: set(), itertools.product: {"repeat"},
             itertools.islice: set(), itertools.repeat: {"times"}}
if hasattr(itertools, "pairwise"):  # (Python 3.10)
    ITERTOOLS[itertools.pairwise] = set()
# itertools that choose entries of one sequence by position: the positions they yield
CHOOSERS = {itertools.combinations: runtime.combinations,
            itertools.permutations: runtime.permutations,
            itertools.combinations_with_replacement: runtime.combinations_with_replacement}
ITERTOOLS.update({tool: {"r"} for tool in CHOOSERS})
for _positions in CHOOSERS.values():
    registry.primitive(_positions, _positions.__name__, nondiff=True)


def itertool(low, fn, args, kwargs, node):
    """`itertools.accumulate`, `pairwise`, `chain`, `chain.from_iterable`, `product`,
    `islice`, `repeat`, `combinations`, `permutations` and
    `combinations_with_replacement` of sequences: the list each yields, made by the loop or
    comprehension a person would write (lists and loops over them are lowered so)."""
    name = "chain.from_iterable" if fn == itertools.chain.from_iterable else fn.__name__
    given = dict(kwargs)
    if len(given) < len(kwargs) or set(given) - ITERTOOLS[fn] or not args and fn in (
            itertools.accumulate, itertools.repeat, itertools.islice) or \
            fn is itertools.repeat and len(args) + len(given) != 2:
        raise low.error(f"`itertools.{name}` with these arguments is not supported",
                        node, "write itertools.repeat(x, n) with a count" if fn is
                        itertools.repeat else f"see docs/subset.md for itertools.{name}")
    walks = len(args) if fn in (itertools.chain, itertools.product) else \
        0 if fn is itertools.repeat else 1  # (the others' first argument)
    seqs = {f"s{i}": low.walked(a, node) for i, a in enumerate(args[:walks])}
    if fn is itertools.accumulate:
        func = args[1] if len(args) > 1 else given.get("func", Static(operator.add))
        initial = given.get("initial", Const(None))
        low.check_operands([args[0], initial], node)
        if len(args) > 2:
            raise low.error("itertools.accumulate takes a sequence and a function",
                            node, "write itertools.accumulate(xs, func, initial=value)")
        if not (isinstance(initial, Const) and initial.value is None):
            return desugared(low, """
                acc = first
                out = [acc]
                for v in s0:
                    acc = func(acc, v)
                    out.append(acc)
                """, seqs | {"func": func, "first": initial}, node)
        # the running value is carried, not read back from the list (which a loop
        # would copy on each trip); Python yields [] of [], where this one refuses
        return desugared(low, """
            if len(s0) == 0:
                raise ValueError("adjoint: itertools.accumulate of an empty sequence; "
                                 "give initial=")
            acc = s0[0]
            out = [acc]
            for v in s0[1:]:
                acc = func(acc, v)
                out.append(acc)
            """, seqs | {"func": func}, node)
    if fn is itertools.pairwise and len(args) == 1:
        return desugared(low, "out = [(a, b) for a, b in zip(s0, s0[1:])]", seqs, node)
    if fn is itertools.chain:
        return desugared(low, f"out = [{', '.join('*' + s for s in seqs)}]", seqs, node)
    if name == "chain.from_iterable" and len(args) == 1:
        return desugared(low, "out = [e for s in s0 for e in s]", seqs, node)
    if fn is itertools.product:
        times = given.get("repeat", Const(1))
        if not (isinstance(times, Const) and isinstance(times.value, int)):
            raise low.error("itertools.product(..., repeat=n) with n known only when "
                            "the function runs", node, "write repeat=2 (a number)")
        names = list(seqs) * times.value
        loops = " ".join(f"for e{i} in {s}" for i, s in enumerate(names))
        items = "".join(f"e{i}, " for i in range(len(names)))
        return desugared(low, f"out = [({items}) {loops}]", seqs, node)
    if fn is itertools.islice and 2 <= len(args) <= 4:
        bounds = args[1:] if len(args) > 2 else [Const(None)] + args[1:]
        return desugared(low, "out = [e for e in s0[start:stop:step]]", seqs | dict(zip(
            ("start", "stop", "step"), bounds + [Const(None)] * (3 - len(bounds)))), node)
    if fn in CHOOSERS:
        r = args[1] if len(args) > 1 else given.get("r", Const(None))
        if len(args) > 2 or not (isinstance(r, Const) and isinstance(r.value, int)):
            raise low.error(f"`itertools.{name}` with a size known only when the "
                            f"function runs, or none", node,
                            f"give the size as a number: itertools.{name}(xs, 2)")
        items = "".join(f"s0[e[{i}]], " for i in range(r.value))
        # the positions are ints, computed as f runs (generic code knows no length)
        return desugared(low, f"out = [({items}) for e in positions(len(s0), {r.value})]",
                         seqs | {"positions": Static(CHOOSERS[fn])}, node)
    if fn is itertools.repeat:
        x, times = (args + [given.get("times")])[:2]
        return desugared(low, "out = [x for _ in range(n)]", {"x": x, "n": times}, node)
    raise low.error(f"`itertools.{name}` with these arguments is not supported", node,
                    f"see docs/subset.md for itertools.{name}")


def desugared(low, source: str, bound: dict, node):
    """What `source`, Python written here for a construct at `node`, leaves in `out`,
    its names in `bound` bound to those operands. Its names other than builtins get a
    prefix (`_it1_out`) that none of f's has."""
    low.depth += 1
    prefix = f"_it{low.depth}_"
    tree = gast.parse(textwrap.dedent(source))
    for n in gast.walk(tree):
        if isinstance(n, gast.Name) and not hasattr(builtins, n.id):
            n.id = prefix + n.id
        gast.copy_location(n, node)
    try:
        low.env.update({prefix + k: v for k, v in bound.items()})
        low.body(tree.body)
        return low.env[prefix + "out"]
    finally:
        low.depth -= 1
        for k in [k for k in low.env if k.startswith(prefix)]:
            del low.env[k]


# a ufunc's reduce and accumulate that are NumPy functions: (ufunc, method) -> function
_UFUNC_METHODS = {("add", "reduce"): np.sum, ("multiply", "reduce"): np.prod,
                  ("maximum", "reduce"): np.max, ("minimum", "reduce"): np.min,
                  ("add", "accumulate"): np.cumsum, ("multiply", "accumulate"): np.cumprod}


def ufunc_method(low, fn, args, kwargs, node, hint):
    """`np.add.reduce(x, axis)` as np.sum(x, axis) (axis 0 unless given), accumulate as
    the cumulative function, and `ufunc.outer(a, b)` as the ufunc of `a` with an axis of 1
    for each of b's, broadcast against b; None for anything else (refused as before)."""
    ufunc, method = getattr(fn, "__self__", None), getattr(fn, "__name__", None)
    if not isinstance(ufunc, np.ufunc):
        return None
    if method == "outer" and ufunc.nin == 2 and len(args) == 2 and not kwargs:
        return desugared(low, "out = fn(reshape(a, shape(a) + (1,) * ndim(b)), b)",
                         {"fn": Static(ufunc), "a": args[0], "b": args[1],
                          "reshape": Static(np.reshape), "shape": Static(np.shape),
                          "ndim": Static(np.ndim)}, node)
    same = _UFUNC_METHODS.get((ufunc.__name__, method))
    allowed = ("axis", "keepdims") if method == "reduce" else ("axis",)
    if same is None or len(args) > 2 or any(k not in allowed for k, _ in kwargs):
        return None
    if len(args) < 2 and "axis" not in dict(kwargs):
        kwargs = list(kwargs) + [("axis", Const(0))]  # a ufunc reduces along axis 0
    return low.call(Static(same), args, kwargs, node, hint)
