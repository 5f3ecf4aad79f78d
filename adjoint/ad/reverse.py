"""The adjoint (reverse-mode) transform: primal IR -> gradient IR.

The gradient function runs the primal forward (the *forward sweep*), then walks
the primal ops backwards (the *backward sweep*), inlining each primitive's VJP
template to turn the adjoint of its result into contributions to the adjoints
of its operands. The first contribution to `x_bar` defines it; later ones add.

Values the backward sweep reads are kept as they are in straight-line code.
A loop's body values are pushed on one tape per loop (a list, one tuple per
iteration) and popped by the reversed loop; cheap scalars such as index
arithmetic are recomputed instead. A `while` loop counts its trips. An `if`
exports the branch values its reverse needs. An in-place write saves the
region it overwrites and the backward sweep writes it back, so a loop that
writes one cell per iteration keeps O(1) per iteration.
"""
from __future__ import annotations

import inspect
import operator
from dataclasses import replace

import gast
import numpy as np

from adjoint import runtime
from adjoint.ad.checkpoint import reverse_checkpointed, snapshot_bytes
from adjoint.ad.instrument import Instrumented, cotangent_base
from adjoint.ad.sequences import sequence_ops, sequence_operands
from adjoint.ad.template import TemplateLowerer, basic_index
from adjoint.analysis.activity import active as active_values, array_dtypes, discrete
from adjoint.analysis.shapes import Kind
from adjoint.analysis.views import written_arrays
from adjoint.errors import NonDifferentiableError, UnsupportedError
from adjoint.rules.complex import COMPLEX_RULES, meets_complex
from adjoint.rules.elementwise import select_index
from adjoint.rules.linalg import VECTOR_SLOTS, untied
from adjoint.rules.registry import prim_of
from adjoint.frontend.normalize import normalize
from adjoint.frontend.source import parse_function
from adjoint.ir.core import Block, Call, Const, For, Function, If, Op, Operand, \
    Value, While, defined, free_operands, map_operands, prune, relocate, walk_ops
from adjoint.rules import registry
from adjoint.rules.structure import dict_of, dict_setitem_vjp, entry_or_region_setitem_vjp, \
    entry_setitem_vjp, field, keys, list_of, or_, slice_setitem_vjp, tuple_of
from adjoint.rules.tape import iadd, iadd_at, section, tape_new, tape_pop, tape_push
from adjoint.runtime import save


def _values_only(op: Call) -> bool:
    """`np.linalg.svd(a, compute_uv=False)` (also the third positional argument): the
    singular values alone, what generic code, which has no kinds, must read off the
    call."""
    uv = dict(op.kwargs).get("compute_uv", op.args[2] if len(op.args) > 2 else None)
    return op.prim.name == "np.linalg.svd" and isinstance(uv, Const) and not uv.value


def _reshape_back(g, ans, x, index):
    """The VJP of `x[:, None]` or `x[...]`, which read every element of `x`: inlined as
    a template, so that the sum a broadcast's VJP leaves with `keepdims` folds away."""
    return np.reshape(g, np.shape(x))


class Region:
    """How the backward sweep of one region reads primal values.

    At top level a primal value is read directly. Inside the reverse of a loop
    body, a value defined in that body is popped from the loop's tape (or
    recomputed); inside the reverse of a branch, a branch value is exported
    from the forward `if` as an extra result.
    """

    def __init__(self, parent: Region | None, defined: set, kind: str, owner=None):
        self.parent, self.defined, self.kind, self.owner = parent, defined, kind, owner
        self.map: dict[Value, Operand] = {}
        self.preamble: list = []  # pops and recomputations, emitted first in the reverse body
        self.saved: list[Value] = []  # loop: tape order
        self.popped: list[Value] = []  # loop: the values the reverse body pops, in tape order
        self.target: Value | None = None  # loop: the reversed loop's own iteration variable
        self.recompute = False  # loop: recompute every body value (a reduction loop)
        self.exports: list[Value] = []  # if: exported branch values, in order
        self.export_results: dict[Value, Value] = {}


