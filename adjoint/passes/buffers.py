"""Buffer reuse: an elementwise op whose array operand is read for the last time
writes its result into that operand's buffer instead of a fresh array. At 10^6
elements a fresh array costs more than the arithmetic: memory the allocator
hands back to the system and takes again, page by page.

    %_t = np.tanh(%x)                      %_t = np.tanh(%x)
    section("backward")                    section("backward")
    %_t_1 = mul(%_t, %_t)          ==>     %_t_1 = in_place *(%_t, %_t)
    %_t_2 = sub(1.0, %_t_1)                %_t_2 = in_place r-(%_t_1, 1.0)
    %x_bar = mul(%out_bar, %_t_2)          %x_bar = in_place *(%_t_2, %out_bar)

which codegen/emit.py prints as

    _t1 *= _t1
    np.subtract(1.0, _t1, out=_t1)
    x_bar = _t1  # reuses _t1's buffer: _t1 is not read again
    if out_bar != 1.0:
        x_bar *= out_bar

(the seed `out_bar`, 1.0 by default, multiplies only when it is not 1.0: x * 1.0 is x;
the file can be differentiated again, since the frontend reads `ufunc(..., out=t)` as
`t[...] = ufunc(...)`; `1.0 / t` in place would need np.divide's out= too, and is left).
An in-place op's first operand is the buffer written; its result is that buffer.

Only at the function's top level, and only where every condition holds, from the
kinds observed on the call (generic code, without kinds, is left as it is):
- the result is a NumPy float array of the buffer's shape (no broadcast grows it);
- the buffer was made fresh by this function: the result of an elementwise op (an
  arithmetic operator or a ufunc) or of an earlier in-place op; never a parameter,
  a view, a region's result, a tape's entry;
- every read of the buffer is an op that keeps nothing of it (elementwise ops,
  sums, products): it is not taped, returned, stored in a container, viewed, or read
  by a region (a loop, a branch), and no op after this one reads it;
- the other operand cannot widen the buffer's dtype: a number (a float32 buffer
  stays float32, the dtype of its argument, even when a number is a NumPy float64),
  or an array computed from no array the buffer was not computed from.
A variable of the user's is never the buffer of another one (`err_bar = 0.5 * err` stays).
Values defined after the backward marker that become the buffer of a named result
take its name (`x_bar = _t1 * _t1; x_bar *= ...` rather than a move), a forward
value keeps its own, and the move says what it reuses. (tests/test_pass_units.py)
"""
from __future__ import annotations

import operator
from dataclasses import replace

import numpy as np

from adjoint.ir.core import Block, Call, Const, Function, Prim, Value, uses, walk_ops
from adjoint.rules.registry import elementwise_ufunc


def _mul(b, o):
    return b * o


def _add(b, o):
    return b + o


def _sub(b, o):
    return b - o


def _div(b, o):
    return b / o


def _rsub(b, o):
    return o - b


def _neg(b):
    return -b


# symbol -> what the in-place op computes, for the interpreter (the emitter prints it)
COMPUTES = {"*": _mul, "+": _add, "-": _sub, "/": _div, "r-": _rsub, "neg": _neg}
STYLE = "in_place"
# (the operator, whether the buffer is its first operand) -> the in-place op
_BINARY = {(operator.mul, True): "*", (operator.mul, False): "*",
           (operator.add, True): "+", (operator.add, False): "+",
           (operator.sub, True): "-", (operator.sub, False): "r-",
           (operator.truediv, True): "/"}  # o / t in place would round twice
# reads that keep nothing of their operand: the result is a new object
_READERS = {operator.mul, operator.add, operator.sub, operator.truediv, operator.neg,
            operator.matmul, np.sum, np.mean, np.dot, np.matmul, np.vdot}


def in_place(symbol: str) -> Prim:
    return Prim(f"in_place {symbol}", COMPUTES[symbol], STYLE, symbol)


