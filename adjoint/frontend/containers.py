"""`tuple(...)`, `list(...)`, `dict(...)`, `set(...)` and `frozenset(...)` called in f,
and set displays: the container built from elements known here where its length must
be (a tuple can be an index, a set's order is Python's), else copied in a loop.

Each function takes the Lowerer `low` of the call.
"""
from __future__ import annotations

import gast

from adjoint import runtime
from adjoint.frontend.bindings import is_call_to
from adjoint.frontend.sugar import copy_loop
from adjoint.ir.core import Const, Global, Value
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import dict_of, list_of, mapping, tuple_of


def conversion(low, fn, node, hint):
    """`tuple(...)`, `list(...)`, `dict(...)`: the container, its elements known here
    where the result must be exact (a tuple can be an index), else built in a loop."""
    args, kwargs = node.args, node.keywords
    if fn is dict:
        return dict_call(low, node, hint)
    if kwargs or len(args) > 1:
        raise low.error(f"`{fn.__name__}` takes one argument here", node)
    if not args:
        return low.emit(prim_of(tuple_of if fn is tuple else list_of), (), hint=hint,
                        node=node)
    if fn is list and not isinstance(args[0], (gast.List, gast.Tuple)) and not (
            is_call_to(low, args[0], zip) and any(isinstance(a, gast.Starred)
                                                  for a in args[0].args)):
        return low.comprehension(copy_loop(low, args[0]), "list", hint)
    items = low.elements(args[0])
    if items is None:
        raise low.error("tuple() of a sequence whose length is known only when the "
                        "function runs", args[0],
                        "write the elements, (x[0], x[1]), or keep a list")
    return low.emit(prim_of(tuple_of if fn is tuple else list_of), items, hint=hint,
                    node=node)


def dict_call(low, node, hint):
    """`dict(a=x, b=y)`, `dict(zip(keys, values))` and `dict([(k, v), ...])` with keys
    known here, and `dict(d)`, a copy of a dict."""
    pairs = []
    if len(node.args) > 1:
        raise low.error("`dict` takes one argument here", node)
    if node.args:
        arg = node.args[0]
        if is_call_to(low, arg, zip) and len(arg.args) == 2 and not arg.keywords:
            ks, vs = low.elements(arg.args[0]), low.elements(arg.args[1])
            pairs = None if ks is None or vs is None else list(zip(ks, vs))
        elif isinstance(arg, (gast.List, gast.Tuple, gast.ListComp, gast.GeneratorExp)):
            items = low.elements(arg)
            pairs = None if items is None else [low.elements_of(i) for i in items]
            if pairs is not None and not all(p is not None and len(p) == 2 for p in pairs):
                pairs = None
        else:
            return dict_copy(low, low.operand(arg), node, hint)
        if pairs is None or not all(isinstance(k, Const) and isinstance(
                k.value, (str, int)) for k, _ in pairs):
            raise low.error("dict() whose keys are not constants known here", arg,
                            "give the keys as a list of strings or ints: "
                            "dict(zip(['a', 'b'], values))")
    merged = {k.value: v for k, v in pairs}  # later keys win, as in Python
    merged.update((k.arg, low.operand(k.value)) for k in node.keywords)
    return low.emit(prim_of(dict_of), (Const(tuple(merged)), *merged.values()),
                    hint=hint, node=node)


def dict_copy(low, d, node, hint):
    """`dict(d)` (and `dict(d, k=v)`): a copy of the dict d, its entries then set.
    Where d's kind is seen only when f runs (a parameter, an element), the copy is
    checked then to copy a dict (`mapping`): dict() of a list of pairs is not this."""
    copy = copied_dict(low, d, node, hint, "dict()", node.args[0])
    for k in node.keywords:  # written in order, as the display's entries of `p | {..}`
        copy = low.emit(prim_of(runtime.setitem), (copy, Const(k.arg),
                                                   low.operand(k.value)), hint=hint,
                        node=node)
    return copy


def copied_dict(low, d, node, hint, what="`**`", arg=None):
    """A copy of `d`, checked when f runs to be of a dict where its kind is seen only
    then (`dict(d)`, `{**d}`)."""
    if isinstance(d, Global) and not isinstance(d.value, dict) or isinstance(d, Const):
        raise low.error(f"{what} of a {type(d.value).__name__}: only a copy of a dict "
                        f"is supported here", arg or node,
                        "build it from keys: dict(zip(keys, values)), or "
                        "{k: v for k, v in ...}")
    if isinstance(d, Value) and not low.is_dict(d):
        low.emit(prim_of(mapping), (d,), node=node)
    return low.emit(prim_of(runtime.private), (d,), hint=hint, node=node)


def set_of(low, arg, node):
    """A set display or comprehension: iterated or tested for membership, as the
    tuple of its elements in the order Python iterates the set. Only constants: a
    set of computed values has no order that generated code could follow."""
    items = low.elements(arg)
    if items is None or not all(isinstance(i, Const) for i in items):
        raise low.error("sets and set comprehensions must hold constants known here "
                        "(numbers or strings)", node, "sets are unordered: a set of computed "
                                           "values, or of values that carry a gradient, "
                                           "has no order to differentiate in; use a "
                                           "list or a tuple")
    return Const(tuple({i.value for i in items}))
