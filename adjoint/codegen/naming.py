"""Out of SSA: choose a Python name for every value.

Values that a region op ties together (an `if`'s result and what each branch
yields; a loop's init, block argument, yield and result; an in-place write and
the array it writes into) want one name, so the code reads `h = np.tanh(h)`
rather than shuffling copies. Two values may share a name only when their live
ranges do not overlap; where a tie would overlap, the emitter writes a copy
(`h = h_1`) instead. Other values reuse a free name with the same hint (so
`x_bar` accumulates in place), and everything else gets `hint`, `hint_1`, ...
Names never collide with reserved ones (modules, helpers, globals, builtins).
"""
from __future__ import annotations

import keyword

from adjoint.analysis.liveness import Liveness, ties, walk_calls
from adjoint.ir.core import Block, Call, Const, For, Function, Value
from adjoint.rules import registry


# lists that the code stacks into an array under their own name (`_u = np.array(_u)`), so
# that the list of arrays is freed: these temporaries' names are reused, and the stacking
# stays a statement of its own
RESTACKED = ("_tape", "_u", "_v")


class Namer:
    def __init__(self, fn: Function, inlined: dict, reserved: set[str]):
        self.reserved = set(reserved) | set(keyword.kwlist)
        pairs = list(ties(fn.body))
        # Ties are merged on liveness that counts a yield as a free move. A yield whose tie
        # is then refused becomes a real copy, a read at the end of its block, and may now
        # overlap a value merged on the first assumption: check, count those yields as
        # reads, and merge again until no name holds two live values.
        reads: set = set()
        # every yield holds its value to the end of its block, merged or not: a name
        # is free only after that
        live = Liveness(fn, inlined, set())
        for _ in range(len(pairs) + 1):
            find, parent, merged, refused = self._merge(fn, inlined, pairs, reads)
            clash = _clashes(live, find, inlined)
            late = {(id(b), i) for b, i, _, y in pairs if b is not None and y in clash} - reads
            if not late:
                if clash:  # never emit code where one name holds two live values
                    raise AssertionError(f"internal error: name clash between "
                                         f"{sorted(v.name for v in clash)}; please report it")
                break
            reads |= late
        else:  # pragma: no cover - each round adds reads, so this ends
            raise AssertionError("naming did not converge")
        spans = {}
        for v in live.defs:
            if v not in inlined:
                spans.setdefault(find(v), []).extend(live.span(v))
        self.find = find
        merged_names = _region_values(fn.body)  # what a branch or loop defines
        self.names: dict[Value, str] = {}
        free: dict[str, list[tuple[str, list]]] = {}
        order = {v: k for k, v in enumerate(live.defs)}  # deterministic: definition order
        roots = sorted({find(v) for v in spans},
                       key=lambda r: (min(s for s, _ in spans[r]), order.get(r, 0)))
        members: dict = {}
        for v in live.defs:
            if v not in inlined:
                members.setdefault(find(v), []).append(v)
        for root in roots:
            hint = _class_hint(members[root], fn, merged_names)
            own = spans[root]
            chosen = None
            reusable = (not hint.startswith("_") or hint in RESTACKED) and \
                not any(m in fn.params for m in members[root])
            # a refused write and its array never share a name, whichever is named first
            taboo = {self.names.get(find(b)) for a, b in refused.items() if find(a) is root}
            taboo |= {self.names.get(find(a)) for a, b in refused.items() if find(b) is root}
            for entry in free.get(hint, []) if reusable else ():
                if not _overlap(entry[1], own) and entry[0] not in taboo:
                    chosen = entry
                    break
            if chosen is None:
                chosen = (self._fresh(hint), [])
                if reusable:  # a parameter's name always means the parameter
                    free.setdefault(hint, []).append(chosen)
            chosen[1].extend(own)
            self.names[root] = chosen[0]

    def _merge(self, fn: Function, inlined: dict, pairs: list, reads: set):
        """One round of merging ties into name classes; `reads` are yields to count as
        reads, not moves."""
        candidates = {(id(b), i) for b, i, _, _ in pairs if b is not None} - reads
        live = Liveness(fn, inlined, candidates)
        parent: dict = {}

        def find(v):
            while parent.get(v, v) is not v:
                v = parent[v]
            return v

        spans = {v: list(live.span(v)) for v in live.defs if v not in inlined}
        # an in-place write is decided on liveness where every yield is a use: a yield
        # that ends up a copy (`a_bar = b_bar`) reads the old value after the write
        strict = Liveness(fn, inlined, set())
        strict_spans = {v: list(strict.span(v)) for v in strict.defs if v not in inlined}
        aliases = alias_classes(fn)
        refused: dict = {}
        merged = set()
        user_names = {v: ({v.name} if not v.name.startswith("_") else set()) for v in live.defs}
        # values defined together (the results of one region op, the arguments of one
        # block) are never one name, whatever their spans say
        groups: dict = {}
        for op in _all(fn.body):
            if not isinstance(op, Call):
                for r in op.results:
                    groups.setdefault(r, set()).add(("results", id(op)))
                for b in op.blocks:
                    for x in b.args:
                        groups.setdefault(x, set()).add(("args", id(b)))
        # in-place writes first: a refused one (a copy) must not be merged back by a
        # branch's or a loop's tie, or the copy would be written in place after all
        pairs = sorted(pairs, key=lambda t: not (t[0] is None and t[2] in live.writes))
        for block, index, a, b in pairs:
            if not isinstance(b, Value) or b in inlined or a in inlined:
                continue
            ra, rb = find(a), find(b)
            if any({find(r), find(st)} == {ra, rb} for r, st in refused.items()):
                continue
            ga, gb = groups.get(ra, set()), groups.get(rb, set())
            if ga & gb:
                continue
            if ra is rb:
                if block is not None:
                    merged.add((id(block), index))
                continue
            write = block is None and a in live.writes
            if _overlap(spans.get(ra, []), spans.get(rb, [])) or (write and _overlap(
                    strict_spans.get(ra, []), strict_spans.get(rb, []))):
                if write:
                    refused[a] = b
                continue
            if _param_clash(ra, rb, parent, fn):
                continue
            if block is not None or a not in live.writes:
                # one name for two source variables would mislead: `y_bar = z_bar` instead
                if len(user_names[ra] | user_names[rb]) > 1:
                    continue
            if write and not _write_ok(a, b, aliases, strict, fn):
                refused[a] = b  # written as a copy: must not take the array's name
                continue
            parent[rb] = ra
            spans[ra] = spans.get(ra, []) + spans.pop(rb, [])
            strict_spans[ra] = strict_spans.get(ra, []) + strict_spans.pop(rb, [])
            user_names[ra] = user_names[ra] | user_names.pop(rb)
            groups[ra] = ga | gb
            if block is not None:
                merged.add((id(block), index))
        return find, parent, merged, refused

    def _fresh(self, hint: str) -> str:
        if hint == "_t":
            k = 1
            while f"_t{k}" in self.reserved:
                k += 1
            name = f"_t{k}"
        else:
            name, k = hint, 0
            while name in self.reserved:
                k += 1
                name = f"{hint}_{k}"
        self.reserved.add(name)
        return name

    def __call__(self, v: Value) -> str:
        return self.names[self.find(v)]


