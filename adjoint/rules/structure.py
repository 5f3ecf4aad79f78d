"""Structural primitives: indexing, in-place writes, tuples, lists, slices.

These move values around without arithmetic. Their adjoints scatter and gather
cotangents; `setitem`'s adjoint also zeroes the overwritten region, because the
old contents no longer reach the output.
"""
from __future__ import annotations

import operator
import sys

import numpy as np

from adjoint import runtime
from adjoint.errors import UnsupportedError
from adjoint.rules.located import generated_from
from adjoint.rules.registry import defjvp, deflinear, defnondiff, defvjp, primitive
from adjoint.rules.tape import iadd, iadd_at
from adjoint.runtime import (add_at, append, by_field, entry_cotangents, save, setitem,
                             unbroadcast,
                             unsequence, written, zeros_like)

def tuple_of(*xs):
    """The tuple `(a, b, ...)` built from values."""
    return xs


def list_of(*xs):
    """The list `[a, b, ...]` built from values."""
    return list(xs)


def dict_of(keys, *values):
    """The dict `{k1: v1, k2: v2}` built from its keys (constants) and its values."""
    return dict(zip(keys, values))


def field(x, name):
    """`x.name`: a field of a namedtuple or a dataclass. Its cotangent is x's at the
    field's name (a namedtuple's cotangent answers to its positions too). Another
    attribute (a property, computed from the fields by code adjoint does not read) has
    no place in the cotangent: refused."""
    if isinstance(x, runtime.FieldCotangents):  # a namedtuple's cotangent (an hvp's x)
        return x[name]
    fields = getattr(type(x), "_fields", None) or getattr(type(x), "__dataclass_fields__", None)
    if fields is not None and name not in fields:
        from adjoint.errors import UnsupportedError
        raise UnsupportedError(
            f"`.{name}` of a {type(x).__name__} is not one of its fields (a property or a "
            f"method, computed by code adjoint does not differentiate)", None,
            f"compute it in the function from the fields ({', '.join(fields)})")
    return getattr(x, name)


# `x.T`, `x.shape`...: the NumPy functions of the array attributes
ARRAY_ATTRIBUTES = {"T": np.transpose, "shape": np.shape, "ndim": np.ndim, "size": np.size,
                    "real": np.real, "imag": np.imag, "flat": np.ravel}  # (x.flat: read only)
if hasattr(np, "matrix_transpose"):  # NumPy >= 2.0, where arrays have .mT
    ARRAY_ATTRIBUTES["mT"] = np.matrix_transpose


def attribute(x, name):
    """`x.shape` (or another of ARRAY_ATTRIBUTES) before the call is observed: a field of
    that name if x is a namedtuple or a dataclass (Gamma(shape, rate).shape), else the
    array attribute. Once x's kind is known it becomes one or the other (driver's
    resolve_attributes), with the other's rules."""
    if hasattr(type(x), "_fields") or hasattr(type(x), "__dataclass_fields__"):
        return field(x, name)  # (a property of that name is refused)
    return ARRAY_ATTRIBUTES[name](x)


def replaced(x, name, value):
    """`x._replace(name=value)`: a namedtuple like x with one field changed. The
    cotangent of a namedtuple (a dict by field) gets the entry changed in a copy."""
    if isinstance(x, dict):
        out = x.copy()
        out[name] = value
        return out
    if hasattr(type(x), "__dataclass_fields__"):  # a dataclass built in f
        import dataclasses
        return dataclasses.replace(x, **{name: value})
    return x._replace(**{name: value})


def tolist(x):
    """`x.tolist()`: an array's entries as (nested) lists of Python numbers."""
    return x.tolist()


def item(x):
    """`x.item()`: the one entry of an array of size 1 (with any number of axes, where
    float(x) takes 0-d arrays only), as a Python number."""
    return x.item()


def mapping(d):
    """Checks that `dict(d)`, lowered as a copy of d before d's kind is seen, copies a
    dict: dict() of a list of pairs (or of anything else) is not that copy."""
    if not isinstance(d, dict):
        raise UnsupportedError(
            f"dict() of a value not known here to be a dict, and on this call a "
            f"{type(d).__name__}: only a copy of a dict is supported here",
            generated_from(sys._getframe(1)),
            "build the dict from known keys: dict(zip(keys, values)), or "
            "{k: v for k, v in pairs}")


def keys(d, ordered=False, reverse=False):
    """A dict's keys as a list, which a loop reads by position: `for k, v in d.items()`
    is lowered to a loop over keys(d) that reads d[k], and `sorted(d.items())` to one
    over keys(d, ordered=True) (the keys are unique: no value is compared)."""
    return sorted(d, reverse=reverse) if ordered else list(d)


