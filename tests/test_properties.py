"""Property-based tests: random programs, written out as Python source, differentiated
by adjoint and compared with central finite differences in float64.

Seven generators build programs as source text (adjoint reads real source, so each
program is written to its own .py file and imported):

1. straight-line NumPy/math expressions over a scalar, a (3,) vector and a (2, 3)
   matrix, with intermediate variables, rebinding and augmented assignment;
2. branches on value comparisons (if/elif/else, nested ifs, conditional
   expressions, early returns) and on an integer argument;
3. `for` loops over ranges, arrays and `enumerate`, carrying 1-3 state variables;
4. `while` loops with a counter and a value-dependent exit (in the test or a `break`);
5. array writes in loops (`y[i] = ...`, `y[i] += ...`) that read earlier cells;
6. loop exits: break / continue / early return / the fixed-point shape, with assignments
   before, inside and after the exiting branch, index-only taped values (`math.cos(i)`,
   Taylor terms), swaps, carried tuples and aug-assign through an alias;
7. in-place writes into fresh arrays passed to a helper; lists of (W, b) layers.

Every domain is valid by construction (log(1 + u**2), sqrt(1 + u**2), division by
1 + u**2 or 2 + cos(u)), and loop updates go through tanh/sin/cos so values stay
bounded. A program whose control flow depends on values is also rendered as
`f_probe`, the same code with every value comparison `lhs OP thr` written as
`_margin(lhs - thr) OP 0`; examples where some comparison is closer than MARGIN to
its threshold are rejected, so finite differences never straddle a branch point.

Each program is checked in reverse mode (value_and_grad, whose value must be f's:
translation validation; and vjp for some), in forward mode
(jvp along a random tangent, against central differences and against <grad, tangent>),
and under every checkpoint policy (checkpoint=1, 2, 3 and {"budget": bytes}: the
store-everything gradient to rounding, and finite differences). The loop generators
can also mark their loops `adjoint.checkpointed(..., snapshots=k)` or `budget=`.

By default each generator runs a modest, derandomized number of examples (CI stays
fast and reproducible); set ADJOINT_HYPOTHESIS_EXAMPLES=N to run N random examples
per test instead.
"""
from __future__ import annotations

import copy

import importlib.util
import itertools
import os
import re
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, reject, settings
from hypothesis import strategies as st

import adjoint
import adjoint.testing
from adjoint.testing import numeric_grad

_ENV_EXAMPLES = os.environ.get("ADJOINT_HYPOTHESIS_EXAMPLES")
EXAMPLES = int(_ENV_EXAMPLES) if _ENV_EXAMPLES else 30
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not _ENV_EXAMPLES,
    # CI: no shrinking (a failing example can take minutes to shrink; its program is in the
    # assertion message anyway). With ADJOINT_HYPOTHESIS_EXAMPLES set, shrink as usual.
    phases=tuple(Phase) if _ENV_EXAMPLES else (Phase.explicit, Phase.reuse, Phase.generate),
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

MARGIN = 1e-3  # how far every value comparison must be from its threshold
RTOL = 1e-5
ATOL = 1e-6  # times max(1, |f|): central differences lose ~1e-10 |f| to rounding

ORDER = "svm"  # scalar, (3,) vector, (2, 3) matrix: each broadcasts into the next
CONSTS = (0.5, 1.5, 2.0, 0.25, 0.75, 3.0, -0.5, -1.25)
THRESHOLDS = (-0.5, -0.1, 0.0, 0.2, 0.5, 1.0)

# checkpoint policies every program's gradient is also compiled under: k snapshots per
# loop, and a memory budget in bytes (a drawn one of BUDGETS: from one scalar state to
# everything). Recomputation must give the store-everything gradient to rounding.
POLICIES = (1, 2, 3)
BUDGETS = (8, 24, 56, 200, 10**6)
# budgets written into the programs (`checkpointed(..., budget=)`): each holds two states
# of any loop the generators write (a budget that holds fewer is refused: see
# check_policies)
MARK_BUDGETS = (400, 4000, 10**6)
CHECKPOINT_RTOL = 1e-9

HEADER = '''import math

import numpy as np

import adjoint

_MARGINS = []


def _margin(d):
    _MARGINS.append(abs(d))
    return d


def _helper(z):
    return np.sum(np.sin(z) * np.arange(1.0, 4.0))


def _helper_writes(z):
    z[2] += 1.0
    return np.sum(z * z)
'''


# ---------------------------------------------------------------- source builder


class Src:
    """Lines of one program, each in two renderings: `f` and the margin probe."""

    def __init__(self, params):
        self.params = list(params)
        self.lines: list[tuple[int, str, str]] = []
        self.probed = False

    def add(self, indent: int, text: str, probe: str | None = None) -> None:
        if probe is not None and probe != text:
            self.probed = True
        self.lines.append((indent, text, text if probe is None else probe))

    def render(self) -> str:
        out = [HEADER]
        for name, k in (("f", 1), ("f_probe", 2)):
            if name == "f_probe" and not self.probed:
                break
            out.append("")
            out.append(f"def {name}({', '.join(self.params)}):")
            out.extend("    " * (ind + 1) + line[k - 1] for ind, *line in self.lines)
            out.append("")
        return "\n".join(out)


class Env:
    """Typed names in scope: kind 's', 'v' or 'm'. Keys may be expressions (`x[i]`).
    `assignable` are the names a statement may rebind (never an array argument:
    `x += ...` would write into the caller's array)."""

    def __init__(self, kinds: dict, ints=(), assignable=(), int_names=()):
        self.kinds = dict(kinds)
        self.ints = list(ints)  # loop indices, usable in expressions (`i * 0.25`, `x[i % 3]`)
        self.assignable = set(assignable)
        self.int_names = tuple(int_names)  # integers branch tests may use (`n % 2 == 0`)
        self.fresh = itertools.count()

    def copy(self) -> "Env":
        e = Env(self.kinds, self.ints, self.assignable, self.int_names)
        e.fresh = self.fresh
        return e

    def has(self, kind: str) -> bool:
        return kind == "s" or any(k == kind for k in self.kinds.values())

    def new_name(self, prefix="t") -> str:
        return f"{prefix}{next(self.fresh)}"

    def of_kind(self, kind):
        return [n for n, k in self.kinds.items() if k == kind]