# ops whose result may be (a view of) their first argument at run time: NumPy's views,
# the writes, and the runtime's helpers that may return their operand itself
VIEWS = registry.MAY_VIEW


# ops whose result may be a read-only view (a broadcast, a diagonal): never written in place
READONLY = registry.READONLY | {"expand_to"}


def alias_classes(fn: Function) -> dict:
    """Value -> representative: values that may share a buffer at run time."""
    parent: dict = {}

    def find(v):
        while parent.get(v, v) is not v:
            v = parent[v]
        return v

    def union(a, b):
        if isinstance(a, Value) and isinstance(b, Value):
            ra, rb = find(a), find(b)
            if ra is not rb:
                parent[rb] = ra

    tuples = _tuples(fn)

    def visit(block: Block):
        for op in block.ops:
            if isinstance(op, Call):
                # the elements of a popped tuple are separate objects, not views of each other
                if op.prim.name in VIEWS and op.args and isinstance(registry.viewed(op), Value) \
                        and registry.viewed(op) not in tuples:
                    union(registry.viewed(op), op.result)
                continue
            for _, _, a, b in ties(Block((), (op,), ())):
                union(a, b)
            for b in op.blocks:
                visit(b)

    visit(fn.body)
    members: dict = {}
    for v in set(parent) | set(parent.values()):
        members.setdefault(find(v), set()).add(v)
    out = {v: members[find(v)] for v in set(parent) | set(parent.values())}
    out["foreign"] = _foreign_buffers(fn)
    return out


