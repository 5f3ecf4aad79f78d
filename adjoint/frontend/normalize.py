"""Desugaring that makes every exit structured, so lowering sees only tail exits.

1. Statements after a `return`, `break` or `continue` that can fall through are
   moved into the branches that fall through:

       if c:                          if c:
           return a          ==>          return a
       y = g(x)                       else:
       return y                           y = g(x)
                                          return y

2. A `return` inside a loop sets `_ret = True; _retval = v` and breaks; after the
   loop, `if _ret: return _retval`, with the rest of the function in its `else`.

3. A loop that breaks becomes a `while` over an index, with a flag:

       for t in seq:                  _brk = False
           if c(t):                   _k = 0
               break          ==>     _seq = seq
           s = f(s, t)                while _k < len(_seq) and not _brk:
                                          t = _seq[_k]   (_seq: seq, a dict's keys
                                          _k = _k + 1     if it is a dict)
                                          if c(t):
                                              _brk = True
                                          else:
                                              s = f(s, t)

4. A loop's `else` follows the loop, under `if not _brk:` when the loop can break
   (what it does may exit in turn: return, or break an enclosing loop).

The reverse sweep of a `while` records its trip count, so the gradient of an
early exit costs nothing extra. (Names starting with `_` here are reserved by
adjoint; lowering renames user variables that would collide.)
"""
from __future__ import annotations

import builtins
import itertools

import gast

from adjoint.errors import UnsupportedError

_TERMINATORS = (gast.Return, gast.Break, gast.Continue)
WALK = "__adjoint_walk__"  # `WALK(xs)`: what `for v in xs` reads by position (lowering's)
_fresh = itertools.count(1)


def normalize(fn: gast.FunctionDef, loc) -> gast.FunctionDef:
    """Rewrite `fn` (a copy) so that exits appear only at the tails of paths."""
    fn = clone(fn)
    fn.body = _block(fn.body, loc, in_loop=False)
    return fn


def clone(node):
    """A copy of a gast tree: fields and positions (copy.deepcopy is ten times slower)."""
    if isinstance(node, list):
        return [clone(n) for n in node]
    if not isinstance(node, gast.AST):
        return node
    new = node.__class__.__new__(node.__class__)
    new.__dict__.update({k: clone(v) for k, v in node.__dict__.items()})
    return new


def _always_exits(stmts: list) -> bool:
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, _TERMINATORS):
        return True
    if isinstance(last, gast.If):
        return _always_exits(last.body) and _always_exits(last.orelse)
    return False


def _may_exit(stmts: list) -> bool:
    for s in stmts:
        if isinstance(s, _TERMINATORS):
            return True
        if isinstance(s, gast.If) and (_may_exit(s.body) or _may_exit(s.orelse)):
            return True
    return False


def quiet_errstate(s) -> bool:
    """Whether `s` is `with np.errstate(divide="ignore", ...):`, whose settings only
    silence or report NumPy's floating-point warnings (not "raise" or "call"): its body
    computes the same values without it."""
    if not (isinstance(s, gast.With) and len(s.items) == 1):
        return False
    item = s.items[0]
    call = item.context_expr
    return item.optional_vars is None and isinstance(call, gast.Call) and \
        isinstance(call.func, gast.Attribute) and call.func.attr == "errstate" and \
        not call.args and all(isinstance(k.value, gast.Constant) and
                              k.value.value in ("ignore", "warn", "print", "log")
                              for k in call.keywords)