class Reverse:
    def __init__(self, fn: Function, wrt: tuple[int, ...], facts):
        fn = sequence_ops(fn, facts)
        self.fn, self.wrt, self.facts = fn, wrt, facts
        self.active = active_values(fn, wrt, facts)
        self.instrument: dict[Op, Instrumented] = {}
        self.region = Region(None, set(), "top")
        self.defined_in = _definitions(fn)
        self.primal_values = set(fn.params) | defined(fn.body)
        self.adjoint_defs: dict = {}
        self.extra_functions: list[Function] = []  # step functions of checkpointed regions
        self.made: set[Value] = set()  # the values this transform created
        self.emitted: dict[Value, Call] = {}  # and the ops that self.emit made them with
        self.written = written_arrays(fn)  # arrays whose contents change: read them once
        # generic code (no call observed): the values known to be lists or tuples by how
        # they are made (a display, or carried from one)
        self.made_as = array_dtypes(fn, ()) if not facts.kinds else {}
        self.single_keys = _single_keys(fn)  # no repeats: `params_bar[k] += g` is right
        # cotangent -> (condition, branch, the condition's shape or None): zero outside an
        # np.where branch
        self.masks: dict = {}
        self.choices: dict = {}  # np.select's choicelist cotangent -> its condlist
        # cotangent -> (condition, branch, region): zero unless that `if` branch was taken
        self.taken: dict = {}

    # ---------------------------------------------------------------- reading primals
    def read(self, o: Operand) -> Operand:
        """The operand to use in the current reverse region for primal operand `o`."""
        if not isinstance(o, Value):
            return o
        return self._read(o, self.region)

    def _read(self, v: Value, region: Region) -> Operand:
        if v in region.map:
            return region.map[v]
        if region.kind == "top" or v not in region.defined:
            if region.parent is None:
                return v
            return self._read(v, region.parent)
        op = self.defined_in.get(v)
        if region.kind == "if" and isinstance(op, Call) and self._recomputable(op, v):
            out = self._recompute(op, v, region)
        elif region.kind == "if":
            result = region.export_results.get(v)
            if result is None:
                result = Value(v.name)
                region.exports.append(v)
                region.export_results[v] = result
                self.facts.same_kind(result, v)
                if v in self.written:
                    # the export is v's buffer, not a copy: a loop that tapes it must
                    # copy it, or later writes (later trips, after the loop) change the entry
                    self.written.add(result)
                if region.parent.kind != "top":  # the result lives in the enclosing block
                    region.parent.defined.add(result)
            out = self._read(result, region.parent)
        else:  # a loop body: recompute a cheap scalar, or pop it from the tape
            if isinstance(op, Call) and (self._recomputable(op, v) or (
                    region.recompute and registry.pure(op))):
                out = self._recompute(op, v, region)
            elif region.owner is not None and isinstance(region.owner, For) and \
                    v is region.owner.body.args[0]:
                out = region.target
            else:
                out = Value(v.name)
                region.saved.append(v)
                region.popped.append(out)
            self.facts.same_kind(out, v)
        region.map[v] = out
        return out

    def _recomputable(self, op: Call, v: Value) -> bool:
        """Cheaper to redo in the reverse sweep than to save: an inactive scalar, or a
        basic-index read of an array that nothing writes (`x[i]`, `xs[t]`)."""
        if op.prim.fn is operator.getitem and op.args[0] not in self.written and \
                basic_index(op.args[1], self.facts):
            return True
        if any(a in self.written and not self._scalar(a) for a in op.operands):
            # an array some write changes holds other contents in the reverse sweep until
            # the write-back that restores it: a value read from it is kept, not redone
            return False
        k = self.facts.kind(v)
        if k is not None and k.type == "float" and _cheap_scalar(op):
            return True  # `math.sin(x)` again costs less than a tuple on the tape
        return v not in self.active and _recomputable(op, self.facts)

    def _scalar(self, v: Operand) -> bool:
        k = self.facts.kind(v)
        return k is not None and k.scalar

    def _recompute(self, op: Call, v: Value, region: Region) -> Value:
        """Redo a cheap scalar op in the reverse region instead of saving its value."""
        args = [self._read(a, region) if isinstance(a, Value) else a for a in op.args]
        kwargs = [(k, self._read(a, region) if isinstance(a, Value) else a) for k, a in op.kwargs]
        out = Value(v.name)
        region.preamble.append(Call(op.prim, tuple(args), out, tuple(kwargs), op.loc))
        return out

    # ---------------------------------------------------------------- adjoints
    def zero(self, v: Operand) -> Operand:
        k = self.facts.kind(v)
        if k is not None and (k.type == "float" or not k.floating):
            return Const(0.0)
        if k is not None and k.type == "ndarray" and k.dtype == "f":
            return self.emit(_zeros_like_prim(), (self.read(v),), f"{cotangent_base(v)}_bar")
        return self.emit(prim_of(runtime.zeros_like), (self.read(v),), f"{cotangent_base(v)}_bar")

    def emit(self, prim, args, hint, kwargs=()) -> Value:
        out = Value(hint)
        op = Call(prim, tuple(args), out, tuple(kwargs), self.loc)
        self.ops.append(op)
        self.made.add(out)
        self.emitted[out] = op
        return out

    def known_zero(self, c: Operand) -> bool:
        """`c` is a cotangent that is zero by construction: an element of a container's
        cotangent that nothing added into (`L = [np.sqrt(x), 2 * x]; return L[1]`), or
        the cotangent of a write that a later write overwrote before any read. Such a
        contribution is dropped, not multiplied by a local derivative that may be inf
        or NaN where the value is never used (0 * inf is NaN)."""
        if isinstance(c, Const):
            return type(c.value) in (int, float) and c.value == 0
        op = self._made_by(c)
        if op is None or op.prim.fn in (np.zeros_like, runtime.zeros_like):
            return op is not None
        fn = op.prim.fn
        if fn in (runtime.unbroadcast, runtime.alias, operator.neg):
            return self.known_zero(op.args[0])
        if fn in (operator.getitem, runtime.save, runtime.written, runtime.element) and \
                isinstance(op.args[1], Const):
            return self._zero_element(op.args[0], op.args[1].value)
        return False

    def _made_by(self, c: Operand) -> Call | None:
        op = self.adjoint_defs.get(c) or self.emitted.get(c)
        return op if isinstance(op, Call) else None

    def _zero_element(self, c: Operand, index) -> bool:
        """Element `index` of the cotangent `c` is zero: walk back through the writes at
        other constant positions to the zeros it started from."""
        while True:
            op = self._made_by(c)
            if op is None or op.prim.fn in (np.zeros_like, runtime.zeros_like):
                return op is not None
            fn = op.prim.fn
            if fn in (runtime.setitem, iadd_at) and isinstance(op.args[1], Const):
                at = op.args[1].value
                if not (type(at) is type(index) and type(at) in (int, str) and
                        (type(at) is str or at >= 0 and index >= 0)):
                    return False  # x[-1] and x[1] may be one element
                if at == index:
                    if fn is runtime.setitem:
                        return self.known_zero(op.args[2])
                    if not self.known_zero(op.args[2]):
                        return False
            elif fn is not np.copy:
                return False
            c = op.args[0]

    def accumulate(self, adj: dict, v: Operand, contrib: Operand) -> None:
        if not isinstance(v, Value) or v not in self.active or contrib is None:
            return
        if discrete(self.facts.kind(v)) and self.argument_leaf(v):
            return  # an int an argument holds (a count, an exponent): keyed, no cotangent
        if self.known_zero(contrib):
            return
        # names are hints: only values this transform made, and no one's adjoint yet, are
        # renamed (never a parameter, a primal value, or another variable's `_bar`)
        renamable = isinstance(contrib, Value) and contrib in self.made and not any(
            a is contrib for a in adj.values())
        if isinstance(contrib, Value):
            if renamable and contrib.name.startswith("_t"):
                contrib.name = f"{cotangent_base(v)}_bar"
            self.facts.same_kind(contrib, v, overwrite=False)  # a cotangent has v's shape
        old = adj.get(v)
        if old is None:
            adj[v] = contrib
            return
        k = self.facts.kind(v)
        known = k is not None and (k.type == "float" or (k.type == "ndarray" and k.dtype == "f"))
        if renamable and not contrib.name.startswith("_"):
            contrib.name = "_t"  # printed inside the `+=` when used once
        # `x_bar += c`: in place for arrays where nothing else shares x_bar's buffer
        adj[v] = self.emit(prim_of(iadd if known else runtime.accum), (old, contrib),
                           f"{cotangent_base(v)}_bar")
        self.facts.same_kind(adj[v], v)
        marks = self.taken.get(old), self.taken.get(contrib)
        if None not in marks and marks[0][2] is marks[1][2] is self.region:
            # zero unless one of two branches ran (`q = r * 2; if c: return q + r`, or r
            # read by two ifs): the sum is zero unless either did
            self.taken[adj[v]] = marks[0] if marks[0][:2] == marks[1][:2] else \
                (self._either(marks), True, self.region)

    def argument_leaf(self, v) -> bool:
        """Whether `v` is an entry, field or element of a parameter (or of one of its
        containers): its kind is in the key, so an int there is an int on every call (a
        value computed to an int on this call may be a float on the next: `best = 0`
        then `best = max(best, v)`)."""
        while isinstance(v, Value) and v not in self.fn.params:
            op = self.defined_in.get(v)
            if not isinstance(op, Call) or op.prim.fn not in (operator.getitem, field):
                return False
            v = op.args[0]
        return isinstance(v, Value)

    def _either(self, marks) -> Value:
        """The condition under which a cotangent zero unless one of `marks`' branches
        ran may be nonzero: `c1 or not c2`."""
        tests = [cond if keep else self.emit(prim_of(operator.not_), (cond,), "_c")
                 for cond, keep, _ in marks]
        return self.emit(prim_of(or_), tuple(tests), "_c")

    def _writable(self, g: Operand) -> Operand:
        """An accumulator the reverse loop may add into in place: a read-only broadcast
        (a sum's cotangent) is copied once here, not on every iteration."""
        op = self.adjoint_defs.get(g) or next(
            (o for o in reversed(self.ops) if isinstance(o, Call) and o.result is g), None)
        while op is not None and op.prim.fn is runtime.alias:
            op = self.adjoint_defs.get(op.args[0])
        if op is not None and op.prim.name in ("expand_to", "np.broadcast_to"):
            return self.emit(prim_of(np.copy), (g,), g.name)
        return g

    # ---------------------------------------------------------------- blocks
    def reverse_ops(self, ops, adj: dict) -> None:
        for op in reversed(ops):
            self.loc = op.loc
            if isinstance(op, Call):
                self.reverse_call(op, adj)
            elif isinstance(op, If):
                self.reverse_if(op, adj)
            elif isinstance(op, (For, While)):
                self.reverse_loop(op, adj)

    def refuse_resized(self, op: Call) -> None:
        """`L[i:j] = values` where values has another length than L[i:j] (`xs[:0] = [v]`,
        `xs[1:3] = []`): the list grows or shrinks, and the entries after the slice move.
        slice_setitem_vjp reads the cotangent at the slice's own positions: refused."""
        before, after = (_length(self.facts.kind(v)) for v in (op.args[0], op.result))
        if before is None or after is None or before != after:
            change = "may change the list's length (its entries have several shapes)" if \
                before is None or after is None else \
                f"changes the list's length from {before} to {after}"
            raise UnsupportedError(
                f"this slice assignment {change}, which is not differentiated", op.loc,
                "build the new list instead: xs = xs[:i] + [v, ...] + xs[j:], or "
                "xs.insert(i, v); a slice of the same length is differentiated")

    def reverse_call(self, op: Call, adj: dict) -> None:
        if op.prim.fn is runtime.setitem:
            self.restore(op)
        g = adj.pop(op.result, None)
        if g is None or op.result not in self.active:
            return
        # keyword operands too: np.clip(x, a_min=lo) differentiates lo
        operands = list(op.args) + [v for _, v in op.kwargs]
        wanted = [isinstance(a, Value) and a in self.active for a in operands]
        if not any(wanted):
            return
        entry = registry.entry(op.prim)
        rule = COMPLEX_RULES.get(op.prim.fn) if meets_complex(op, self.facts) else None
        if entry is not None and entry.nondiff and rule is None:
            return
        if op.prim.fn in (tuple_of, list_of, dict_of):
            # an element's cotangent is the container's at its position, or at its key
            at = op.args[0].value if op.prim.fn is dict_of else range(len(op.args))
            values = op.args[1:] if op.prim.fn is dict_of else op.args
            conds = self.choices.get(g)
            which = self.emit(prim_of(select_index), (conds,), "_which") if conds else None
            complex_parts = meets_complex(op, self.facts)  # [z, x]: x's part made real
            for i, (a, where) in enumerate(zip(values, at)):
                if wanted[i + len(op.args) - len(values)]:
                    c = self.emit(prim_of(operator.getitem), (g, Const(where)),
                                  f"{cotangent_base(a)}_bar")
                    if which is not None and isinstance(c, Value):  # np.select's choice
                        # i: zero where another was taken, as an np.where branch is
                        self.masks[c] = (self.emit(prim_of(operator.eq), (which, Const(i)),
                                                   "_taken"), True, None)
                    self.accumulate(adj, a, self.real_part(a, c) if complex_parts else c)
            return
        if op.prim.fn in (operator.getitem, field) and wanted[0]:
            self.scatter(adj, op, g)
            return
        vjp = rule[0] if rule is not None else entry.vjp if entry is not None else None
        if op.prim.fn is runtime.setitem and _slice(op.args[1], self.facts) and (
                self.facts.types(op.args[0]) == {"list"} or
                self.made_as.get(op.args[0]) == "container"):
            vjp = slice_setitem_vjp  # `L[:2] = [a, b]`: a list's zero written back
            self.refuse_resized(op)
        elif op.prim.fn is runtime.setitem and self.facts.types(op.args[0]) == {"dict"}:
            vjp = dict_setitem_vjp  # `q[k] = v`: the old entry's zero, or no key
        elif op.prim.fn is runtime.setitem and self.entry_may_change(op):
            # `L[k] = x[:n]`: the old entry's zero, of its shape
            vjp = entry_setitem_vjp if self.facts.types(op.args[0]) == {"list"} or \
                self.made_as.get(op.args[0]) == "container" else entry_or_region_setitem_vjp
        if vjp is None:
            raise NonDifferentiableError(
                f"`{op.prim.name}` has no derivative rule, but a gradient flows through it",
                op.loc, "register one with @adjoint.defvjp, or wrap an argument in "
                        "adjoint.stop_gradient(...) if it should be treated as constant")
        self.check_untied(op, g)
        mark = self.taken.get(g)
        if mark is not None and mark[2] is self.region:
            self.guarded(op, vjp, g, operands, wanted, adj, mark)
            return
        for a, c in zip(operands, self.contributions(op, vjp, g, operands, wanted)):
            self.accumulate(adj, a, c)

    def contributions(self, op: Call, vjp, g, operands, wanted, reads=None) -> list:
        """The operands' cotangents by `op`'s rule `vjp`, masked where a branch of `np.where`
        was not taken, and real for a real operand of an op that meets a complex value."""
        contribs = self.masked(op, g, self.inline_vjp(vjp, g, op, wanted, reads))
        if meets_complex(op, self.facts):
            contribs = [self.real_part(a, c) for a, c in zip(operands, contribs)]
        return contribs

    def real_part(self, a, c):
        """A real operand's cotangent from an op that meets a complex value: its real
        part (rules/complex.py's convention), so a real argument's gradient is real."""
        k = self.facts.kind(a) if isinstance(a, Value) else None
        made = self.adjoint_defs.get(c) or self.emitted.get(c)
        if isinstance(a, Value) and isinstance(c, Value) and k is None:
            raise NonDifferentiableError(
                "an operand whose kind (real or complex) no run observed meets a complex "
                "value here: its cotangent cannot be made", self.loc,
                "make it complex on every path (x + 0j), or call with arguments that "
                "reach this line")
        if not isinstance(c, Value) or k is None or k.type not in ("float", "ndarray") or \
                k.dtype == "c" or made is not None and made.prim.fn in _REAL_ALREADY:
            return c
        # c is complex, a's kind says real: its own kind, for a derivative of this sweep
        self.facts.kinds[c] = replace(k, dtype="c") if k.type == "ndarray" else Kind("complex")
        return self.emit(prim_of(np.real), (c,), c.name)

    def check_untied(self, op: Call, g) -> None:
        """A decomposition's vectors have no derivative at a repeated value: where the
        gradient reads them (their cotangent is not zero by construction), the sweep
        checks on the values that none repeats."""
        slots = VECTOR_SLOTS.get(op.prim.name)
        kind = self.facts.kind(op.result)
        if slots is None or kind is not None and kind.type == "ndarray" or \
                _values_only(op):  # svd(..., compute_uv=False): no vectors
            return
        values, vectors = slots
        if not all(self._zero_element(g, i) for i in vectors):
            w = self.emit(prim_of(operator.getitem), (self.read(op.result), Const(values)), "_w")
            self.emit(prim_of(untied), (w, Const(op.prim.name)), "_")

    def guarded(self, op: Call, vjp, g, operands, wanted, adj: dict, mark) -> None:
        """The rule of an op whose cotangent is zero unless one branch of an `if` ran.

        `r = np.sqrt(x); if x > 0: return r; return x` at x = -1: r's cotangent is 0,
        but sqrt's rule multiplies it by 0.5 / r, NaN there (or divides a Python float
        by 0). A vjp is linear in its cotangent, so zero in is zero out: the rule runs
        under the same condition, `if _c: x_bar += r_bar * 0.5 / r`, and adds nothing
        otherwise. A rule that reads no primal value (a sum, a reshape) needs no guard;
        its contributions are zero outside the branch as well."""
        cond, keep, _ = mark
        outer, self.ops = self.ops, []
        reads: list = []
        before = {a: adj.get(a) for a in operands if isinstance(a, Value)}
        contribs = self.contributions(op, vjp, g, operands, wanted, reads)
        if not reads:
            outer.extend(self.ops)
            self.ops = outer
            for a, c in zip(operands, contribs):
                if isinstance(c, Value):
                    self.taken[c] = mark
                self.accumulate(adj, a, c)
            return
        for a, c in zip(operands, contribs):
            self.accumulate(adj, a, c)
        changed = [a for a in before if adj.get(a) is not before[a]]
        taken_ops, self.ops = self.ops, []
        other = [before[a] if before[a] is not None else self.zero(a) for a in changed]
        other_ops, self.ops = self.ops, outer
        results = tuple(Value(f"{cotangent_base(a)}_bar") for a in changed)
        taken_block = Block((), tuple(taken_ops), tuple(adj[a] for a in changed))
        other_block = Block((), tuple(other_ops), tuple(other))
        self.ops.append(If(cond, *((taken_block, other_block) if keep else
                                   (other_block, taken_block)), results, self.loc))
        for a, r in zip(changed, results):
            self.facts.same_kind(r, a)
            old = self.taken.get(before[a])
            if before[a] is None or old is not None and old[:2] == mark[:2]:
                # still zero where the branch was not taken
                self.taken[r] = mark
                if adj[a] in self.masks:
                    self.masks[r] = self.masks[adj[a]]
            elif old is not None and old[2] is self.region:  # zero unless either ran
                self.taken[r] = (self._either([mark, old]), True, self.region)
            adj[a] = r

    def _stored_instead(self, op: For, adj: dict, snapshots: int) -> bool:
        """The cost model of a transform-wide checkpoint policy: reverse the loop storing
        everything, weigh what its tapes hold over all steps (observed sizes) against
        the plan's snapshots, and keep the stored version if it holds no more. A loop
        that fills one cell of a large array per step tapes a number per step but would
        snapshot the whole array. Otherwise everything the trial did is undone."""
        before = (self.ops, len(self.ops), self.loc, list(self.extra_functions),
                  {o: Instrumented(list(i.before), i.op, list(i.after))
                   for o, i in self.instrument.items()})
        regions = []  # what the trial may add to the enclosing regions (values to tape)
        r = self.region
        while r is not None:
            regions.append((r, {k: type(v)(v) for k, v in vars(r).items()
                                if isinstance(v, (list, dict, set))}))
            r = r.parent
        trial, plain = dict(adj), replace(op, checkpoint=None)
        self.reverse_loop(plain, trial)
        taped = 0
        for o in walk_ops(op.body):  # every push the trial added, times the steps it ran
            for push in self.instrument.get(o, Instrumented()).after + \
                    self.instrument.get(o, Instrumented()).before:
                if isinstance(push, Call) and push.prim.style == "tape_push":
                    taped += sum(self.facts.bytes.get(v, 8) * self.facts.counts.get(
                        v, self.facts.counts.get(op.body.args[0], 1)) for v in push.args[1:])
        if taped <= snapshots:  # the forward sweep runs the plain loop, with its tapes
            adj.clear()
            adj.update(trial)
            ins = self.instrument.pop(plain, Instrumented())
            ins.op = ins.op or plain
            self.instrument[op] = ins
            return True
        ops, n, self.loc, self.extra_functions, self.instrument = before
        del ops[n:]
        self.ops = ops
        for r, state in regions:
            vars(r).update(state)
        return False

    def masked(self, op: Call, g, contribs: list) -> list:
        """No NaN from the branch of an `np.where` that was not taken.

        `np.where(x > 0, np.sqrt(x), 0.0)` computes sqrt(x) everywhere; its cotangent is
        zero where x <= 0, but sqrt's rule multiplies that zero by 1 / sqrt(x), which is
        inf or NaN there. So the mask follows the branch's cotangent up through the
        elementwise ops that compute it, each contribution masked again, until the
        cotangent is no longer the branch's alone (another use adds into it)."""
        if op.prim.fn is np.select and isinstance(contribs[1], Value):
            self.choices[contribs[1]] = self.read(op.args[0])  # masked entry by entry below
            return contribs
        if op.prim.fn is np.where and len(op.args) == 3:
            for k, keep in ((1, True), (2, False)):
                if isinstance(contribs[k], Value):
                    self.masks[contribs[k]] = (self.read(op.args[0]), keep,
                                               self.facts.shape(op.args[0]))
            return contribs
        mask = self.masks.get(g)
        if mask is None or not _elementwise(op):
            return contribs
        cond, keep, cond_shape = mask
        out = []
        for a, c in zip(op.args, contribs):
            # a contribution of cond's shape is zero where cond does not hold; one of
            # another shape (a broadcast operand, or a branch smaller than cond) sums over
            # cond's entries, and so will every operand upstream of it: never masked
            shape = self.facts.shape(a)
            known = shape is not None and cond_shape is not None
            if isinstance(c, Value) and (not known or shape == cond_shape):
                if not self._scaled(c, g):  # g times constants is zero where g is
                    # shapes not known while compiling (generic code): zero_outside
                    # compares them as it runs
                    c = self.emit(prim_of(np.where), (cond, c, Const(0.0)) if keep else
                                  (cond, Const(0.0), c), c.name) if known else \
                        self.emit(prim_of(runtime.zero_outside), (cond, c, Const(keep)), c.name)
                    self.facts.same_kind(c, a)
                self.masks[c] = mask
            out.append(c)
        return out

    def _scaled(self, c, g) -> bool:
        """`c` is `g`, or `g` negated or times or over constants."""
        while c is not g:
            op = self.adjoint_defs.get(c)
            if op is None or op.prim.fn not in (operator.mul, operator.truediv, operator.neg):
                return False
            rest = [x for x in op.args if not isinstance(x, Const)]
            if len(rest) != 1 or (op.prim.fn is operator.truediv and rest[0] is not op.args[0]):
                return False
            c = rest[0]
        return True

    def scatter(self, adj: dict, op: Call, g) -> None:
        """`x[i]`'s adjoint adds into `x_bar[i]` in place: O(1) per element read."""
        x, index = op.args
        shape = self.facts.shape(x)
        if _whole(index) and shape is not None:  # x[:, None], x[...]: every element, reshaped
            self.accumulate(adj, x, self.inline_vjp(_reshape_back, g, op, [True, False])[0])
            return
        if _itself(index) and self.facts.types(x) <= {"ndarray", "float"}:
            # x[()] and x[...] read x itself, of any rank (generic code: its shape is not
            # known), or a 0-d array's one entry: g is x's cotangent as it is. Added into
            # x_bar in place, it failed where x_bar is a number (g * math.exp(c))
            self.accumulate(adj, x, g)
            return
        fresh = x not in adj
        current = adj[x] if x in adj else self.zero(x)
        prim = iadd_at if (basic_index(index, self.facts) or index in self.single_keys or
                           op.prim.fn is field) and "none" not in self.facts.types(op.result) \
            else runtime.add_at  # (an entry that may be None has None for a cotangent)
        types = self.facts.types(x)
        if (types in ({"list"}, {"tuple"}) or self.made_as.get(x) == "container" or
                not types and self.facts.kinds) and _slice(index, self.facts):
            # a list's cotangent may be ragged, the slice empty (or x, no run observed,
            # may be a list: add_slice is an array's `x_bar[i:j] += g` too)
            prim = runtime.add_slice
        adj[x] = self.emit(prim_of(prim), (current, self.read(index), g), f"{cotangent_base(x)}_bar")
        k = self.facts.kind(index)
        if fresh and k is not None and k.type == "ndarray" and k.dtype == "b" and \
                self.facts.shape(index) == self.facts.shape(x) is not None:
            # `x[mask]` alone: x's cotangent is zero where the mask is False, which the
            # rules that computed x must not turn into NaN (np.sqrt(x)[x > 0])
            self.masks[adj[x]] = (self.read(index), True, self.facts.shape(index))

    def inline_vjp(self, template, g, op: Call, wanted: list, reads: list | None = None) -> list:
        """Lower the rule against the primal operands, keep what the wanted cotangents
        need, then read the surviving primal operands in the current reverse region
        (listed in `reads`, when given)."""
        low = TemplateLowerer(parse_function(template), self.facts, {"ans": op.result, "g": g})
        low.defs = self.adjoint_defs  # so constants fold across rules: (0.5 * g) * 2 -> g
        sig, operands = _signature(template)
        params = list(sig.parameters.values())
        try:
            bound = operands.bind(*op.args, **dict(op.kwargs))
        except TypeError as e:
            raise NonDifferentiableError(f"cannot apply the rule of `{op.prim.name}`: {e}",
                                         op.loc) from None
        low.env.update({params[0].name: g, params[1].name: op.result})
        stacked = sequence_operands(op, self.facts)
        for name, value in bound.arguments.items():
            p = sig.parameters[name]
            if p.kind == p.VAR_POSITIONAL:
                value = low.emit(prim_of(tuple_of), value)
            elif value in stacked:
                value = low.emit(prim_of(np.asarray), (value,))
            low.env[name] = value
        for p in params[2:]:
            if p.name not in low.env and p.default is not inspect.Parameter.empty:
                low.env[p.name] = low.classify(p.default, p.name)
        ret = low.body(_template_body(template)) or (Const(None),)
        refuse_now(low.ops, op)
        if len(ret) == 1 and len(op.args) > 1 and not _returns_tuple(template):
            ret = (ret[0],)
        ret = list(ret) + [Const(None)] * (len(op.args) - len(ret))
        if op.kwargs:  # the template returns one cotangent per parameter, in its order
            names = [p.name for p in params[2:]]
            by_name = dict(zip(names, list(ret) + [Const(None)] * len(names)))
            if not any(p.kind == p.VAR_POSITIONAL for p in params):
                ret = ret[:len(op.args)] + [by_name.get(k, Const(None)) for k, _ in op.kwargs]
        out = [r if w and not (isinstance(r, Const) and r.value is None) else None
               for r, w in zip(ret, wanted)]
        ops = prune(low.ops, [o for o in out if o is not None], registry.pure)
        for o in ops:  # the template's own names (g, ans) mean nothing in the output
            for r in o.results:
                if not r.name.startswith("_"):
                    r.name = "_t"
        primal = self.primal_values
        read = {}

        def to_reverse(o):
            if isinstance(o, Value) and o in primal:
                if o not in read:
                    read[o] = self.read(o)
                    if reads is not None:
                        reads.append(o)
                return read[o]
            return o

        new_ops = relocate([map_operands(o, to_reverse) for o in ops], self.loc)
        self.ops.extend(new_ops)
        self.adjoint_defs.update((o.result, o) for o in new_ops if isinstance(o, Call))
        self.made.update(r for o in new_ops for r in o.results)
        return [to_reverse(o) if o is not None else None for o in out]

    def entry_may_change(self, op: Call) -> bool:
        """Whether `x[i] = v` may be a list's entry replaced by one of another shape or
        kind (a list's cotangent is stacked into one array where its entries share a
        shape). Not where x is an array, or a list seen with the same kind before and
        after the write; in generic code, not where x is made as an array."""
        x = op.args[0]
        if not self.facts.kinds:
            return self.made_as.get(x) not in ("float", "int")
        types = self.facts.types(x)
        if types and "list" not in types:
            return False
        before = self.facts.kind(x)
        return before is None or before.shape is None or before != self.facts.kind(op.result)

    def restore(self, op: Call) -> None:
        """Undo an in-place write: the forward sweep saved the region `y[i] = v`
        overwrites; the backward sweep writes it back, so earlier rules read `y` as it was."""
        storage, index, _ = op.args
        old = Value("_old")
        prim = prim_of(runtime.element) if _reads_scalar(storage, index, self.facts) else prim_of(save)
        self.instrument.setdefault(op, Instrumented()).before.append(
            Call(prim, (storage, index), old, (), op.loc))
        if self.region.kind != "top":  # saved in this block: taped or exported like its peers
            self.region.defined.add(old)
        restored = Value(cotangent_base(storage))
        self.facts.same_kind(restored, storage)
        self.ops.append(Call(prim_of(runtime.setitem), (self.read(op.result), self.read(index),
                                                       self.read(old)), restored, (), op.loc))
        self.region.map[storage] = restored

    # ---------------------------------------------------------------- branches
    def reverse_if(self, op: If, adj: dict) -> None:
        if not any(r in self.active for r in op.results) and not _has_active(op, self.active):
            return
        cond = self.read(op.cond)
        outer_ops, outer_region = self.ops, self.region
        branches = []
        for block in (op.then, op.orelse):
            region = Region(outer_region, defined(block), "if", op)
            self.region, self.ops = region, []
            badj = dict(adj)
            for r, y in zip(op.results, block.results):
                if r in adj:
                    self.accumulate(badj, y, adj[r])
            self.reverse_ops(block.ops, badj)
            branches.append((region, self.ops, badj))
        self.region, self.ops = outer_region, outer_ops
        for r in op.results:
            adj.pop(r, None)
        changed = []
        for _, _, badj in branches:
            for v, a in badj.items():
                if v not in changed and adj.get(v) is not a and v in self.active and \
                        v not in op.results and not _defined_in(v, op):
                    changed.append(v)
        blocks = []
        for region, ops, badj in branches:
            self.ops, self.region = list(ops), region
            self.loc = op.loc
            yields = []
            for v in changed:
                a = badj.get(v, adj.get(v))
                yields.append(a if a is not None else self.zero(v))
            blocks.append(Block((), tuple(region.preamble + self.ops), tuple(yields)))
            self.ops, self.region = outer_ops, outer_region
        results = tuple(Value(f"{cotangent_base(v)}_bar") for v in changed)
        self.loc = op.loc
        self.ops.append(If(cond, blocks[0], blocks[1], results, op.loc))
        for v, r in zip(changed, results):
            adj[v] = r
            zero_in = [v not in badj for _, _, badj in branches]
            if zero_in.count(True) == 1:  # r is zero unless the other branch ran
                self.taken[r] = (cond, zero_in[1], self.region)
                continue
            # one side passes on a cotangent that is zero unless an earlier (in the
            # reverse sweep) branch ran, the other adds to it: r is zero unless either ran
            marks = [self.taken.get(badj.get(v)) for _, _, badj in branches]
            for side in (0, 1):
                m = marks[side]
                if marks[1 - side] is None and m is not None and m[2] is self.region:
                    self.taken[r] = (self._either([(cond, side == 1, None), m]), True,
                                     self.region)
        exports = [v for region, _, _ in branches for v in region.exports]
        if exports:
            self.export(op, branches)

    def export(self, op: If, branches) -> None:
        """Give the forward `if` extra results for the branch values its reverse reads."""
        then_region, else_region = branches[0][0], branches[1][0]
        ins = self.instrument.setdefault(op, Instrumented())
        base = ins.op or op
        extra_then, extra_else, results = [], [], []
        for region, own, other in ((then_region, 0, 1), (else_region, 1, 0)):
            for v in region.exports:
                results.append(region.export_results[v])
                (extra_then if own == 0 else extra_else).append(v)
                (extra_else if own == 0 else extra_then).append(Const(None))
        ins.op = replace(base, then=replace(base.then, results=base.then.results + tuple(
            extra_then)), orelse=replace(base.orelse, results=base.orelse.results + tuple(
                extra_else)), results=base.results + tuple(results))

    # ---------------------------------------------------------------- loops
    def reverse_loop(self, op, adj: dict) -> None:
        """The adjoint of a loop: a loop over the iterations in reverse, whose body is the
        reversed body. Each carried value's cotangent is carried back; a value the body
        reads from outside it accumulates its cotangent across iterations; what the
        reversed body needs of the forward iterations goes on a tape the forward loop
        fills (or is relayed from iteration to iteration, or recomputed)."""
        if not _has_active(op, self.active):
            return
        if isinstance(op, For) and op.checkpoint is not None:
            if op.checkpoint[2:] == ("policy",):  # the policy's loops are weighed first
                keeps = snapshot_bytes(op, self.facts)
                if keeps is not None and self._stored_instead(op, adj, keeps):
                    return
            reverse_checkpointed(self, op, adj)
            return
        is_for = isinstance(op, For)
        args = op.body.args[1:] if is_for else op.body.args
        slots = [k for k, a in enumerate(args) if a in self.active or op.results[k] in self.active
                 or op.body.results[k] in self.active]
        inner_defined = defined(op.body) | set(op.body.args)
        accs = [v for v in free_operands(op.body, inner_defined) if v in self.active]
        self.loc = op.loc
        inits = self._loop_seeds(op, adj, slots, accs)
        outer_region = self.region
        region = Region(outer_region, inner_defined, "loop", op)
        # a sum over iterations (`s = s + term(i)`): s_bar is the same every iteration, so
        # each term's values are recomputed where they are needed and nothing is taped
        region.recompute = is_for and _is_reduction(op, slots)
        region.target = Value(op.body.args[0].name if is_for else "_")
        cargs = [Value(f"{cotangent_base(args[k])}_bar") for k in slots]
        aargs = [Value(f"{cotangent_base(u)}_bar") for u in accs]
        body_ops, yields = self._reversed_body(op, region, args, slots, accs, cargs, aargs)
        # a cotangent the reversed body writes into (`y_bar[i] = 0.0`) must not start as a
        # read-only broadcast: copied once here, or every iteration would copy it
        written = {o.args[0] for o in walk_ops(Block((), tuple(body_ops), ()))
                   if isinstance(o, Call) and o.prim.style in ("setitem", "iadd_at", "add_at")}
        inits[:len(slots)] = [self._writable(g) if c in written else g
                              for g, c in zip(inits, cargs)]
        # a reduction's terms are recomputed, so its reversed loop may run in any order;
        # but a value it could not recompute is still taped, and a tape pops last-in first
        in_order = not region.recompute or bool(region.saved)
        relay_args, relay_inits, relay_yields = self._relays(op, args, region, outer_region)
        pops, tape = self._tape_pops(region, outer_region)
        rbody = Block((region.target, *cargs, *aargs, *relay_args),
                      tuple(pops + region.preamble + body_ops), tuple(yields + relay_yields))
        ins = self.instrument.setdefault(op, Instrumented())
        fwd = ins.op or op
        if tape is not None:
            fwd = self._tape_pushes(op, fwd, ins, region, tape)
        if is_for:
            iterable = self.read(op.iter)
        else:
            fwd, iterable = self._counted(op, fwd, outer_region)
        ins.op = fwd
        results = tuple(Value(f"{cotangent_base(args[k])}_bar") for k in slots) + tuple(
            Value(f"{cotangent_base(u)}_bar") for u in accs)
        relayed = tuple(Value(v.name) for v in relay_args)
        self.ops.append(For(iterable, tuple(inits + relay_inits), rbody, results + relayed,
                            op.loc, reverse=in_order))
        for u, r in zip(accs, results[len(slots):]):
            adj[u] = r
        for k, r in zip(slots, results):
            self.accumulate(adj, op.inits[k], r)

    def _loop_seeds(self, op, adj: dict, slots: list, accs: list) -> list:
        """The reversed loop's initial cotangents: of the loop's results (carried back),
        then of the outside values its body reads (accumulated over iterations)."""
        inits = []
        for k in slots:
            r = op.results[k]
            inits.append(adj.pop(r) if r in adj else self.zero(r))
        for u in accs:
            inits.append(self._writable(adj[u]) if u in adj else self.zero(u))
        for r in op.results:
            adj.pop(r, None)
        return inits

    def _reversed_body(self, op, region: Region, args, slots, accs, cargs, aargs):
        """The ops of one reversed iteration, in `region`, and what it yields: the
        cotangents of the carried values and of the outside values."""
        outer_ops, outer_region = self.ops, self.region
        self.region, self.ops = region, []
        badj: dict = dict(zip(accs, aargs))
        for k, c in zip(slots, cargs):
            self.accumulate(badj, op.body.results[k], c)
        self.reverse_ops(op.body.ops, badj)
        self.loc = op.loc
        yields = [badj[args[k]] if args[k] in badj else self.zero(args[k]) for k in slots]
        yields += [badj[u] for u in accs]
        body_ops = self.ops
        self.ops, self.region = outer_ops, outer_region
        return body_ops, yields

    def _relays(self, op, args, region: Region, outer_region: Region):
        """A body's yield is the next iteration's block argument. When the reverse reads
        both, tape only the argument and relay it backwards: the yield of iteration t is
        the argument popped for t + 1, and for the last iteration the loop's result."""
        relay_args, relay_inits, relay_yields = [], [], []
        for k, (a, y) in enumerate(zip(args, op.body.results)):
            # the argument may be popped, or an array the reverse restored in place
            if y in region.saved and y is not a and (a in region.saved or a in region.map):
                i = region.saved.index(y)
                region.saved.pop(i)
                relay_args.append(region.popped.pop(i))
                relay_inits.append(self.read_in(op.results[k], outer_region))
                relay_yields.append(region.map[a])
        return relay_args, relay_inits, relay_yields

    def _tape_pops(self, region: Region, outer_region: Region):
        """The reversed body's first ops: one pop of the tape (unpacked when an entry holds
        several values), and the tape; none when nothing is taped."""
        if not region.saved:
            return [], None
        tape = Value("_tape")
        if outer_region.kind != "top":  # an inner loop's tape is saved by the outer loop
            outer_region.defined.add(tape)
        popped = Value("_saved")
        pops = [Call(prim_of(tape_pop), (self.read_in(tape, outer_region),), popped, (), None)]
        if len(region.saved) == 1:
            pops[0] = replace(pops[0], result=region.popped[0])
        else:
            for i, p in enumerate(region.popped):
                pops.append(Call(prim_of(operator.getitem), (popped, Const(i)), p, (), None))
        return pops, tape

    def _tape_pushes(self, op, fwd, ins: Instrumented, region: Region, tape: Value):
        """The forward loop makes the tape and pushes what the reverse pops, as soon as
        the last saved value exists (so carried names can be reused)."""
        ins.before.append(Call(prim_of(tape_new), (), tape, (), op.loc))
        # an entry is the value as it was: an array some later write changes in place
        # is pushed as a copy, or its entry would change with it
        pushed, copies = [], []
        for v in region.saved:
            k = self.facts.kind(v)
            if v in self.written and (k is None or k.type not in ("float", "int", "bool")):
                copy = Value(v.name)
                self.facts.same_kind(copy, v)
                copies.append(Call(prim_of(runtime.private), (v,), copy, (), None))
                v = copy
            pushed.append(v)
        push = Call(prim_of(tape_push), (tape, *pushed), Value("_"), (), None)
        saved = set(region.saved)
        last = max((i for i, o in enumerate(op.body.ops)
                    if saved & set(self._results_of(o))), default=-1)
        if last >= 0:
            self.instrument.setdefault(op.body.ops[last], Instrumented()).after.extend(
                copies + [push])
        elif op.body.ops:
            self.instrument.setdefault(op.body.ops[0], Instrumented()).before.extend(
                copies + [push])
        else:
            fwd = replace(fwd, body=replace(fwd.body, ops=fwd.body.ops + tuple(copies) +
                                            (push,)))
        return fwd

    def _counted(self, op, fwd, outer_region: Region):
        """A while loop counts its trips in the forward sweep; the reverse loop runs over
        range(trips)."""
        trips = Value("_trips")
        if outer_region.kind != "top":
            outer_region.defined.add(trips)
        counter, nxt = Value("_n"), Value("_n")
        inc = Call(prim_of(operator.add), (counter, Const(1)), nxt, (), op.loc)
        ccounter = Value("_n")
        fwd = replace(fwd, inits=fwd.inits + (Const(0),),
                      cond=replace(fwd.cond, args=fwd.cond.args + (ccounter,)),
                      body=replace(fwd.body, args=fwd.body.args + (counter,),
                                   ops=fwd.body.ops + (inc,),
                                   results=fwd.body.results + (nxt,)),
                      results=fwd.results + (trips,))
        return fwd, self.emit(prim_of(range), (self.read_in(trips, outer_region),), "_range")

    def _results_of(self, op) -> tuple:
        """An op's results, including those instrumentation added (exports)."""
        ins = self.instrument.get(op)
        if ins is None:
            return op.results
        made = tuple(r for extra in ins.before for r in extra.results)
        return made + (ins.op.results if ins.op is not None else op.results)

    def read_in(self, v: Value, region: Region) -> Operand:
        saved = self.region
        self.region = region
        try:
            return self.read(v)
        finally:
            self.region = saved

    # ---------------------------------------------------------------- the function
    def forward(self, block: Block) -> Block:
        ops = []
        for op in block.ops:
            ins = self.instrument.get(op)
            new = op if ins is None or ins.op is None else ins.op
            if ins is not None:
                ops.extend(ins.before)
            if isinstance(new, If):
                new = replace(new, then=self._fwd_block(new.then, op.then),
                              orelse=self._fwd_block(new.orelse, op.orelse))
            elif isinstance(new, For):
                new = replace(new, body=self._fwd_block(new.body, op.body))
            elif isinstance(new, While):
                new = replace(new, body=self._fwd_block(new.body, op.body))
            ops.append(new)
            if ins is not None:
                ops.extend(ins.after)
        return replace(block, ops=tuple(ops))

    def _fwd_block(self, new: Block, old: Block) -> Block:
        """Instrument the ops of `old` (whose own extras are already in `new`)."""
        inner = self.forward(Block(old.args, old.ops, old.results))
        extra = new.ops[len(old.ops):]
        return replace(new, ops=inner.ops + extra)

    def run(self, name: str):
        """The gradient function `name(*params, out_bar=1.0)`; also returns the number of
        forward ops and the primal outputs (for the split form)."""
        outs = self.fn.body.results
        seed, k = "out_bar", 0
        while seed in self.fn.param_names:  # the user's parameters keep their names
            k += 1
            seed = f"out_bar_{k}"
        out_bar = Value(seed)
        self.ops, self.loc = [], self.fn.loc
        adj: dict = {}
        if len(outs) == 1:
            if isinstance(outs[0], Value):
                self.facts.same_kind(out_bar, outs[0])
            self.accumulate(adj, outs[0], out_bar)
        else:
            for i, o in enumerate(outs):
                self.accumulate(adj, o, self.emit(prim_of(operator.getitem), (out_bar, Const(i)),
                                                  f"{cotangent_base(o)}_bar"))
        body, n_forward = self.sweeps(adj, [self.fn.params[i] for i in self.wrt])
        doc = (f"Gradient of {self.fn.name} with respect to "
               f"({', '.join(self.fn.param_names[i] for i in self.wrt)}).")
        return Function(name, self.fn.params + (out_bar,), body, self.fn.loc,
                        self.fn.param_names + (seed,), doc), n_forward, tuple(outs)

    def run_step(self, name: str, seeded: list[int], accumulated: list[int]) -> Function:
        """The gradient of a loop body (or checkpointed call) as a function:
        `name(*params, *seeds, *accumulators)` -> cotangents of the `wrt` params, where
        each seed is the cotangent of one output and the accumulators carry the adjoints
        of loop-invariant params across calls."""
        outs = self.fn.body.results
        self.ops, self.loc = [], self.fn.loc
        adj: dict = {}
        seeds, accs = [], []
        for i in accumulated:
            p = self.fn.params[i]
            acc = Value(f"{p.name}_bar")
            self.facts.same_kind(acc, p)
            adj[p] = acc
            accs.append(acc)
        for i in seeded:
            o = outs[i]
            seed = Value(f"{cotangent_base(o)}_bar" if isinstance(o, Value) else "_bar")
            if isinstance(o, Value):
                self.facts.same_kind(seed, o)
            seeds.append(seed)
            self.accumulate(adj, o, seed)
        body, _ = self.sweeps(adj, [self.fn.params[i] for i in self.wrt])
        return Function(name, self.fn.params + tuple(seeds) + tuple(accs), body, self.fn.loc,
                        (), f"The adjoint of {self.fn.name}: cotangents in, cotangents out.",
                        owned=tuple(accs))

    def sweeps(self, adj: dict, params: list) -> tuple[Block, int]:
        """Forward sweep, backward sweep, and the cotangents of `params` returned."""
        self.reverse_ops(self.fn.body.ops, adj)
        self.loc = self.fn.loc
        grads = []
        for p in params:
            g = adj[p] if p in adj else self.zero(p)
            if isinstance(g, Value) and cotangent_base(g) != p.name:  # say whose gradient it is
                named = Value(f"{p.name}_bar")
                self.ops.append(Call(prim_of(runtime.alias), (g,), named, (), None))
                g = named
            grads.append(g)
        backward = [Call(prim_of(section), (Const("backward"),), Value("_"), (), None)] + self.ops
        forward = self.forward(self.fn.body).ops
        return Block((), tuple(forward) + tuple(backward), tuple(grads)), len(forward)


