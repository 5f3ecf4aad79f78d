"""Reject unsupported syntax up front, at its own line, before any lowering.

Lowering would trip over these too, but only on the paths it takes; checking the
whole tree first means a construct in a branch that happens to fold away is
still reported, and the error always names the first offending line.
"""
from __future__ import annotations

import gast

from adjoint.errors import UnsupportedError
from adjoint.frontend.normalize import quiet_errstate
from adjoint.frontend.source import Parsed

_STATEMENTS = (gast.Assign, gast.AugAssign, gast.AnnAssign, gast.Return, gast.If, gast.For,
               gast.While, gast.Expr, gast.Pass, gast.Break, gast.Continue, gast.Assert,
               gast.FunctionDef, gast.Try, gast.Raise)  # raise: in a check only
_EXPRESSIONS = (gast.BoolOp, gast.BinOp, gast.UnaryOp, gast.IfExp, gast.Compare, gast.Call,
                gast.Constant, gast.Attribute, gast.Subscript, gast.Name, gast.List, gast.Tuple,
                gast.Slice, gast.Starred, gast.ListComp, gast.GeneratorExp, gast.Lambda,
                gast.Dict, gast.DictComp, gast.NamedExpr,
                gast.JoinedStr, gast.FormattedValue)  # f-strings: in print(...) only


def check(parsed: Parsed) -> None:
    checks: set[int] = set()  # the `raise` statements that are checks
    for stmt in parsed.node.body:
        for node, children in _walk(stmt):  # an `if` comes before the raise in its body
            if _raise_check(node):
                checks.add(id(node.body[0]))
            if _raise_otherwise(node):
                checks.add(id(node.orelse[0]))
            if isinstance(node, gast.Raise) and id(node) not in checks:
                raise unsupported_statement(node, parsed.loc(node))
            for named in _scoped_named_exprs(node):
                raise UnsupportedError("an assignment expression (:=) in a while test, a "
                                       "comprehension, a call statement (print), an assert, "
                                       "or a part of a test that may not run (`and`, `or`, "
                                       "`if else`) is not supported", parsed.loc(named),
                                       "assign on its own line")
            for gen in _stored_generators(node, children):
                raise UnsupportedError(
                    "a generator expression is consumed once; here it may be read again",
                    parsed.loc(gen), "pass it straight to sum/min/max/list/any/all, or make "
                                     "a list: [v * v for v in x]")
            for it in _stored_iterators(node, children):
                raise UnsupportedError(
                    "an iterator is consumed once; here it may be read again (a second "
                    "loop over it would find nothing left, or what a `break` left)",
                    parsed.loc(it), "loop over the sequence itself, or make a list: "
                                    "list(reversed(x))")
            if isinstance(node, gast.stmt) and not isinstance(node, _STATEMENTS) and \
                    not quiet_errstate(node):
                raise unsupported_statement(node, parsed.loc(node))
            if isinstance(node, gast.expr) and not isinstance(node, _EXPRESSIONS):
                raise unsupported_expression(node, parsed.loc(node))
            if isinstance(node, gast.FunctionDef) and node.decorator_list:
                raise UnsupportedError("decorated nested functions are not supported in "
                                       "differentiated code", parsed.loc(node),
                                       "define the decorated function at module level")
            if isinstance(node, (gast.FunctionDef, gast.Lambda)) and (
                    node.args.vararg or node.args.kwarg or node.args.posonlyargs):
                raise UnsupportedError("*args, **kwargs and positional-only parameters of a "
                                       "nested function are not supported", parsed.loc(node),
                                       "give the nested function plain parameters")


def _raise_check(n) -> bool:
    """Whether `n` is an `if` whose whole body is a `raise` (`if bad: raise
    ValueError("...")`): a check, which lowering reads as an assert (its else, if any,
    then runs)."""
    return isinstance(n, gast.If) and len(n.body) == 1 and \
        isinstance(n.body[0], gast.Raise) and n.body[0].exc is not None


def _raise_otherwise(n) -> bool:
    """Whether `n` is an `if` whose whole else is a `raise` (the `else: raise
    ValueError(...)` that ends an if/elif chain of options): the check of `not test`."""
    return isinstance(n, gast.If) and len(n.orelse) == 1 and \
        isinstance(n.orelse[0], gast.Raise) and n.orelse[0].exc is not None


def _scoped_named_exprs(node) -> list:
    """`:=` where lowering would bind it in the wrong scope or not at all: a while test is
    lowered apart from the loop's body, a comprehension as a loop of its own; the right
    operand of `and`/`or` and a side of `a if c else b` run on some calls only; a
    statement that is a bare call (print, logging, warnings.warn) or an assert is dropped
    when it touches nothing the result depends on, with its assignments."""
    if isinstance(node, gast.While):
        parts = [node.test]
    elif isinstance(node, (gast.ListComp, gast.GeneratorExp, gast.DictComp, gast.Assert)) or \
            isinstance(node, gast.Expr) and not isinstance(node.value, gast.NamedExpr):
        parts = [node]  # (a statement that is `(n := len(xs))` alone binds n)
    elif isinstance(node, gast.BoolOp):
        parts = node.values[1:]
    elif isinstance(node, gast.IfExp):
        parts = [node.body, node.orelse]
    else:
        parts = []
    return [n for part in parts for n in gast.walk(part) if isinstance(n, gast.NamedExpr)]


