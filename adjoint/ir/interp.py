"""A reference interpreter for the IR, so lowering is testable as
`interpret(lower(f))(*args) == f(*args)`.

It can also observe every value it computes (`observe=`), which is how the
compiler learns the kind and shape of each value for a given call signature.
That run is the first call's cost for a long loop, so the IR is turned once into
Python source, one statement an op, that CPython runs as fast as f itself; an op's
location is found from the line an exception was raised on.

Observing with `facts=` samples loops: a loop body (or a branch in it) runs
observed until it has run `SETTLE` times in a row without teaching the facts
anything new (`facts.learned` unchanged), and unobserved after that, counting its
runs so the facts' trip counts stay exact. Kinds settle after a few trips, as they
settle after a few calls; an unobserved trip still checks that each value it binds
is of the kind observed (`facts.fits`: the short last batch of `X[b:b + 4]` is not).
A block that first runs after its loop has settled (a branch taken on the last
trip, a nested loop that had not run), or a value of a kind not observed, raises
`Relearn`: the caller observes again, every trip.
"""
from __future__ import annotations

import itertools
import math
import operator
from typing import Any, Callable

from adjoint.ir.core import Block, Call, Const, For, Function, If, Value, While
from adjoint.errors import AdjointError

Observer = Callable[[Value, Any], None]

SETTLE = 4  # a block's runs in a row that learn nothing before it runs unobserved


class Relearn(Exception):
    """A block ran for the first time after its loop stopped observing."""


_INFIX = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
          operator.floordiv: "//", operator.mod: "%", operator.pow: "**",
          operator.matmul: "@", operator.lt: "<", operator.le: "<=", operator.gt: ">",
          operator.ge: ">=", operator.eq: "==", operator.ne: "!="}
_DEEPEST = 30  # levels of indentation a branch may nest before it becomes a function
_LITERALS = (int, float, bool, str, type(None))
_files = itertools.count()


def interpret(fn: Function, observe: Observer | None = None, facts=None) -> Callable:
    """`fn` as a Python callable. `observe(v, x)` is called with every value bound;
    `facts` (with `record`, `learned` and `add_count`) observes with sampled loops."""
    if facts is not None:
        observe = facts.record
    source = _Source(fn, observe is not None, facts is not None)
    namespace = dict(source.namespace, _o=observe, _F=facts, _Relearn=Relearn)
    if facts is not None:
        namespace["_fits"] = _remembering(facts, namespace)
    code = compile("\n".join(source.lines) + "\n", source.filename, "exec")
    exec(code, namespace)
    compiled = namespace["_run"]
    state = ("_fast", "_stable", "_ran", "_runs")

    def run(*args):
        if len(args) != len(fn.params):
            raise TypeError(f"{fn.name}() takes {len(fn.params)} arguments, got {len(args)}")
        for name in state:
            namespace[name] = [0] * len(source.blocks)
        namespace["_T"] = [None] * source.checks
        try:
            results = compiled(*args)
        except Relearn:
            raise
        except AdjointError as e:  # an op that refuses these values: at f's line
            raise e.located(source.where(e.__traceback__))
        except Exception as e:  # where it failed, for a `try` whose handler f would run
            loc = source.where(e.__traceback__)
            if getattr(e, "adjoint_loc", None) is None:
                e.adjoint_loc = loc
                if loc is not None and hasattr(e, "add_note"):  # (Python 3.11+)
                    e.add_note(f"adjoint: raised running {loc.filename}:{loc.line}: "
                               f"{(loc.text or '').strip()}")
            raise
        if facts is not None:
            for block, runs in zip(source.blocks, namespace["_runs"]):
                if runs:
                    for v in _bound(block):
                        facts.add_count(v, runs)
        return results[0] if len(results) == 1 else tuple(results)

    return run


def _remembering(facts, namespace: dict) -> Callable:
    """`facts.fits`, remembering in slot `k` of `_T` the type of a number that fits: a
    number's kind is its type's, and a type that fits once fits on every later trip (a
    mix only grows), so the next trips compare the type inline, and call this only for
    an array or a new type."""
    def fits(v: Value, x, k: int) -> bool:
        if not facts.fits(v, x):
            return False
        if type(x) in facts.NUMBER_TYPES:
            namespace["_T"][k] = type(x)
        return True
    return fits


def _indented(lines: list) -> list:
    return [("    " + line[0], line[1]) if isinstance(line, tuple) else "    " + line
            for line in lines]


def _depth(lines: list) -> int:
    """How deep `lines` nest, in levels."""
    return max((len(t) - len(t.lstrip(" ")) for t in (
        line[0] if isinstance(line, tuple) else line for line in lines)), default=0) // 4


def _free(block: Block) -> list:
    """The values `block` reads, at any depth, that it does not define."""
    defined, read = set(), {}

    def visit(b: Block) -> None:
        defined.update(_bound(b))
        reads = [o for op in b.ops for o in op.operands] + list(b.results)
        read.update((o, None) for o in reads if isinstance(o, Value))
        for op in b.ops:
            for inner in op.blocks:
                visit(inner)

    visit(block)
    return [v for v in read if v not in defined]