def smaller(draw, kind: str, env: Env) -> str:
    """A kind that broadcasts into `kind` (and that `env` can make)."""
    return draw(st.sampled_from([k for k in ORDER[:ORDER.index(kind) + 1] if env.has(k)]))


def leaf(draw, env: Env, kind: str) -> str:
    options = env.of_kind(kind)
    if kind == "s":
        options = options + ["CONST"] + [f"INT:{i}" for i in env.ints]
    c = draw(st.sampled_from(options))
    if c == "CONST":
        return repr(draw(st.sampled_from(CONSTS)))
    if c.startswith("INT:"):
        i = c[4:]
        return draw(st.sampled_from([f"({i} * 0.25)", f"x[{i} % 3]", f"(0.5 - {i} * 0.125)"]))
    return c if c.isidentifier() or c.endswith("]") else f"({c})"


UNARY_S = ("math.sin", "math.cos", "math.tanh", "np.sin", "np.cos", "np.tanh")
UNARY_A = ("np.sin", "np.cos", "np.tanh")


def expr(draw, env: Env, kind: str, depth: int, top: bool = False) -> str:
    """An expression of exactly kind `kind`; `top` forbids a bare leaf (a fresh value)."""
    ops = ["add", "sub", "mul", "div", "pow", "neg", "fn", "exp", "log", "sqrt"]
    if (kind == "s" and (env.has("v") or env.has("m"))) or (kind == "v" and env.has("m")):
        ops.append("reduce")
    if depth <= 0:
        if not top:
            return leaf(draw, env, kind)
        depth = 1
    if not top:
        ops = ops + ["leaf", "leaf"]
    op = draw(st.sampled_from(ops))
    sub = lambda k: expr(draw, env, k, depth - 1)  # noqa: E731
    if op == "leaf":
        return leaf(draw, env, kind)
    if op in ("add", "sub", "mul"):
        a, b = sub(kind), sub(smaller(draw, kind, env))
        if draw(st.booleans()):
            a, b = b, a
        return f"({a} {dict(add='+', sub='-', mul='*')[op]} {b})"
    if op == "div":
        a, b = sub(kind), sub(smaller(draw, kind, env))
        if draw(st.booleans()):
            return f"({a} / (1.0 + {b} * {b}))"
        cos = "math.cos" if kind == "s" and draw(st.booleans()) else "np.cos"
        return f"({a} / (2.0 + {cos}({b})))"
    if op == "pow":
        return f"({sub(kind)}) ** {draw(st.sampled_from([2, 3]))}"
    if op == "neg":
        return f"(-{sub(kind)})"
    if op == "fn":
        return f"{draw(st.sampled_from(UNARY_S if kind == 's' else UNARY_A))}({sub(kind)})"
    if op == "exp":  # bounded arguments only
        a = sub(kind)
        if kind == "s" and draw(st.booleans()):
            return draw(st.sampled_from([f"math.exp(math.sin({a}))", f"math.exp(-({a}) ** 2)"]))
        return draw(st.sampled_from([f"np.exp(np.tanh({a}))", f"np.exp(-({a}) ** 2)"]))
    if op == "log":
        fn = "math.log" if kind == "s" and draw(st.booleans()) else "np.log"
        return f"{fn}(1.0 + ({sub(kind)}) ** 2)"
    if op == "sqrt":
        fn = "math.sqrt" if kind == "s" and draw(st.booleans()) else "np.sqrt"
        return f"{fn}(1.0 + ({sub(kind)}) ** 2)"
    assert op == "reduce"
    if kind == "s":
        inner = sub(draw(st.sampled_from([k for k in "vm" if env.has(k)])))
        form = draw(st.sampled_from(["np.sum({})", "np.mean({})", "({}).sum()"]))
        return form.format(inner)
    inner = sub("m")
    return draw(st.sampled_from([f"np.sum({inner}, axis=0)", f"np.mean({inner}, axis=0)"]))


def reduced(name: str, kind: str) -> str:
    return name if kind == "s" else f"np.sum({name})"


def condition(draw, env: Env, depth: int = 2) -> tuple[str, str]:
    """A branch test (f text, probe text): a value comparison, an integer test, or
    `and`/`or`/`not` of those."""
    forms = ["value", "value", "value"] + (["int"] if env.int_names else []) + \
        (["and", "or", "not"] if depth > 0 else [])
    form = draw(st.sampled_from(forms))
    if form == "int":
        n = draw(st.sampled_from(list(env.int_names)))
        text = draw(st.sampled_from([f"{n} % 2 == 0", f"{n} > 2", f"{n} == 1"]))
        return text, text
    if form in ("and", "or"):
        a, pa = condition(draw, env, depth - 1)
        b, pb = condition(draw, env, depth - 1)
        return f"({a}) {form} ({b})", f"({pa}) {form} ({pb})"
    if form == "not":
        a, pa = condition(draw, env, depth - 1)
        return f"not ({a})", f"not ({pa})"
    lhs = expr(draw, env, "s", draw(st.integers(0, 2)))
    op = draw(st.sampled_from(["<", ">", "<=", ">="]))
    thr = draw(st.sampled_from(THRESHOLDS))
    return f"{lhs} {op} {thr}", f"_margin(({lhs}) - ({thr})) {op} 0"


