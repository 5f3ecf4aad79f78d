"""Dead-code elimination: drop pure ops whose results nobody reads, and loop-carried
or branch results that feed only themselves.

    %a = np.exp(%x)          # unused
    %b = mul(%x, 2.0)   ==>  %b = mul(%x, 2.0)
    return %b                return %b

A call that may raise stays even when unread (`math.log(x)`: the gradient fails
where f fails, see registry.may_raise), and so does every effect (a tape push). A
carried value read by another carried value is not dead. tests/test_pass_units.py
holds these examples.
"""
from __future__ import annotations

from dataclasses import replace

from adjoint.ir.core import Block, Call, For, Function, If, Value, While, uses
from adjoint.rules import registry


def _pure(op: Call) -> bool:
    return registry.removable(op)


def dce(fn: Function) -> Function:
    while True:
        counts = uses(fn.body)
        body, changed = _block(fn.body, counts)
        fn = replace(fn, body=body)
        if not changed:
            return fn


def _block(block: Block, counts) -> tuple[Block, bool]:
    ops, changed = [], False
    for op in block.ops:
        if isinstance(op, Call):
            if _pure(op) and not counts.get(op.result):
                changed = True
                continue
            ops.append(op)
            continue
        new_blocks = []
        for b in op.blocks:
            nb, c = _block(b, counts)
            new_blocks.append(nb)
            changed |= c
        if isinstance(op, If):
            op = replace(op, then=new_blocks[0], orelse=new_blocks[1])
            keep = [i for i, r in enumerate(op.results) if counts.get(r)]
            if len(keep) != len(op.results):
                op = replace(op, results=tuple(op.results[i] for i in keep),
                             then=replace(op.then, results=tuple(op.then.results[i] for i in keep)),
                             orelse=replace(op.orelse,
                                            results=tuple(op.orelse.results[i] for i in keep)))
                changed = True
            if not op.results and not op.then.ops and not op.orelse.ops:
                changed = True
                continue
        elif isinstance(op, For):
            op = replace(op, body=new_blocks[0])
            op, c = _drop_dead_carries(op, counts, 1)
            changed |= c
            if not op.results and not _has_effects(op.body):
                changed = True
                continue
        elif isinstance(op, While):
            op = replace(op, cond=new_blocks[0], body=new_blocks[1])
            op, c = _drop_dead_carries(op, counts, 0)
            changed |= c
        ops.append(op)
    return replace(block, ops=tuple(ops)), changed


def _drop_dead_carries(op, counts, skip: int):
    """A carried value is dead when its result is unused and everything computed from
    its block argument inside the body only feeds its own next value (`s = s + t`
    with s never read afterwards)."""
    args = op.body.args[skip:]
    drop = []
    for k, (a, r) in enumerate(zip(args, op.results)):
        if counts.get(r):
            continue
        slice_ = _forward_slice(op.body, a)
        escapes = any(y in slice_ for j, y in enumerate(op.body.results) if j != k)
        for inner in op.body.ops:
            if escapes:
                break
            if not isinstance(inner, Call) or not _pure(inner):
                escapes = any(o in slice_ for o in inner.operands) or any(
                    o in slice_ for b in inner.blocks for o in _block_operands(b))
            elif inner.result not in slice_ and any(o in slice_ for o in inner.operands):
                escapes = True
        if not escapes:
            drop.append(k)
    if not drop:
        return op, False
    keep = [k for k in range(len(args)) if k not in drop]
    body = replace(op.body, args=op.body.args[:skip] + tuple(args[k] for k in keep),
                   results=tuple(op.body.results[k] for k in keep))
    extra = {}
    if isinstance(op, While):
        if any(o in _forward_slice(op.cond, op.cond.args[k]) for k in drop
               for o in _block_operands(op.cond)):
            return op, False  # the condition reads it, maybe in a region (`a and b`)
        extra["cond"] = replace(op.cond, args=tuple(op.cond.args[k] for k in keep))
    return replace(op, body=body, inits=tuple(op.inits[k] for k in keep),
                   results=tuple(op.results[k] for k in keep), **extra), True


def _forward_slice(block: Block, start: Value) -> set:
    """`start` and the results of the block's pure calls that depend on it."""
    out = {start}
    for op in block.ops:
        if isinstance(op, Call) and _pure(op) and any(o in out for o in op.operands):
            out.add(op.result)
    return out


def _block_operands(block: Block):
    for op in block.ops:
        yield from op.operands
        for b in op.blocks:
            yield from _block_operands(b)
    yield from block.results


def _has_effects(block: Block) -> bool:
    for op in block.ops:
        if isinstance(op, Call) and not _pure(op):
            return True
        if any(_has_effects(b) for b in op.blocks):
            return True
    return False


__all__ = ["dce", "Value"]
