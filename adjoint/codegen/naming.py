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

import bisect
import heapq
import keyword

from adjoint.analysis.liveness import Liveness, ties, walk_calls
from adjoint.ir.core import Block, Call, Const, For, Function, Value
from adjoint.passes.buffers import STYLE as IN_PLACE
from adjoint.rules import registry


# lists that the code stacks into an array under their own name (`_u = np.array(_u)`), so
# that the list of arrays is freed: these temporaries' names are reused, and the stacking
# stays a statement of its own
RESTACKED = ("_tape", "_u", "_v")


class Namer:
    def __init__(self, fn: Function, inlined: dict, reserved: set[str]):
        # `_` is the emitter's own throwaway target (`for _ in ...`, `a, _ = ...`): a
        # user's variable of that name gets another
        self.reserved = set(reserved) | set(keyword.kwlist) | {"_"}
        self.counters: dict[str, int] = {}  # hint -> the next number to try (_fresh)
        pairs = list(ties(fn.body)) + _in_place_ties(fn)
        # Ties are merged on liveness that counts a yield as a free move. A yield whose tie
        # is then refused becomes a real copy, a read at the end of its block, and may now
        # overlap a value merged on the first assumption: check, count those yields as
        # reads, and merge again until no name holds two live values.
        reads: set = set()
        # every yield holds its value to the end of its block, merged or not: a name
        # is free only after that
        live = Liveness(fn, inlined, set())
        for _ in range(len(pairs) + 1):
            find, parent, merged, refused = self._merge(fn, inlined, pairs, reads, live)
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
        free: dict[str, _FreeNames] = {}
        order = {v: k for k, v in enumerate(live.defs)}  # deterministic: definition order
        # in order of start: _FreeNames keeps a name aside until a class may fit it
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
            if reusable and hint in free:
                chosen = free[hint].first_free(own, taboo)
            if chosen is None:
                chosen = [self._fresh(hint), [], -1]
                if reusable:  # a parameter's name always means the parameter
                    free.setdefault(hint, _FreeNames()).add(chosen)
            chosen[1].extend(own)
            chosen[2] = max(chosen[2], max(e for _, e in own))
            self.names[root] = chosen[0]

    def _merge(self, fn: Function, inlined: dict, pairs: list, reads: set, strict: Liveness):
        """One round of merging ties into name classes; `reads` are yields to count as
        reads, not moves; `strict` is the liveness where every yield is a read."""
        candidates = {(id(b), i) for b, i, _, _ in pairs if b is not None} - reads
        # with no yield counted as a move it is the strict liveness (straight-line code)
        live = Liveness(fn, inlined, candidates) if candidates else strict
        parent: dict = {}

        def find(v):
            return _root(v, parent)

        spans = _SpanClasses(live, inlined)
        # an in-place write is decided on liveness where every yield is a use: a yield
        # that ends up a copy (`a_bar = b_bar`) reads the old value after the write
        strict_spans = _SpanClasses(strict, inlined)
        aliases = alias_classes(fn)
        in_place = {a for _, _, a, _ in _in_place_ties(fn)}
        crossing: dict = {}
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
            if spans.overlap(ra, rb) or (write and strict_spans.overlap(ra, rb)):
                if write:
                    refused[a] = b
                continue
            if _param_clash(ra, rb, parent, fn):
                continue
            if block is not None or a not in live.writes:
                # one name for two source variables would mislead: `y_bar = z_bar` instead
                if len(user_names[ra] | user_names[rb]) > 1:
                    continue
            if a in in_place and user_names[ra] != user_names[rb]:
                continue  # a buffer reused under another name is moved (`x_bar = _t1`)
            if write and not _write_ok(a, b, aliases, strict, crossing):
                refused[a] = b  # written as a copy: must not take the array's name
                continue
            parent[rb] = ra
            spans.join(ra, rb)
            strict_spans.join(ra, rb)
            user_names[ra] = user_names[ra] | user_names.pop(rb)
            groups[ra] = ga | gb
            if block is not None:
                merged.add((id(block), index))
        return find, parent, merged, refused

    def _fresh(self, hint: str) -> str:
        # counting on from the last name given for this hint finds the same name as
        # counting from 0 (names are only ever added), without a walk over them all
        k = self.counters.get(hint, 1 if hint == "_t" else 0)
        spell = (lambda k: f"_t{k}") if hint == "_t" else \
            (lambda k: f"{hint}_{k}" if k else hint)
        while spell(k) in self.reserved:
            k += 1
        self.counters[hint] = k + 1
        self.reserved.add(spell(k))
        return spell(k)

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
        return _root(v, parent)

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


def _in_place_ties(fn: Function) -> list:
    """An op that writes into its operand's buffer (passes/buffers.py) and the operand:
    one name when they are one variable, else the emitter moves the buffer first."""
    return [(None, None, op.result, op.args[0]) for op in walk_calls(fn.body)
            if op.prim.style == IN_PLACE and isinstance(op.args[0], Value)]


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
    parameter), a read-only broadcast, or one a tape or a list holds. Follows same-buffer edges forward: a view or
    a write keeps its operand's buffer, and a loop or branch passes values on."""
    out = set(fn.params) - set(fn.owned)
    calls = list(walk_calls(fn.body))
    out.update(op.result for op in calls if op.prim.name in READONLY)
    # a value kept on a tape or in a list is the object the tape holds: a write into it
    # would change what the backward sweep pops (an HVP's `h_dot += h_dot`)
    out.update(a for op in calls if op.prim.style in ("tape_push", "append")
               for a in op.args[1:] if isinstance(a, Value))
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