def assignment(draw, src: Src, env: Env, indent: int, depth: int = 2,
               allow_new: bool = True) -> None:
    """One of: a new variable, a rebinding of an old one, an augmented assignment."""
    olds = sorted(env.assignable)
    form = draw(st.sampled_from(["new", "new", "rebind", "aug"] if olds else ["new"]))
    if form == "new" and not allow_new and olds:
        form = "rebind"
    if form == "new":
        kind = draw(st.sampled_from(ORDER))
        name = env.new_name()
        src.add(indent, f"{name} = {expr(draw, env, kind, draw(st.integers(1, depth)), True)}")
        env.kinds[name] = kind
        env.assignable.add(name)
    elif form == "rebind":
        name = draw(st.sampled_from(olds))
        kind = env.kinds[name]
        src.add(indent, f"{name} = {expr(draw, env, kind, draw(st.integers(1, depth)), True)}")
    else:
        name = draw(st.sampled_from(olds))
        kind = env.kinds[name]
        op = draw(st.sampled_from(["+=", "-=", "*="]))
        rhs = expr(draw, env, smaller(draw, kind, env), draw(st.integers(0, depth)))
        if op == "*=":
            rhs = f"np.cos({rhs})"  # keep products bounded
        src.add(indent, f"{name} {op} {rhs}")


def final_return(draw, src: Src, env: Env, indent: int, names) -> None:
    parts = [reduced(n, env.kinds[n]) for n in names]
    parts.append(expr(draw, env, "s", 2))
    src.add(indent, "return " + " + ".join(parts))


# ---------------------------------------------------------------- the generators

BASE_PARAMS = {"a": "s", "b": "s", "x": "v", "M": "m"}


@st.composite
def straight_line_programs(draw):
    env = Env(BASE_PARAMS, assignable=("a", "b"))
    src = Src(["a", "b", "x", "M"])
    for _ in range(draw(st.integers(1, 6))):
        assignment(draw, src, env, 0, depth=3)
    temps = [n for n in env.kinds if n.startswith("t")]
    final_return(draw, src, env, 0, temps[-2:])
    return src, ("a", "b", "x", "M"), (0, 1, 2, 3)


def branch_body(draw, src: Src, env: Env, indent: int, outs: dict, nest: int) -> bool:
    """Statements of one branch; every name in `outs` is assigned (with its kind).
    Returns True if the branch ends with a return."""
    local = env.copy()
    for _ in range(draw(st.integers(0, 2))):
        assignment(draw, src, local, indent)
    if nest > 0 and draw(st.integers(0, 3)) == 0:
        if_statement(draw, src, local, indent, nest - 1)
    for name, kind in outs.items():
        src.add(indent, f"{name} = {expr(draw, local, kind, draw(st.integers(1, 2)), True)}")
        local.kinds[name] = kind
    if draw(st.integers(0, 4)) == 0:
        src.add(indent, f"return {expr(draw, local, 's', 2)}")
        return True
    return False


def if_statement(draw, src: Src, env: Env, indent: int, nest: int = 1) -> None:
    """`if`/`elif`/`else` where every path assigns the same names (new or old)."""
    outs = {}
    for _ in range(draw(st.integers(1, 2))):
        if env.assignable and draw(st.booleans()):
            name = draw(st.sampled_from(sorted(env.assignable)))
            outs[name] = env.kinds[name]
        else:
            outs[env.new_name("u")] = draw(st.sampled_from(ORDER))
    n_elif = draw(st.integers(0, 2))
    returned = []
    for k in range(n_elif + 2):
        if k == n_elif + 1:
            src.add(indent, "else:")
        else:
            c, p = condition(draw, env)
            word = "if" if k == 0 else "elif"
            src.add(indent, f"{word} {c}:", f"{word} {p}:")
        returned.append(branch_body(draw, src, env, indent + 1, outs, nest))
    if all(returned):  # nothing follows: keep the function well formed
        src.add(indent, "u_dead = 0.0")
    for name, kind in outs.items():
        env.kinds[name] = kind
        env.assignable.add(name)


@st.composite
def branch_programs(draw):
    env = Env(BASE_PARAMS, assignable=("a", "b"), int_names=("n",))
    src = Src(["a", "b", "x", "M", "n"])
    for _ in range(draw(st.integers(0, 2))):
        assignment(draw, src, env, 0)
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.integers(0, 3)) == 0:  # a conditional expression
            kind = draw(st.sampled_from(ORDER))
            name = env.new_name("u")
            c, p = condition(draw, env)
            e1, e2 = expr(draw, env, kind, 2), expr(draw, env, kind, 2)
            src.add(0, f"{name} = {e1} if {c} else {e2}", f"{name} = {e1} if {p} else {e2}")
            env.kinds[name] = kind
            env.assignable.add(name)
        else:
            if_statement(draw, src, env, 0)
        if draw(st.booleans()):
            assignment(draw, src, env, 0)
    names = [n for n in env.kinds if n[0] in "tu" and n != "u_dead"]
    final_return(draw, src, env, 0, names[-2:])
    return src, ("a", "b", "x", "M"), (0, 1, 2, 3)


def bounded_update(draw, src: Src, env: Env, indent: int, name: str) -> None:
    """`name = ...` that keeps `name` bounded whatever the loop length."""
    kind = env.kinds[name]
    e = expr(draw, env, kind, draw(st.integers(1, 2)))
    e_small = expr(draw, env, smaller(draw, kind, env), draw(st.integers(0, 2)))
    tanh = "math.tanh" if kind == "s" and draw(st.booleans()) else "np.tanh"
    form = draw(st.sampled_from([
        f"{name} = {tanh}({e})",
        f"{name} = 0.5 * {name} + 0.5 * np.sin({e})",
        f"{name} = {name} * np.cos({e_small})",
        f"{name} = {name} + 0.1 * np.tanh({e_small})",
        f"{name} += 0.2 * np.sin({e_small})",
        f"{name} = {name} - 0.3 * {name} / (1.0 + {e_small} * {e_small})",
    ]))
    src.add(indent, form)


RANGES = ("range(n)", "range(3)", "range(len(x))", "range(1, n + 1)", "range(n - 1, -1, -1)",
          "range(0, 5, 2)", "reversed(range(n))", "range(0)")