def _block(stmts: list, loc, in_loop: bool) -> list:
    # `with np.errstate(...)`: its body, inline (the generated code may warn where f did not)
    while any(quiet_errstate(s) for s in stmts):
        stmts = [t for s in stmts for t in (s.body if quiet_errstate(s) else [s])]
    out: list = []
    for i, s in enumerate(stmts):
        if isinstance(s, _TERMINATORS):
            if not in_loop and isinstance(s, (gast.Break, gast.Continue)):
                raise UnsupportedError(f"`{type(s).__name__.lower()}` outside a loop", loc(s))
            out.append(s)
            return out  # what follows an exit never runs
        if isinstance(s, gast.If):
            s.body = _block(s.body, loc, in_loop)
            s.orelse = _block(s.orelse, loc, in_loop)
            rest = stmts[i + 1:]
            if rest and _may_exit([s]):
                if not _always_exits(s.body):
                    s.body = _block(s.body + clone(rest), loc, in_loop)
                if not _always_exits(s.orelse):
                    s.orelse = _block(s.orelse + clone(rest), loc, in_loop)
                out.append(s)
                return out
            out.append(s)
        elif isinstance(s, (gast.For, gast.While)):
            orelse, s.orelse = s.orelse, []
            after, guard, brk = _loop(s, loc)
            out.extend(after)
            # `for ... else`: the else runs when the loop ends without a break
            if orelse and brk is not None:
                test = _fix(gast.UnaryOp(op=gast.Not(), operand=_name(brk)), orelse[0])
                orelse = [gast.copy_location(gast.If(test=test, body=orelse, orelse=[]),
                                             orelse[0])]
            rest = orelse + list(stmts[i + 1:])
            if guard is not None:  # the loop may return: `if _ret: return _retval`
                guard.orelse = _block(guard.orelse + rest, loc, in_loop)
                out.append(guard)
                return out
            if orelse:  # it may exit (return, or break the enclosing loop)
                return out + _block(rest, loc, in_loop)
        else:
            out.append(s)
    return out


def _contains(stmts: list, kinds) -> bool:
    """Whether `kinds` occur in `stmts`, not counting nested loops' own break/continue."""
    for s in stmts:
        if isinstance(s, kinds):
            return True
        if isinstance(s, gast.If) and (_contains(s.body, kinds) or _contains(s.orelse, kinds)):
            return True
        if isinstance(s, (gast.For, gast.While)):
            if gast.Return in _as_tuple(kinds) and _contains(s.body, gast.Return):
                return True
            if _contains(s.orelse, kinds):  # a loop's else is in the enclosing loop
                return True
    return False


def _as_tuple(kinds):
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _name(id_, ctx=None):
    return gast.Name(id=id_, ctx=ctx or gast.Load(), annotation=None, type_comment=None)


def _assign(target: str, value, at) -> gast.Assign:
    node = gast.Assign(targets=[_name(target, gast.Store())], value=value, type_comment=None)
    return gast.copy_location(node, at)


def _const(v):
    return gast.Constant(value=v, kind=None)


def _fix(node, at):
    for n in gast.walk(node):
        gast.copy_location(n, at)
    return node


def _loop(loop, loc) -> tuple:
    """Normalise one loop (its `else` taken off); returns the statements replacing it,
    the `if _ret: return _retval` guard (or None when the loop cannot return), and the
    name of the flag set by a break (None when the loop cannot break)."""
    k = next(_fresh)
    ret, retval, brk = f"_ret{k}", f"_retval{k}", f"_brk{k}"
    returns = _contains(loop.body, gast.Return)
    pre: list = []
    if returns:
        pre += [_assign(ret, _const(False), loop), _assign(retval, _const(None), loop)]
        loop.body = _replace_returns(loop.body, ret, retval)
    loop.body = _block(loop.body, loc, in_loop=True)
    breaks = _contains(loop.body, gast.Break)
    if breaks:
        loop.body = _replace_breaks(loop.body, brk)
        pre.append(_assign(brk, _const(False), loop))
        not_brk = _fix(gast.UnaryOp(op=gast.Not(), operand=_name(brk)), loop)
        if isinstance(loop, gast.While):
            loop.test = _fix(gast.BoolOp(op=gast.And(), values=[loop.test, not_brk]), loop)
        else:
            idx = f"_k{k}"
            # (sequence, target) pairs: `for i, x in enumerate(xs)` walks xs with i = _k,
            # `for a, b in zip(xs, ys)` walks both, up to the shorter
            walks, index_target = _walks(loop, k, loc)
            # each read by position as the `for` reads it: a dict by its keys (WALK)
            pre += [_assign(seq, gast.Call(func=_name(WALK), args=[it], keywords=[]), loop)
                    for seq, it, _ in walks]
            pre.append(_assign(idx, _const(0), loop))
            test = gast.BoolOp(op=gast.And(), values=[
                gast.Compare(left=_name(idx), ops=[gast.Lt()], comparators=[
                    gast.Call(func=_name("len"), args=[_name(seq)], keywords=[])])
                for seq, _, _ in walks] + [not_brk])
            head = [gast.Assign(targets=[target], value=gast.Subscript(
                        value=_name(seq), slice=_name(idx), ctx=gast.Load()), type_comment=None)
                    for seq, _, target in walks]
            if index_target is not None:
                head.insert(0, gast.Assign(targets=[index_target], value=_name(idx),
                                           type_comment=None))
            head.append(_assign(idx, gast.BinOp(left=_name(idx), op=gast.Add(),
                                                right=_const(1)), loop))
            loop = gast.While(test=_fix(test, loop), body=[_fix(h, loop) for h in head] + loop.body,
                              orelse=[])
            gast.copy_location(loop, pre[0])
    loop.body = [s for s in loop.body if not isinstance(s, gast.Continue)] or [gast.Pass()]
    _drop_continues(loop.body)
    guard = None
    if returns:
        guard = gast.If(test=_name(ret), body=[gast.Return(value=_name(retval))], orelse=[])
        guard = _fix(guard, pre[0])
    return pre + [loop], guard, brk if breaks else None