def assertion(condition, message=None):
    """`assert condition, message`: the forward sweep checks it as f does."""
    if not condition:
        raise AssertionError(message) if message is not None else AssertionError


def raise_if(condition, error, message=None):
    """`if condition: raise error(message)`: the forward sweep checks it as f does."""
    if condition:
        raise error(message) if message is not None else error


def numbers(arr, name):
    """Checks that `max(xs)` or `min(xs)` (taken as np.max of np.array(xs)) reads numbers:
    Python compares tuples or lists in order, an array entry by entry. A NaN among them
    is refused too: Python's choice then depends on where it stands (every comparison
    with it is False), NumPy's does not."""
    pick = "np.argsort" if name == "sorted" else f"np.arg{name}"
    if np.ndim(arr) > 1:
        raise UnsupportedError(f"`{name}` of tuples or lists compares them in order, which "
                               f"is not supported here", None,
                               f"take `{name}` of the scores, and the rest with {pick}")
    if np.asarray(arr).dtype.kind in "fc" and np.isnan(arr).any():
        raise UnsupportedError(f"`{name}` of values with a NaN among them: Python's answer "
                               f"then depends on their order", generated_from(sys._getframe(1)),
                               f"drop or replace the NaN first, or use {pick}, whose answer "
                               f"does not")


def sequence(xs):
    """What `for v in xs` walks by position: a dict's keys, anything else itself.
    Resolved once the kinds are known (passes/sequences.py)."""
    return list(xs) if isinstance(xs, dict) else xs


def in_(a, b):
    """`a in b`."""
    return a in b


def not_in(a, b):
    """`a not in b`."""
    return a not in b


def and_(a, b):
    """`a and b` with both sides evaluated (used when the right side cannot fail)."""
    return a and b


def or_(a, b):
    """`a or b` with both sides evaluated (used when the right side cannot fail)."""
    return a or b


primitive(operator.getitem, "getitem", "subscript", precedence=15)
primitive(runtime.setitem, "setitem", "setitem")
primitive(runtime.append, "append", "append")
primitive(runtime.add_at, "add_at", "add_at")
primitive(runtime.add_slice, "add_slice")
primitive(runtime.save, "save")
primitive(runtime.written, "written")
primitive(runtime.entry_cotangents, "entry_cotangents")
primitive(runtime.by_field, "by_field")
primitive(runtime.concat, "concat")
primitive(runtime.repeat, "repeat")
primitive(runtime.unrepeat, "unrepeat")
primitive(runtime.element, "element", "subscript", precedence=15)
primitive(runtime.private, "private")
primitive(runtime.accum, "accum")
primitive(runtime.alias, "alias", "alias")
primitive(tuple_of, "tuple", "tuple")
primitive(list_of, "list", "list")
primitive(dict_of, "dict_of", "dict")
primitive(keys, "keys", nondiff=True)
primitive(field, "field", "field", precedence=15)
primitive(attribute, "attribute")
primitive(replaced, "replaced")
primitive(tolist, "tolist")
primitive(item, "item", "method", "item")  # printed x.item()
primitive(mapping, "mapping", nondiff=True, pure=False)
primitive(assertion, "assertion", "assert", nondiff=True, pure=False)
primitive(raise_if, "raise_if", "raise_if", nondiff=True, pure=False)
primitive(runtime.one_real_number, "one_real_number", nondiff=True)
primitive(numbers, "numbers", nondiff=True, pure=False)
primitive(sequence, "sequence")
primitive(unsequence, "unsequence")
primitive(in_, "in_", "infix", " in ", 5, nondiff=True)
primitive(not_in, "not_in", "infix", " not in ", 5, nondiff=True)
primitive(and_, "and_", "infix", " and ", 3, nondiff=True)
primitive(or_, "or_", "infix", " or ", 2, nondiff=True)
primitive(slice, "slice", "slice", nondiff=True)
primitive(runtime.index_tuple, "index", "tuple", nondiff=True)
primitive(runtime.unbroadcast, "unbroadcast")
primitive(runtime.sum_to, "sum_to")
primitive(runtime.expand_to, "expand_to")
primitive(runtime.zeros_like, "zeros_like", nondiff=True)
primitive(runtime.stop_gradient, "stop_gradient", nondiff=True)
primitive(runtime.real_arguments, "real_arguments", nondiff=True)
primitive(runtime.no_none_entries, "no_none_entries", nondiff=True)
primitive(runtime.no_integers, "no_integers", nondiff=True)
primitive(np.zeros_like, "np.zeros_like", nondiff=True)  # the reverse sweep's loop seeds
# the methods of a str that no other type has, called as str's (str.startswith(k, 'W');
# a value of another type fails as it would in f). What they give is no float.
STR_METHODS = ("startswith", "endswith", "lower", "upper", "strip", "lstrip", "rstrip",
               "split", "rsplit", "join", "replace", "find", "rfind", "isdigit", "isalpha",
               "isalnum", "isspace", "title", "capitalize", "casefold", "zfill", "removeprefix",
               "removesuffix")
