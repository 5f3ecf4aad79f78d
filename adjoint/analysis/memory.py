"""What the gradient keeps for its backward sweep, per source line.

Reverse mode is fast because it remembers intermediates, and that is also its
cost. This report lists, for a gradient and example arguments, every value the
backward sweep reads that the forward sweep had to keep: straight-line values
(one copy), values pushed on a loop's tape (one copy per iteration), and the
snapshots of checkpointed loops, with their sizes as observed on the arguments.
"""
from __future__ import annotations

from dataclasses import dataclass

from adjoint.ir.core import Block, Call, For, Function, Value, While, walk_ops


@dataclass(frozen=True)
class Saved:
    line: int
    source: str
    name: str
    how: str  # "kept", "tape", "snapshot"
    bytes_each: int
    copies: int

    @property
    def total(self) -> int:
        return self.bytes_each * self.copies


@dataclass
class Report:
    function: str
    entries: list[Saved]

    @property
    def total(self) -> int:
        return sum(e.total for e in self.entries)

    def __str__(self) -> str:
        rows = [f"what the gradient of {self.function} keeps for its backward sweep:",
                f"{'line':>5}  {'value':<12} {'how':<9} {'each':>10} {'copies':>7} "
                f"{'total':>10}  source"]
        for e in sorted(self.entries, key=lambda e: (e.line, e.name)):
            rows.append(f"{e.line:>5}  {e.name:<12} {e.how:<9} {_size(e.bytes_each):>10} "
                        f"{e.copies:>7} {_size(e.total):>10}  {e.source}")
        rows.append(f"{'':>5}  {'total':<12} {'':<9} {'':>10} {'':>7} {_size(self.total):>10}")
        return "\n".join(rows)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def report(primal: Function, grad: Function, facts) -> Report:
    """The values `grad` (its forward sweep, up to the `section` marker) keeps."""
    ops = grad.body.ops
    split = next(i for i, op in enumerate(ops) if isinstance(op, Call) and
                 op.prim.style == "section")
    forward, backward = ops[:split], ops[split + 1:]
    where = {}
    for op in walk_ops(primal.body):
        for r in op.results:
            where[r] = op.loc
        for b in op.blocks:
            for a in b.args:
                where[a] = op.loc
    for p in primal.params:
        where[p] = primal.loc
    entries = []

    def add(v, how, copies):
        if not isinstance(v, Value) or v in primal.params or v not in where:
            return  # the caller's arguments, and the compiler's own bookkeeping
        loc = where.get(v)
        entries.append(Saved(loc.line if loc else 0, loc.text.strip() if loc else "", v.name,
                             how, facts.bytes.get(v, 0), copies))

    copies = _snapshot_copies(forward)
    defined_forward = set()
    for op in walk_ops(Block((), forward, ())):
        defined_forward.update(op.results)
        if isinstance(op, Call) and op.prim.style == "tape_push":
            for v in op.args[1:]:
                add(v, "tape", _trips(op, forward, facts))
        if isinstance(op, Call) and op.prim.style == "snap_store":
            for v in op.args[2:]:
                add(v, "snapshot", copies.get(op.args[0], 1))
    read_back = set()
    for op in walk_ops(Block((), backward, ())):
        read_back.update(o for o in op.operands if isinstance(o, Value))
    for op in forward:  # straight-line values the backward sweep reads
        for r in op.results:
            if r in read_back and not (isinstance(op, Call) and op.prim.style in (
                    "tape_new", "format")):
                k = facts.kind(r)
                if k is None or k.type not in ("range", "none", "other"):
                    add(r, "kept", 1)
    return Report(primal.name, entries)


def _trips(push: Call, forward, facts) -> int:
    """How many times a push runs: the bindings seen of its innermost loop's first
    block argument (every iteration binds it once)."""
    inner = None
    for op in walk_ops(Block((), forward, ())):
        if isinstance(op, (For, While)) and any(o is push for o in walk_ops(op.body)):
            inner = op  # walk order reaches enclosing loops first
    if inner is None or not inner.body.args:
        return 1
    return facts.counts.get(inner.body.args[0], 1)


def _snapshot_copies(forward) -> dict:
    """The states each checkpointed loop's snapshots hold at once, by its snapshots'
    value: its plan's k, and the state before the last step. Each loop has its own k:
    a plan is made just before its loop's (empty) snapshots."""
    copies, k = {}, None
    for op in walk_ops(Block((), forward, ())):
        if isinstance(op, Call) and op.prim.name == "checkpoint_plan":
            k = op.args[1].value
        elif isinstance(op, Call) and op.prim.name == "snapshots_new" and k is not None:
            copies[op.result] = k + 1
    return copies