def reuse_buffers(fn: Function, facts) -> Function:
    if facts is None or not facts.kinds:
        return fn
    if hasattr(facts, "infer"):  # the backward sweep's arithmetic, from its operands
        facts = facts.copy().infer(fn)
    ops = list(fn.body.ops)
    start = next((i for i, op in enumerate(ops) if isinstance(op, Call)
                  and op.prim.style == "section"), -1)
    last, kept = _reads(fn.body)
    counts = uses(fn.body)
    users = {o: op for op in ops if isinstance(op, Call) for o in op.args}
    fresh: set = set()    # values whose buffer this function made and nothing else holds
    roots: dict = {}      # value -> the arrays (not computed elementwise) its dtype follows
    chains: dict = {}     # a buffer's value -> the values that held the buffer before it
    tentative: dict = {}  # rewrites undone unless their result is written in place again
    after = {op.result for op in ops[start + 1:] if isinstance(op, Call)}

    def kind(o):
        return facts.kind(o) if isinstance(o, Value) else None

    def float_array(o):
        k = kind(o)
        return k is not None and k.type == "ndarray" and k.dtype == "f" and k.lib is None

    def number(o) -> bool:
        if isinstance(o, Const):
            return type(o.value) in (int, float)
        k = kind(o)
        return k is not None and k.type in ("int", "float")

    def roots_of(o) -> frozenset:
        return frozenset() if number(o) else roots.get(o, frozenset({o}))

    def rewrite(op: Call, i: int) -> Call | None:
        """`op` as an in-place op into one of its operands, or None where none is safe;
        into one that can take the result's name, where there is a choice."""
        user = users.get(op.result)
        if counts.get(op.result) == 1 and user is not None and user.prim.style == "iadd" \
                and user.args[1] is op.result:
            return None  # `acc += a * b` reads best as it is
        for k, b in sorted(enumerate(op.args), key=lambda kb: not renames(kb[1], op.result)):
            if not (b in fresh and last.get(b) == i and b not in kept and float_array(b)
                    and kind(b).shape == kind(op.result).shape):
                continue
            if not b.name.startswith("_") and b.name != op.result.name:
                continue  # `err_bar = err; err_bar *= c` would read worse than it saves
            others = op.args[:k] + op.args[k + 1:]
            if not all(number(o) or (float_array(o) and roots_of(o) <= roots_of(b))
                       for o in others):
                continue
            if op.prim.fn is operator.neg and not inlined(b):
                return replace(op, prim=in_place("neg"), args=(b,))
            if op.prim.fn not in _BINARY_FNS:
                continue  # a ufunc: not printed in place (yet)
            (other,) = others
            symbol = _BINARY.get((op.prim.fn, k == 0))
            if symbol is None:
                continue
            if inlined(b) and symbol != "r-":
                continue  # NumPy writes `a * b + c`'s temporary sums into its own buffer
            return replace(op, prim=in_place(symbol), args=(b, other))
        return None

    def inlined(b) -> bool:
        """A temporary printed inside this op's expression: NumPy reuses its buffer
        itself (temporary elision) for `-t`, `t * c`, `c * t`, `t - c`, not `c - t`."""
        return counts.get(b) == 1 and b.name.startswith("_") and b not in chains

    def renames(buffer, result) -> bool:
        """Whether a backward temporary (and all that held its buffer) takes the name of
        the result it becomes: a forward value keeps its own."""
        return isinstance(buffer, Value) and result in after and \
            not result.name.startswith("_") and all(
            v.name.startswith("_") and v in after for v in chains.get(buffer, []) + [buffer])

    for i, op in enumerate(ops):
        if not isinstance(op, Call) or op.kwargs or not float_array(op.result) or not (
                op.prim.fn in _BINARY_FNS or op.prim.fn is operator.neg or
                (elementwise_ufunc(op.prim.fn) and op.prim.fn.nout == 1)):
            continue
        # an elementwise op of floats and numbers: its dtype is its operands'
        if all(number(a) or float_array(a) for a in op.args):
            roots[op.result] = frozenset().union(*map(roots_of, op.args))
        new = rewrite(op, i)
        if new is not None:
            buffer = new.args[0]
            names = [(v, v.name) for v in chains.get(buffer, []) + [buffer]]
            if renames(buffer, op.result):
                for v, _ in names:
                    v.name = op.result.name
            if inlined(buffer):  # `c - t` of a temporary t: worth two lines only when
                tentative[op.result] = (i, op, names)  # the buffer goes on being reused
            chains[op.result] = chains.pop(buffer, []) + [buffer]
            ops[i] = new
            tentative.pop(buffer, None)
        fresh.add(op.result)
    for i, op, names in tentative.values():
        ops[i] = op
        for v, name in names:
            v.name = name
    return replace(fn, body=replace(fn.body, ops=tuple(ops)))


_BINARY_FNS = {f for f, _ in _BINARY}


def _reads(body: Block) -> tuple[dict, set]:
    """For each value: the index of the last top-level op that reads it (in its regions
    too); and the values that something keeps (any read but an elementwise op's or a
    sum's, or being returned)."""
    last: dict = {}
    kept: set = {o for o in body.results if isinstance(o, Value)}
    for i, op in enumerate(body.ops):
        inner = [o for b in op.blocks for o in _block_reads(b)]
        for o in list(op.operands) + inner:
            if isinstance(o, Value):
                last[o] = i
        if not isinstance(op, Call) or op.kwargs or not (
                op.prim.fn in _READERS or op.prim.style == STYLE or
                elementwise_ufunc(op.prim.fn)):
            kept.update(o for o in list(op.operands) + inner if isinstance(o, Value))
    return last, kept


def _block_reads(b: Block) -> list:
    out = [o for op in walk_ops(b) for o in op.operands]
    out += [o for op in walk_ops(b) for inner in op.blocks for o in inner.results]
    return out + list(b.results)
