"""Live ranges and name ties, for out-of-SSA naming and for the view check.

A value is live from its definition to its last use, as intervals of the program
linearised in order; values that a region op ties together (an `if`'s result and
its branches' yields, a loop's carried values, an in-place write and its array)
want one name. codegen/naming.py chooses names from these; analysis/views.py uses
the same ties to see which arrays an in-place write reaches.
"""
from __future__ import annotations

from adjoint.ir.core import Block, Call, For, Function, If, Value, While
from adjoint.rules import registry

# in place into their first operand: the writes, and `x_bar += v` of the reverse sweep
WRITES = registry.WRITES + ("iadd",)

class Liveness:
    """Where each value is live, as intervals of the linearised program.

    Liveness follows the structure: a value used in both branches of an `if` is
    live in each branch only up to its last use there, so the other branch may
    reuse its name or write over it; a value used inside a loop that it is
    defined outside of stays live until the loop ends, since the next iteration
    reads it again. Uses by an op that is inlined into a later expression count
    at that expression's position.
    """

    def __init__(self, fn: Function, inlined: dict, moves: set):
        self.at: dict[int, int] = {}  # id(op) -> its position
        self.end: dict[int, int] = {}  # id(op or block) -> end position
        self.start: dict[int, int] = {}  # id(block) -> start position
        self.defs: dict[Value, int] = {p: 0 for p in fn.params}
        self.def_path: dict[Value, tuple] = {p: () for p in fn.params}
        self.uses: dict[Value, list] = {}
        self.pos = 0
        self.inlined, self.moves = inlined, moves
        self.writes = {op.result for op in walk_calls(fn.body) if op.prim.style in WRITES}
        self._number(fn.body, ())
        self._record(fn.body, ())
        self._spans: dict[Value, list] = {}

    def _number(self, block: Block, path: tuple) -> None:
        self.pos += 1
        self.start[id(block)] = self.pos
        for a in block.args:
            self.defs[a], self.def_path[a] = self.pos, path
        for op in block.ops:
            self.pos += 2  # odd positions: uses just after an op (see _record)
            self.at[id(op)] = self.pos
            for i, b in enumerate(op.blocks):
                self._number(b, path + ((op, i),))
            if op.blocks:
                self.pos += 1
            self.end[id(op)] = self.pos
            for r in op.results:
                self.defs[r], self.def_path[r] = self.pos, path
        self.pos += 1
        self.end[id(block)] = self.pos

    def _use(self, v, at: int, path: tuple) -> None:
        if isinstance(v, Value):
            self.uses.setdefault(v, []).append((at, path))

    def _record(self, block: Block, path: tuple) -> None:
        for op in block.ops:
            at = self.at[id(op)]
            consumer, last = op, op
            while isinstance(consumer, Call) and consumer.result in self.inlined:
                last, consumer = consumer, self.inlined[consumer.result]
            # evaluated where it is printed; `while <test>:` evaluates the test where the
            # test's block ends, on every iteration, not once where the loop starts
            at = self.at[id(last if isinstance(consumer, While) else consumer)]
            # a write that must copy first (`y_1 = y.copy(); y_1[i] = v`) defines its
            # result before reading v, and before reading what an expression inlined into
            # v reads (`y_1[0] += y[1]`): none of those may share the result's name
            # (`y += v` and `y_1 = y + v` read v before they bind: no such hazard)
            write = isinstance(consumer, Call) and consumer.prim.style in WRITES and \
                consumer.prim.style != "iadd"
            first = consumer.operands[0] if write else None
            # `for t in it:` evaluates `it` after the moves that set the carried names
            # (`s = s0`), so `it` must not share a name with a carried value either
            moved = self.start[id(consumer.body)] + 1 if isinstance(consumer, For) else None
            for k, o in enumerate(op.operands):
                if write and o is not first:
                    self._use(o, at + 1, path)
                elif moved is not None and (consumer is not op or k == 0):
                    self._use(o, moved, path)
                else:
                    self._use(o, at, path)
            for i, b in enumerate(op.blocks):
                self._record(b, path + ((op, i),))
        for i, o in enumerate(block.results):
            if (id(block), i) not in self.moves:
                self._use(o, self.end[id(block)], path)

    def _extent(self, start: int, level: tuple, uses: list) -> list:
        last, branches = start, {}
        depth = len(level)
        for at, path in uses:
            if len(path) == depth:
                last = max(last, at)
                continue
            op, i = path[depth]
            if isinstance(op, If):
                last = max(last, self.at[id(op)])
                branches.setdefault((id(op), i), (op, i, []))[2].append((at, path))
            else:  # a loop reads it on every iteration
                last = max(last, self.end[id(op)])
        out = [(start, last)]
        for op, i, inner in branches.values():
            if self.end[id(op)] > last:
                block = op.blocks[i]
                out += self._extent(self.start[id(block)], level + ((op, i),), inner)
        return out

    def span(self, v: Value) -> list:
        got = self._spans.get(v)
        if got is None:
            got = self._extent(self.defs.get(v, 0), self.def_path.get(v, ()),
                               self.uses.get(v, []))
            self._spans[v] = got
        return got


def walk_calls(block: Block):
    for op in block.ops:
        if isinstance(op, Call):
            yield op
        for b in op.blocks:
            yield from walk_calls(b)


def ties(block: Block):
    """(block, index, a, b): value pairs that want one name; block/index name the
    yield that becomes a copy when they cannot share it (None: no yield involved)."""
    for op in block.ops:
        if isinstance(op, Call):
            if op.prim.style in WRITES and isinstance(op.args[0], Value):
                yield None, None, op.result, op.args[0]
            continue
        if isinstance(op, If):
            for b in (op.then, op.orelse):
                for i, (r, y) in enumerate(zip(op.results, b.results)):
                    yield b, i, r, y
        else:
            args = op.body.args[1:] if isinstance(op, For) else op.body.args
            for i, (r, a, y, x) in enumerate(zip(op.results, args, op.body.results, op.inits)):
                yield None, None, r, a
                yield op.body, i, a, y
                yield None, None, a, x
                if isinstance(op, While):
                    yield None, None, a, op.cond.args[i]
        for b in op.blocks:
            yield from ties(b)


