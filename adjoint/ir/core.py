"""The structured SSA IR: a handful of small immutable records.

Grammar::

    Function ::= name(params) Block                   the Block's results are returned
    Block    ::= (args) { Op* } -> (Operand*)        args: block arguments (phi nodes)
    Op       ::= Call | If | For | While
    Call     ::= result = prim(Operand*, key=Operand*)
    If       ::= results = if cond { then: Block() } else { orelse: Block() }
    For      ::= results = for target in iter (carried = inits) { body: Block(target, carried*) }
    While    ::= results = while (carried = inits) { cond: Block(carried*) -> (c,) }
                                                  { body: Block(carried*) }
    Operand  ::= Value | Const | Global

Every `Value` is defined exactly once: as a function parameter, a block argument,
the result of a `Call`, or a result of a region op.  Values a Python variable
carries out of a branch or around a loop are the region's results and its body's
block arguments, the structured form of phi nodes (as in MLIR's scf dialect).
Records are immutable (a Value's name hint excepted); passes build new ones
(`dataclasses.replace`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Union

_ids = itertools.count()


@dataclass(eq=False)
class Value:
    """An SSA value, known by its identity. `name` is only a hint for the generated code
    (the source variable; codegen makes it unique), so it is the one field that may
    change after creation: a transform names a cotangent after its primal once it knows
    which primal it stands for."""

    name: str
    id: int = field(default_factory=lambda: next(_ids))

    def __repr__(self) -> str:
        return f"%{self.name}"


@dataclass(frozen=True, eq=False)
class Const:
    """A literal: number, bool, None, string, Ellipsis, or a tuple of those."""

    value: Any

    def __repr__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True, eq=False)
class Global:
    """A module-level object the function reads (an array, a user object).

    `module` is where generated code imports it from when written to a file.
    """

    name: str
    value: Any
    module: str | None = None

    def __repr__(self) -> str:
        return self.name


Operand = Union[Value, Const, Global]


@dataclass(frozen=True, eq=False)
class Prim:
    """A primitive: a known Python callable, and how to print a call of it.

    `style` is "call" (`np.exp(x)`), "infix" (`a + b`, with `symbol`), "prefix"
    (`-a`), "method" (`x.copy()`), "subscript" (`x[i]`), "setitem" (the
    statement `x[i] = v`), "attr" (`x.T`), "slice" (`a:b:c`), "tuple" (`(a, b)`)
    or "list" (`[a, b]`).
    """

    name: str
    fn: Callable
    style: str = "call"
    symbol: str = ""
    precedence: int = 100

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Loc:
    """Where an op came from in the user's source."""

    filename: str
    line: int
    col: int
    text: str  # the whole source line, for comments and carets
    func: str = ""


@dataclass(frozen=True, eq=False)
class Call:
    prim: Prim
    args: tuple[Operand, ...]
    result: Value
    kwargs: tuple[tuple[str, Operand], ...] = ()
    loc: Loc | None = None

    @property
    def results(self) -> tuple[Value, ...]:
        return (self.result,)

    @property
    def operands(self) -> tuple[Operand, ...]:
        if not self.kwargs:  # most calls; the passes ask for every op's operands
            return self.args
        return self.args + tuple(v for _, v in self.kwargs)

    # a call has no region: a class attribute, not a property (every walk asks each op)
    blocks = ()


@dataclass(frozen=True, eq=False)
class Block:
    args: tuple[Value, ...]
    ops: tuple[Op, ...]
    results: tuple[Operand, ...]


@dataclass(frozen=True, eq=False)
class If:
    cond: Operand
    then: Block
    orelse: Block
    results: tuple[Value, ...]
    loc: Loc | None = None

    @property
    def operands(self) -> tuple[Operand, ...]:
        return (self.cond,)

    @property
    def blocks(self) -> tuple[Block, ...]:
        return (self.then, self.orelse)


@dataclass(frozen=True, eq=False)
class For:
    """`for target in iter`, carrying values around the loop.

    body.args = (target, *carried); body.results = next carried values.
    `reverse=True` iterates `reversed(iter)` (the reverse sweep's loops).
    `checkpoint` asks the reverse sweep to recompute instead of storing:
    ("snapshots", k) or ("budget", bytes) for a loop, ("call", name) for a
    checkpointed call (a region that runs once).
    """

    iter: Operand
    inits: tuple[Operand, ...]
    body: Block
    results: tuple[Value, ...]
    loc: Loc | None = None
    reverse: bool = False
    checkpoint: tuple | None = None

    @property
    def operands(self) -> tuple[Operand, ...]:
        return (self.iter,) + self.inits

    @property
    def blocks(self) -> tuple[Block, ...]:
        return (self.body,)


@dataclass(frozen=True, eq=False)
class While:
    """`while cond(carried): carried = body(carried)`.

    cond.args = body.args = carried; cond.results = (flag,); body.results = next carried.
    """

    inits: tuple[Operand, ...]
    cond: Block
    body: Block
    results: tuple[Value, ...]
    loc: Loc | None = None

    @property
    def operands(self) -> tuple[Operand, ...]:
        return self.inits

    @property
    def blocks(self) -> tuple[Block, ...]:
        return (self.cond, self.body)