def mark(draw, iterable: str, marks: bool) -> str:
    """`iterable`, or (when `marks`, sometimes) `adjoint.checkpointed(iterable, ...)`."""
    if not marks or draw(st.integers(0, 3)) == 0:
        return iterable
    if draw(st.integers(0, 3)) == 0:
        return f"adjoint.checkpointed({iterable}, budget={draw(st.sampled_from(MARK_BUDGETS))})"
    return f"adjoint.checkpointed({iterable}, snapshots={draw(st.integers(1, 3))})"


def loop_body(draw, src: Src, env: Env, indent: int, states, nest: int,
              marks: bool = False) -> None:
    for _ in range(draw(st.integers(1, 3))):
        bounded_update(draw, src, env, indent, draw(st.sampled_from(states)))
    if draw(st.integers(0, 3)) == 0:  # a branch inside the loop
        name = draw(st.sampled_from(states))
        c, p = condition(draw, env)
        src.add(indent, f"if {c}:", f"if {p}:")
        bounded_update(draw, src, env, indent + 1, name)
        src.add(indent, "else:")
        bounded_update(draw, src, env, indent + 1, name)
    if nest > 0 and draw(st.integers(0, 3)) == 0:  # an inner loop
        for_loop(draw, src, env, indent, states, nest - 1, marks)


def for_loop(draw, src: Src, env: Env, indent: int, states, nest: int,
             marks: bool = False) -> None:
    """A `for` loop updating `states`; with `marks`, its iterable (and those of the loops
    inside) may be wrapped in `adjoint.checkpointed(..., snapshots=k)` or `budget=`."""
    inner = env.copy()
    form = draw(st.sampled_from(["range", "range", "range", "array", "enumerate"]))
    index = f"i{indent}"
    if form == "array":
        src.add(indent, f"for xi{indent} in {mark(draw, 'x', marks)}:")
        inner.kinds[f"xi{indent}"] = "s"
    elif form == "enumerate":
        src.add(indent, f"for {index}, xi{indent} in {mark(draw, 'enumerate(x)', marks)}:")
        inner.kinds[f"xi{indent}"] = "s"
        inner.ints.append(index)
    else:
        src.add(indent, f"for {index} in {mark(draw, draw(st.sampled_from(RANGES)), marks)}:")
        inner.ints.append(index)
    inner.int_names = env.int_names + tuple(i for i in inner.ints if i not in env.int_names)
    loop_body(draw, src, inner, indent + 1, states, nest, marks)


@st.composite
def for_programs(draw, marks: bool = False):
    env = Env(BASE_PARAMS, int_names=("n",))
    src = Src(["a", "b", "x", "M", "n"])
    states = []
    for k in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from("ssv"))
        name = f"s{k}"
        src.add(0, f"{name} = {expr(draw, env, kind, draw(st.integers(1, 2)), True)}")
        env.kinds[name] = kind
        states.append(name)
    for_loop(draw, src, env, 0, states, nest=1, marks=marks)
    if draw(st.booleans()):
        for_loop(draw, src, env, 0, states, nest=0, marks=marks)
    final_return(draw, src, env, 0, states)
    return src, ("a", "b", "x", "M"), (0, 1, 2, 3)


@st.composite
def while_programs(draw):
    env = Env(BASE_PARAMS)
    src = Src(["a", "b", "x", "M"])
    src.add(0, f"s = math.tanh({expr(draw, env, 's', 2)})")
    env.kinds["s"] = "s"
    states = ["s"]
    if draw(st.booleans()):
        kind = draw(st.sampled_from(ORDER))
        src.add(0, f"t = {expr(draw, env, kind, 2, True)}")
        env.kinds["t"] = kind
        states.append("t")
    src.add(0, "k = 0")
    kmax = draw(st.integers(1, 12))
    thr = draw(st.sampled_from((0.5, 1.0, 1.5, 2.5)))
    step = f"s = s + 0.3 + 0.2 * np.tanh({expr(draw, env, 's', 2)})"  # s grows by [0.1, 0.5]
    form = draw(st.sampled_from(["test", "break_first", "break_last", "or"]))
    body = Env(env.kinds, ints=["k"], int_names=("k",))
    if form == "test":
        src.add(0, f"while k < {kmax} and s < {thr}:",
                f"while k < {kmax} and _margin(s - {thr}) < 0:")
    elif form == "or":  # stop at the counter or when s is big enough
        src.add(0, f"while not (k >= {kmax} or s >= {thr}):",
                f"while not (k >= {kmax} or _margin(s - {thr}) >= 0):")
    else:
        src.add(0, f"while k < {kmax}:")
    if form == "break_first":
        src.add(1, f"if s > {thr}:", f"if _margin(s - {thr}) > 0:")
        src.add(2, "break")
    src.add(1, step)
    for name in states[1:]:
        bounded_update(draw, src, body, 1, name)
    src.add(1, "k = k + 1")
    if form == "break_last":
        src.add(1, f"if s > {thr}:", f"if _margin(s - {thr}) > 0:")
        src.add(2, "break")
    env.ints = ["k"]
    final_return(draw, src, env, 0, states)
    return src, ("a", "b", "x", "M"), (0, 1, 2, 3)