def reverse(fn: Function, wrt: tuple[int, ...], facts, name: str | None = None):
    """The gradient function of `fn`: (function, number of forward ops, primal outputs)."""
    return Reverse(fn, wrt, facts).run(name or f"{fn.name}_grad")


# ------------------------------------------------------------------ helpers



_body_cache: dict = {}


def _template_body(template):
    body = _body_cache.get(template)
    if body is None:
        parsed = parse_function(template)
        body = normalize(parsed.node, parsed.loc).body
        _body_cache[template] = body
    return body


def _signature(template) -> tuple[inspect.Signature, inspect.Signature]:
    """A VJP template's signature, and that of its operands (after g and ans): once per
    rule, not per call site (a long function inlines a rule a thousand times)."""
    got = _signature_cache.get(template)
    if got is None:
        sig = inspect.signature(template)
        got = _signature_cache[template] = (sig, inspect.Signature(
            list(sig.parameters.values())[2:]))
    return got


_signature_cache: dict = {}


def _returns_tuple(template) -> bool:
    returns = _returns_cache.get(template)
    if returns is None:
        returns = _returns_cache[template] = any(
            isinstance(n, gast.Return) and isinstance(n.value, gast.Tuple)
            for n in gast.walk(parse_function(template).node))
    return returns


_returns_cache: dict = {}