for _name in STR_METHODS:
    primitive(getattr(str, _name), f"str.{_name}", nondiff=True)
defnondiff(slice, runtime.index_tuple, keys, assertion, numbers, mapping, in_, not_in, and_,
           or_, runtime.zeros_like, runtime.stop_gradient, runtime.real_arguments,
           runtime.no_none_entries, runtime.no_integers)


@defvjp(field)
def field_vjp(g, ans, x, name):
    return add_at(zeros_like(x), name, g)


@defjvp(field)
def field_jvp(ans, x, name, x_dot):
    return field(x_dot, name)


@deflinear(replaced, "x", "value")
def replaced_vjp(g, ans, x, name, value):
    # the field's old value no longer reaches the output: a zero of its shape
    named = by_field(g, ans)
    return replaced(named, name, zeros_like(field(x, name))), None, named[name]


@deflinear(runtime.by_field)
def by_field_vjp(g, ans, h, like):
    return g, None  # by field: it adds to one by position


@deflinear(tolist)
def tolist_vjp(g, ans, x):  # a list's cotangent may be stacked: an array, shaped like x
    return np.reshape(g, np.shape(x))


@deflinear(item)
def item_vjp(g, ans, x):
    return np.reshape(g, np.shape(x))


@defvjp(operator.getitem)
def getitem_vjp(g, ans, x, index):
    return add_at(zeros_like(x), index, g)


@defjvp(operator.getitem)
def getitem_jvp(ans, x, index, x_dot):
    return x_dot[index]


@defvjp(runtime.setitem)
def setitem_vjp(g, ans, x, index, value):
    # read the region's cotangent before zeroing it: the old contents are overwritten
    value_bar = unbroadcast(written(g, index), value)
    return setitem(g, index, 0.0), None, value_bar


def dict_setitem_vjp(g, ans, x, index, value):
    """setitem's rule where x is a dict (`q[k] = v`): the zero written back is of the old
    entry's kind (an array's zeros, not 0.0), None where x did not hold the key
    (ad/reverse.py picks it)."""
    return setitem(g, index, zeros_like(save(x, index))), None, g[index]


def entry_setitem_vjp(g, ans, x, index, value):
    """setitem's rule where x is a list whose entry may change kind when it is
    overwritten (`L[k] = x[:n]`, n growing): the zero written back is of the old entry's
    kind, and makes a stacked cotangent one per entry where the shapes differ
    (ad/reverse.py picks it where the observed kinds do not rule that out)."""
    value_bar = written(g, index)
    zero = zeros_like(x[index])  # x as it was: the write is undone in the reverse sweep
    return setitem(entry_cotangents(g, index, zero), index, zero), None, value_bar


def entry_or_region_setitem_vjp(g, ans, x, index, value):
    """entry_setitem_vjp where x may be a list or an array (generic code), with the
    value's cotangent summed where an array's write broadcast it."""
    g_before, _, value_bar = entry_setitem_vjp(g, ans, x, index, value)
    return g_before, None, unbroadcast(value_bar, value)


def slice_setitem_vjp(g, ans, x, index, value):
    """setitem's rule where x is a list written through a slice (`L[:2] = [a, b]`): the
    zero written back is a list's, which Python's slice assignment needs (ad/reverse.py
    picks it)."""
    value_bar = written(g, index)
    return setitem(g, index, zeros_like(value_bar)), None, value_bar


@defjvp(runtime.setitem)
def setitem_jvp(ans, x, index, value, x_dot, value_dot):
    return setitem(x_dot, index, value_dot)


@defvjp(runtime.add_at)
def add_at_vjp(g, ans, x, index, value):
    return g, None, unbroadcast(g[index], value)


@defjvp(runtime.add_at)
def add_at_jvp(ans, x, index, value, x_dot, value_dot):
    return add_at(x_dot, index, value_dot)


@defvjp(runtime.add_slice)
def add_slice_vjp(g, ans, x, index, value):
    return g, None, g[index]


@defjvp(runtime.add_slice)
def add_slice_jvp(ans, x, index, value, x_dot, value_dot):
    return runtime.add_slice(x_dot, index, value_dot)


@defvjp(runtime.append)
def append_vjp(g, ans, xs, value):
    return g[:-1], g[-1]


@defjvp(runtime.append)
def append_jvp(ans, xs, value, xs_dot, value_dot):
    return append(xs_dot, value_dot)