def _bound(block: Block) -> list:
    """The values a run of `block` binds (not those of the blocks inside it)."""
    return list(block.args) + [v for op in block.ops for v in op.results]


class _Source:
    """Python source for a Function: `_run(params)`, its ops one statement each, its
    regions as Python's `if`, `for` and `while`. When sampling, each loop is written
    twice: observed trips until its body settles, then the rest of the trips unobserved
    (the body's runs counted)."""

    def __init__(self, fn: Function, watch: bool, sample: bool) -> None:
        self.sample = sample
        self.filename = f"<adjoint interpret {next(_files)}>"
        self.namespace: dict[str, Any] = {}
        self.names: dict[int, str] = {}  # id(value) -> its name in the source
        self.blocks: list[Block] = []  # numbered loop bodies and branches
        self.numbers: dict[int, int] = {}  # id(block) -> its number
        self.loc_of_line: dict[int, Any] = {}
        self.lines: list[str] = []
        self.hoists: list[list] = []  # functions of branches nested too deep
        self.checks = 0  # kind checks of unobserved trips, each with a slot in `_T`
        body = self.observed(fn.params, watch) + self.ops(fn.body, watch)
        body.append(f"return ({''.join(self.operand(o) + ', ' for o in fn.body.results)})")
        self.emit([f"def _run({', '.join(self.name(v) for v in fn.params)}):"] +
                  _indented(body))
        for lines in self.hoists:
            self.emit(lines)

    # -- names -------------------------------------------------------------------------

    def name(self, v: Value) -> str:
        n = self.names.get(id(v))
        if n is None:
            n = self.names[id(v)] = f"v{len(self.names)}"
            self.namespace["V" + n[1:]] = v
        return n

    def operand(self, o) -> str:
        if isinstance(o, Value):
            return self.name(o)
        if type(o.value) in _LITERALS and (type(o.value) is not float or
                                           math.isfinite(o.value)):
            return f"({o.value!r})"  # a constant Python folds (in parentheses: (-1) ** k)
        key = f"k{len(self.namespace)}"
        self.namespace[key] = o.value
        return key

    def number(self, block: Block) -> int:
        """`block`'s number (a loop's body is written twice when sampling)."""
        if id(block) not in self.numbers:
            self.numbers[id(block)] = len(self.blocks)
            self.blocks.append(block)
        return self.numbers[id(block)]

    def targets(self, values) -> str:
        return ", ".join(self.name(v) for v in values) + ","

    def assign(self, values, operands) -> list:
        """`values = operands`, all at once (a loop may swap its carried values)."""
        if not values:
            return []
        return [f"{self.targets(values)} = {', '.join(self.operand(o) for o in operands)},"]

    # -- statements ----------------------------------------------------------------------

    def emit(self, lines: list) -> None:
        """Append `lines` (a str, or (str, loc) for a line an op's failure is blamed on)."""
        for line in lines:
            text, loc = line if isinstance(line, tuple) else (line, None)
            self.lines.append(text)
            if loc is not None:
                self.loc_of_line[len(self.lines)] = loc

    def observed(self, values, watch: bool) -> list:
        """Observing `values` as they are bound; on a sampled loop's unobserved trips,
        checking that they are of the kinds observed (else the whole call is observed
        again, `Relearn`)."""
        pairs = [(f"V{self.name(v)[1:]}", self.name(v)) for v in values]
        if watch:
            return [f"_o({V}, {v})" for V, v in pairs]
        if not self.sample:
            return []
        checks = []
        for V, v in pairs:
            checks.append(f"(type({v}) is _T[{self.checks}] or _fits({V}, {v}, {self.checks}))")
            self.checks += 1
        return ["if not (" + " and ".join(checks) + "): raise _Relearn"] if checks else []

    def ops(self, block: Block, watch: bool) -> list:
        lines: list = []
        for op in block.ops:
            if isinstance(op, Call):
                lines.append((f"{self.name(op.result)} = {self.call(op)}", op.loc))
            elif isinstance(op, If):
                lines += self.branching(op, watch)
            elif isinstance(op, For):
                lines += self.for_loop(op, watch)
            elif isinstance(op, While):
                lines += self.while_loop(op, watch)
            else:  # pragma: no cover
                raise TypeError(op)
            lines += self.observed(op.results, watch)
        return lines

    def call(self, op: Call) -> str:
        args = [self.operand(a) for a in op.args]
        if not op.kwargs and len(args) == 2 and op.prim.fn in _INFIX:
            return f"{args[0]} {_INFIX[op.prim.fn]} {args[1]}"
        if not op.kwargs and len(args) == 2 and op.prim.fn is operator.getitem:
            return f"{args[0]}[{args[1]}]"
        if not op.kwargs and len(args) == 1 and op.prim.fn is operator.neg:
            return f"-{args[0]}"
        keywords = [f"{k}={self.operand(v)}" for k, v in op.kwargs if k.isidentifier()]
        odd = [f"{k!r}: {self.operand(v)}" for k, v in op.kwargs if not k.isidentifier()]
        if odd:
            keywords.append("**{" + ", ".join(odd) + "}")
        return f"{self.operand(Const(op.prim.fn))}({', '.join(args + keywords)})"

    def run_of(self, block: Block, watch: bool, seen: bool = False) -> list:
        """The bookkeeping that starts a run of `block` when sampling: an observed run
        marks it seen; an unobserved one counts, and relearns a block never seen (unless
        it is `seen`: the rest of the trips of a loop that settled)."""
        if not self.sample:
            return []
        b = self.number(block)
        if watch:
            return [f"_ran[{b}] = 1"]
        return ([] if seen else [f"if not _ran[{b}]: raise _Relearn"]) + [f"_runs[{b}] += 1"]

    def body(self, block: Block, watch: bool, seen: bool = False) -> list:
        """A run of loop or branch `block`, its arguments already bound."""
        return self.run_of(block, watch, seen) + self.observed(block.args, watch) + \
            self.ops(block, watch)

    def branching(self, op: If, watch: bool) -> list:
        lines: list = [(f"if {self.operand(op.cond)}:", op.loc)]
        for i, branch in enumerate((op.then, op.orelse)):
            lines += ["else:"] if i else []
            inner = self.body(branch, watch)
            if _depth(inner) > _DEEPEST:  # a long elif chain: Python caps indentation
                inner = self.hoisted(branch, inner, op.results)
            else:
                inner += self.assign(op.results, branch.results)
            lines += _indented(inner or ["pass"])
        return lines

    def hoisted(self, branch: Block, lines: list, results) -> list:
        """`lines`, a run of `branch`, as a function of its own; the call that runs it."""
        free = ", ".join(self.name(v) for v in _free(branch))
        f = f"_h{len(self.hoists)}"
        self.hoists.append([f"def {f}({free}):"] + _indented(lines + [
            f"return ({''.join(self.operand(o) + ', ' for o in branch.results)})"]))
        call = f"{f}({free})"
        return [f"{self.targets(results)} = {call}" if results else call]

    def settled(self, block: Block) -> list:
        """After an observed run of `block`: whether it learned nothing new, SETTLE
        runs in a row, so that its next runs go unobserved."""
        b = self.number(block)
        return ["if _F.learned == _m:", f"    _stable[{b}] += 1",
                f"    if _stable[{b}] >= {SETTLE}: _fast[{b}] = 1", "else:",
                f"    _stable[{b}] = 0"]

    def for_loop(self, op: For, watch: bool) -> list:
        target, carried = op.body.args[0], op.body.args[1:]
        trips = self.operand(op.iter)
        trips = f"reversed({trips})" if op.reverse else trips
        step = lambda watch, seen=False: self.body(op.body, watch, seen) + \
            self.assign(carried, op.body.results)  # noqa: E731
        head = f"for {self.name(target)} in "
        lines = self.assign(carried, op.inits)
        if not (self.sample and watch):
            lines += [(head + trips + ":", op.loc)] + _indented(step(watch))
        else:  # observed trips until the body settles, then the rest unobserved
            b, it = self.number(op.body), f"_i{self.number(op.body)}"
            lines += [(f"{it} = iter({trips})", op.loc), f"if not _fast[{b}]:",
                      f"    {head}{it}:", "        _m = _F.learned"]
            lines += _indented(_indented(step(True) + self.settled(op.body) +
                                         [f"if _fast[{b}]: break"]))
            lines += [f"{head}{it}:"] + _indented(step(False, seen=True))
        return lines + self.assign(op.results, carried)

    def while_loop(self, op: While, watch: bool) -> list:
        carried = op.body.args
        flag = self.operand(op.cond.results[0])

        def step(watch: bool, seen: bool = False) -> list:
            return self.assign(op.cond.args, carried) + self.body(op.cond, watch, seen) + \
                [(f"if not {flag}: break", op.loc)] + self.body(op.body, watch, seen) + \
                self.assign(carried, op.body.results)

        lines = self.assign(carried, op.inits)
        if not (self.sample and watch):
            return lines + ["while True:"] + _indented(step(watch)) + \
                self.assign(op.results, carried)
        # observed trips until both blocks settle, then the rest unobserved
        c, b = self.number(op.cond), self.number(op.body)
        done = f"_d{b}"
        lines += [f"{done} = False", f"if not (_fast[{c}] and _fast[{b}]):", "    while True:",
                  "        _m = _F.learned"]
        observed = step(True)
        at = observed.index((f"if not {flag}: break", op.loc))
        observed[at] = (f"if not {flag}: {done} = True; break", op.loc)
        lines += _indented(_indented(observed + self.settled(op.body) + [
            f"_fast[{c}] = _fast[{b}]", f"if _fast[{b}]: break"]))
        lines += [f"if not {done}:", "    while True:"] + _indented(_indented(step(False, True)))
        return lines + self.assign(op.results, carried)

    def where(self, tb):
        """The location of the op whose line raised, from the traceback `tb`."""
        loc = None
        while tb is not None:  # the innermost frame of this source
            if tb.tb_frame.f_code.co_filename == self.filename:
                loc = self.loc_of_line.get(tb.tb_lineno)
            tb = tb.tb_next
        return loc