def _tuples(fn: Function) -> set:
    """Values that are Python tuples (their elements are separate objects): built
    tuples, results of generated functions, and tape entries of several values,
    whether popped or walked by a reverse loop (`for i, (a, b) in zip(...)`)."""
    calls = list(walk_calls(fn.body))
    multi = {op.args[0] for op in calls if op.prim.style == "tape_push" and len(op.args) > 2}
    out = {op.result for op in calls if op.prim.style == "tuple" or op.prim.fn is None
           or (op.prim.style in ("tape_pop", "snap_load") and op.args[0] in multi)}
    zips = {op.result: op.args[1] for op in calls if op.prim.name == "zip_reversed"}
    entries = set()  # (index, entry) steps whose entry is a tuple
    for op in _all(fn.body):
        if isinstance(op, For):
            if op.iter in zips:
                out.add(op.body.args[0])
                if zips[op.iter] in multi:
                    entries.add(op.body.args[0])
            elif op.iter in multi:
                out.add(op.body.args[0])
    out |= {op.result for op in calls if op.prim.style == "subscript" and
            op.args[0] in entries and isinstance(op.args[1], Const) and op.args[1].value == 1}
    return out


def _foreign_buffers(fn: Function) -> set:
    """Values whose buffer may be one the function must not write: the caller's (a
    parameter) or a read-only broadcast. Follows same-buffer edges forward: a view or
    a write keeps its operand's buffer, and a loop or branch passes values on."""
    out = set(fn.params) - set(fn.owned)
    calls = list(walk_calls(fn.body))
    out.update(op.result for op in calls if op.prim.name in READONLY)
    edges = [(registry.viewed(op), op.result) for op in calls
             if op.args and op.prim.name in VIEWS and isinstance(registry.viewed(op), Value)]
    edges += [(b, a) for _, _, a, b in ties(fn.body) if isinstance(b, Value)]
    changed = True
    while changed:
        changed = False
        for src, dst in edges:
            if src in out and dst not in out:
                out.add(dst)
                changed = True
    return out


def _write_ok(result, storage, aliases, live, fn) -> bool:
    """An in-place write is safe when nothing else that may share the buffer is
    still live across it, and the buffer is not the caller's or read-only."""
    if storage in aliases.get("foreign", ()):
        return False
    group = aliases.get(storage, {storage})
    at = live.defs[result]
    for m in group:
        if m is storage or m is result:
            continue
        if any(start < at < end for start, end in live.span(m)):
            return False
    return True


def _clashes(live: Liveness, find, inlined) -> set:
    """Values whose name class holds another value live at the same time."""
    members: dict = {}
    for v in live.defs:
        if v not in inlined:
            members.setdefault(find(v), []).append(v)
    out = set()
    for group in members.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if _overlap(live.span(a), live.span(b)):
                    out.update((a, b))
    return out


def _overlap(a: list, b: list) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def _region_values(block: Block) -> set:
    """The results of region ops and their body arguments: the source variables that
    a branch or loop (re)defines."""
    out = set()
    for op in _all(block):
        if not isinstance(op, Call):
            out.update(op.results)
            for b in op.blocks:
                out.update(b.args)
    return out


def _all(block: Block):
    for op in block.ops:
        yield op
        for b in op.blocks:
            yield from _all(b)


def _param_clash(ra, rb, parent, fn: Function) -> bool:
    """A parameter shares its name only with values of the same name: `h = h0` before
    a loop reads better than a loop that reassigns the parameter `h0`."""
    def names(root):
        return {v.name for v in list(parent) + [root] if _root(v, parent) is root}
    pa = [p for p in fn.params if _root(p, parent) is ra]
    pb = [p for p in fn.params if _root(p, parent) is rb]
    if not pa and not pb:
        return False
    if pa and pb:
        return True
    param = (pa or pb)[0]
    other = rb if pa else ra
    return any(n != param.name and not n.startswith("_") for n in names(other))


def _root(v, parent):
    while parent.get(v, v) is not v:
        v = parent[v]
    return v


def _class_hint(members, fn: Function, merged=frozenset()) -> str:
    for m in members:  # parameters keep their names
        if m in fn.params:
            return m.name
    # the variable a branch or loop defines names the whole class
    user = [m.name for m in members if m in merged and not m.name.startswith("_")]
    user += [m.name for m in members if not m.name.startswith("_")]
    hint = user[0] if user else members[0].name
    return hint if hint.isidentifier() else "_t"
