"""`max`, `min` and `sorted`: of numbers, as np.max, np.min and np.sort, whose rules
pass the gradient to the entries chosen; with a key, a choice made on the forward values
(np.argmax of the keys' scores), or made here when the items and the key are constants.

Each function takes the Lowerer `low` of the call.
"""
from __future__ import annotations

import operator

import gast
import numpy as np

from adjoint.frontend.bindings import TEMP, Method, Static, is_literal
from adjoint.ir.core import Const, Global
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import list_of, numbers, tolist


def extremum(low, fn, args, kwargs, node, hint):
    """`max(xs)`, `max(a, b, c)`: np.max over the numbers as an array, whose rule splits
    a tie evenly among the tied entries, as the rule of two-argument `max` does."""
    name = fn.__name__
    if kwargs or not args:
        raise low.error(f"`{name}` with key= or default=, or without arguments, is not "
                        f"supported", node, f"write `{name}(xs)` or `{name}(a, b, c)`; for a "
                        f"key, compute the keys and pick with np.arg{name}")
    # max(d) of a dict is the max of its keys, as a loop over d walks them
    seq = low.walked(args[0], node) if len(args) == 1 else \
        low.emit(prim_of(list_of), args, node=node)
    arr = low.emit(prim_of(np.array), (seq,), node=node)
    if len(args) == 1:
        refuse_ordered_pairs(low, name, node)  # only numbers pass
        low.emit(prim_of(numbers), (arr, Const(name)), node=node)
    # axis=0: a sequence of numbers reduces to a number, as Python's max would give
    return low.emit(prim_of(np.max if fn is max else np.min), (arr,), (("axis", Const(0)),),
                    hint=hint, node=node)


def sorted_list(low, xs, reverse, node, hint):
    """`sorted(xs)` of numbers: the list of np.sort's entries, so the gradient flows
    back through the permutation (tied entries as np.sort's rule takes them)."""
    if not isinstance(reverse, Const):
        raise low.error("sorted(..., reverse=...) with a value known only when the "
                        "function runs", node, "write reverse=True or reverse=False")
    refuse_ordered_pairs(low, "sorted", node)
    arr = low.emit(prim_of(np.array), (low.walked(xs, node),), node=node)
    low.emit(prim_of(numbers), (arr, Const("sorted")), node=node)
    ordered = low.emit(prim_of(np.sort), (arr,), node=node)
    if reverse.value:  # (a tie's order does not change the values)
        ordered = low.emit(prim_of(operator.getitem), (ordered, Const(slice(None, None, -1))),
                           node=node)
    return low.emit(prim_of(tolist), (ordered,), hint=hint, node=node)


def refuse_ordered_pairs(low, name: str, node) -> None:
    """Python compares tuples (a score and its index) by their first entries; as an
    array they would be compared entry by entry: a display of them is refused here
    (any other sequence when it runs, by `numbers`)."""
    items = node.args[0] if isinstance(node, gast.Call) and node.args else None
    elt = getattr(items, "elt", None)
    if isinstance(elt, (gast.Tuple, gast.List)) or isinstance(items, (
            gast.List, gast.Tuple)) and any(isinstance(e, (gast.Tuple, gast.List))
                                            for e in items.elts):
        pick = "np.argsort" if name == "sorted" else f"np.arg{name}"
        raise low.error(f"`{name}` of tuples or lists compares them in order, which "
                        f"is not supported here", node,
                        f"take `{name}` of the scores, and the rest with {pick}: "
                        f"i = {pick}(scores)")