def _is_reduction(op: For, slots: list[int]) -> bool:
    """Whether each active carried value only accumulates terms that read no carried
    value: `s = s + a(i) - b(i) + ...`, the body straight-line code."""
    args = op.body.args[1:]
    if not slots or any(not isinstance(o, Call) for o in op.body.ops):
        return False
    defs = {o.result: o for o in op.body.ops}
    reads: dict = {}
    for o in op.body.ops:
        for a in o.operands:
            reads[a] = reads.get(a, 0) + 1
    terms = []

    def chain(v, arg) -> bool:
        """v is arg plus or minus terms, each link read once; collects the terms."""
        if v is arg:
            return True
        d = defs.get(v)
        if d is None or d.prim.fn not in (operator.add, operator.sub) or reads.get(v, 0) > 1:
            return False
        a, b = d.args
        if chain(a, arg):
            terms.append(b)
            return True
        if d.prim.fn is operator.add and chain(b, arg):
            terms.append(a)
            return True
        return False

    for k in slots:
        y, arg = op.body.results[k], args[k]
        if reads.get(arg, 0) != 1 or list(op.body.results).count(arg) or not chain(y, arg):
            return False
    carried = set(args)
    seen, todo = set(), list(terms)
    while todo:  # no term may depend on a carried value
        v = todo.pop()
        if v in carried:
            return False
        if v in seen or v not in defs:
            continue
        seen.add(v)
        todo.extend(a for a in defs[v].operands if isinstance(a, Value))
    return True