@st.composite
def array_write_programs(draw, marks: bool = False):
    L = draw(st.integers(2, 5))
    src = Src(["a", "x"])
    init = draw(st.sampled_from(["np.zeros({L})", "x * 0.5", "x.copy()", "np.ones({L}) * a",
                                 "np.tanh(x)"]))
    src.add(0, "y = " + init.format(L=L))
    if draw(st.booleans()):
        src.add(0, f"y[0] = {expr(draw, Env({'a': 's', 'x[0]': 's', 'y[0]': 's'}), 's', 2)}")
    two_d = draw(st.booleans())
    if two_d:
        src.add(0, f"Y = np.zeros((2, {L}))")
    acc = draw(st.booleans())
    if acc:
        src.add(0, "s = 0.0")
    start = draw(st.sampled_from([0, 1]))
    loop = mark(draw, f"range({start}, {L})" if start else f"range({L})", marks)
    src.add(0, f"for i in {loop}:")
    reads = {"a": "s", "x[i]": "s", "y[i - 1]": "s", "y[0]": "s", "y[i // 2]": "s",
             "y[i]": "s", f"y[(i + 1) % {L}]": "s"}
    cell = Env(reads)
    for _ in range(draw(st.integers(1, 3))):
        form = draw(st.sampled_from(["=", "+=", "+=", "-=", "*="]))
        e = expr(draw, cell, "s", draw(st.integers(1, 2)))
        if form == "=":
            src.add(1, f"y[i] = {draw(st.sampled_from(['np.tanh', 'math.sin']))}({e})")
        elif form == "*=":
            src.add(1, f"y[i] *= np.cos({e})")
        else:
            src.add(1, f"y[i] {form} 0.5 * np.tanh({e})")
    if two_d:
        cell.kinds["Y[0, i]"] = "s"
        src.add(1, f"Y[0, i] = {expr(draw, cell, 's', 2, True)}")
        src.add(1, f"Y[1, i] = np.sin(Y[0, i]) * {expr(draw, cell, 's', 1)}")
    if acc:
        cell.kinds["s"] = "s"
        src.add(1, f"s = s + {expr(draw, cell, 's', 2)}")
    parts = ["np.sum(y * y)"] + (["np.sum(np.tanh(Y))"] if two_d else []) + \
        (["s"] if acc else []) + [f"{draw(st.sampled_from(CONSTS))} * np.sum(y * x)"]
    src.add(0, "return " + " + ".join(parts))
    return src, ("a", "x"), (0, 1), L


# ---------------------------------------------------------------- loop exits and carried state


def index_only(draw, src: Src, env: Env, indent: int, i: str) -> str:
    """A value that depends on the loop index only and is needed in reverse (so it is
    taped or recomputed): `c = math.cos(i)`, `x[0] ** i / math.factorial(i)`."""
    name = env.new_name("c")
    form = draw(st.sampled_from([f"math.cos({i})", f"1.0 / math.factorial({i})",
                                 f"0.5 ** {i}", f"math.sin({i} * 0.7) + 1.5"]))
    src.add(indent, f"{name} = {form}")
    env.kinds[name] = "s"
    return name


def carried_update(draw, src: Src, env: Env, indent: int, states, idx) -> None:
    """One update of the carried states: bounded, a Taylor term, a swap of two states
    (`s0, s1 = s1, ...`), a carried tuple, or aug-assign through an alias (`z = s0;
    z += ...`; floats only: an array alias is in tests/test_enumerated.py)."""
    scalars_ = [n for n in states if env.kinds[n] == "s"]
    forms = ["bounded", "bounded"] + (["taylor", "alias"] if scalars_ and idx else []) + \
        (["swap", "tuple"] if len(scalars_) >= 2 else [])
    form = draw(st.sampled_from(forms))
    if form == "bounded":
        bounded_update(draw, src, env, indent, draw(st.sampled_from(states)))
    elif form == "taylor":  # issue 19: the term reads the index only through ** and !
        name = draw(st.sampled_from(scalars_))
        src.add(indent, f"{name} += 0.5 * np.tanh(a) ** {idx} / math.factorial({idx})")
    elif form == "alias":
        name = draw(st.sampled_from(scalars_))
        e = expr(draw, env, "s", draw(st.integers(0, 2)))
        src.add(indent, f"z = {name}")
        src.add(indent, f"z += 0.2 * np.sin({e})")
        src.add(indent, f"{name} = 0.5 * z")
    else:
        p, q = draw(st.permutations(scalars_))[:2]
        e = expr(draw, env, "s", draw(st.integers(1, 2)))
        if form == "swap":
            src.add(indent, f"{p}, {q} = {q}, np.tanh({e})")
        else:
            src.add(indent, f"pair = ({q}, np.tanh({e}))")
            src.add(indent, f"{p}, {q} = pair")


def exit_block(draw, src: Src, env: Env, indent: int, states, kind: str) -> None:
    """`if cond:` then an exit, with assignments to the states placed before the test,
    inside the breaking branch (before the exit), or after the if."""
    scalar_states = [n for n in states if env.kinds[n] == "s"]
    if kind == "fixed" and not scalar_states:
        kind = "break"
    if kind == "fixed":  # fixed_point's shape: `lam = new` on both paths
        name = draw(st.sampled_from(scalar_states))
        src.add(indent, f"new = 0.5 * {name} + 0.5 * np.tanh({expr(draw, env, 's', 1)})")
        thr = draw(st.sampled_from((0.01, 0.05, 0.2)))
        src.add(indent, f"if abs(new - {name}) < {thr}:",
                f"if _margin(abs(new - {name}) - {thr}) < 0:")
        src.add(indent + 1, f"{name} = new")
        src.add(indent + 1, "break")
        src.add(indent, f"{name} = new")
        return
    placement = draw(st.sampled_from(["before", "inside", "after"]))
    if placement == "before":
        bounded_update(draw, src, env, indent, draw(st.sampled_from(states)))
    c, p = condition(draw, env)
    src.add(indent, f"if {c}:", f"if {p}:")
    if placement == "inside" or kind == "continue":
        bounded_update(draw, src, env, indent + 1, draw(st.sampled_from(states)))
    if kind == "return":
        src.add(indent + 1, "return " + " + ".join(reduced(n, env.kinds[n]) for n in states))
    else:
        src.add(indent + 1, kind)
    if placement == "after":
        bounded_update(draw, src, env, indent, draw(st.sampled_from(states)))