def _write_ok(result, storage, aliases, live, crossing: dict) -> bool:
    """An in-place write is safe when nothing else that may share the buffer is
    still live across it, and the buffer is not the caller's or read-only.
    `crossing` caches each alias group's spans, sorted (see _live_across)."""
    if storage in aliases.get("foreign", ()):
        return False
    group = aliases.get(storage, {storage})
    at = live.defs[result]
    return not (_live_across(group, live, crossing, at) - {storage, result})


def _live_across(group: set, live, crossing: dict, at: int) -> set:
    """The members of `group` live across point `at` (a span start < at < end). The
    group's spans sorted by start, with the largest end so far, end the walk back early:
    a long function writes in place a thousand times into one alias group."""
    key = id(group)
    if key not in crossing:
        spans = sorted(((s, e, m) for m in group for s, e in live.span(m)), key=lambda t: t[0])
        reach, most = [], -1
        for _, e, _ in spans:
            most = max(most, e)
            reach.append(most)
        # the group is kept with them: its id is the key, and must not be reused
        crossing[key] = ([s for s, _, _ in spans], spans, reach, group)
    starts, spans, reach, _ = crossing[key]
    out = set()
    j = bisect.bisect_left(starts, at) - 1
    while j >= 0 and reach[j] > at:
        if spans[j][1] > at:
            out.add(spans[j][2])
        j -= 1
    return out


def _clashes(live: Liveness, find, inlined) -> set:
    """Values whose name class holds another value live at the same time."""
    members: dict = {}
    for v in live.defs:
        if v not in inlined:
            members.setdefault(find(v), []).append(v)
    out = set()
    for group in members.values():
        if len(group) > 1:
            out |= _overlapping([(s, e, v) for v in group for s, e in live.span(v)])
    return out


def _overlapping(spans: list) -> set:
    """The owners of spans (start, end, owner) that overlap a span of another owner, as
    _overlap has it: one sweep in order of start (a name a long function reuses for a
    thousand values would take a million pairwise tests)."""
    out: set = set()
    active: list = []  # a heap of (end, order, start, owner): the spans not yet ended
    for k, (s, e, v) in enumerate(sorted(spans, key=lambda t: (t[0], t[1]))):
        while active and active[0][0] <= s:
            heapq.heappop(active)
        for _, _, s1, w in active:
            if w is not v and s1 < e:
                out.update((v, w))
        heapq.heappush(active, (e, k, s, v))
    return out


def _overlap(a: list, b: list) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


class _SpanClasses:
    """The spans of each name class while ties merge, with their bounds: a class most
    often meets one that starts where it ends (`x_bar += v`), and the bounds tell that
    in one comparison, not a test of every pair (a million at 1000 statements). A
    value's entry is made when a tie first asks for it."""

    def __init__(self, live: Liveness, inlined: dict):
        self.live, self.inlined = live, inlined
        self.classes: dict = {}  # root -> [spans, lowest start, highest end]

    def _get(self, root):
        got = self.classes.get(root)
        if got is None and root in self.live.defs and root not in self.inlined:
            spans = list(self.live.span(root))
            got = [spans, min(s for s, _ in spans), max(e for _, e in spans)]
            self.classes[root] = got
        return got

    def overlap(self, ra, rb) -> bool:
        a, b = self._get(ra), self._get(rb)
        if a is None or b is None or a[2] <= b[1] or b[2] <= a[1]:
            return False
        return _overlap(a[0], b[0])

    def join(self, ra, rb) -> None:
        """rb's class into ra's (rb is no root any more): the shorter list into the
        longer."""
        a, b = self._get(ra), self._get(rb)
        self.classes.pop(rb, None)
        if a is None or b is None:
            if b is not None:
                self.classes[ra] = b
            return
        if len(a[0]) < len(b[0]):
            a, b = b, a
            self.classes[ra] = a
        a[0].extend(b[0])
        a[1], a[2] = min(a[1], b[1]), max(a[2], b[2])


class _FreeNames:
    """The names given for one hint, to reuse: the first given whose values' spans
    overlap none of a new class's. Classes come in order of start, so a name with a
    span that starts before a class's start and ends after it overlaps that class and
    every later one that starts before that end: it waits in a heap until then (values
    kept for the backward sweep would otherwise be tested a million times)."""

    def __init__(self):
        self.entries: list = []  # [name, its values' spans, their last end], in order given
        self.ready: list = []  # indices of the entries to test, in order
        self.waiting: list = []  # a heap of (end, index): busy until the class starting at end

    def add(self, entry: list) -> None:
        self.ready.append(len(self.entries))
        self.entries.append(entry)

    def first_free(self, own: list, taboo: set):
        start = min(s for s, _ in own)
        while self.waiting and self.waiting[0][0] <= start:
            bisect.insort(self.ready, heapq.heappop(self.waiting)[1])
        found, still = None, []
        for k, index in enumerate(self.ready):
            name, spans, end = entry = self.entries[index]
            if name not in taboo and (end <= start or not _overlap(spans, own)):
                found = entry
                still += self.ready[k:]
                break
            busy = max((e for s, e in spans if s < start), default=start)
            if busy > start:
                heapq.heappush(self.waiting, (busy, index))
            else:
                still.append(index)
        self.ready = still
        return found


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
    """The representative of v's class; each step halves the path (a union-find whose
    chains grow with the function would make every lookup walk them)."""
    while parent.get(v, v) is not v:
        up = parent[v]
        parent[v] = parent.get(up, up)
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