def _cheap_scalar(op: Call) -> bool:
    """Arithmetic and `math` functions: as cheap on floats as taping their result."""
    return op.prim.style in ("infix", "prefix") and op.prim.precedence >= 10 or \
        op.prim.name.startswith("math.")


def _itself(index) -> bool:
    """`()` or `...`: an index that reads an array as it is (a 0-d array's entry)."""
    return isinstance(index, Const) and (index.value == () or index.value is Ellipsis)


def _whole(index) -> bool:
    """An index that reads every element once (`:`, `None`, `...`): a reshape."""
    if not isinstance(index, Const):
        return False
    parts = index.value if isinstance(index.value, tuple) else (index.value,)
    return all(p is None or p is Ellipsis or p == slice(None) for p in parts)


# rules' results that are real whatever they are given
_REAL_ALREADY = (np.real, np.imag, np.abs, np.angle)


def _length(kind) -> int | None:
    """A list's observed length (None when its entries do not stack into one shape)."""
    return kind.shape[0] if kind is not None and kind.shape else None


def _slice(index, facts) -> bool:
    if isinstance(index, Const):
        return isinstance(index.value, slice)
    kind = facts.kind(index)
    return kind is not None and kind.type == "slice"


def _elementwise(op: Call) -> bool:
    fn = op.prim.fn
    return registry.elementwise_ufunc(fn) or fn in (
        operator.add, operator.sub, operator.mul, operator.truediv, operator.pow, operator.neg)