def keyed_extremum(low, fn, node):
    """`min(d, key=d.get)` (or `sorted(d, key=d.get)`) over constants (a module's dict,
    a tuple of names): the element (the list), known here. A key computed from values
    would choose by data: refused."""
    items = low.operand(node.args[0]) if len(node.args) == 1 else low.emit(
        prim_of(list_of), [low.operand(a) for a in node.args], node=node)  # max(a, b, key=)
    options = {k.arg: k.value for k in node.keywords}
    low.calling = options["key"]  # (`key=d.get` is a method, called on each)
    key = low.expr(options["key"])
    reverse = low.operand(options["reverse"]) if "reverse" in options else Const(False)
    if isinstance(key, Method) and key.name == "get" and isinstance(key.base, Global) \
            and isinstance(key.base.value, dict) and is_literal(tuple(key.base.value.items())):
        key = Static(key.base.value.get)
    values = items.value if isinstance(items, Const) else tuple(items.value) if \
        isinstance(items, Global) and is_literal(tuple(items.value)) else None
    if not isinstance(reverse, Const):
        raise low.error(f"`{fn.__name__}(..., reverse=...)` with a value known only when "
                        f"the function runs", node, "write reverse=True or reverse=False")
    if values is None or not (isinstance(key, Static) and (
            isinstance(getattr(key.obj, "__self__", None), dict) and
            key.obj.__name__ == "get" or key.obj in (len, abs, str))):
        return keyed_choice(low, fn, items, key, bool(reverse.value), node)
    if fn is sorted:
        return low.emit(prim_of(list_of), [Const(e) for e in sorted(
            values, key=key.obj, reverse=bool(reverse.value))], node=node)
    return Const(fn(values, key=key.obj))


def keyed_choice(low, fn, items, key, reverse: bool, node):
    """`max(xs, key=k)`, `min(xs, key=k)`, `sorted(xs, key=k, reverse=r)` over values
    computed here: a discrete choice made on the forward values, as np.argmax is, so
    the derivative flows to the chosen entries only:

        _scores = [k(_e) for _e in xs]    (numbers, checked when f runs)
        xs[np.argmax(_scores)]            [xs[_i] for _i in np.argsort(_scores,
                                                               kind='stable')]

    np.argmax and np.argmin take the first of tied scores, as max and min do; a
    stable argsort keeps tied entries in their order, as sorted does (reverse=True:
    reversed, of the reversed scores, so that ties keep that order too)."""
    name = fn.__name__
    low.depth += 1
    names = {k: f"_{k}{low.depth}" for k in ("seq", "key", "e", "order", "i")}

    def ref(key_, ctx=gast.Load()):
        return gast.copy_location(gast.Name(id=names[key_], ctx=ctx, annotation=None,
                                            type_comment=None), node)

    def each(elt, over):  # [elt for _e in over]
        target = "i" if over == "order" else "e"
        return gast.copy_location(gast.ListComp(elt=elt, generators=[gast.comprehension(
            target=ref(target, gast.Store()), iter=ref(over), ifs=[], is_async=0)]), node)

    saved = {n: low.env[n] for n in names.values() if n in low.env}
    try:
        seq = low.walked(items, node)  # (a dict's keys, as max(d) reads them)
        low.env[names["seq"]], low.env[names["key"]] = seq, key
        # (a method, `d.get`, is read again there: a name cannot hold one)
        func = next(k.value for k in node.keywords if k.arg == "key") if isinstance(
            key, Method) else ref("key")
        scores = low.comprehension(each(gast.copy_location(gast.Call(
            func=func, args=[ref("e")], keywords=[]), node), "seq"), "list", TEMP)
        arr = low.emit(prim_of(np.array), (scores,), hint="_scores", node=node)
        low.emit(prim_of(numbers), (arr, Const(name)), node=node)
        if fn is not sorted:
            pick = low.emit(prim_of(np.argmax if fn is max else np.argmin), (arr,),
                            hint="_pick", node=node)
            return low.emit(prim_of(operator.getitem), (seq, pick), node=node)
        backwards = Const(slice(None, None, -1))
        if reverse:
            arr = low.emit(prim_of(operator.getitem), (arr, backwards), node=node)
        order = low.emit(prim_of(np.argsort), (arr,), (("kind", Const("stable")),),
                         hint="_order", node=node)
        if reverse:  # position j of the reversed scores is len - 1 - j of the scores
            order = low.emit(prim_of(operator.getitem), (order, backwards), node=node)
            last = low.emit(prim_of(operator.sub), (low.emit(
                prim_of(len), (arr,), node=node), Const(1)), node=node)
            order = low.emit(prim_of(operator.sub), (last, order), hint="_order",
                             node=node)
        low.env[names["order"]] = order
        return low.comprehension(each(gast.copy_location(gast.Subscript(
            value=ref("seq"), slice=ref("i"), ctx=gast.Load()), node), "order"), "list",
            TEMP)
    finally:
        low.depth -= 1
        for n in names.values():
            low.env.pop(n, None)
        low.env.update(saved)
