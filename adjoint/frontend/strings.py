"""Strings made in f (dict keys built in a loop, labels): an f-string, `'W{}'.format(i)`
and `"W%d" % i`, as `format` of each field joined with `+`. Formatting has no derivative
rule, so a gradient that flows through a string is refused, never taken as zero.

Each function takes the Lowerer `low` of the expression.
"""
from __future__ import annotations

import operator
import string

import gast

from adjoint import runtime
from adjoint.frontend.bindings import TEMP
from adjoint.ir.core import Const
from adjoint.rules import registry
from adjoint.rules.registry import prim_of

# f-string conversions: f"{v!r}"
CONVERSIONS = {"s": str, "r": repr, "a": ascii}
# what formats the fields of an f-string: without a derivative rule, so that a gradient
# flowing through a string (float(f"{x}")) is refused, never taken as zero; and, as every
# callable without a rule, never folded by the passes (lowering folds constant fields)
for _fn in (format, str, repr, ascii):
    if registry.lookup(_fn) is None:
        registry.primitive(_fn, _fn.__name__, pure=False)
if registry.lookup(runtime.percent_format) is None:
    registry.primitive(runtime.percent_format, "percent_format", "infix", " % ", 12, pure=False)


def joined_str(low, node, hint):
    """`f"W{i}"` (a dict key made in a loop): its text and `format(v, spec)` of each
    field, joined with `+`. A string passes no gradient: a float formatted into one
    and read back is refused where the gradient would flow (format has no rule)."""
    pieces = []
    for part in node.values:
        if isinstance(part, gast.FormattedValue):
            spec = joined_str(low, part.format_spec, TEMP) \
                if part.format_spec is not None else Const("")
            conversion = chr(part.conversion) if part.conversion != -1 else ""
            pieces.append(formatted(low, low.operand(part.value), conversion, spec, part))
        else:
            pieces.append(Const(part.value))
    return joined(low, pieces, hint, node)


def str_format(low, template: str, args, kwargs, node, hint):
    """`'W{}'.format(i)`, a constant template, read as the f-string it stands for."""
    pieces, auto = [], 0
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as e:
        raise low.error(f"a bad format string: {e}", node) from None
    for literal, name, spec, conversion in fields:
        pieces.append(Const(literal))
        if name is None:
            continue
        if name == "":
            name, auto = str(auto), auto + 1
        if "{" in spec or not (name.isdigit() and int(name) < len(args) or name in kwargs):
            raise low.error(f"`.format()` field `{{{name}}}`: only plain positional or "
                            f"keyword fields are supported here", node,
                            "write an f-string: f\"W{i}\"")
        value = args[int(name)] if name.isdigit() else kwargs[name]
        low.check_operands([value], node)
        pieces.append(formatted(low, value, conversion or "", Const(spec), node))
    return joined(low, pieces, hint, node)


def formatted(low, value, conversion: str, spec, node):
    """One field of a format string: `format(v, spec)`, after `!r`, `!s` or `!a`."""
    convert = CONVERSIONS.get(conversion)
    if isinstance(value, Const) and isinstance(spec, Const):  # f"W{1}": known here
        return Const(format(convert(value.value) if convert else value.value, spec.value))
    if convert:
        value = low.emit(prim_of(convert), (value,), node=node)
    spec = () if spec == Const("") else (spec,)
    return low.emit(prim_of(format), (value, *spec), node=node)


def joined(low, pieces, hint, node):
    """The strings `pieces` joined with `+` (constant neighbours fold into one)."""
    text = Const("")
    for piece in pieces:
        if piece != Const(""):
            text = piece if text == Const("") else low.emit(
                prim_of(operator.add), (text, piece), hint=hint, node=node)
    return text