def _walks(loop, k: int, loc) -> tuple:
    """The sequences a breaking `for` walks by index: [(name, iterable, target)], and the
    target bound to the index itself (enumerate's), or None."""
    it, target = loop.iter, loop.target
    if isinstance(it, gast.Call) and getattr(it.func, "id", getattr(it.func, "attr", "")) \
            == "checkpointed":
        raise UnsupportedError("a checkpointed loop cannot break or return early", loc(loop),
                               "run a fixed number of steps in the checkpointed loop, or "
                               "loop without adjoint.checkpointed")
    kind = _builtin_call(it, loc)
    if kind is None:
        return [(f"_seq{k}", it, target)], None
    n = len(it.args) if kind == "zip" else 2
    if it.keywords or (kind == "enumerate" and len(it.args) != 1) or not (
            isinstance(target, gast.Tuple) and len(target.elts) == n):
        raise UnsupportedError(f"write `for i, x in enumerate(xs)` or `for a, b in zip(xs, ys)`"
                               f" here", loc(it), "unpack the loop variables in the header, "
                               "one per sequence")
    if kind == "enumerate":
        return [(f"_seq{k}", it.args[0], target.elts[1])], target.elts[0]
    return [(f"_seq{k}_{j}", a, t) for j, (a, t) in enumerate(zip(it.args, target.elts))], None


def _builtin_call(node, loc):
    """"enumerate" or "zip" when `node` calls that builtin (as lowering resolves names)."""
    if not (isinstance(node, gast.Call) and isinstance(node.func, gast.Name)
            and node.func.id in ("enumerate", "zip")):
        return None
    parsed = getattr(loc, "__self__", None)  # loc is Parsed.loc: names resolve through it
    if parsed is None:
        return node.func.id
    found, obj = parsed.lookup(node.func.id)
    return node.func.id if found and obj is getattr(builtins, node.func.id) else None


def _replace_returns(stmts: list, ret: str, retval: str) -> list:
    out = []
    for s in stmts:
        if isinstance(s, gast.Return):
            value = s.value if s.value is not None else _const(None)
            out += [_assign(retval, value, s), _assign(ret, _const(True), s),
                    gast.copy_location(gast.Break(), s)]
            return out
        if isinstance(s, gast.If):
            s.body = _replace_returns(s.body, ret, retval)
            s.orelse = _replace_returns(s.orelse, ret, retval)
        elif isinstance(s, (gast.For, gast.While)) and _contains([s], gast.Return):
            # an inner loop's return: it breaks the inner loop, then the outer one (a
            # return in the inner loop's else breaks the outer one directly)
            s.body = _replace_returns(s.body, ret, retval)
            s.orelse = _replace_returns(s.orelse, ret, retval)
            out.append(s)
            guard = gast.If(test=_name(ret), body=[gast.Break()], orelse=[])
            out.append(_fix(guard, s))
            continue
        out.append(s)
    return out


def _replace_breaks(stmts: list, brk: str) -> list:
    out = []
    for s in stmts:
        if isinstance(s, gast.Break):
            out.append(_assign(brk, _const(True), s))
            return out
        if isinstance(s, gast.If):
            s.body = _replace_breaks(s.body, brk) or [gast.Pass()]
            s.orelse = _replace_breaks(s.orelse, brk)
        out.append(s)
    return out


def _drop_continues(stmts: list) -> None:
    for s in stmts:
        if isinstance(s, gast.If):
            s.body = [t for t in s.body if not isinstance(t, gast.Continue)] or [gast.Pass()]
            s.orelse = [t for t in s.orelse if not isinstance(t, gast.Continue)]
            _drop_continues(s.body)
            _drop_continues(s.orelse)