@defvjp(runtime.unbroadcast)
def unbroadcast_vjp(g, ans, x, target):
    return np.broadcast_to(g, np.shape(x)) if np.shape(x) != np.shape(g) else g


@defjvp(runtime.unbroadcast)
def unbroadcast_jvp(ans, x, target, x_dot):
    # sum_to, not unbroadcast: lowering drops `unbroadcast(e, t)` when t is shaped like
    # `ans`, which assumes e is too (true of a cotangent, not of the tangent x_dot)
    return runtime.sum_to(x_dot, np.shape(target))


@defvjp(runtime.sum_to)
def sum_to_vjp(g, ans, x, shape):
    return np.broadcast_to(g, np.shape(x))


@defjvp(runtime.sum_to)
def sum_to_jvp(ans, x, shape, x_dot):
    return runtime.sum_to(x_dot, shape)


@defvjp(runtime.expand_to)
def expand_to_vjp(g, ans, x, target, axis=None, keepdims=False):
    return np.sum(g, axis=axis, keepdims=keepdims)


@defjvp(runtime.expand_to)
def expand_to_jvp(ans, x, target, axis=None, keepdims=False, x_dot=None):
    return runtime.expand_to(x_dot, target, axis, keepdims)


@defvjp(iadd_at)
def iadd_at_vjp(g, ans, x, index, value):
    return g, None, unbroadcast(g[index], value)


@defjvp(iadd_at)
def iadd_at_jvp(ans, x, index, value, x_dot, value_dot):
    return iadd_at(x_dot, index, value_dot)


@defvjp(runtime.save)
def save_vjp(g, ans, x, index):
    return add_at(zeros_like(x), index, g)


@defjvp(runtime.save)
def save_jvp(ans, x, index, x_dot):
    return save(x_dot, index)


@defvjp(runtime.written)
def written_vjp(g, ans, x, index):
    return setitem(zeros_like(x), index, g)  # the dropped writes' zeros go nowhere


@deflinear(runtime.entry_cotangents, "c")
def entry_cotangents_vjp(g, ans, c, index, zero):
    return np.reshape(g, np.shape(c)), None, None  # one per entry, shaped as c was


@defjvp(runtime.written)
def written_jvp(ans, x, index, x_dot):
    return written(x_dot, index)


@defvjp(runtime.concat)
def concat_vjp(g, ans, a, b):
    return g[:len(a)], g[len(a):]


@defjvp(runtime.concat)
def concat_jvp(ans, a, b, a_dot, b_dot):
    return runtime.concat(a_dot, b_dot)


@defvjp(runtime.repeat)
def repeat_vjp(g, ans, xs, n):
    return runtime.unrepeat(g, len(xs)), None


@defjvp(runtime.repeat)
def repeat_jvp(ans, xs, n, xs_dot):
    return runtime.repeat(xs_dot, n)


@defvjp(runtime.unrepeat)
def unrepeat_vjp(g, ans, copies, k):
    return runtime.repeat(g, len(copies) // k), None


@defjvp(runtime.unrepeat)
def unrepeat_jvp(ans, copies, k, copies_dot):
    return runtime.unrepeat(copies_dot, k)


@defvjp(runtime.accum)
def accum_vjp(g, ans, a, b):
    return g, g


@defjvp(runtime.accum)
def accum_jvp(ans, a, b, a_dot, b_dot):
    return runtime.accum(a_dot, b_dot)


@defvjp(runtime.alias)
def alias_vjp(g, ans, x):
    return g


@defjvp(runtime.alias)
def alias_jvp(ans, x, x_dot):
    return x_dot


@defvjp(iadd)
def iadd_vjp(g, ans, x, y):
    return g, g


@defjvp(iadd)
def iadd_jvp(ans, x, y, x_dot, y_dot):
    return iadd(x_dot, y_dot)


@defvjp(runtime.element)
def element_vjp(g, ans, x, index):
    return add_at(zeros_like(x), index, g)


@defjvp(runtime.element)
def element_jvp(ans, x, index, x_dot):
    return runtime.element(x_dot, index)


@defvjp(runtime.private)
def private_vjp(g, ans, x):
    return g


@defjvp(runtime.private)
def private_jvp(ans, x, x_dot):
    return runtime.private(x_dot)


@defvjp(sequence)
def sequence_vjp(g, ans, xs):  # generic code: xs may be a dict, whose keys carry none
    return unsequence(g, xs)


@defjvp(sequence)
def sequence_jvp(ans, xs, xs_dot):
    return xs_dot


@deflinear(unsequence)  # linear in g: its own transpose (an hvp differentiates it again)
def unsequence_vjp(g, ans, h, xs):
    return unsequence(g, xs)