@st.composite
def exit_programs(draw):
    """`for` / `while` / nested loops with break, continue, an early return or the
    fixed-point shape, index-only taped values, swaps, carried tuples and aliases."""
    env = Env(BASE_PARAMS, int_names=("n",))
    src = Src(["a", "b", "x", "M", "n"])
    states = []
    for k in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from("sssv"))
        name = f"s{k}"
        src.add(0, f"{name} = {expr(draw, env, kind, draw(st.integers(1, 2)), True)}")
        env.kinds[name] = kind
        states.append(name)
    loop = draw(st.sampled_from(["for", "for", "while", "nested"]))
    body = env.copy()
    indent = 1
    if loop == "for":
        src.add(0, f"for i in {draw(st.sampled_from(RANGES[:5]))}:")
    elif loop == "while":
        src.add(0, "i = 0")
        src.add(0, f"while i < {draw(st.integers(1, 6))}:")
        src.add(1, "i += 1")  # first: a continue cannot skip it
    else:  # the exit acts on the inner loop
        src.add(0, "for j in range(n):")
        bounded_update(draw, src, env, 1, draw(st.sampled_from(states)))
        src.add(1, f"for i in range(j, j + {draw(st.integers(1, 3))}):")
        indent = 2
    body.ints.append("i")
    body.int_names = env.int_names + ("i",)
    if draw(st.booleans()):
        index_only(draw, src, body, indent, "i")
    for _ in range(draw(st.integers(1, 2))):
        carried_update(draw, src, body, indent, states, "i")
    kinds = ["break", "break", "continue", "fixed"] + (["return"] if loop != "nested" else [])
    exit_block(draw, src, body, indent, states, draw(st.sampled_from(kinds)))
    if draw(st.booleans()):
        carried_update(draw, src, body, indent, states, "i")
    final_return(draw, src, env, 0, states)
    return src, ("a", "b", "x", "M"), (0, 1, 2, 3)


@st.composite
def fresh_array_programs(draw):
    """In-place writes into a fresh array (`z = np.zeros(3); z[1] -= a`), in a loop
    or not, then the array passed to a helper (one that writes into it, too)."""
    env = Env({"a": "s", "b": "s", "x": "v"})
    src = Src(["a", "b", "x"])
    src.add(0, "z = " + draw(st.sampled_from(["np.zeros(3)", "np.ones(3) * a", "x * 0.5"])))
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, 2))
        op = draw(st.sampled_from(["-=", "+=", "="]))
        src.add(0, f"z[{k}] {op} {expr(draw, env, 's', draw(st.integers(0, 2)))}")
    if draw(st.booleans()):
        src.add(0, f"for i in range({draw(st.integers(1, 3))}):")
        cell = Env({"a": "s", "x[i]": "s", "z[i]": "s"}, ints=["i"])
        src.add(1, f"z[i] *= np.cos({expr(draw, cell, 's', 1)})")
        if draw(st.booleans()):
            src.add(1, f"z[(i + 1) % 3] -= 0.5 * {expr(draw, cell, 's', 1)}")
    if draw(st.booleans()):  # a slice write
        src.add(0, "z[1:] = np.tanh(z[:-1]) + " + expr(draw, env, "s", 1))
    helper = draw(st.sampled_from(["_helper", "_helper_writes"]))
    src.add(0, f"return {helper}(z) + np.sum(z * x)")
    return src, ("a", "b", "x"), (0, 1, 2)


# ---------------------------------------------------------------- harness

