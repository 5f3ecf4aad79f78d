"""Reject unsupported syntax up front, at its own line, before any lowering.

Lowering would trip over these too, but only on the paths it takes; checking the
whole tree first means a construct in a branch that happens to fold away is
still reported, and the error always names the first offending line.
"""
from __future__ import annotations

import gast

from adjoint.frontend.lower import unsupported_expression, unsupported_statement
from adjoint.frontend.source import Parsed

_STATEMENTS = (gast.Assign, gast.AugAssign, gast.AnnAssign, gast.Return, gast.If, gast.For,
               gast.While, gast.Expr, gast.Pass, gast.Break, gast.Continue, gast.Assert)
_EXPRESSIONS = (gast.BoolOp, gast.BinOp, gast.UnaryOp, gast.IfExp, gast.Compare, gast.Call,
                gast.Constant, gast.Attribute, gast.Subscript, gast.Name, gast.List, gast.Tuple,
                gast.Slice, gast.Starred)


def check(parsed: Parsed) -> None:
    for stmt in parsed.node.body:
        for node in gast.walk(stmt):
            if isinstance(node, gast.stmt) and not isinstance(node, _STATEMENTS):
                raise unsupported_statement(node, parsed.loc(node))
            if isinstance(node, gast.expr) and not isinstance(node, _EXPRESSIONS):
                raise unsupported_expression(node, parsed.loc(node))