def _consumed(node) -> set:
    """The ids of node's children that it consumes where they are made: a call's
    arguments, a loop's iterable, an indexed value."""
    out = set()
    if isinstance(node, gast.Call):
        out |= {id(a) for a in node.args}
    if isinstance(node, (gast.For, gast.comprehension)):
        out.add(id(node.iter))
    if isinstance(node, gast.Subscript):
        out.add(id(node.value))  # x.flat[3]
    return out


def _stored_iterators(node, children: list) -> list:
    """`reversed(x)`, `iter(x)` and `x.flat` not consumed where they are made (`r =
    reversed(x)`): lowering reads each as a sequence, which a second reader would see
    again."""
    consumed = _consumed(node)
    return [c for c in children if id(c) not in consumed and (
        isinstance(c, gast.Call) and isinstance(c.func, gast.Name) and
        c.func.id in ("reversed", "iter") or
        isinstance(c, gast.Attribute) and c.attr == "flat")]


def _stored_generators(node, children: list) -> list:
    """Generator expressions not consumed where they are made: lowering reads one as a
    list, which a second reader would see again (Python's generator would be empty).
    `children`: node's child nodes."""
    consumed = _consumed(node) - ({id(node.value)} if isinstance(node, gast.Subscript)
                                  else set())
    return [c for c in children if isinstance(c, gast.GeneratorExp) and id(c) not in consumed]


def _walk(node):
    """gast.walk, except the handlers of a `try`: lowering never runs them (the body is
    differentiated; a failure in it propagates), so they may `raise` or log. Yields
    each node with its children (listed once: a long function has many nodes)."""
    todo = [node]
    while todo:
        n = todo.pop()
        try:
            children = list(gast.iter_child_nodes(n))
        except AttributeError:  # a statement an old gast converts in part (`match` in
            children = []  # gast 0.5.3): refused by its type, as a newer gast's is
        yield n, children
        todo += [c for c in children if not isinstance(c, gast.ExceptHandler)]


def unsupported_statement(s, loc) -> UnsupportedError:
    hints = {
        "Try": "move the try/except outside the differentiated function",
        "With": "move the `with` block outside the differentiated function (`with "
                "np.errstate(divide=\"ignore\")` is read as its body)",
        "ClassDef": "define classes at module level; differentiate functions of arrays",
        "FunctionDef": "define helper functions at module level; adjoint inlines them",
        "Delete": "remove the `del`; unused values are dropped automatically",
        "Global": "pass the value as an argument instead of using `global`",
        "Nonlocal": "pass the value as an argument and return the new one",
        "Raise": "make it the whole body of an `if` (`if bad: raise ValueError(...)`), or "
                 "check inputs before calling the differentiated function",
        "Import": "import at module level",
        "ImportFrom": "import at module level",
        "Match": "write it as `if`/`elif` tests",
        "NoneType": "write it as `if`/`elif` tests, or upgrade gast",
    }
    kind = type(s).__name__
    what = {"FunctionDef": "nested function definitions", "ClassDef": "class definitions",
            "AsyncFunctionDef": "async functions", "Try": "`try` statements",
            "With": "`with` statements", "Delete": "`del` statements",
            "Global": "`global` declarations", "Nonlocal": "`nonlocal` declarations",
            "Raise": "`raise` statements outside a check", "Import": "imports", "ImportFrom": "imports",
            "Match": "`match` statements", "AsyncFor": "`async for` loops",
            "NoneType": "statements this gast cannot read (as gast 0.5.3 cannot `match`)",
            "AsyncWith": "`async with` statements", "TypeAlias": "`type` statements"}
    return UnsupportedError(f"{what.get(kind, kind)} are not supported in differentiated code",
                            loc, hints.get(kind, ""))


def unsupported_expression(node, loc) -> UnsupportedError:
    kind = type(node).__name__
    hints = {
        "SetComp": "build a list with a comprehension, or write a loop", "DictComp": "write a loop", "Dict": "use a tuple or separate "
        "variables", "Set": "use a tuple", "Yield": "return a list built in a loop",
        "YieldFrom": "return a list built in a loop", "Await": "call synchronous code",
        "JoinedStr": "strings do not carry gradients; compute them outside",
        "NamedExpr": "assign on its own line", "Starred": "pass the values one by one",
    }
    what = {"ListComp": "list comprehensions", "GeneratorExp": "generator expressions",
            "Lambda": "lambdas", "Dict": "dicts", "Set": "sets", "Yield": "generators",
            "YieldFrom": "generators", "SetComp": "set comprehensions",
            "DictComp": "dict comprehensions", "JoinedStr": "f-strings",
            "NamedExpr": "assignment expressions (:=)", "Await": "await"}
    return UnsupportedError(f"{what.get(kind, kind)} are not supported in differentiated code",
                            loc, hints.get(kind, ""))
