"""A deterministic enumerator of small control-flow programs, for tests/test_enumerated.py.

Every program is a module source defining `f` (and sometimes a helper), with example
arguments. Loop programs are the product of four axes:

    LOOPS    for over range / while (counter) / while with a value test / nested for /
             a for loop inside an `if`
    UPDATES  the carried-state update: plain, a Taylor term x ** i / i!, an index-only
             factor c = math.cos(i), a swap of a carried pair, aug-assign on an alias,
             a carried tuple, an array whose slots are written under an `if` (and
             again after the loop), an array added into by `c[0] += v` then rebound
    EXITS    none / break (assignment inside the breaking branch, before it, after it,
             and the fixed-point shape `if ...: lam = new; break` then `lam = new`) /
             continue / early return / for...else and while...else (break taken or not)
    CONDS    the exit test on the loop index, or on a differentiated value

and array programs are listed by hand (fresh arrays written in place then passed to a
helper, slice writes in a while, aug-assign on aliased arrays, lists of (W, b) layers,
dicts of arrays), each in a few variants.

Branch- and tie-safety is checked, not hoped for: every program has a probe rendering
in which each value test `lhs OP thr` reads `_margin(lhs - thr) OP 0` and each exit
statement first calls `_hit(label)`. A threshold is chosen from CANDIDATES so that every
test stays MARGIN away from it and the exit fires as the program intends (a break that
is taken, a for...else whose break is not); a program for which none works is dropped.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field

import numpy as np

MARGIN = 1e-3
CANDIDATES = (0.35, 0.6, 0.9, 1.2, 1.5, 0.15, 2.0, 2.6, 3.5, 0.05, 5.0, -0.3, -1.0)

HEADER = "import math\n\nimport numpy as np\n\n"


@dataclass
class Program:
    name: str             # a stable id: its axes, joined by '-'
    family: str           # for reports: 'loop' or the array template's name
    axes: tuple           # the axis values it was built from
    source: str           # the module's source (defines f)
    args: tuple
    wrt: object = None    # None: every float argument
    # a located AdjointError of this class is the right answer (a README-unsupported
    # construct); None: the program must differentiate
    expect_error: type | None = None
    hits: dict = field(default_factory=dict)   # exit label -> times taken (probe run)


# ---------------------------------------------------------------- rendering with a probe


class Lines:
    """Lines in two renderings: the program and its probe (margins and exit hits)."""

    def __init__(self):
        self.rows: list[tuple[int, str, str]] = []

    def add(self, indent: int, text: str, probe: str | None = None):
        self.rows.append((indent, text, text if probe is None else probe))

    def test(self, indent: int, word: str, lhs: str, op: str, thr: str, extra: str = ""):
        """`word lhs OP thr:` (word: if / while ...), probed as a margin."""
        self.add(indent, f"{word} {extra}{lhs} {op} {thr}:",
                 f"{word} {extra}_margin(({lhs}) - ({thr})) {op} 0:")

    def exit(self, indent: int, stmt: str, label: str):
        """An exit statement (break / continue / return ...), counted in the probe."""
        self.add(indent, stmt, f"_hit({label!r}); {stmt}")

    def render(self, k: int) -> str:
        return "\n".join("    " * ind + row[k - 1] for ind, *row in self.rows)


def probe_run(body_probe: str, args):
    """Run the probe rendering of `f`: (value, smallest margin, exit hits)."""
    margins, hits = [], {}

    def _margin(d):
        margins.append(abs(d))
        return d

    def _hit(label):
        hits[label] = hits.get(label, 0) + 1

    ns = {"math": math, "np": np, "_margin": _margin, "_hit": _hit}
    exec(compile(body_probe, "<probe>", "exec"), ns)
    value = ns["f"](*_fresh(args))
    return value, min(margins, default=1.0), hits


def _fresh(args):
    import copy
    return copy.deepcopy(args)


# ---------------------------------------------------------------- loop programs

LOOPS = ("for", "while", "while_value", "nested", "in_if")
UPDATES = ("plain", "taylor", "cos", "swap", "alias", "pair", "slots", "rebind")
EXITS = ("none", "break_in", "fixed", "break_before", "break_after", "continue",
         "continue_in", "return", "return_in", "else_break", "else_nobreak")
CONDS = ("index", "value")

# the exits whose test can be on the index or on a value (the others have one form)
CONDITIONED = {"break_in", "break_before", "break_after", "continue", "continue_in",
               "return", "return_in", "else_break", "else_nobreak"}


def update_lines(update: str, idx: str) -> tuple[list[str], list[str], str]:
    """(lines before the loop, lines of the body, the returned expression)."""
    if update == "plain":
        return [], ["s = 0.5 * s + x * math.sin(t)"], "s + t"
    if update == "taylor":  # the term depends on the index only through x ** i and i!
        return ["s = 0.0"], [f"s += x ** {idx} / math.factorial({idx})"], "s * y + t"
    if update == "cos":  # c depends on the index only, and is needed in reverse
        return [], [f"c = math.cos({idx})", "s = s * c * 0.5 + x * y"], "s + t * x"
    if update == "swap":
        return [], ["s, t = t, s * x"], "s + 2.0 * t"
    if update == "alias":
        return [], ["z = s", "z += x * y", "s = 0.5 * z + 0.1 * t"], "s * t"
    if update == "pair":  # a carried tuple
        return ["p = (s, t)"], ["a, b = p", "p = (b, 0.5 * a + x)"], "p[0] + 2.0 * p[1]"
    if update == "slots":  # a slot written under an if, the array read whole (round 10a,
        # W1: the reverse read later trips' values, and the write after the loop's)
        return ["h = np.array([y, x, 0.5])"], [
            f"if {idx} % 2 == 0:", f"    h[{idx} % 3] = 0.3 * s * np.sum(h * y) + x",
            "s = 0.5 * s + 0.1 * np.sum(h * h) * y"], "s + t + np.sum(h * h)"
    if update == "rebind":  # a slot added into, then the name rebound (round 10a, C-A)
        return ["h = np.array([y, x, 0.5])"], [
            "h[0] += 0.1 * x", "s = 0.5 * s + 0.1 * np.sum(h * y)", "h = h * 0.9"], \
            "s + t + np.sum(h * h)"
    raise ValueError(update)


def exit_lines(L: Lines, ind: int, exit_: str, cond: str, idx: str, state: str):
    """The exit, after the update, at indentation `ind`; tests read THR."""
    def test(word="if", lhs=None):
        if cond == "index":
            # a break/return fires at index 2; a continue on odd indices
            if exit_.startswith("continue"):
                L.add(ind, f"{word} {idx} % 2 == 1:")
            elif exit_ == "else_nobreak":
                L.add(ind, f"{word} {idx} == 99:")
            else:
                L.add(ind, f"{word} {idx} == 2:")
        else:
            L.test(ind, word, lhs or f"abs({state})", ">", "THR")

    if exit_ == "none":
        return
    if exit_ == "break_in":
        test()
        L.add(ind + 1, f"{state} = {state} + 0.25 * x")
        L.exit(ind + 1, "break", "exit")
    elif exit_ == "fixed":  # fixed_point's shape: the same assignment on both paths
        L.add(ind, f"new = {state} * 0.5 + x")
        L.test(ind, "if", f"abs(new - {state})", "<", "THR")
        L.add(ind + 1, f"{state} = new")
        L.exit(ind + 1, "break", "exit")
        L.add(ind, f"{state} = new")
    elif exit_ == "break_before":
        L.add(ind, f"w = {state} * y")
        test()
        L.exit(ind + 1, "break", "exit")
    elif exit_ == "break_after":
        test()
        L.exit(ind + 1, "break", "exit")
        L.add(ind, f"{state} = {state} * 0.9 + 0.1 * y")
    elif exit_ == "continue":
        test()
        L.exit(ind + 1, "continue", "exit")
        L.add(ind, f"{state} = {state} * 0.9 + 0.1 * y")
    elif exit_ == "continue_in":
        test()
        L.add(ind + 1, f"{state} = {state} + 0.5 * x * y")
        L.exit(ind + 1, "continue", "exit")
        L.add(ind, f"{state} = {state} * 0.8")
    elif exit_ == "return":
        test()
        L.exit(ind + 1, f"return {state} * y + t", "exit")
    elif exit_ == "return_in":
        test()
        L.add(ind + 1, f"{state} = {state} * x")
        L.exit(ind + 1, f"return {state} + t", "exit")
    elif exit_ in ("else_break", "else_nobreak"):
        test()
        L.add(ind + 1, f"{state} = {state} + 0.25 * x")
        L.exit(ind + 1, "break", "exit")
    else:
        raise ValueError(exit_)


def loop_program(loop: str, update: str, exit_: str, cond: str):
    """Two renderings (program, probe) with THR/THR0 placeholders, and what the probe
    must see: a predicate on (hits)."""
    L = Lines()
    L.add(0, "def f(x, y, n):")
    L.add(1, "s = y")
    L.add(1, "t = x * 0.5")
    L.add(1, "w = 0.0")
    pre, body, ret = update_lines(update, "i")
    for line in pre:
        L.add(1, line)
    # where the exit's test looks: the tuple's first item for the carried tuple
    state = "s"
    continues = exit_.startswith("continue")
    if loop == "for":
        L.add(1, "for i in range(n):")
        ind = 2
    elif loop == "in_if":  # a loop inside a branch that runs (C-A, W1b)
        L.add(1, "if x < 50.0:")
        L.add(2, "for i in range(n):")
        ind = 3
    elif loop in ("while", "while_value"):
        L.add(1, "i = 0")
        if loop == "while":
            L.add(1, "while i < n:")
        else:
            lhs = "abs(p[0] + p[1])" if update == "pair" else "abs(s + t)"
            L.test(1, "while", lhs, "<", "THR0", extra="i < n and ")
        ind = 2
        if continues:  # count first, so that a continue cannot skip it
            L.add(ind, "i += 1")
    else:  # nested: the exit acts on the inner loop
        L.add(1, "for k in range(n):")
        L.add(2, "t = t * 0.9 + 0.1 * x")
        L.add(2, "for i in range(k, k + 3):")
        ind = 3
    for line in body:
        L.add(ind, line)
    if update == "pair":
        L.add(ind, "s = p[0]")
    exit_lines(L, ind, exit_, cond, "i", state)
    if loop in ("while", "while_value") and not continues:
        L.add(ind, "i += 1")
    if exit_.startswith("else"):
        L.add(ind - 1, "else:")
        L.add(ind, "t = t * 2.0 + w")
    if update == "pair" and exit_ not in ("none",):
        # the exits move s; fold it back so the returned expression sees it
        L.add(1, "p = (s, p[1])")
    if update in ("slots", "rebind"):  # a write after the loop into the array (W1)
        L.add(1, "h[1] = 0.25 * t")
    L.add(1, f"return {ret} + w")
    want = {
        "none": lambda h: True,
        "else_nobreak": lambda h: h.get("exit", 0) == 0,
    }.get(exit_, lambda h: h.get("exit", 0) >= 1)
    return L, want


def _instantiate(L: Lines, want, args, thr_names):
    """Choose thresholds: every test MARGIN from its threshold, the exits as wanted."""
    text, probe = L.render(1), L.render(2)
    used = [t for t in thr_names if re.search(rf"\b{t}\b", text)]
    if not used:
        _, margin, hits = probe_run(probe, args)
        return (text, hits) if margin > MARGIN and want(hits) else None
    for values in itertools.product(CANDIDATES, repeat=len(used)):
        t, p = text, probe
        for name, v in sorted(zip(used, values), key=lambda nv: -len(nv[0])):
            t, p = t.replace(name, repr(v)), p.replace(name, repr(v))
        try:
            value, margin, hits = probe_run(p, args)
        except (OverflowError, ZeroDivisionError, ValueError):
            continue
        if margin > MARGIN and want(hits) and np.isfinite(value):
            return t, hits
    return None


LOOP_ARGS = ((0.7, 0.4, 5), (-0.6, 1.3, 4), (0.45, -0.8, 1))


def loop_programs(all_args: bool = False):
    out = []
    for loop, update, exit_, cond in itertools.product(LOOPS, UPDATES, EXITS, CONDS):
        if cond == "value" and exit_ not in CONDITIONED:
            continue
        for a, args in enumerate(LOOP_ARGS if all_args else LOOP_ARGS[:1]):
            L, want = loop_program(loop, update, exit_, cond)
            got = _instantiate(L, want, args, ("THR0", "THR"))
            if got is None:
                continue
            text, hits = got
            name = "-".join((loop, update, exit_, cond) + ((f"a{a}",) if a else ()))
            out.append(Program(name, "loop", (loop, update, exit_, cond), HEADER + text + "\n",
                               args, hits=hits))
    return out


# ---------------------------------------------------------------- array programs


def _v(*xs):
    return np.array(xs, dtype=float)


Layer = collections.namedtuple("Layer", "W b")  # a parameter that f `_replace`s
Pair = collections.namedtuple("Pair", "mT b")  # a field named like NumPy 2's array attribute


@dataclasses.dataclass
class Unit:
    """A parameter whose class normalises it on construction: its gradient is no unit
    vector (round 22's S1: the gradient was rebuilt through __post_init__)."""
    w: np.ndarray

    def __post_init__(self):
        self.w = self.w / np.sqrt(np.sum(self.w ** 2))


class Positive(collections.namedtuple("Positive", "mu sigma")):
    """A namedtuple whose __new__ takes abs of sigma (round 22's S2: so did its gradient's)."""
    __slots__ = ()

    def __new__(cls, mu, sigma):
        return super().__new__(cls, mu, abs(sigma))


@dataclasses.dataclass
class Model:
    layers: list  # a container field (round 22's C2: its zero was None)
    scale: float

R = np.random.default_rng(7)
W1, B1 = R.uniform(-0.8, 0.8, (3, 3)), R.uniform(-0.5, 0.5, 3)
W2, B2 = R.uniform(-0.8, 0.8, (3, 3)), R.uniform(-0.5, 0.5, 3)
V3 = _v(0.3, -0.7, 1.1)
V23 = np.linspace(-1.1, 1.3, 23)  # 5 chunks of 4 and one of 3

HELPERS = '''
def helper(z):
    return np.sum(np.sin(z) * np.arange(1.0, 4.0))


def helper_writes(z):
    z[2] += 1.0
    z *= 0.5
    return np.sum(z * z)

'''

MODEL_CLASS = '''class _Base:
    offset = np.array([0.5, -0.25, 1.0])

    @classmethod
    def factor(cls, z):
        return z * cls.scale


class _Model(_Base):
    scale = 1.5
    act = staticmethod(np.sin)

    def __init__(self, w):
        self.w, self.shift = w, 0.1

    @property
    def weights(self):
        return np.cos(self.w) * self.scale + self.shift


'''

# (template name, variant, body of f, args, wrt); bodies may use helper / helper_writes
ARRAY_TEMPLATES = [
    # in-place writes into a fresh array, then a helper call
    ("fresh", "sub_helper", "def f(x, v):\n    z = np.zeros(3)\n    z[1] -= x\n"
     "    return helper(z) + np.sum(v * z)", (0.7, V3), None),
    ("fresh", "sub_writes", "def f(x, v):\n    z = np.zeros(3)\n    z[1] -= x\n"
     "    z[0] = v[2] * x\n    r = helper_writes(z)\n    return r + np.sum(z * v)",
     (0.7, V3), None),
    ("fresh", "loop_helper", "def f(x, v):\n    z = np.zeros(3)\n    for i in range(3):\n"
     "        z[i] -= x * v[i]\n        z[i] += math.cos(i) * x\n    return helper(z)",
     (0.7, V3), None),
    ("fresh", "while_helper", "def f(x, v):\n    z = np.ones(3)\n    k = 0\n    while k < 3:\n"
     "        z[k] *= x\n        z[(k + 1) % 3] -= 0.5 * v[k]\n        k += 1\n"
     "    return helper_writes(z) + np.sum(z)", (0.7, V3), None),
    ("fresh", "branch_helper", "def f(x, v):\n    z = np.zeros(3)\n    if x > 0.2:\n"
     "        z[1] -= x\n    else:\n        z[2] += x\n    return helper(z) * v[0]",
     (0.7, V3), None),
    # slice writes inside a while
    ("slice", "while_shift", "def f(x, v):\n    a = v * 1.0\n    k = 0\n    while k < 3:\n"
     "        a[1:] = a[:-1] * 0.5 + x\n        k += 1\n    return np.sum(a * a)",
     (0.7, V3), None),
    ("slice", "while_aug", "def f(x, v):\n    a = v + x\n    k = 0\n    while k < 3:\n"
     "        a[1:] += a[:-1] * x\n        k += 1\n    return np.sum(np.sin(a))",
     (0.7, V3), None),
    ("slice", "while_break", "def f(x, v):\n    a = v * x\n    k = 0\n    while k < 4:\n"
     "        a[:2] = np.tanh(a[1:]) + x\n        k += 1\n        if k == 2:\n            break\n"
     "    return np.sum(a * v)", (0.7, V3), None),
    ("slice", "for_else", "def f(x, v):\n    a = v * 1.0\n    for k in range(3):\n"
     "        a[1:] = a[:-1] * x\n        if k == 9:\n            break\n    else:\n"
     "        a[0] = x * x\n    return np.sum(a * a)", (0.7, V3), None),
    # augmented assignment on aliased names: floats and arrays
    ("alias", "float", "def f(x, y):\n    z = x\n    z += y\n    z *= x\n    return z + x * y",
     (0.7, 0.4), None),
    ("alias", "fresh_array", "def f(x, v):\n    z = v * 1.0\n    w = z\n    w += x\n"
     "    return np.sum(z * w) + np.sum(z)", (0.7, V3), None),
    ("alias", "loop_array", "def f(x, v):\n    z = v * 1.0\n    for i in range(3):\n"
     "        w = z\n        w += x * math.cos(i)\n    return np.sum(z * z)", (0.7, V3), None),
    ("alias", "argument", "def f(x, v):\n    z = v\n    z += x\n    return np.sum(z * v)",
     (0.7, V3), None),
    ("alias", "mul_array", "def f(x, v):\n    z = np.ones(3) * x\n    w = z\n    w *= v\n"
     "    w -= x\n    return np.sum(np.sin(z)) + np.sum(w)", (0.7, V3), None),
    # a ufunc's out= (as emitted gradients write `np.subtract(1.0, t, out=t)`)
    ("alias", "ufunc_out", "def f(x, v):\n    z = np.tanh(v * x)\n    w = z\n"
     "    np.subtract(1.0, z, out=z)\n    np.multiply(z, x, out=(z,))\n"
     "    return np.sum(w * v) + np.sum(z)", (0.7, V3), None),
    ("alias", "ufunc_out_loop", "def f(x, v):\n    z = v * 1.0\n    for i in range(3):\n"
     "        np.sin(z, out=z)\n        np.add(z, x, out=z)\n    return np.sum(z * z)",
     (0.7, V3), None),
    # lists of tuples: layers
    ("layers", "for", "def f(layers, h):\n    for W, b in layers:\n"
     "        h = np.tanh(h @ W + b)\n    return np.sum(h * h)",
     ([(W1, B1), (W2, B2)], V3), None),
    ("layers", "for_h_only", "def f(layers, h):\n    for W, b in layers:\n"
     "        h = np.tanh(h @ W + b)\n    return np.sum(h * h)",
     ([(W1, B1), (W2, B2)], V3), 1),
    ("layers", "enumerate", "def f(layers, h):\n    for k, (W, b) in enumerate(layers):\n"
     "        h = h + np.tanh(W @ h + b) * (k + 1)\n    return np.sum(np.sin(h))",
     ([(W1, B1), (W2, B2)], V3), None),
    ("layers", "while_index", "def f(layers, h):\n    k = 0\n    while k < len(layers):\n"
     "        W, b = layers[k]\n        h = np.tanh(h @ W + b)\n        k += 1\n"
     "    return np.sum(h)", ([(W1, B1), (W2, B2)], V3), None),
    ("layers", "break", "def f(layers, h):\n    for W, b in layers:\n"
     "        h = np.tanh(h @ W + b)\n        if np.sum(h * h) > 50.0:\n            break\n"
     "    return np.sum(h * h)", ([(W1, B1), (W2, B2)], V3), None),
    ("layers", "dicts", "def f(layers, h):\n    for L in layers:\n"
     "        h = np.tanh(h @ L['W'] + L['b'])\n    return np.sum(h * h)",
     ([{"W": W1, "b": B1}, {"W": W2, "b": B2}], V3), None),
    ("layers", "tuple_arg", "def f(layer, h):\n    W, b = layer\n"
     "    return np.sum(np.tanh(h @ W + b))", ((W1, B1), V3), None),
    # issue 19's two programs, as they were reported
    ("issue19", "taylor_exp", "def f(x, n):\n    s = 0.0\n    for i in range(n):\n"
     "        s += x ** i / math.factorial(i)\n    return s", (0.1, 12), None),
    ("issue19", "fixed_point", "def f(x):\n    lam = 0.0\n    for it in range(10):\n"
     "        new = lam * 0.5 + x\n        if abs(new - lam) < 1e-3:\n            lam = new\n"
     "            break\n        lam = new\n    return lam", (0.1,), None),
    # an if/elif chain of options that ends in `else: raise` (round 24: refused as a raise
    # outside a check), and a check with an else
    ("check", "else_raise", "def f(x, v):\n    if x > 0.0:\n        y = v * x\n"
     "    elif x < -5.0:\n        y = v\n    else:\n        raise ValueError('no option')\n"
     "    return np.sum(np.sin(y) * y)", (0.7, V3), None),
    ("check", "raise_then_else", "def f(x, v):\n    if x < 0.0:\n        raise ValueError('x')\n"
     "    else:\n        y = np.exp(v * x)\n    return np.sum(y)", (0.7, V3), None),
    # x.flatten() is a copy, unlike x.ravel(): a write into it was refused as a view
    # (round 23's M1)
    ("copy", "flatten", "def f(x, v):\n    B = np.outer(v, v) * x\n    w = B.flatten()\n"
     "    w[1] = 3.0 * w[1]\n    return np.sum(np.sin(w)) + np.sum(B * B)", (0.7, V3), None),
    # fancy-index writes that repeat a position: NumPy keeps the last write
    ("fancy", "repeat_iadd", "def f(x, v):\n    z = v * 1.0\n    z[[0, 0, 2]] += x\n"
     "    return np.sum(z * z)", (0.7, V3), None),
    ("fancy", "repeat_set", "def f(x, v):\n    z = v * 1.0\n"
     "    z[np.array([1, 1])] = np.array([x, x * x])\n    return np.sum(z * v)",
     (0.7, V3), None),
    ("fancy", "repeat_loop", "def f(x, v):\n    z = np.zeros(3)\n    for i in range(2):\n"
     "        z[[i, i, 2]] += v[i] * x\n    return np.sum(np.sin(z))", (0.7, V3), None),
    # sequences built with + and *, and `and`/`or` returning an operand
    ("sequence", "list_iadd", "def f(x, y):\n    l = [x]\n    l += [y * 2.0]\n"
     "    return l[0] * 3.0 + l[1] * l[0]", (0.7, 0.4), None),
    ("sequence", "tuple_grow", "def f(x, y):\n    t = ()\n    for i in range(3):\n"
     "        t = t + (x * i + y,)\n    return t[0] + t[1] * t[2]", (0.7, 0.4), None),
    ("sequence", "list_repeat", "def f(x, y):\n    l = [x, y] * 2\n"
     "    return l[0] * l[3] + l[2]", (0.7, 0.4), None),
    ("sequence", "list_setitem", "def f(x, y):\n    L = [0, 0]\n    L[0] = x\n"
     "    L[1] = y * x\n    M = L + L\n    return M[0] * M[3] + M[2]", (0.7, 0.4), None),
    ("sequence", "and_or", "def f(x, y):\n    z = x and y\n    w = (x - x) or y * x\n"
     "    return z * 2.0 + w * 5.0", (0.7, 0.4), None),
    ("sequence", "ifexp", "def f(x, y):\n    z = x * y if x > y else x - y\n"
     "    return z * z", (0.7, 0.4), None),
    # a product with a square matrix after an elementwise function: the cotangent's
    # shape is the product's, not a broadcast of its operands'
    ("matmul", "square_left", "def f(x, v):\n    y = np.exp(-0.5 * v ** 2) * x\n"
     "    W = np.outer(v, v) + np.eye(3)\n    return np.sum(W @ y)", (0.7, V3), None),
    ("matmul", "square_right", "def f(x, v):\n    y = np.tanh(v * x)\n"
     "    W = np.outer(v, v) + np.eye(3)\n    return np.sum(y @ W * v)", (0.7, V3), None),
    # array methods whose NumPy function takes other arguments
    ("method", "clip_one_bound", "def f(x, v):\n    z = (v * x).clip(0.1)\n"
     "    return np.sum(z * z) + np.sum(v.clip(-0.5, 0.5) * x)", (0.7, V3), None),
    # a float written into an int array is truncated: no derivative flows through it
    ("intarray", "arange", "def f(x, v):\n    y = np.arange(3)\n    y[1] = 10 * x\n"
     "    return np.sum(y * x) + np.sum(v * y)", (0.73, V3), None),
    ("intarray", "dtype_int", "def f(x, v):\n    y = np.zeros(3, dtype=int)\n"
     "    y[0] = 10 * x\n    y[2] += v[1]\n    return np.sum(y * v) * x", (0.73, V3), None),
    ("intarray", "dtype_float", "def f(x, v):\n    y = np.ones(3, dtype=np.float64)\n"
     "    y[1] = 10 * x\n    return np.sum(y * v) * x", (0.73, V3), None),
    # dicts of arrays
    # no write in f: a cotangent started as a view of another must not be added into
    # in place (adversarial round 5, W5 and C1)
    ("cotangent_views", "flip", "def f(x, v):\n    h = np.tanh(v * x) + v * x + np.flip(v * x)\n"
     "    return np.sum(h ** 2)", (0.7, V3), None),
    ("cotangent_views", "concatenate", "def f(x, v):\n    h = np.sin(v * x) + v * x * x + "
     "np.concatenate([v * x])\n    return np.sum(h ** 2)", (0.7, V3), None),
    ("cotangent_views", "rot90_diag", "def f(x, v):\n    A = np.outer(v, v) * x + np.diag(v * x)\n"
     "    B = A + np.rot90(A) + np.fliplr(A)\n    return np.sum(B ** 2)", (0.7, V3), None),
    # a value with a leading 1 written into a slot without it (RNN with a batch of one, W6)
    ("write", "leading_one", "def f(x, v):\n    h = np.zeros(3)\n"
     "    h[:] = np.tanh(np.reshape(v, (1, 3)) * x)\n    return np.sum(h ** 2 * v)",
     (0.7, V3), None),
    ("dicts", "h_only", "def f(params, h):\n    h = np.tanh(h @ params['W'] + params['b'])\n"
     "    return np.sum(h * h)", ({"W": W1, "b": B1}, V3), 1),
    ("dicts", "loop_h_only", "def f(params, h):\n    for k in ('a', 'b'):\n"
     "        h = np.tanh(params[k] @ h)\n    return np.sum(h)", ({"a": W1, "b": W2}, V3), 1),
    # `c[k] += v` on arrays held by a dict or list: updated in place, nothing else holds them
    ("element", "dict_iadd", "def f(x, v):\n    d = {'a': v * x, 'b': v + x}\n"
     "    d['a'] += np.sin(v) * x\n    return np.sum(d['a'] * d['b'])", (0.7, V3), None),
    ("element", "list_iadd", "def f(x, v):\n    L = [v * x, v + x]\n    L[1] *= x\n"
     "    L[0] += L[1]\n    return np.sum(L[0] * L[1])", (0.7, V3), None),
    ("element", "dict_loop", "def f(x, v):\n    acc = {'s': np.zeros(3), 'n': 0.0}\n"
     "    for i in range(3):\n        acc['s'] += v * x ** i\n        acc['n'] += x\n"
     "    return np.sum(acc['s'] ** 2) * acc['n']", (0.7, V3), None),
    ("dicts", "sgd_loop", "def f(params, h):\n    for step in range(2):\n"
     "        g = {k: np.tanh(params[k]) for k in params.keys()}\n"
     "        params = {k: params[k] - 0.5 * g[k] for k in params.keys()}\n"
     "    return np.sum(h @ params['W'] + params['b'])", ({"W": W1, "b": B1}, V3), None),
    ("dicts", "loop_carried", "def f(x, v):\n    p = {'a': v * x, 'b': v}\n"
     "    for step in range(2):\n        p = {k: p[k] * x for k in p}\n"
     "    return np.sum(p['a'] + p['b'])", (0.7, V3), None),
    # a zero cotangent times a local derivative that is inf or NaN where the value is
    # never used (adversarial round 6, N1): the rule runs under the branch's condition,
    # and a container element or overwritten slot nothing reads adds nothing
    ("zero_cotangent", "branch", "def f(x, v):\n    r = np.sqrt(x)\n    if x > 0:\n"
     "        return r + np.sum(v)\n    return x * np.sum(v)", (-1.0, V3), None),
    # ... read by two ifs, or through another value (round 8, N1b): zero unless either ran
    ("zero_cotangent", "two_ifs", "def f(x, v):\n    r = np.sqrt(x)\n    s = x * np.sum(v)\n"
     "    if x > 0:\n        s = s + r\n    if x > 1:\n        s = s + 2 * r\n    return s",
     (-1.0, V3), None),
    ("zero_cotangent", "through_a_value", "def f(x, v):\n    r = np.sqrt(x)\n    q = r * v\n"
     "    if x > 0:\n        return np.sum(q + r)\n    return x * np.sum(v)", (-1.0, V3), None),
    ("zero_cotangent", "two_marks", "def f(x, v):\n    r = np.sqrt(x)\n    q = r * x\n"
     "    out = x * np.sum(v)\n    if x > 0:\n        out = out + q\n    if x > 2:\n"
     "        out = out + r\n    return out", (-1.0, V3), None),
    ("zero_cotangent", "normalise", "def f(x, v):\n    r = math.sqrt(x * x + v[0] * v[0])\n"
     "    if r > 1e-3:\n        return x / r\n    return x + v[0]", (0.0, np.zeros(3)), None),
    ("zero_cotangent", "loop_branch", "def f(x, v):\n    s = 0.0\n    for i in range(3):\n"
     "        w = np.sqrt(v[i] * x)\n        if v[i] > 0:\n            s = s + w\n"
     "        else:\n            s = s + v[i] * x\n    return s", (0.7, V3), None),
    ("zero_cotangent", "list_element", "def f(x, v):\n    L = [np.log(v - 0.3), v * x]\n"
     "    return np.sum(L[1])", (0.7, V3), None),
    ("zero_cotangent", "overwritten", "def f(x, v):\n    y = np.zeros(3)\n"
     "    y[0] = np.sqrt(v[0] - 0.3)\n    y[0] = x * v[1]\n    return np.sum(y)", (0.7, V3), None),
    # (specialised only: generic code cannot tell a mask from an index array, and gives
    # NaN there, as JAX and PyTorch do)
    ("zero_cotangent", "mask", "def f(x, v):\n    y = np.sqrt(v * x)\n"
     "    return np.sum(y[v > 0])", (0.7, V3), (0, 1)),
    # f calls itself to the depth its int argument fixes: lowered per depth, unrolled
    ("recursion", "int_depth", "def f(x, v, n):\n    if n == 0:\n        return np.sum(v * x)\n"
     "    return f(np.sin(x), v, n - 1) * x", (0.7, V3, 3), None),
    # the depth a length fixes (issue 15): lowered per length with `len` folded, unrolled
    ("recursion", "length_depth", "def f(x, v):\n    if len(v) == 1:\n        return v[0] * x\n"
     "    h = len(v) // 2\n    return f(x, v[:h]) * np.sin(f(x, v[h:]))", (0.7, V3), None),
    ("recursion", "list_display_depth", "def _rest(xs):\n    if len(xs) == 1:\n"
     "        return xs[0] ** 2\n    return xs[0] * _rest(xs[1:])\n\n\ndef f(x, v):\n"
     "    return _rest([x, v[0] * x, np.sin(v[1]), v[2]])", (0.7, V3), None),
    ("recursion", "int_from_length", "def _down(x, n):\n    if n <= 0:\n        return x\n"
     "    return x * _down(np.tanh(x), n - 1)\n\n\ndef f(x, v):\n"
     "    return _down(x, len(v)) * np.sum(v)", (0.7, V3), None),
    # two gradients that are one array (round 6, N2): check_program clips nothing, but
    # checks that every returned array owns its memory
    ("returned", "same_cotangent", "def f(x, v, w):\n    return x * np.sum((v + w) ** 2)",
     (0.7, V3, V3 * 2.0), None),
    # pass bugs (tests/test_pass_units): assign_once stored x_bar[i] = ... for a range
    # with negative indices, which meet positive ones; cse merged 0.0 with -0.0
    ("ranges", "negative_start", "def f(x, v):\n    z = v * x\n    s = 0.0\n"
     "    for i in range(-3, 3):\n        s += np.sin(z[i])\n    return s", (0.7, V3), None),
    ("ranges", "negative_stop", "def f(x, v):\n    z = v * x\n    s = 0.0\n"
     "    for i in range(2, -4, -1):\n        s += np.sin(z[i])\n    return s", (0.7, V3), None),
    ("ranges", "signed_zero", "def f(x, v):\n    return x * np.arctan2(x * 0.0, -1.0)"
     " + x * np.arctan2(x * -0.0, -1.0) + np.sum(v)", (0.7, V3), None),
    ("dicts", "wrt_dict", "def f(params, h):\n    h = np.tanh(h @ params['W'] + params['b'])\n"
     "    return np.sum(h * h)", ({"W": W1, "b": B1}, V3), None),
    # `for k in p` over a dict argument written before the loop (round 10, C3: the loop
    # walked the written copy by position, KeyError in the generated code)
    ("dicts", "walk_after_write", "def f(params, h):\n    params['b'] = params['b'] * 2.0\n"
     "    acc = 0.0\n    for k in params:\n        acc = acc + np.sum(np.tanh(params[k] @ h))\n"
     "    return acc", ({"W": W1, "b": W2}, V3), None),
    # a state updated in place in a loop (round 8, B1): the reverse sweep restores it in
    # place, so its outer products must not be batched from a list of the one buffer
    ("inplace_state", "rnn", "def f(x, v):\n    W = np.outer(v, v) * x + np.eye(3) * 0.5\n"
     "    h = v * 1.0\n    for t in range(3):\n        h[:] = np.tanh(W @ h)\n"
     "    return np.sum(h ** 2)", (0.7, V3), None),
    ("inplace_state", "two_buffers", "def f(x, v):\n    W = np.outer(v, v) * x + np.eye(3) * 0.5\n"
     "    a = v * 1.0\n    b = v * 0.5\n    for t in range(3):\n        s = W @ a\n"
     "        a[:] = np.tanh(s + b)\n        b[:] = s\n    return np.sum(a ** 2) + np.sum(b)",
     (0.7, V3), None),
    # a slot written under an `if` (or after a break test) in a loop, then a write after
    # the loop, or the loop inside an `if` (round 10a, W1, W1b: the forward taped the
    # if's merged array by reference, so the reverse read later values), and a slot
    # added into before the name is rebound (C-A: a NameError in the generated code)
    ("inplace_state", "if_slot_then_write", "def f(x, v):\n    h = np.cos(v * x)\n"
     "    s = 0.0\n    for t in range(3):\n        if v[t] > 0.0:\n"
     "            h[t] = np.sum(v * h) * x\n        s = s + np.sum(h * v)\n    h[2] = 0.0\n"
     "    return s + np.sum(h * h)", (0.7, V3), None),
    ("inplace_state", "break_then_write", "def f(x, v):\n    h = np.cos(v * x)\n"
     "    s = 0.0\n    for t in range(3):\n        if np.max(h) > 5.0:\n            break\n"
     "        h[0] = np.sum(v * h) * x\n        s = s + np.sum(h * v)\n    h[1] = 0.0\n"
     "    return s + np.sum(h * h)", (0.7, V3), None),
    ("inplace_state", "loop_in_if", "def f(x, v):\n    h = np.cos(v)\n    g = v * x + 0.1\n"
     "    if x > 0.0:\n        for t in range(3):\n            if v[1] < 0.3:\n"
     "                g[t] = np.sum(h * g)\n    return np.sum(h * g)", (0.7, V3), None),
    ("inplace_state", "iadd_rebind_in_if", "def f(x, v):\n    c = np.cos(v * x)\n"
     "    if x > 0.0:\n        for i in range(2):\n            c[0] += x * v[1]\n"
     "            c = c * c\n    return np.sum(c)", (0.7, V3), None),
    # a user's variable named `_`, the emitter's own throwaway target (round 9, U1)
    ("names", "underscore", "def f(x, v):\n    _ = np.sin(v * x)\n"
     "    return np.sum(_ * sum(v[0] * x for _ in range(3)))", (0.7, V3), None),
    # the max of a log-sum-exp is a constant only where it broadcasts back along the axis
    # it reduced (round 8, L1: on a square batch, axis=1 without keepdims shifts columns)
    ("stabilizer", "lse_no_keepdims", "def f(x, v):\n    X = np.outer(v, v) * x + np.eye(3)\n"
     "    m = np.max(X, axis=1)\n    return np.sum(m + np.log(np.sum(np.exp(X - m), axis=1)))",
     (0.7, V3), None),
    ("stabilizer", "lse_mixed_keepdims", "def f(x, v):\n    X = np.outer(v, v) * x + np.eye(3)\n"
     "    m = np.max(X, axis=1, keepdims=True)\n"
     "    return np.sum(m + np.log(np.sum(np.exp(X - m), axis=1)))", (0.7, V3), None),
    ("stabilizer", "log_softmax_rows", "def f(x, v):\n    X = np.outer(v, v) * x + np.eye(3)\n"
     "    z = X - X.max(axis=1, keepdims=True)\n"
     "    return np.sum((z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))) * v)",
     (0.7, V3), None),
    ("stabilizer", "log_softmax_cols", "def f(x, v):\n    X = np.outer(v, v) * x + np.eye(3)\n"
     "    z = X - np.max(X, axis=0)\n"
     "    return np.sum((z - np.log(np.sum(np.exp(z), axis=0))) * v)",
     (0.7, V3), None),
    # `for k in D` over a dict (or set) that f reads from its module or a closure walks
    # its keys (adversarial round 8, D2: it walked the values by position)
    ("globals", "dict_keys", "PERM = {0: 2, 1: 0, 2: 1}\n\n\ndef f(x, v):\n    z = v * x\n"
     "    s = 0.0\n    for k in PERM:\n        s = s * 2.0 + z[k] * z[PERM[k]]\n    return s",
     (0.7, V3), None),
    ("globals", "dict_str_keys", "WEIGHTS = {'a': 1.5, 'b': -0.5}\n\n\ndef f(x, v):\n"
     "    s = 0.0\n    for name in WEIGHTS:\n        s = s + WEIGHTS[name] * np.sum(v * x ** 2)\n"
     "    return s", (0.7, V3), None),
    ("globals", "set", "PICK = {0, 2}\n\n\ndef f(x, v):\n    z = v * x\n"
     "    return sum(z[i] ** 2 for i in PICK)", (0.7, V3), None),
    ("globals", "enumerate_zip_max", "PERM = {0: 2, 1: 0, 2: 1}\n\n\ndef f(x, v):\n"
     "    z = v * x\n    s = 0.0\n    for i, k in enumerate(PERM):\n"
     "        s = s + i * z[k] * z[PERM[k]]\n    for k, w in zip(PERM, z):\n"
     "        s = s + PERM[k] * w ** 2\n    return s * max(PERM) + sum(PERM) * z[0]",
     (0.7, V3), None),
    ("globals", "reversed_dict", "PERM = {0: 2, 1: 0, 2: 1}\n\n\ndef f(x, v):\n    z = v * x\n"
     "    s = 0.0\n    for k in reversed(PERM):\n        s = s * 2.0 + z[k] * z[PERM[k]]\n"
     "    d = {'a': z[0], 'b': z[1]}\n    for k in reversed(d):\n        s = s * d[k]\n"
     "    return s", (0.7, V3), None),
    ("globals", "closure_dict", "def _make():\n    table = {1: 0.5, 0: 2.0}\n\n"
     "    def f(x, v):\n        return sum(np.sin(v[k] * x) * table[k] for k in table)\n\n"
     "    return f\n\n\nf = _make()", (0.7, V3), None),
    # dict merges: `p | {...}` is a new dict, `q |= {...}` writes q in place (round 10, W2:
    # `|` was the registry's bitwise or, which passes no gradient)
    ("merge", "display", "def f(x, v):\n    p = {'w': v * x, 'b': x}\n"
     "    q = p | {'w': np.sin(v * x)}\n    r = q\n    q |= {'c': q['b'] * v}\n"
     "    return np.sum(r['w'] + r['c']) + q['b'] * np.sum(p['w'])", (0.7, V3), None),
    # d.get(k, default): the entry where d holds k, else the default (round 12)
    ("dict_get", "present_and_missing", "def f(params, h):\n"
     "    h = np.tanh(h @ params['W'] + params.get('b', 0.0))\n"
     "    return np.sum(h * h) * params.get('scale', 2.0)", ({"W": W1, "b": B1}, V3), None),
    ("dict_get", "loop_default", "def f(params, h):\n    for k in ('a', 'b', 'c'):\n"
     "        h = np.sin(params.get(k, h) * h)\n    return np.sum(h)",
     ({"a": W1[0], "c": B1}, V3), None),
    # keys built with f-strings, str.format and str() (round 12)
    ("fstring_keys", "layers", "def f(params, h):\n    for i in range(2):\n"
     "        h = np.tanh(params[f'W{i}'] @ h + params[f'b{i}'])\n    return np.sum(h * h)",
     ({"W0": W1, "b0": B1, "W1": W2, "b1": B2}, V3), None),
    ("fstring_keys", "comprehension", "def f(x, v):\n"
     "    p = {f'w{k}': v * x ** k for k in range(3)}\n"
     "    q = {'u{}'.format(k): p['w' + str(k)] * x for k in range(3)}\n"
     "    return np.sum(q['u2'] * p[f'w{1}'])", (0.7, V3), None),
    # a model's class attributes, properties, static and class methods (round 12): f a
    # bound method, and f reading a module-level model (wrt given: the generic-code test
    # cannot set the object's attributes, which no import reaches, on its module)
    ("model_attributes", "bound_method", MODEL_CLASS + "def _loss(self, x, v):\n"
     "    h = np.tanh(self.weights * x + self.offset)\n"
     "    return np.sum(self.act(h) * v) * self.scale + np.sum(self.factor(v) * h)\n\n\n"
     "_Model.loss = _loss\nf = _Model(np.array([0.3, -0.7, 1.1])).loss", (0.7, V3), (0, 1)),
    ("model_attributes", "global_model", MODEL_CLASS + "MODEL = _Model(np.array([0.3, -0.7, "
     "1.1]))\n\n\ndef f(x, v):\n    h = MODEL.weights * x\n"
     "    return np.sum(h * v) * MODEL.scale + np.sum(MODEL.offset * np.sin(h))",
     (0.7, V3), (0, 1)),
    # helpers taking *args and **kwargs, and `**` at a call (round 12)
    ("star_args", "helper", "def _total(*xs, **kw):\n"
     "    return sum(np.sum(np.sin(u) * kw.get('w', 1.0)) for u in xs)\n\n\n"
     "def _pass(v, **kw):\n    return _total(v, v * v, **kw)\n\n\n"
     "def f(x, v):\n    return _pass(v * x, w=x) + _total(v) + _total(**{'w': 2.0})",
     (0.7, V3), None),
    # enumerate(xs, start=k), sum(xs, start), math.prod (round 12)
    ("starts", "enumerate_sum_prod", "def f(x, v):\n    s = sum(v * x, x)\n"
     "    for k, u in enumerate(v, start=1):\n        s = s + k * math.prod([u, x, u])\n"
     "    return s + math.prod((np.sin(u * x) for u in v), start=2.0)", (0.7, V3), None),
    # a carried value read only by the second operand of a loop's `and` test (its own
    # region), never after the loop: dce dropped the carry and left the read (round 13)
    ("while_and", "carry_read_by_test_only", "def f(x, v):\n    a = x\n    b = x * 0.5\n"
     "    k = 0\n    while k < 3 and abs(b) < 5.0:\n        b = v[k] * 2.0\n"
     "        a = a * np.cos(v[k]) + x\n        k += 1\n    return a", (0.7, V3), None),
    ("while_and", "test_stops_the_loop", "def f(x, v):\n    a = x\n    b = x * 0.5\n"
     "    k = 0\n    while k < 3 and abs(b) < 1.0:\n        b = v[k] * 6.0\n"
     "        a = a * np.cos(v[k]) + x\n        k += 1\n    return a", (0.7, V3), None),
    # a list extended by a tuple it did not display (`L + t` raises; round 13), and by a
    # list; a list += an array is NumPy's add
    ("list_extend", "by_tuple", "def f(x, v):\n    L = [x * v[0]]\n    t = (v[1] * x, np.sin(x))\n"
     "    L += t\n    L += [x * x]\n    return sum(L) * x", (0.7, V3), None),
    # (a dict's list of floats, round 15's C2: `d['l'] + (v,)` raised; the floats are
    # x's, not v's elements: on dask, adding a list of lazy scalars computes them)
    ("list_extend", "dict_entry_by_tuple", "def f(x, v):\n    d = {'l': [x * 0.5, x]}\n"
     "    d['l'] += (np.sin(x) * 2.0,)\n    L = [x * x]\n    L[0] += x\n"
     "    return d['l'][2] * x + sum(d['l']) + L[0] * x + np.sum(v * x)", (0.7, V3), None),
    ("list_extend", "by_array", "def f(x, v):\n    L = [x, x * 2.0, 0.5]\n"
     "    L += np.sin(v * x)\n    return np.sum(L) * x", (0.7, V3), None),
    # a list's slice (round 15's C1): a list shrunk to empty in a loop (its cotangent has
    # no element shape), a ragged one (no stacked cotangent), an empty slice read
    ("list_slice", "shrink_to_empty", "def f(x, v):\n    L = [v * x, np.sin(v) * x]\n"
     "    s = 0.0\n    for i in range(2):\n        s = s + np.sum(L[-1] ** 2)\n"
     "        L = L[:-1]\n    return s", (0.7, V3), None),
    ("list_slice", "ragged_in_loop", "def f(x, v):\n    L = [v * x, v[:2] * x, x * x]\n"
     "    s = 0.0\n    for i in range(2):\n        M = L[:2]\n"
     "        s = s + np.sum(M[1] ** 2) + np.sum(M[0] * v)\n"
     "        L = [L[0] * 0.5, M[1] * 1.5, M[0][0]]\n    return s + L[2]", (0.7, V3), None),
    # a list of one array walked off by a while loop (round 17's C5: the carried list's
    # kind unobserved, its slice's cotangent added as an array's)
    ("list_slice", "while_shrinks_from_one", "def f(x, v):\n    A = [v * x]\n    s = 0.0\n"
     "    while len(A) > 0:\n        s = s + np.sum(A[0] ** 2)\n        A = A[1:]\n"
     "    return s", (0.7, V3), None),
    # a slice of a list assigned a list display (round 17's C6: the list copied as an
    # array before the write, its cotangent's slice zeroed with a number)
    ("list_slice", "slice_assignment", "def f(x, v):\n    L = [v * x, np.sin(v), v * 2.0]\n"
     "    L[:2] = [L[1] * x, L[0] ** 2]\n"
     "    return np.sum(np.stack(L) * np.arange(1, len(L) + 1)[:, None])", (0.7, V3), None),
    ("list_slice", "empty_slice", "def f(x, v):\n    L = [v * x]\n    M = L[1:]\n"
     "    return np.sum(L[0] ** 2) + sum(M, 0.0) * x", (0.7, V3), None),
    # functools.reduce, zip(*...), a function passed to a helper, views of a module's
    # dict of constants, sorted (round 12; the pairs hold floats, not elements of v: on
    # dask, observing a tuple of tuples of v's elements computes them, see the report)
    ("functional", "reduce_zip", "import functools\nimport operator\n\n"
     "TABLE = {'b': 0.5, 'a': -1.0}\n\n\ndef _apply(fn, z):\n    return fn(z)\n\n\n"
     "def f(x, v):\n    cols = list(zip(*[(x * x, 1.0), (0.5, x), (np.sin(x), 2.0)]))\n"
     "    s = functools.reduce(operator.mul, cols[0]) * np.sum(v) + "
     "functools.reduce(lambda a, b: a + b * x, cols[1], 0.5)\n"
     "    for k, w in sorted(TABLE.items()):\n        s = s * w + _apply(np.tanh, x * w)\n"
     "    return s * TABLE[max(TABLE, key=TABLE.get)]", (0.7, V3), None),
    # functools.reduce over a list parameter, whose length the key holds: the loop
    # (round 15's R3 refused it)
    ("functional", "reduce_list_parameter", "import functools\n\n\ndef f(x, ws):\n"
     "    a = functools.reduce(lambda u, w: u * np.tanh(w * x) + 0.5, ws)\n"
     "    b = functools.reduce(lambda u, w: u + w * u, ws, x)\n    return np.sum(a * b)",
     (0.7, [V3, V3 * 0.5, -V3]), None),
    # functools.reduce over zip(...) and enumerate(...) of list parameters and over a
    # dict parameter's values (round 17 refused them)
    ("functional", "reduce_zip_enumerate_values", "import functools\n\n\n"
     "def f(p, ws, v):\n"
     "    a = functools.reduce(lambda s, uw: s + np.sum(uw[0] * np.sin(uw[1] * v)), "
     "zip(ws, ws[1:]), 0.0)\n"
     "    h = functools.reduce(lambda h, iw: np.tanh(iw[1] * h) * (iw[0] + 1), "
     "enumerate(ws), v)\n"
     "    return a + np.sum(h * functools.reduce(lambda x, y: x * y, p.values()))",
     ({"W": W1[0], "b": B1}, [V3, V3 * 0.5, -V3], V3), None),
    # enumerate and zip nested in each other, unpacked or not (round 15's R3 refused them)
    ("zip_enumerate", "nested", "def f(x, v):\n    A = [v * x, np.sin(v)]\n    s = 0.0\n"
     "    for k, (a, b) in enumerate(zip(A, v), 1):\n        s = s + k * np.sum(a * b)\n"
     "    for (i, a), b in zip(enumerate(A), [x, 2.0]):\n        s = s + np.sum(a) * b ** i\n"
     "    for t in zip(A, enumerate(v)):\n        s = s + np.sum(t[0]) * t[1][1] * t[1][0]\n"
     "    return s", (0.7, V3), None),
    # NumPy 2's x.mT (round 16's C3: taken for a record's field, its cotangent x_bar['mT'])
    ("attributes", "matrix_transpose", "def f(x, v):\n    A = np.outer(v, v * x)\n"
     "    return np.sum(A.mT * np.arange(9.0).reshape(3, 3)) + np.sum(A.T.mT[0] * v)",
     (0.7, V3), None),
    # a module's list of layer objects and tuple of functions, called in a loop: unrolled
    # over them (round 16: "only functions can be called")
    ("objects", "list_of_layers", "class _Dense:\n    def __init__(self, W, b, act):\n"
     "        self.W, self.b, self.act = W, b, act\n\n    def __call__(self, h):\n"
     "        return self.act(h @ self.W + self.b)\n\n\n"
     "LAYERS = [_Dense(np.eye(3) * 0.5, np.ones(3) * 0.1, np.tanh),\n"
     "          _Dense(np.ones((3, 3)) * 0.2, np.zeros(3), np.sin)]\n"
     "ACTS = (np.tanh, lambda z: z * z)\n\n\ndef f(x, v):\n    h = v * x\n"
     "    for layer in LAYERS:\n        h = layer(h)\n    for k, act in enumerate(ACTS):\n"
     "        h = h + k * act(h)\n    return np.sum(h)", (0.7, V3), None),
    # the same walked reversed, through a slice and enumerated (round 17: "only functions
    # can be called")
    ("objects", "pairs_reversed_and_sliced", "PAIRS = ((np.eye(3) * 0.5, np.tanh), "
     "(np.ones((3, 3)) * 0.2, np.sin), (np.eye(3)[::-1] * 0.3, np.cos))\n\n\n"
     "def f(x, v):\n    h = v * x\n    for W, act in reversed(PAIRS):\n"
     "        h = act(h @ W)\n    for k, (W, act) in enumerate(PAIRS[1:]):\n"
     "        h = h + k * act(W @ h)\n    for W, act in PAIRS[::-2]:\n        h = act(h) * x\n"
     "    return np.sum(h)", (0.7, V3), None),
    # complex values between real arguments and a real output (rules/complex.py): a
    # phase, a rotation carried by a loop, a spectrum
    ("complex", "rotation", "def f(x, v):\n    z = v * np.exp(1j * x)\n"
     "    for k in range(2):\n        z = z * (0.5 + 1j * v[k]) + np.conj(z) * x\n"
     "    return np.sum(np.abs(z) ** 2) + np.sum(np.angle(z + 2.0) * v) + np.imag(z[0])",
     (0.7, V3), None),
    ("complex", "spectrum", "def f(x, v):\n    s = np.fft.rfft(v * x, 6)\n"
     "    return np.sum(np.abs(s) ** 2) + np.sum(np.fft.irfft(s * s, 6) * x)",
     (0.7, V3), None),
    # keys made by %-formatting a loop counter (formatting, not `mod`: round 16's C13)
    ("format_keys", "percent", "def f(x, v):\n    d = {}\n    for i in range(2):\n"
     "        d['W%d' % i] = v * (x + i)\n    return np.sum(d['W0'] * d['W%d' % 1])",
     (0.7, V3), None),
    # an int beside a reversed slice, through `...`: dask's write of the cotangent failed
    # (round 16's C6)
    ("indexing", "int_ellipsis_reversed", "def f(x, v):\n    A = np.outer(v, v) * x\n"
     "    return np.sum(A[0, ..., ::-1] * v) + np.sum(A[..., -1, ::-2])", (0.7, V3), None),
    # casts (round 14): float64 ones are the value, an int one passes no gradient, as
    # int() (v * 3.0 + 0.5 stays 0.2 or more from an integer)
    ("casts", "float64_and_int", "def f(x, v):\n    a = (v * x).astype(np.float64)\n"
     "    b = np.asarray(v, dtype=float) * np.float64(x) + (v * x).astype(float)\n"
     "    k = (v * 3.0 + 0.5).astype(int)\n"
     "    return np.sum(a * b * k) + float(np.float64(x * x)) * np.sum(np.array(v, float))",
     (0.7, V3), None),
    # an array's entries as lists, and a list of numbers as an array again (round 14)
    ("tolist", "rows_and_entries", "def f(x, v):\n    L = (v * x).tolist() + [x * x]\n"
     "    M = np.outer(v, v * x).tolist()\n"
     "    return L[0] * L[3] + sum(M[1]) * x + np.sum(np.array(L) ** 2)", (0.7, V3), None),
    # sorted numbers: the gradient goes back through the permutation (round 14)
    ("sorted", "list_and_array", "def f(x, v):\n    a = sorted([v[0] * x, np.sin(x), v[2]])\n"
     "    b = sorted(v * x, reverse=True)\n"
     "    return a[0] * 3.0 + a[2] * b[0] - b[1] * b[2] + a[1]", (0.7, V3), None),
    # max, min and sorted with a key of values: chosen on the forward values (issue 15;
    # at x = 0.7 the scores 0.21, 0.644, 1.1; 0.49, 0.593, 0.24; 0.7, 1.1 stay apart)
    ("sorted", "keyed_choice", "def f(x, v):\n"
     "    ps = [(v[0] * x, v[1]), (np.sin(x), v[2] * x), (v[2], x * x)]\n"
     "    a = max(ps, key=lambda p: p[0])\n    b = min(ps, key=lambda p: p[1] ** 2)\n"
     "    c = sorted(ps, key=lambda p: p[1], reverse=True)\n"
     "    return a[1] * b[0] + c[0][0] * c[2][1] + max([x, v[2]], key=abs)",
     (0.7, V3), None),
    # an object of a plain class made in f: its __init__ and methods inlined on it
    # (issue 15)
    ("objects", "plain_class_made_in_f", "class Affine:\n    scale = 0.5\n\n"
     "    def __init__(self, W, b):\n        self.W = W\n        self.b = b * self.scale\n\n"
     "    def __call__(self, h):\n        return np.tanh(self.W @ h + self.b)\n\n"
     "    def penalty(self):\n        return np.sum(self.W ** 2)\n\n\n"
     "def f(x, v):\n    layer = Affine(np.outer(v, v) * x, v)\n    h = layer(v * x)\n"
     "    for t in range(2):\n        h = layer(h)\n"
     "    return np.sum(h) + layer.penalty() * x", (0.7, V3), None),
    # itertools over sequences: the lists they yield (issue 15)
    ("itertools", "accumulate_pairwise_chain", "import itertools\nimport operator\n\n\n"
     "def f(x, v):\n    xs = [v[0] * x, np.sin(x), v[2]]\n"
     "    a = list(itertools.accumulate(xs, operator.mul))\n"
     "    s = sum(itertools.accumulate(xs, lambda r, e: r * x + e, initial=v[1]))\n"
     "    for p, q in itertools.pairwise(itertools.chain(xs, a)):\n        s = s + p * q\n"
     "    for p, q in itertools.product(xs[:2], itertools.islice(a, 1, None)):\n"
     "        s = s + np.tanh(p - q)\n"
     "    return s + sum(itertools.repeat(x * x, 2))", (0.7, V3), None),
    # frozen scipy.stats distributions: their distribution's methods with their
    # parameters (issue 15)
    ("frozen_distribution", "norm_and_t", "import scipy.stats\n\n\ndef f(x, v):\n"
     "    d = scipy.stats.norm(x, 1.5 + x * x)\n    e = scipy.stats.t(2.0 + x, scale=2.0)\n"
     "    return np.sum(d.logpdf(v) + d.cdf(v) * e.logpdf(v * x))", (0.7, V3), None),
    # sorted(p.items()) of a dict parameter: a loop over its keys sorted, which the key
    # holds (round 15's R3 refused `.items()` outside a for's header); `{**d, k: v}`
    ("sorted", "dict_parameter_items", "def f(p, v):\n    s = 0.0\n"
     "    for k, w in sorted(p.items(), reverse=True):\n"
     "        s = s * 0.5 + np.sum(np.tanh(w) * v)\n    for k in sorted(p.keys()):\n"
     "        s = s + np.sum(p[k]) * s\n    return s", ({"W": W1[0], "b": B1}, V3), None),
    ("dict_display", "double_star", "def f(x, v):\n    kw = {'a': x * v, 'b': 2.0}\n"
     "    d = {**kw, 'b': np.sin(v), 'c': x}\n    return np.sum(d['a'] * d['b']) * d['c']",
     (0.7, V3), None),
    # `**` of a dict parameter, whose keys are known only when f runs: a copy, then the
    # later entries; or the entries so far, updated with its own (round 17 refused both)
    ("dict_display", "double_star_parameter", "def f(params, h):\n"
     "    q = {**params, 'h': h}\n    r = {'s': h[0], 'W': 0.0, **q, 'b': q['b'] * 0.5}\n"
     "    return np.sum(np.tanh(r['W'] @ r['h'] + r['b'])) * r['s'] + len(r)",
     ({"W": W1, "b": B1}, V3), None),
    # a helper's comprehension in one branch, its dict parameter in the other: the
    # comprehension's writes into its new dict are no writes into the parameter (round
    # 17: views.py joined the branches' values through the if's result)
    ("dict_branch", "comprehension_or_parameter", "def _halved(q, h):\n"
     "    return {k: q[k] * 0.5 for k in q} if np.sum(h) > 0.0 else q\n\n\n"
     "def f(params, h):\n    q = _halved(params, h)\n    r = _halved(params, -h)\n"
     "    s = 0.0\n    for k in q:\n        s = s + np.sum(np.tanh(q[k]) * r[k]) * np.sum(h)\n"
     "    return s", ({"W": W1, "b": B1}, V3), None),
    # np.diff's prepend= and append= (round 17 refused them): a number broadcast along
    # the axis, an array end, n=2
    ("diff_ends", "prepend_append", "def f(x, v):\n    z = np.outer(v, v) * x\n"
     "    a = np.diff(v * x, prepend=0.5, append=x)\n"
     "    b = np.diff(z, 2, axis=0, prepend=z[:1] * 2.0, append=v[None, :] * x)\n"
     "    return np.sum(a ** 3) + np.sum(np.sin(b))", (0.7, V3), None),
    # `[*L]`, `zip(*pairs)` of a parameter's sequences (as many as each trip unpacks),
    # `sorted(p.keys())` bound to a name (round 17 refused them)
    ("starred", "list_display_and_zip", "def f(cols, v):\n    L = [*cols[0], v * 2.0]\n"
     "    M = [v, *L, *(v, v * v)]\n    s = 0.0\n    for a, b in zip(*cols):\n"
     "        s = s + np.sum(np.tanh(a * b) * v)\n"
     "    return s + np.sum(M[1] * M[-1]) + np.sum(M[3]) * len(M)",
     (([V3, V3 * 0.5], [W1[0], B1]), V3), None),
    ("sorted", "keys_assigned", "def f(p, v):\n    ks = sorted(p.keys(), reverse=True)\n"
     "    s = 0.0\n    for i, k in enumerate(ks):\n"
     "        s = s * 0.5 + (i + 1) * np.sum(np.sin(p[k]) * v)\n"
     "    return s * len(list(p.keys()))", ({"b": B1, "W": W1[0]}, V3), None),
    ("sorted", "views_as_values", "def f(p, v):\n    vs = list(p.values())\n    s = 0.0\n"
     "    for i, (k, w) in enumerate(sorted(p.items(), reverse=True)):\n"
     "        s = s * 0.5 + (i + 1) * np.sum(np.sin(w) * v)\n"
     "    for w, u in zip(p.values(), reversed(vs)):\n        s = s + np.sum(w * u * v)\n"
     "    return s", ({"b": B1, "W": W1[0]}, V3), None),
    # namedtuple._replace: a new namedtuple, the fields given changed (round 14)
    ("replace", "fields", "def f(p, v):\n    q = p._replace(W=np.sin(p.W) * v, b=p.b * 2.0)\n"
     "    r = q._replace(b=q.b + np.sum(q.W))\n    return np.sum(r.W * p.W) * r.b",
     (Layer(W1[0], 0.7), V3), None),
    # expression statements that compute nothing with values: output under a flag,
    # logging, a shape, `...` (round 14)
    ("expr_statements", "flags", "import logging\n\nVERBOSE = False\n"
     "LOG = logging.getLogger('adjoint.enumerated')\n\n\ndef f(x, v):\n"
     "    print(x) if VERBOSE else None\n    VERBOSE and print(v)\n"
     "    print('big', x) if x > 5.0 else None\n    LOG.debug('v = %s', v)\n"
     "    v.shape\n    ...\n    return np.sum(v * x)", (0.7, V3), None),
    # a copy of a local dict holds each entry under its key: a write before the copy into
    # one entry is no write through the other (round 15's R2 refused it)
    ("dict_copy", "local_after_write", "def f(x, v):\n    w = v * x\n    w *= 1.5\n"
     "    d = {'a': v * 2.0, 'b': w}\n    e = dict(d)\n    L = list([w, v * x])\n"
     "    M = list(L)\n    return np.sum(e['a'] * e['b']) + np.sum(M[0] * L[1])", (0.7, V3), None),
    # SGD steps over a dict copy with a helper whose conditional expression left the
    # carried dict's kind unseen: `for k in q` walked positions, KeyError 0 (round 16's
    # C12; with int keys, values read as keys)
    ("dict_copy", "steps_over_a_copy", "def _grads(q):\n"
     "    d = 2.0 * q['W'] if q['W'].ndim == 2 else q['W']\n"
     "    return {'W': d, 'b': q['b'] * 0.5}\n\n\ndef f(params, h):\n    q = dict(params)\n"
     "    for t in range(2):\n        g = _grads(q)\n        for k in q:\n"
     "            q[k] = q[k] - 0.1 * g[k]\n    return np.sum(np.tanh(h @ q['W'] + q['b']))",
     ({"W": W1, "b": B1}, V3), None),
    # `*rest` in f's signature (issue 15): positions past the named ones are rest's
    ("varargs", "for", "def f(x, *rest):\n    s = x * x\n    for r in rest:\n"
     "        s = s + np.sum(np.tanh(r * x))\n    return s", (0.7, V3, B1), None),
    ("varargs", "layers", "def f(h, *layers):\n    for W, b in layers:\n"
     "        h = np.tanh(h @ W + b)\n    return np.sum(h * h)",
     (V3, (W1, B1), (W2, B2)), None),
    ("varargs", "indexed_and_passed", "def f(x, *rest):\n    return helper(rest[0] * x) + "
     "len(rest) * np.sum(rest[-1] * x)", (0.7, V3, B1, W1[0]), None),
    # namedtuples built inside f (issue 15), rebuilt in a loop and _replaced
    ("namedtuple_built", "loop", "import collections\n\n"
     "State = collections.namedtuple('State', 'h c')\n\n\ndef f(x, v):\n"
     "    s = State(v * x, c=0.0)\n    for i in range(3):\n"
     "        s = State(h=np.tanh(s.h * x + v), c=s.c + np.sum(s.h))\n"
     "    s = s._replace(c=s.c * x)\n    return s.c + np.sum(s.h * v)", (0.7, V3), None),
    # a namedtuple used as a sequence: its cotangent comes by position (the rows of
    # np.stack(p), a slice's entries) and is added to the one by field (round 20's C5:
    # crashed); p + q and p * 2 are tuples in generic code too (silent there once the
    # crash was fixed, before the construction was known to make a tuple)
    ("namedtuple_built", "stacked", "import collections\n\nPair = collections.namedtuple('Pair', 'a b')\n\n\ndef f(x, v):\n    p = Pair(np.sin(v * x), v * 2.0)\n"
     "    return np.sum(np.stack(p) ** 2 * np.arange(1.0, 3.0)[:, None]) + np.sum(p.a)",
     (0.7, V3), None),
    ("namedtuple_built", "summed", "import collections\n\nPair = collections.namedtuple('Pair', 'a b')\n\n\ndef f(x, v):\n    p = Pair(np.sin(v * x), v * x)\n"
     "    return np.sum(np.tanh(np.array(p))) + np.sum(np.sum(p, axis=0) * v)", (0.7, V3), None),
    ("namedtuple_built", "sliced", "import collections\n\nPair = collections.namedtuple('Pair', 'a b')\n\n\ndef f(x, v):\n    p = Pair(v * x, np.cos(v * x))\n"
     "    t = p[1:] + p[:1]\n    return np.sum(t[0] * 1.5 + t[1] * 5.0) + np.sum(p.b)",
     (0.7, V3), None),
    ("namedtuple_built", "concatenated", "import collections\n\nPair = collections.namedtuple('Pair', 'a b')\n\n\ndef f(x, v):\n    p = Pair(np.sin(v * x), v * 2.0)\n"
     "    q = Pair(v * x ** 2, np.cos(v))\n    return np.sum((p + q)[2] ** 2) + "
     "sum(np.sum(e) for e in p * 2)", (0.7, V3), None),
    # a dataclass built inside f, its fields given or defaulted, rebuilt in a loop
    # (round 21: refused, "only namedtuples are built here")
    ("dataclass_built", "layers", "import dataclasses\n\n\n@dataclasses.dataclass\nclass Lin:\n    W: np.ndarray\n    b: float = 0.5\n\n\ndef f(x, v):\n    h = v * x\n"
     "    for k in range(2):\n        m = Lin(np.outer(v, v) * (x + k)) if k else Lin(W=np.eye(3), b=x)\n"
     "        h = np.tanh(m.W @ h + m.b)\n    return np.sum(h ** 2)", (0.7, V3), None),
    # a generalised ufunc (np.matmul) under np.where: its cotangent is not masked entry by
    # entry as an elementwise op's is (helper 65: d/dx[1] came back 0)
    ("where", "gufunc_branch", "def f(x, v):\n    y = v * x\n"
     "    A = np.array([[1.0, 2.0, 0.5], [-1.0, 0.3, 2.0], [0.7, -0.4, 1.1]])\n"
     "    return np.sum(np.where(y > 0.0, np.matmul(A, y), 0.0))", (0.7, V3), None),
    # dict(p) of a dict parameter: a copy, checked to be of a dict when f runs (round 14)
    ("dict_copy", "parameter", "def f(params, h):\n    q = dict(params)\n"
     "    q['W'] = q['W'] * 0.5\n    r = dict(q, b=params['b'] * 2.0)\n"
     "    return np.sum(np.tanh(h @ r['W'] + r['b'])) + np.sum(params['W'])",
     ({"W": W1, "b": B1}, V3), None),
    # the triangular pair loop over a list's slices: the last slice P[i + 1:] is empty,
    # its cotangent has no element shape (round 20's C4: np.add.at raised)
    ("lists", "pairs_over_slices", "def f(x, P):\n    s = 0.0\n    for i, p in enumerate(P):\n"
     "        for q in P[i + 1:]:\n            s = s + x / np.sqrt(np.sum((p - q) ** 2) + 0.1)\n"
     "    return s", (0.7, [V3, V3 * 2.0, B1]), None),
    # a walk of an empty slice of a list of arrays: its zero has no entry shape (generic
    # code added a (0,) zero into the stacked cotangent's (0, 3) rows and crashed)
    ("lists", "empty_tail_walk", "def f(x, L):\n    s = np.sum(L[0] ** 2) * x\n"
     "    for h in L[2:]:\n        s = s + np.sum(np.sin(h))\n"
     "    return s + np.sum(L[1] * L[0])", (0.7, [V3, V3 * 2.0]), None),
    # a list entry overwritten with one of another shape or kind: the list's cotangent,
    # stacked where the final entries share a shape, broadcast an earlier entry's
    # cotangent into a row of the final shape and summed it back (round 20's S1: 2.5x,
    # silent), or crashed; a state pair (h, c) per entry could not be unbroadcast (C1)
    ("lists", "entry_grows", "def f(x, v):\n    L = [v[:3] * x, v[3:6]]\n    s = 0.0\n"
     "    for i in range(4):\n        n = 1 + 2 * (i // 2)\n"
     "        L[i % 2] = v[:n] * (x + 0.05 * i)\n"
     "        s = s + np.mean(L[0] ** 2) + np.sum(np.sin(L[1]))\n    return s", (0.7, V23), None),
    ("lists", "entry_shrinks_once", "def f(x, v):\n    L = [v[:1] * x, v[1:4]]\n"
     "    a = np.sum(L[0] ** 2)\n    L[0] = v[4:7] * x ** 2\n"
     "    return a + np.sum(L[0] * L[1])", (0.7, V23), None),
    ("lists", "float_entry_becomes_array", "def f(x, v):\n    acc = [x * 1.0, x * 2.0]\n"
     "    for i in range(4):\n        k = i % 2\n"
     "        acc[k] = acc[k] * 0.5 + v[2:5] * x * (i + 1)\n"
     "    return np.sum(acc[0] ** 2) + np.sum(np.sin(acc[1]))", (0.7, V23), None),
    ("lists", "argument_entry_replaced", "def f(L):\n    a = np.sum(np.tanh(L[0]))\n"
     "    L[0] = L[1] * 2.0\n    return a + np.sum(L[0] ** 2)", ([V3, B1[:2]],), None),
    ("lists", "state_pairs", "def f(W, xs):\n    states = [(np.zeros(3), 0.0), (np.zeros(3), 0.0)]\n"
     "    for t in range(2):\n        inp = xs[t]\n        for l in range(2):\n"
     "            h, c = states[l]\n            c2 = 0.9 * c + np.sum(W[l] * inp)\n"
     "            h2 = np.tanh(W[l] * inp + h * 0.5 + c2)\n            states[l] = (h2, c2)\n"
     "            inp = h2\n    return np.sum(states[1][0] ** 2) + states[0][1]", (W1, W1 * 0.5),
     None),
    # a value whose shape changes on a late trip, with no new branch to run: observing
    # the first call must see it (round 19's S0, S2: np.mean divided the short last chunk
    # by 4; the wide window was summed to the narrow one's shape)
    ("chunks", "short_last", "def f(x, v):\n    s = 0.0\n    for b in range(0, len(v), 4):\n"
     "        s = s + np.mean(np.tanh(v[b:b + 4] * x) ** 2)\n    return s", (0.7, V23), None),
    ("chunks", "window_widens_late", "def f(x, v):\n    s = 0.0\n    for i in range(8):\n"
     "        w = v[:1 + 2 * (i // 6)]\n        s = s + np.sum(w * v[i:i + 3] * x) * (i + 1)\n"
     "    return s", (0.7, V23), None),
    # a NumPy function handed a list, a tuple or a namedtuple of arrays stacks it; the
    # rules read it stacked (`-x`, `2.0 * x`, `x >= lo` of a list raised), and the
    # tangents too; a namedtuple's field named mT is the field, not the transpose
    ("seq_numpy", "list_ufuncs", "def f(L, x):\n"
     "    return np.sum(np.tanh(L) * np.cos(L) * x) + np.linalg.norm(L) * x",
     ([V3, V3 * 0.5], 0.7), None),
    ("seq_numpy", "tuple_clip_max", "def f(T, x):\n"
     "    return np.sum(np.clip(T, -0.3, 0.4) ** 2 * x) + np.sum(np.maximum(T, 0.1) * x)",
     ((V3, V3 * 0.5), 0.7), None),
    ("seq_numpy", "namedtuple_fields", "def f(p, x):\n"
     "    return np.sum(np.sqrt(p) * x) + np.sum(np.log1p(p) * np.arctan(p)) + np.sum(p.mT * x)",
     (Pair(np.abs(V3) + 0.1, np.abs(V3) * 0.5 + 0.2), 0.7), None),
    # records built by their class: their gradients must not be (round 22's S1, S2, C2)
    ("records", "post_init_param", "def f(p, x):\n    return np.sum(p.w * x) ** 2",
     (Unit(_v(1.0, 2.0, -0.5)), V3), None),
    ("records", "namedtuple_new_param", "def f(p, x):\n"
     "    return np.sum(((x - p.mu) / p.sigma) ** 2) + np.log(p.sigma)",
     (Positive(0.5, 1.0), V3), None),
    ("records", "container_field", "def f(m, x):\n"
     "    return m.scale * np.sum(m.layers[0] * x) + np.sum(m.layers[1] ** 2)",
     (Model([V3, V3 * 0.5], 0.5), V3), None),
    # optional entries: a None skipped (round 22's C3: its cotangent None was added)
    ("lists", "optional_entries", "def f(L, x):\n    s = 0.0\n    for v in L:\n"
     "        if v is not None:\n            s = s + np.sum(v * v) * x\n    return s",
     ([V3, None, V3 * 0.5], 0.7), None),
    # `return l, preds` under a flag, `return l` otherwise (round 22: the number was
    # unpacked as a pair, an IndexError while observing)
    ("early_return", "pair_under_flag", "def f(x, v, aux):\n    l = np.sum(np.sin(v * x))\n"
     "    if aux:\n        return l, v * x\n    return l", (0.7, V3, False), None),
    # .item() of a size-1 slice (round 22's F3: read as float(), which NumPy 2 refuses)
    ("item", "size_one_slice", "def f(x, v):\n"
     "    return v[:1].item() * x + np.sum(v * v[1:2].item())", (0.7, V3), None),
    # an entry of a parameter overwritten in its copy, and a new one: the overwritten
    # entry's gradient is a zero of its kind (it was the scalar 0.0, refused)
    ("dict_copy", "overwritten_entry", "def f(params, h):\n    q = dict(params)\n"
     "    q['b'] = h * 2.0\n    q['c'] = np.tanh(h)\n"
     "    return np.sum(np.tanh(h @ q['W'] + q['b'])) + np.sum(q['c'] * q['b'])",
     ({"W": W1, "b": B1}, V3), None),
]


def array_programs():
    out = []
    for family, variant, body, args, wrt in ARRAY_TEMPLATES:
        text = HEADER + HELPERS + "\n" + body + "\n"
        out.append(Program(f"{family}-{variant}", family, (family, variant), text, args,
                           wrt))
    return out


# ---------------------------------------------------------------- README-unsupported

UNSUPPORTED = [
    # a write into a part of an object f did not make: a global's, a closure's or an
    # object's array, through an element, a view, an alias or a loop (round 10, W1: the
    # write was dropped, and the gradient read the old values)
    ("foreign-dict_element", "CACHE = {'h': np.zeros(3)}\n\n\ndef f(x, v):\n"
     "    CACHE['h'][:] = v * x\n    return np.sum(CACHE['h'] * v)", (0.7, V3)),
    ("foreign-view_alias", "WORK = np.zeros(3)\n\n\ndef f(x, v):\n    w = WORK[:]\n"
     "    h = w\n    h += v * x\n    return np.sum(WORK * v)", (0.7, V3)),
    ("foreign-loop", "BUFS = [np.zeros(3), np.zeros(3)]\n\n\ndef f(x, v):\n"
     "    for b in BUFS:\n        b[1:] = v[1:] * x\n    return np.sum(BUFS[0] * v)", (0.7, V3)),
    ("foreign-attribute_transpose", "class _State:\n    m = np.zeros((3, 3))\n\n\n"
     "STATE = _State()\n\n\ndef f(x, v):\n    STATE.m.T[0] = v * x\n"
     "    return np.sum(STATE.m * v)", (0.7, V3)),
    # max of tuples compares them in order, as an array entry by entry (round 8, M2)
    ("max_of_pairs", "def f(x, v):\n    z = v * x\n    best = max([(z[0], z[1] ** 2), (z[2], x)])\n"
     "    return best[1]", (0.7, V3)),
    ("max_of_appended_pairs", "def f(x, v):\n    z = v * x\n    L = []\n"
     "    for i in range(2):\n        L.append((z[i], z[i + 1] * x))\n    return max(L)[1]",
     (0.7, V3)),
    # `:=` whose assignment may not run or is dropped with its statement, and a change
    # of an object in a part of an expression that runs on some calls only (round 22:
    # the gradient was that of another f, or the IR verifier failed)
    ("walrus-print", "def f(x, v):\n    y = x\n    print(y := x * 2.0)\n"
     "    return y * np.sum(v)", (0.7, V3)),
    ("walrus-and", "def f(x, v):\n    y = x\n    if x > 0 and (y := x * 2.0) > 100.0:\n"
     "        y = y + 1.0\n    return y * np.sum(v)", (0.7, V3)),
    ("effect-ifexp", "def f(x, v):\n    stack = [x, 2.0 * x]\n"
     "    t = stack.pop() if x > 0 else 0.0\n    return t + sum(stack) * np.sum(v)",
     (0.7, V3)),
    # a check in a helper, caught by f's handler: the gradient runs the body only
    ("try-helper_raises", "def check(v):\n    if v < 1.0:\n        raise ValueError('small')\n"
     "    return v\n\n\ndef f(x, v):\n    try:\n        y = check(x) * 3.0\n"
     "    except ValueError:\n        y = -x ** 2\n    return y * np.sum(v)", (0.7, V3)),
    # a recursion whose depth depends on data (one on an int argument unrolls)
    ("recursion", "def f(x, y, n):\n    if y < 0.1:\n        return x\n"
     "    return f(x * y, y * 0.5, n - 1)", (0.7, 0.4, 3)),
    # one whose depth floats decide, with a length known (issue 15): still refused
    ("recursion-float_depth", "def f(x, v):\n    m = 0.5 * x\n    if m < 0.1:\n"
     "        return m * np.sum(v)\n    return f(m, v[::-1])", (0.7, V3)),
    # an in-place update that another name, slot or container sees (adversarial round 4)
    ("element-alias_name", "def f(x, v):\n    a = v * x\n    d = {'acc': a}\n"
     "    d['acc'] += np.sin(v)\n    return np.sum(a)", (0.7, V3)),
    ("element-two_dicts", "def f(x, v):\n    d = {'acc': v * x}\n    e = {'acc': d['acc']}\n"
     "    e['acc'] *= 3.0\n    return np.sum(d['acc'])", (0.7, V3)),
    ("element-comprehension", "def f(x, v):\n    a = v * x\n"
     "    d = {k: a for k in ['u', 'w']}\n    d['u'] += v\n    return np.sum(d['w'])",
     (0.7, V3)),
    ("element-repeat", "def f(x, v):\n    L = [v * x] * 2\n    L[0] += v\n"
     "    return np.sum(L[1])", (0.7, V3)),
    # a view that NumPy makes and a write then changes (round 5, W1), writes through out=
    # and in-place NumPy functions (W4)
    ("view-flip", "def f(x, v):\n    y = v * x\n    w = np.flip(y)\n    y[0] = 5.0 * x\n"
     "    return np.sum(w * v)", (0.7, V3)),
    ("view-split", "def f(x, v):\n    y = v * x\n    w = np.split(y, 3)[0]\n    y[0] = 5.0 * x\n"
     "    return np.sum(w * v)", (0.7, V3)),
    ("out-maximum", "def f(x, v):\n    y = v * x\n    z = np.maximum(y, 0.0, out=y)\n"
     "    return np.sum(y)", (0.7, V3)),
    # `out` passed by position: np.floor(h, h) is np.floor(h, out=h) (round 24's S1: the
    # call was read as a value nobody uses and dropped, value and gradient wrong)
    ("out-positional_ufunc", "def f(x, v):\n    h = v * x\n    np.floor(h, h)\n"
     "    return np.sum(h * h)", (0.7, V3)),
    ("out-positional_dead_name", "def f(x, v):\n    h = v * x\n    _ = np.negative(h, h)\n"
     "    return np.sum(np.exp(h))", (0.7, V3)),
    ("out-positional_round", "def f(x, v):\n    h = v * x\n    np.round(h, 1, h)\n"
     "    return np.sum(h * v)", (0.7, V3)),
    ("out-positional_method", "def f(x, v):\n    h = v * x\n    h.clip(0.0, 0.5, h)\n"
     "    return np.sum(h * v)", (0.7, V3)),
    ("out-nan_to_num_in_place", "def f(x, v):\n    h = v * x\n"
     "    np.nan_to_num(h, copy=False)\n    return np.sum(h * v)", (0.7, V3)),
    ("out-copyto", "def f(x, v):\n    y = v * 1.0\n    _ = np.copyto(y, v * x)\n"
     "    return np.sum(y)", (0.7, V3)),
    # functions that return their argument or a view of it for some inputs (round 7, A1)
    ("view-einsum", "def f(x, v):\n    y = v * x\n    w = np.einsum('i->i', y)\n"
     "    w += x\n    return np.sum(y * v)", (0.7, V3)),
    ("view-stop_gradient", "import adjoint\n\n\ndef f(x, v):\n    y = v * x\n    w = adjoint.stop_gradient(y)\n"
     "    w[0] = 0.0\n    return np.sum(y * v)", (0.7, V3)),
    ("view-matrix_transpose", "def f(x, v):\n    B = np.outer(v, v) * x\n"
     "    V = np.linalg.matrix_transpose(B)\n    V[0, 1] = 5.0 * x\n    return np.sum(B)", (0.7, V3)),
    # the attributes `.T` and `.real` are views too (round 21's S1: a write through `B.T`
    # was missed, value and gradient wrong)
    ("view-attribute_T", "def f(x, v):\n    B = np.outer(v, v) * x\n    C = B.T\n"
     "    C[0, 1] = 5.0 * C[0, 1]\n    return np.sum(np.sin(B))", (0.7, V3)),
    ("view-attribute_real", "def f(x, v):\n    B = v * x\n    C = B.real\n"
     "    C[1:] *= 2.0\n    return np.sum(B * v)", (0.7, V3)),
    # a function with no rule may return a part of its argument: next(iter(B)) is B's
    # first row (round 21's S3: the write was dropped)
    ("view-next_of_iter", "def f(x, v):\n    B = np.outer(v, v) * x\n    r = next(iter(B))\n"
     "    r[1] = 5.0 * r[1]\n    return np.sum(np.sin(B))", (0.7, V3)),
    # an iterator kept in a name is consumed by its first reader (round 21's S5: read
    # again as the whole sequence, value and gradient wrong)
    ("iterator-reversed_read_twice", "def f(x, v):\n    r = reversed(v * x)\n"
     "    a = sum(e * 2.0 for e in r)\n    return a + sum(e for e in r)", (0.7, V3)),
    ("iterator-flat_after_break", "def f(x, v):\n    fl = (v * x).flat\n    s = 0.0\n"
     "    for e in fl:\n        s = s + e\n        if s > 0.5:\n            break\n"
     "    for e in fl:\n        s = s + 10.0 * e\n    return s", (0.7, V3)),
    ("view-ravel_written", "def f(x, v):\n    B = np.outer(v, v) * x\n    w = B.ravel()\n"
     "    w[1:] *= 3.0\n    return np.sum(np.sin(B))", (0.7, V3)),
    ("view-trim_zeros", "def f(x, v):\n    y = v * x\n    w = np.trim_zeros(y)\n"
     "    w *= 3.0\n    return np.sum(y * v)", (0.7, V3)),
    # dict() of a list of pairs is no copy of a dict (round 14: dict(p) of a value whose
    # kind is seen only when f runs is checked then)
    ("dict_of_pairs", "def f(x, v):\n    pairs = [('a', x), ('b', v[0])]\n"
     "    d = dict(pairs)\n    return d['a'] * d['b']", (0.7, V3)),
    # `M = L; M += (v,)` changes L too; read by index, the run the kinds come from
    # tripped over the missing element before this was refused (round 15's C3)
    ("list_alias-extended_then_indexed", "def f(x, v):\n    L = [x * v[0], x]\n    M = L\n"
     "    M += (x * 2.0,)\n    return L[2] * x", (0.7, V3)),
    # a copy of a list or dict holds the same arrays: a write into one through the copy
    # changes the original's
    ("element-dict_copy", "def f(x, v):\n    d = {'a': v * x, 'b': v}\n    e = dict(d)\n"
     "    e['a'] += v\n    return np.sum(d['a'] * x)", (0.7, V3)),
    ("element-list_copy", "def f(x, v):\n    L = [v * x, v]\n    M = list(L)\n"
     "    M[0] *= 2.0\n    return np.sum(L[0] * x)", (0.7, V3)),
    ("element-list_copy_after_write", "def f(x, v):\n    L = [v * x, v]\n    M = list(L)\n"
     "    L[0] *= 2.0\n    return np.sum(M[0] * x)", (0.7, V3)),
    # a dataclass whose __post_init__ computes: adjoint builds the record field by field
    ("dataclass_post_init", "import dataclasses\n\n\n@dataclasses.dataclass\nclass Scaled:\n"
     "    w: np.ndarray\n\n    def __post_init__(self):\n        self.w = self.w * 2.0\n\n\n"
     "def f(x, v):\n    return np.sum(Scaled(v * x).w)", (0.7, V3)),
    # an array attribute with no rule is refused where it is read, not given a field's
    # cotangent (round 16's C3)
    ("array_attribute-base", "def f(x, v):\n    y = v * x\n    z = y[:2]\n"
     "    return np.sum(z.base)", (0.7, V3)),
    ("element-nested_dict", "def f(x, v):\n    net = {'l1': {'w': v * x}}\n"
     "    inner = net['l1']\n    inner['w'] = np.sin(v * x)\n"
     "    return np.sum(net['l1']['w'])", (0.7, V3)),
    # a slice assignment that changes a list's length: the reverse sweep read the
    # cotangent at the slice's old positions (round 23's A-C2: IndexError, entries shifted)
    ("list_slice-grows", "def f(x, v):\n    L = [v[0] * x, v[1]]\n    L[:0] = [v[2] * 3.0]\n"
     "    return L[0] * L[1] + L[2]", (0.7, V3)),
    ("list_slice-shrinks", "def f(x, v):\n    L = [v[0] * x, v[1], x, v[2]]\n"
     "    L[1:3] = []\n    return L[0] * 2.0 + L[1] * 10.0", (0.7, V3)),
    ("list_slice-mixed_shapes", "def f(x, v):\n    L = [v[:2] * x, v[2]]\n"
     "    L[1:2] = [v[1] * 3.0, x]\n    return np.sum(L[0]) * L[1] + L[2]", (0.7, V3)),
]


def unsupported_programs():
    from adjoint import UnsupportedError
    return [Program(f"unsupported-{name}", "unsupported", (name,), HEADER + body + "\n",
                    args, expect_error=UnsupportedError)
            for name, body, args in UNSUPPORTED]


def all_programs(all_args: bool = False):
    return loop_programs(all_args) + array_programs() + unsupported_programs()


# loop programs CI always runs: issue 19's shapes, ones that were silently wrong (the
# last three: round 10a's W1, W1b and C-A)
ALWAYS = ("for-taylor-none-index", "for-plain-fixed-index", "nested-swap-break_in-value",
          "nested-plain-fixed-index", "for-slots-continue-value", "in_if-slots-none-index",
          "in_if-rebind-none-index")


def ci_subset(programs):
    """A fixed subset in which every pair of loop-axis values occurs (greedy pairwise
    cover, in enumeration order), plus ALWAYS and every non-loop program."""
    seen, out = set(), []
    for p in programs:
        if p.name in ALWAYS:
            out.append(p)
            continue
        if p.family != "loop" or p.name.endswith(("-a1", "-a2")):
            if p.family != "loop":
                out.append(p)
            continue
        pairs = {(a, b, p.axes[a], p.axes[b]) for a, b in itertools.combinations(range(4), 2)}
        if pairs - seen:
            seen |= pairs
            out.append(p)
    return out


if __name__ == "__main__":
    progs = all_programs()
    print(len(progs), "programs;", len(ci_subset(progs)), "in CI")
    print(progs[0].source)