def _zeros_like_prim():
    return prim_of(np.zeros_like)


def _single_keys(fn: Function) -> set[Value]:
    """Indices that name one entry, even where no call has shown their kind (generic
    code): the keys of `for k in d.keys()` / `d.items()`, and the index of a loop over a
    range (`for layer in layers` reads layers[_k])."""
    lists = {op.result for op in walk_ops(fn.body) if isinstance(op, Call) and
             op.prim.fn is keys}
    ranges = {op.result for op in walk_ops(fn.body) if isinstance(op, Call) and
              op.prim.fn is range}
    return {op.result for op in walk_ops(fn.body) if isinstance(op, Call) and
            op.prim.fn is operator.getitem and op.args[0] in lists} | {
        op.body.args[0] for op in walk_ops(fn.body) if isinstance(op, For) and op.iter in ranges}


def _definitions(fn: Function) -> dict:
    out = {}
    for op in walk_ops(fn.body):
        for r in op.results:
            out[r] = op
    return out


def _defined_in(v, op) -> bool:
    return any(v in defined(b) for b in op.blocks)


def _has_active(op, active) -> bool:
    return any(r in active for r in op.results) or any(
        r in active for o in walk_ops(Block((), (op,), ())) for r in o.results)


def _recomputable(op: Call, facts) -> bool:
    """Cheap to redo in the reverse sweep: a pure scalar computation."""
    e = registry.entry(op.prim)
    if e is None or not e.pure or op.prim.fn in (tape_pop, tape_new, tape_push):
        return False
    k = facts.kind(op.result)
    if k is not None and k.scalar:
        return True
    return op.prim.fn in (range, len, slice, runtime.index_tuple, tuple_of, np.shape) or (
        k is not None and k.type == "range")


def _reads_scalar(storage, index, facts) -> bool:
    """Whether `storage[index]` is one element (a copy already), not a view."""
    k, ik = facts.kind(storage), facts.kind(index)
    if k is None or k.type != "ndarray" or ik is None:
        return False
    if k.shape is None:  # np.compress's result: its shape is not known
        return False
    if ik.type == "int":
        return len(k.shape) == 1
    return ik.type == "tuple" and ik.dtype == "i" and ik.shape == (len(k.shape),)


def refuse_now(ops, op) -> None:
    """A rule that reaches `unsupported(message)` whatever the values (its condition
    folded away on constants and shapes) refuses at compile time, at the call's line."""
    for o in ops:  # the top level only: a call under a branch decided at run time waits
        if isinstance(o, Call) and o.prim.name == "unsupported" and all(
                isinstance(a, Const) for a in o.args):
            raise NonDifferentiableError(str(o.args[0].value), op.loc,
                                         str(o.args[1].value) if len(o.args) > 1 else "")