Op = Union[Call, If, For, While]


@dataclass(frozen=True, eq=False)
class Function:
    name: str
    params: tuple[Value, ...]
    body: Block  # body.args is empty; body.results are returned (a tuple when several)
    loc: Loc | None = None
    param_names: tuple[str, ...] = ()
    docstring: str = ""
    # results of `x += y` on a name: in Python an update in place when x is an array
    # (checked by analysis/views.py against aliases the IR's values cannot follow)
    inplace: tuple = ()
    # `c[k] += y` on a list or dict: (the result, c, whether lowering saw c made as one),
    # an update in place of the array c holds (checked by analysis/views.py too)
    element_updates: tuple = ()
    # parameters whose buffers the caller hands over (a step gradient's accumulators,
    # passed fresh by the generated caller): written in place, not copied first
    owned: tuple = ()
    # `try` bodies whose failure f's handlers catch: (file, first line, last line, the
    # exceptions' names, the handler's loc); the gradient runs the body only
    handlers: tuple = ()


def walk_ops(block: Block) -> Iterator[Op]:
    """Every op in `block` and in the regions nested inside it, in program order."""
    for op in block.ops:
        yield op
        if not isinstance(op, Call):  # a call has no region
            for inner in op.blocks:
                yield from walk_ops(inner)


def uses(block: Block) -> dict[Value, int]:
    """How many times each Value is used as an operand (including yields) in `block`."""
    operands: list = []

    def gather(b: Block) -> None:  # every pass asks, so one list and one count
        for op in b.ops:
            if isinstance(op, Call):
                operands.extend(op.args)
                if op.kwargs:
                    operands.extend(v for _, v in op.kwargs)
                continue
            operands.extend(op.operands)
            for inner in op.blocks:
                gather(inner)
        operands.extend(b.results)

    gather(block)
    counts: dict[Value, int] = {}
    for o in operands:
        if isinstance(o, Value):
            counts[o] = counts.get(o, 0) + 1
    return counts


def map_operands(op: Op, fn: Callable[[Operand], Operand]) -> Op:
    """`op` with every operand (in nested blocks too) replaced by `fn(operand)`."""

    def block(b: Block) -> Block:
        return replace(b, ops=tuple(map_operands(o, fn) for o in b.ops),
                       results=tuple(fn(o) for o in b.results))

    if isinstance(op, Call):  # built directly: replace() costs more than the call
        return Call(op.prim, tuple(fn(a) for a in op.args), op.result,
                    tuple((k, fn(v)) for k, v in op.kwargs), op.loc)
    if isinstance(op, If):
        return replace(op, cond=fn(op.cond), then=block(op.then), orelse=block(op.orelse))
    if isinstance(op, For):
        return replace(op, iter=fn(op.iter), inits=tuple(fn(o) for o in op.inits),
                       body=block(op.body))
    return replace(op, inits=tuple(fn(o) for o in op.inits), cond=block(op.cond),
                   body=block(op.body))


def prune(ops, keep: list, pure: Callable[[Op], bool]) -> list:
    """The ops needed to compute the values in `keep` (impure ops always stay)."""
    needed = {v for v in keep if isinstance(v, Value)}
    out = []
    for op in reversed(ops):
        if any(r in needed for r in op.results) or not pure(op):
            out.append(op)
            for o in op.operands:
                if isinstance(o, Value):
                    needed.add(o)
            for b in op.blocks:
                for inner in walk_ops(b):
                    needed.update(o for o in inner.operands if isinstance(o, Value))
                needed.update(o for o in b.results if isinstance(o, Value))
    return out[::-1]


def defined(block: Block) -> set:
    """Every value `block` binds: its arguments, and each op's results and region arguments."""
    out = set(block.args)
    for op in walk_ops(block):
        out.update(op.results)
        for b in op.blocks:
            out.update(b.args)
    return out


def free_operands(block: Block, defined: set) -> list:
    """The values `block` reads (its ops and its regions' results) that are not in `defined`,
    in first-use order."""
    out = []
    for op in walk_ops(block):
        for o in op.operands:
            if isinstance(o, Value) and o not in defined and o not in out:
                out.append(o)
    for b in [block] + [b for op in walk_ops(block) for b in op.blocks]:
        for o in b.results:
            if isinstance(o, Value) and o not in defined and o not in out:
                out.append(o)
    return out


def map_blocks(op: Op, fn: Callable[[Block], Block]) -> Op:
    """`op` with each of its regions replaced by `fn(region)`."""
    if isinstance(op, Call):  # most ops: no region
        return op
    if isinstance(op, If):
        return replace(op, then=fn(op.then), orelse=fn(op.orelse))
    if isinstance(op, For):
        return replace(op, body=fn(op.body))
    if isinstance(op, While):
        return replace(op, cond=fn(op.cond), body=fn(op.body))
    return op


def relocate(ops, loc) -> list:
    """`ops` (and the ops of their regions) attributed to source location `loc`."""
    return [Call(op.prim, op.args, op.result, op.kwargs, loc) if isinstance(op, Call) else
            replace(map_blocks(op, lambda b: replace(b, ops=tuple(relocate(b.ops, loc)))),
                    loc=loc) for op in ops]