_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Where generated programs and their compiled gradients are written."""
    return tmp_path_factory.mktemp("programs")


def load_program(folder, text: str):
    """Write `text` to a new file and import it (adjoint needs the real source)."""
    k = next(_counter)
    path = folder / f"prog_{k}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"adjoint_prop_prog_{k}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def float_arrays(shape):
    n = int(np.prod(shape))
    return st.lists(st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False),
                    min_size=n, max_size=n).map(lambda v: np.array(v, dtype=float).reshape(shape))


def scalars():
    return st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False)


def base_args(with_n: bool):
    """(a, b, x, M) or (a, b, x, M, n): two floats, a (3,) and a (2, 3) array, an int."""
    parts = [scalars(), scalars(), float_arrays((3,)), float_arrays((2, 3))]
    if with_n:
        parts.append(st.integers(0, 5))
    return st.tuples(*parts)


def prepare(folder, src: Src, args):
    """Import the program, run it once, and reject examples too close to a branch point."""
    text = src.render()
    note(text)
    note(f"args = {args!r}")
    module = load_program(folder, text)
    # a program may update an argument in place (`u = M; u += a`): each call gets copies
    value = module.f(*copy.deepcopy(args))
    assert np.ndim(value) == 0 and np.isfinite(value), text
    if hasattr(module, "f_probe"):
        module._MARGINS.clear()
        assert module.f_probe(*copy.deepcopy(args)) == value, \
            "the probe must compute the same function"
        assume(min(module._MARGINS, default=1.0) > MARGIN)
    return module, text, float(value)


def assert_matches(got, want, value, text, args, what="adjoint"):
    scale = max(1.0, abs(value))
    for k, (g, w) in enumerate(zip(got, want)):
        if np.shape(g) != np.shape(w):
            raise AssertionError(f"gradient {k}: shape {np.shape(g)} != {np.shape(w)}\n{text}")
        if not np.allclose(g, w, rtol=RTOL, atol=ATOL * scale):
            err = np.max(np.abs(np.asarray(g, dtype=float) - w))
            raise AssertionError(
                f"gradient {k} ({what}) differs from finite differences by {err:.3g}:\n"
                f"{what}: {g}\nnumeric: {w}\nargs: {args!r}\n--- program ---\n{text}")


def as_tuple(g, wrt):
    return g if isinstance(wrt, tuple) else (g,)


def check_program(folder, src: Src, args, wrt, check_vjp: bool = False, data=None):
    """Reverse mode against finite differences; with `data` (to draw a tangent and a
    budget), forward mode and every checkpoint policy as well."""
    module, text, value = prepare(folder, src, args)
    f = module.f
    cache = folder / "cache"
    before = [np.array(a, copy=True) for a in args]
    try:
        # translation validation: the gradient's forward sweep computes f itself
        forward_value, got = adjoint.value_and_grad(f, wrt=wrt, cache_dir=cache)(*args)
        got = as_tuple(got, wrt)
    except adjoint.UnsupportedError as e:
        # `u = M if c else ...; u += x` updates M in Python; adjoint says so, honestly
        assert "shares the array's memory" in str(e), e
        reject()
    for a, b in zip(args, before):
        assert np.array_equal(a, b), f"the gradient wrote into an argument\n{text}"
    assert np.isclose(forward_value, value, rtol=1e-12, atol=1e-12), \
        f"value_and_grad's value {forward_value!r} != f(*args) = {value!r}\n{text}"
    want = as_tuple(numeric_grad(f, args, wrt), wrt)
    # finite differences are the oracle only where they are well conditioned: at a
    # coarser step they must tell the same (cos(s ** 4) with s near 3 is not)
    coarse = as_tuple(numeric_grad(f, args, wrt, eps=1e-5), wrt)
    if not all(np.allclose(c, w, rtol=10 * RTOL, atol=10 * ATOL * max(1.0, abs(value)))
               for c, w in zip(coarse, want)):
        reject()
    assert_matches(got, want, value, text, args)
    for g, i in zip(got, wrt if isinstance(wrt, tuple) else (wrt,)):
        if isinstance(args[i], float):  # gradients have their argument's kind
            assert type(g) is float, f"gradient of a float is a {type(g).__name__}\n{text}"
    if check_vjp:
        # the scalar case of vjp: its pullback of 1.0 is the gradient, and it is linear
        out, pullback = adjoint.vjp(f, *args, wrt=wrt, cache_dir=cache)
        assert np.isclose(out, value, rtol=1e-12, atol=1e-12), (out, value, text)
        assert_matches(as_tuple(pullback(1.0), wrt), got, value, text, args,
                       "vjp pullback(1.0)")
        scaled = as_tuple(pullback(-2.5), wrt)
        assert_matches(scaled, tuple(-2.5 * np.asarray(g) for g in got), value, text, args,
                       "vjp pullback(-2.5)")
        # a pullback can be called again, with the same result
        assert_matches(as_tuple(pullback(1.0), wrt), got, value, text, args,
                       "vjp pullback(1.0), again")
    if data is not None:
        check_forward(module, text, value, args, wrt, got, data, cache)
        check_policies(module, text, value, args, wrt, got, want, data, cache)
    return got


def tangents_for(data, args, wrt):
    """A random tangent for each differentiated argument, in its kind."""
    out = []
    for i in (wrt if isinstance(wrt, tuple) else (wrt,)):
        x = args[i]
        t = data.draw(float_arrays(x.shape) if isinstance(x, np.ndarray) else scalars(),
                      label=f"tangent of argument {i}")
        out.append(t)
    return tuple(out)


def directional_fd(f, args, wrt, tangents, eps: float = 1e-6) -> float:
    """Central differences of `f` along `tangents` (fresh copies of the arguments)."""
    def at(h):
        moved = list(copy.deepcopy(args))
        for i, t in zip(wrt if isinstance(wrt, tuple) else (wrt,), tangents):
            moved[i] = moved[i] + h * t
        return float(f(*moved))
    return (at(eps) - at(-eps)) / (2 * eps)


def check_forward(module, text, value, args, wrt, got, data, cache):
    """jvp: the value, the derivative along a random tangent against central differences,
    and against the reverse-mode gradient: jvp(f)(x, t) == <grad f(x), t>."""
    f = module.f
    tangents = tangents_for(data, args, wrt)
    before = [np.array(a, copy=True) for a in args]
    tangent = tangents if isinstance(wrt, tuple) else tangents[0]
    out, dot = adjoint.jvp(f, wrt=wrt, cache_dir=cache)(*args, tangent)
    for a, b in zip(args, before):
        assert np.array_equal(a, b), f"jvp wrote into an argument\n{text}"
    where = f"args: {args!r}\ntangent: {tangent!r}\n--- program ---\n{text}"
    assert np.ndim(dot) == 0, f"jvp of a scalar function gave shape {np.shape(dot)}\n{where}"
    assert np.isclose(out, value, rtol=1e-12, atol=1e-12), \
        f"jvp value {out!r} != f(*args) = {value!r}\n{where}"
    want = directional_fd(f, args, wrt, tangents)
    scale = max(1.0, abs(value))
    assert np.isclose(dot, want, rtol=RTOL, atol=ATOL * scale), \
        f"jvp {dot!r} differs from finite differences {want!r} by {abs(dot - want):.3g}\n{where}"
    terms = [np.asarray(g, dtype=float) * np.asarray(t, dtype=float)
             for g, t in zip(got, tangents)]
    inner = sum(float(np.sum(t)) for t in terms)
    size = sum(float(np.sum(np.abs(t))) for t in terms)
    assert np.isclose(dot, inner, rtol=1e-9, atol=1e-11 * max(1.0, size)), \
        f"jvp {dot!r} != <grad, tangent> = {inner!r}\n{where}"


def check_policies(module, text, value, args, wrt, got, want, data, cache):
    """Every checkpoint policy (k snapshots per loop, a memory budget) gives the
    store-everything gradient to rounding, and so matches finite differences."""
    f = module.f
    budget = data.draw(st.sampled_from(BUDGETS), label="budget")
    scale = max(1.0, abs(value))
    for policy in POLICIES + ({"budget": budget},):
        for _ in range(4):
            try:
                g = as_tuple(adjoint.grad(f, wrt=wrt, cache_dir=cache,
                                          checkpoint=policy)(*args), wrt)
                break
            except adjoint.AdjointError as e:
                # a budget that cannot hold the plan's two states is refused at the loop,
                # naming the least budget that holds them (another loop may need more)
                assert "checkpoint budget" in str(e) and e.loc is not None, str(e)
                least = int(re.search(r"at least (\d+) bytes", e.hint)[1])
                assert least > policy["budget"]
                policy = {"budget": least}
        else:
            raise AssertionError(f"no budget was enough\n{text}")
        what = f"checkpoint={policy!r}"
        for k, (a, b) in enumerate(zip(g, got)):
            assert np.shape(a) == np.shape(b), (what, k, np.shape(a), np.shape(b), text)
            if not np.allclose(a, b, rtol=CHECKPOINT_RTOL, atol=1e-12 * scale):
                err = np.max(np.abs(np.asarray(a, dtype=float) - b))
                raise AssertionError(
                    f"gradient {k} with {what} differs from the store-everything gradient by "
                    f"{err:.3g}:\n{what}: {a}\nstore all: {b}\nnumeric: {want[k]}\n"
                    f"args: {args!r}\n--- program ---\n{text}")
        assert_matches(g, want, value, text, args, what)


# ---------------------------------------------------------------- the properties


@SETTINGS
@given(st.data())
def test_straight_line_programs(workdir, data):
    src, _, wrt = data.draw(straight_line_programs(), label="program")
    args = data.draw(base_args(False), label="args")
    check_program(workdir, src, args, wrt, data=data)


@SETTINGS
@given(st.data())
def test_branch_programs(workdir, data):
    src, _, wrt = data.draw(branch_programs(), label="program")
    args = data.draw(base_args(True), label="args")
    check_program(workdir, src, args, wrt, data=data)


@SETTINGS
@given(st.data())
def test_for_loop_programs(workdir, data):
    src, _, wrt = data.draw(for_programs(), label="program")
    args = data.draw(base_args(True), label="args")
    check_program(workdir, src, args, wrt, data=data)


@SETTINGS
@given(st.data())
def test_while_loop_programs(workdir, data):
    src, _, wrt = data.draw(while_programs(), label="program")
    args = data.draw(base_args(False), label="args")
    check_program(workdir, src, args, wrt, data=data)


@SETTINGS
@given(st.data())
def test_array_write_programs(workdir, data):
    src, _, wrt, L = data.draw(array_write_programs(), label="program")
    args = (data.draw(scalars(), label="a"), data.draw(float_arrays((L,)), label="x"))
    check_program(workdir, src, args, wrt, data=data)


@SETTINGS
@given(st.data())
def test_vjp_pullback_matches_grad(workdir, data):
    """vjp of a scalar function: pullback(1.0) is grad, pullback(c) is c * grad."""
    gen = data.draw(st.sampled_from(["straight", "for"]), label="generator")
    if gen == "straight":
        src, _, wrt = data.draw(straight_line_programs(), label="program")
        args = data.draw(base_args(False), label="args")
    else:
        src, _, wrt = data.draw(for_programs(), label="program")
        args = data.draw(base_args(True), label="args")
    wrt = data.draw(st.sampled_from([0, 2, wrt]), label="wrt")
    check_program(workdir, src, args, wrt, check_vjp=True, data=data)


@SETTINGS
@given(st.data())
def test_checkpointed_loop_programs(workdir, data):
    """Loops marked `adjoint.checkpointed(..., snapshots=k)` or `budget=`: reverse mode,
    forward mode and the transform-wide policies (which leave marked loops as marked)."""
    if data.draw(st.booleans(), label="array writes"):
        src, _, wrt, L = data.draw(array_write_programs(marks=True), label="program")
        args = (data.draw(scalars(), label="a"), data.draw(float_arrays((L,)), label="x"))
    else:
        src, _, wrt = data.draw(for_programs(marks=True), label="program")
        args = data.draw(base_args(True), label="args")
    check_program(workdir, src, args, wrt, data=data)


@SETTINGS
@given(st.data())
def test_exit_programs(workdir, data):
    """break / continue / early return / the fixed-point shape, with assignments before,
    inside and after the exiting branch; index-only taped values, swaps, carried tuples,
    aliased aug-assign: reverse (grad and vjp), forward and checkpointed."""
    src, _, wrt = data.draw(exit_programs(), label="program")
    args = data.draw(base_args(True), label="args")
    check_program(workdir, src, args, wrt, check_vjp=True, data=data)


@SETTINGS
@given(st.data())
def test_fresh_array_programs(workdir, data):
    src, _, wrt = data.draw(fresh_array_programs(), label="program")
    args = data.draw(st.tuples(scalars(), scalars(), float_arrays((3,))), label="args")
    check_program(workdir, src, args, wrt, check_vjp=True, data=data)


LAYER_FORMS = ("h = np.tanh(h @ W + b)", "h = h + 0.5 * np.tanh(W @ h + b)",
               "h = np.sin(h @ W) * np.cos(b)")


@SETTINGS
@given(st.data())
def test_layer_list_programs(workdir, data):
    """A list of (W, b) tuples as an argument, `for W, b in layers: ...`, checked by
    adjoint.testing.check_program (finite differences, translation validation, and
    <v, J u> == <J^T v, u> between jvp and vjp)."""
    src = Src(["layers", "h"])
    loop = data.draw(st.sampled_from(["for W, b in layers:",
                                      "for k, (W, b) in enumerate(layers):"]), label="loop")
    src.add(0, loop)
    for _ in range(data.draw(st.integers(1, 2), label="steps")):
        src.add(1, data.draw(st.sampled_from(LAYER_FORMS), label="step"))
    src.add(0, "return " + data.draw(st.sampled_from(["np.sum(h * h)", "np.sum(np.sin(h))"]),
                                     label="out"))
    n = data.draw(st.integers(1, 3), label="layers")
    layers = [(data.draw(float_arrays((3, 3))), data.draw(float_arrays((3,))))
              for _ in range(n)]
    h = data.draw(float_arrays((3,)), label="h")
    module = load_program(workdir, src.render())
    wrt = data.draw(st.sampled_from([None, 1, 0]), label="wrt")
    adjoint.testing.check_program(module.f, layers, h, wrt=wrt)
