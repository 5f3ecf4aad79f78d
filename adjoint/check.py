"""The gradient checker: adjoint's gradient against central finite differences, and,
when they disagree, the wrong entries of the gradient and the first source line
whose derivative rule is wrong, or, when every rule is right, the compiler stage at
fault: the first optimisation pass after which the gradient changes (`bisect`, as
LLVM's opt-bisect), or the transform itself.

`check` costs a few gradients at any size, as JAX's check_grads does: along a few
random unit directions u it compares the gradient's <g, u> (reverse mode) with the
central difference (f(x+hu) - f(x-hu)) / 2h, and along the first the JVP's J u
(forward mode) too. When a direction disagrees it bisects u's support (u's entries
on one half, zeros on the other) down to the entries that are wrong. <g, u> and J u
are one number computed two ways, so they must agree to rounding, which sees an
error in one entry of 1e5 that no finite difference along u could; the entries
where they differ are then judged by their own finite differences. Cost: one
gradient, one JVP and two calls of f per direction. `exhaustive=True` takes one
finite difference per entry instead, as slow as that sounds.

Every derivative rule is a runnable function, so a rule can be checked on its own:
`check_rule(fn, *inputs)` compares the VJP (and the JVP) of primitive `fn` with
finite differences of `fn` through the inner-product identity
<v, J u> = <J^T v, u>, for random directions u and cotangents v. `check` runs the
function once, records the operands every primitive saw, and checks each rule at
those very values, in program order.
"""
from __future__ import annotations

import inspect
import copy
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from adjoint.ir.core import Call, Loc, walk_ops
from adjoint.rules import registry


@dataclass
class CheckResult:
    ok: bool
    max_error: float
    gradient: object
    numeric: object  # exhaustive: the finite-difference gradient; else None
    culprit: Loc | None = None
    culprit_rule: str = ""
    detail: str = ""
    compiler: str = ""  # when no rule is wrong: the stage of the compiler at fault
    wrong: list = field(default_factory=list)  # the wrong entries found, as "x[3]"
    directions: int = 0  # how many random directions were checked (0: exhaustive)
    evaluations: dict = field(default_factory=dict)  # calls of f, the gradient, the JVP
    mismatch: str = ""  # what disagreed first, with its numbers
    forward: str = ""  # why the JVP was not checked, when it was not

    def __str__(self) -> str:
        how = (f"along {self.directions} random directions" if self.directions
               else "entry by entry")
        if self.ok:
            text = (f"ok: the gradient matches finite differences {how} "
                    f"(max error {self.max_error:.2e})")
            if self.directions:
                text += (", and so does the JVP" if not self.forward else
                         f"; the JVP was not checked: {self.forward}")
            return text
        text = f"the gradient differs from finite differences by {self.max_error:.3g} ({how})"
        if self.mismatch:
            text += f"\n{self.mismatch}"
        if self.wrong:
            text += f"\nwrong entries: {', '.join(self.wrong)}"
        if self.culprit is not None:
            text += (f"\nfirst wrong derivative: {self.culprit.filename}:{self.culprit.line}: "
                     f"{self.culprit.text.strip()}\n  the rule of `{self.culprit_rule}` "
                     f"disagrees with finite differences: {self.detail}")
        elif self.compiler:
            text += "\nevery derivative rule agrees with finite differences where it ran: " \
                    "the fault is the compiler's, not a rule's (please report it)\n" + \
                    self.compiler
        return text


@dataclass
class BisectResult:
    """`k`: the number of pass runs after which the gradient first changes (None: it
    never does); `culprit`: that run, "pass on function"; `runs`: how many a full
    compilation makes."""

    k: int | None
    culprit: str
    runs: int
    max_change: float

    @property
    def ok(self) -> bool:
        return self.k is None

    def __str__(self) -> str:
        if self.k is None:
            return (f"ok: the gradient is the same after each of the {self.runs} pass runs "
                    f"(max change {self.max_change:.2e})")
        return (f"the gradient changes at pass run {self.k} of {self.runs}: {self.culprit} "
                f"(by {self.max_change:.3g}); with the first {self.k - 1} runs it is the "
                f"unoptimised one")


def _float_like(x) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, (float, np.floating)):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def check_rule(fn, *args, rtol: float = 1e-5, atol: float = 1e-7, eps: float = 1e-6,
               seed: int = 0, **kwargs) -> str:
    """'' when the rules of primitive `fn` agree with finite differences at `args`,
    else a sentence saying how they disagree."""
    entry = registry.lookup(fn)
    if entry is None or entry.vjp is None:
        return f"{getattr(fn, '__name__', fn)} has no derivative rule"
    rng = np.random.default_rng(seed)
    ans = fn(*args, **kwargs)
    sig = inspect.signature(entry.vjp)
    names = list(sig.parameters)[2:]
    diff = [i for i, a in enumerate(args) if _float_like(a) and i < len(names)]
    u = {i: _like(args[i], rng) for i in diff}
    v = _like(ans, rng)

    def at(t):
        moved = [a + t * u[i] if i in u else a for i, a in enumerate(args)]
        return np.asarray(fn(*moved, **kwargs), dtype=float)

    numeric = float(np.sum(v * (at(eps) - at(-eps)) / (2 * eps)))
    cotangents = entry.vjp(v, ans, *args, **kwargs)
    if not isinstance(cotangents, tuple) or len(args) == 1:
        cotangents = (cotangents,)
    through_vjp = sum(float(np.sum(np.asarray(cotangents[i]) * u[i])) for i in diff
                      if i < len(cotangents) and cotangents[i] is not None)
    if not np.isclose(through_vjp, numeric, rtol=rtol, atol=atol):
        return f"<v, J u> = {numeric:.6g} by finite differences, {through_vjp:.6g} by its VJP"
    if entry.jvp is not None:
        jsig = list(inspect.signature(entry.jvp).parameters)
        dots = {f"{names[i]}_dot": u[i] for i in diff if f"{names[i]}_dot" in jsig}
        for name in jsig:
            if name.endswith("_dot") and name not in dots:
                dots[name] = 0.0
        tangent = entry.jvp(ans, *args, **kwargs, **dots)
        through_jvp = float(np.sum(v * np.asarray(tangent)))
        if not np.isclose(through_jvp, numeric, rtol=rtol, atol=atol):
            return f"<v, J u> = {numeric:.6g} by finite differences, {through_jvp:.6g} by its JVP"
    return ""


def _like(x, rng):
    return rng.normal(size=np.shape(x)) if np.ndim(x) else float(rng.normal())


def _pairs(got, want, several: bool) -> list:
    return list(zip(got, want)) if several else [(got, want)]


def _max_diff(pairs) -> float:
    return max(float(np.max(np.abs(np.asarray(a, dtype=complex) - np.asarray(b, dtype=complex)),
                            initial=0.0)) for a, b in pairs)


def gradient_with_passes(f, args, wrt, k: int | None):
    """The gradient of `f` at `args` compiled with only the first `k` pass runs (None:
    all), and the log of the runs made. A fresh cache folder: every pass runs."""
    import tempfile

    from adjoint.api import Transform
    from adjoint.passes import pipeline
    with tempfile.TemporaryDirectory(prefix="adjoint-bisect-") as tmp, \
            pipeline.limited(k) as log:
        got = Transform(f, wrt, "grad", cache_dir=tmp)(*args)
        return got, list(log)


def bisect(f, *args, wrt=0, rtol: float = 1e-9, atol: float = 1e-12) -> BisectResult:
    """The first optimisation pass run after which the gradient of `f` at `args` differs
    from the unoptimised one (by more than rtol, atol), found by bisecting the number
    of pass runs allowed, as LLVM's opt-bisect does."""
    several = isinstance(wrt, tuple)
    reference, _ = gradient_with_passes(f, args, wrt, 0)

    def changed(got) -> float | None:
        pairs = _pairs(got, reference, several)
        same = all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in pairs)
        return None if same else _max_diff(pairs)

    full, log = gradient_with_passes(f, args, wrt, None)
    change = changed(full)
    if change is None:
        return BisectResult(None, "", len(log), _max_diff(_pairs(full, reference, several)))
    lo, hi = 0, len(log)  # with lo runs the gradient is the reference, with hi it is not
    culprit = log[-1] if log else ""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        got, mid_log = gradient_with_passes(f, args, wrt, mid)
        c = changed(got)
        if c is None:
            lo = mid
        else:
            hi, change, culprit = mid, c, mid_log[-1]
    return BisectResult(hi, culprit, len(log), change)


# a check that runs longer than this shows its progress on stderr (on a terminal)
PROGRESS_AFTER = 1.0


class _Progress:
    """One line on stderr, rewritten in place, once the work has taken PROGRESS_AFTER
    seconds, and only on a terminal (logs and pipes get nothing)."""

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.start = time.monotonic()
        self.on = bool(getattr(self.stream, "isatty", lambda: False)())
        self.shown = False

    def __call__(self, text: str) -> None:
        if self.on and time.monotonic() - self.start >= PROGRESS_AFTER:
            self.stream.write(f"\r\033[Kadjoint check: {text}")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


class _Inputs:
    """The differentiated arguments as one float64 vector x, f as a function of x,
    and the names of x's entries. Counts the calls it makes."""

    def __init__(self, f, args, positions):
        from adjoint.frontend.source import unwrap
        from adjoint.testing import _vector
        self.f, self.args, self.positions = f, args, positions
        self.like = [args[i] for i in positions]
        parts = [_vector(a) for a in self.like]
        self.bounds = np.cumsum([0] + [p.size for p in parts])
        self.x = np.concatenate(parts) if parts else np.zeros(0)
        try:
            names = list(inspect.signature(unwrap(f)).parameters)
        except (TypeError, ValueError):
            names = []
        self.names = [names[i] if i < len(names) else f"args[{i}]" for i in positions]
        self.leaves = [[shape for _, shape in _leaf_paths(a)] for a in self.like]
        self.calls = {"f": 0, "grad": 0, "jvp": 0}

    def split(self, vec) -> list:
        """vec as values of the differentiated arguments' structures."""
        from adjoint.testing import _unvector
        return [_unvector(vec[a:b], like) for a, b, like in
                zip(self.bounds, self.bounds[1:], self.like)]

    def value(self, vec) -> float:
        """f with its differentiated arguments set from vec; the others are copied, so
        a function that writes into an argument cannot change the next call's."""
        moved = [copy.deepcopy(a) for a in self.args]
        for i, v in zip(self.positions, self.split(vec)):
            moved[i] = v
        self.calls["f"] += 1
        return float(np.sum(self.f(*moved)))

    def name(self, k: int) -> str:
        """Entry k of x as the user would write it: `x[3]`, `W[1, 2]`, `layers[0][4]`,
        `params['b'][2]`."""
        arg = int(np.searchsorted(self.bounds, k, side="right")) - 1
        k -= int(self.bounds[arg])
        for path, shape in _leaf_paths(self.like[arg]):
            size = int(np.prod(shape, dtype=int))
            if k < size:
                index = np.unravel_index(k, shape) if shape else ()
                where = "[" + ", ".join(str(int(i)) for i in index) + "]" if shape else ""
                return self.names[arg] + path + where
            k -= size
        return self.names[arg]


def _epsilon(values) -> float:
    """The machine epsilon of the least precise float among values (and inside them)."""
    from adjoint.testing import _flatten
    eps = np.finfo(np.float64).eps
    for leaf in _flatten(list(values)):
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and dtype.kind in "fc":
            eps = max(eps, float(np.finfo(dtype).eps))
    return float(eps)


def _leaf_paths(x, path: str = "") -> list:
    """(how to reach it, its shape) for each float leaf of x, in _flatten's order."""
    if isinstance(x, dict):
        return [leaf for key in sorted(x) for leaf in _leaf_paths(x[key], f"{path}[{key!r}]")]
    if isinstance(x, (list, tuple)):
        return [leaf for i, item in enumerate(x) for leaf in _leaf_paths(item, f"{path}[{i}]")]
    return [(path, np.shape(x))]


def check(f, *args, wrt=0, rtol: float = 1e-5, atol: float = 1e-7,
          exhaustive: bool = False, directions: int = 3, seed: int = 0,
          eps: float = 1e-6, progress=None) -> CheckResult:
    """Compare adjoint's gradient of scalar `f` at `args` with central finite
    differences, along `directions` random directions (reverse and forward mode), or
    entry by entry when `exhaustive`. On a mismatch, name the wrong entries of the
    gradient, then the first primitive (in program order) whose rule is wrong where it
    ran, or, every rule being right, the compiler's stage at fault (`bisect`).
    `progress`: a stream for the progress line (default: stderr, when a terminal)."""
    from adjoint.api import ByDepth, grad
    if directions < 1 and not exhaustive:
        raise ValueError("check: directions must be at least 1")
    g = grad(f, wrt)
    if isinstance(g, ByDepth):  # a recursion, or f(x, *rest): the transform for these args
        g = g.transform_for(tuple(args))
    # positions, not names, for the finite differences
    positions = g.wrt if isinstance(wrt, tuple) else g.wrt[0]
    several = isinstance(wrt, tuple)
    show = _Progress(progress)
    try:
        if exhaustive:
            result, right = _entrywise(f, g, args, positions, several, rtol, atol, eps, show)
        else:
            result, right = _directional(f, g, args, positions, several, rtol, atol, eps,
                                         directions, seed, show)
    finally:
        show.done()
    if not result.ok:
        _locate(f, args, wrt, positions, result, right)
    return result


def _entrywise(f, g, args, positions, several, rtol, atol, eps, show):
    from adjoint.testing import numeric_grad
    got = g(*args)
    want = numeric_grad(f, args, positions, eps,
                        progress=lambda k, n: show(f"finite differences {k}/{n}"))
    pairs = _pairs(got, want, several)
    result = CheckResult(all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in pairs),
                         _max_diff(pairs), got, want)
    if not result.ok:
        from adjoint.testing import _vector
        x = _Inputs(f, args, tuple(positions) if several else (positions,))
        a = np.concatenate([_vector(p) for p in (got if several else [got])])
        b = np.concatenate([_vector(p) for p in (want if several else [want])])
        if a.shape == b.shape:
            bad = np.flatnonzero(~np.isclose(a, b, rtol=rtol, atol=atol))
            result.wrong = [x.name(int(k)) for k in bad[:MAX_WRONG]]
            if bad.size > MAX_WRONG:
                result.wrong.append(f"and {bad.size - MAX_WRONG} more")

    def right(gradient) -> bool:
        return all(np.allclose(a, b, rtol=rtol, atol=atol)
                   for a, b in _pairs(gradient, want, several))
    return result, right


def _directional(f, g, args, positions, several, rtol, atol, eps, directions, seed, show):
    from adjoint.api import jvp
    from adjoint.errors import AdjointError
    from adjoint.testing import _vector
    x = _Inputs(f, args, tuple(positions) if several else (positions,))
    got = g(*args)
    x.calls["grad"] += 1
    grads = list(got) if several else [got]
    result = CheckResult(True, 0.0, got, None, directions=directions, evaluations=x.calls)
    shapes = [[np.shape(leaf) for leaf in _leaves(gr)] for gr in grads]
    if shapes != x.leaves:
        result.ok, result.max_error = False, float("inf")
        result.mismatch = f"the gradient has the shapes {shapes}, its arguments {x.leaves}"
        return result, lambda gradient: False
    gvec = np.concatenate([_vector(gr) for gr in grads]) if grads else np.zeros(0)
    forward = jvp(f, tuple(x.positions) if several else x.positions[0])

    def reverse(u) -> float:
        return float(gvec @ u)

    def along(u, value=False):
        parts = x.split(u)
        x.calls["jvp"] += 1
        out, dot = forward(*args, tuple(parts) if several else parts[0])
        return (float(np.sum(out)), float(np.sum(dot))) if value else float(np.sum(dot))

    # the JVP runs along the first direction only: its agreement with <g, u> to
    # rounding (below) is a far finer test than another finite difference would be
    rng = np.random.default_rng(seed)

    def direction():
        """A random unit vector whose entries all weigh alike (0.5 to 1.5 before the
        scaling, either sign): each entry's error shows, and no two cancel but by
        chance of measure zero. Cheaper to draw than normal entries."""
        u = rng.uniform(-1.0, 1.0, size=x.x.size)
        u += np.copysign(0.5, u)
        return u / max(float(np.sqrt(u @ u)), 1e-300)  # unit: h is a length in x's space

    first = direction()
    try:
        fx, jvp_first = along(first, value=True)
    except AdjointError as e:  # forward mode cannot compile f: check reverse mode alone
        result.forward = str(e).splitlines()[0]
        fx, jvp_first = x.value(x.x.copy()), None
    scale = max(1.0, abs(fx))

    def fd(u, h=eps) -> float:
        return (x.value(x.x + h * u) - x.value(x.x - h * u)) / (2 * h)

    def agrees(u, derivative, numeric=None, r=rtol, a=atol * scale):
        """(whether `derivative`, the gradient's or the JVP's along u, is the finite
        difference along u, that difference, their distance): when the first step
        disagrees, steps 10x larger and smaller get their say (rounding or curvature
        can fool one step)."""
        numeric = fd(u) if numeric is None else numeric
        err = abs(derivative - numeric)
        if err <= r * max(abs(derivative), abs(numeric)) + a:
            return True, numeric, err
        for h in (eps * 10, eps / 10):
            other = fd(u, h)
            if abs(derivative - other) <= r * max(abs(derivative), abs(other)) + a:
                return True, numeric, err
        return False, numeric, err

    # rounding: float64 throughout allows 1e-9; a float32 argument (or gradient) makes
    # the computation float32, and rounding 1e4 times its epsilon
    rounding = max(1e-9, 1e4 * _epsilon([*args, *grads]))

    def paired(u, dot=None) -> bool:
        """Whether <g, u> and J u agree to rounding: they are the same number computed
        two ways, so this sees far smaller errors than a finite difference can."""
        dot = along(u) if dot is None else dot
        size = float(np.abs(gvec) @ np.abs(u))
        return abs(reverse(u) - dot) <= rounding * (size + 1e-3 * scale)

    checked = []  # (u, finite difference) per direction: to judge other gradients by
    for k in range(directions):
        show(f"direction {k + 1}/{directions}")
        u = first if k == 0 else direction()
        numeric = fd(u)
        checked.append((u, numeric))
        values = {"the gradient": (reverse(u), reverse)}
        if k == 0 and jvp_first is not None:
            values["the JVP"] = (jvp_first, along)
        for what, (value, derivative) in values.items():
            ok, numeric, err = agrees(u, value, numeric)
            result.max_error = max(result.max_error, err)
            if ok or not result.ok:
                continue
            result.ok = False
            result.mismatch = (f"along random direction {k + 1}, {what} gives {value:.9g}, "
                               f"finite differences {numeric:.9g}")
            found, blocks, more = _bisect_entries(
                u, lambda part, d=derivative: agrees(part, d(part))[0], show)
            result.wrong = _names(x, found, blocks, more)
        if not result.ok:
            break
    if result.ok and jvp_first is not None and not paired(first, jvp_first):
        _settle_unpaired(x, result, first, along, paired, agrees, gvec, show, rtol, atol)

    def right(gradient) -> bool:
        parts = list(gradient) if several else [gradient]
        vec = np.concatenate([_vector(p) for p in parts])
        return all(agrees(u, float(vec @ u), numeric)[0] for u, numeric in checked)
    return result, right


def _settle_unpaired(x, result, u, along, paired, agrees, gvec, show, rtol, atol) -> None:
    """<g, u> and J u differ beyond rounding, yet each is within the finite difference's
    reach of it: find the entries where they differ, and judge each entry with its own
    finite difference, at the exhaustive check's tolerance. An entry that either mode
    gets wrong fails the check; differences that no entry's finite difference can see
    are rounding, and pass."""
    found, _, _ = _bisect_entries(u, paired, show)
    wrong = []
    for i in found:
        e = np.zeros_like(u)
        e[i] = 1.0
        gi, ji = float(gvec[i]), along(e)
        ok_g, numeric, _ = agrees(e, gi, r=rtol, a=atol)
        ok_j = agrees(e, ji, numeric, r=rtol, a=atol)[0]
        if not (ok_g and ok_j):
            wrong.append((i, gi, ji, numeric, ok_g, ok_j))
    if not wrong:
        return
    i, gi, ji, numeric, ok_g, ok_j = wrong[0]
    culprit = "the JVP is" if ok_g else "the gradient is" if ok_j else "both are"
    result.ok = False
    result.max_error = max(abs(gi - numeric) if not ok_g else 0.0,
                           abs(ji - numeric) if not ok_j else 0.0)
    result.mismatch = (f"along random direction 1, the gradient and the JVP differ "
                       f"beyond rounding; at {x.name(i)} the gradient gives {gi:.9g}, the JVP "
                       f"{ji:.9g}, finite differences {numeric:.9g}: {culprit} wrong")
    result.wrong = [x.name(w[0]) for w in wrong]


def _leaves(x) -> list:
    from adjoint.testing import _flatten
    return _flatten(x)


MAX_WRONG = 8  # the bisection stops after finding this many wrong entries


def _bisect_entries(u, fine, show) -> tuple[list[int], list, bool]:
    """The entries where `fine(part)` fails, `part` being u on a subset of its entries
    and zero elsewhere, found by halving u's support: a half that is fine is dropped,
    a half that is not is halved again, down to single entries (about 2 log2(n) calls
    of `fine` per entry). Returns the entries, the blocks whose halves are each fine
    but not together (errors that add up), and whether the search stopped early."""
    found: list[int] = []
    blocks: list = []
    todo = [np.arange(u.size)]
    while todo and len(found) + len(blocks) < MAX_WRONG:
        idx = todo.pop()
        if idx.size == 1:
            found.append(int(idx[0]))
            continue
        failing = []
        for half in (idx[: idx.size // 2], idx[idx.size // 2:]):
            part = np.zeros_like(u)
            part[half] = u[half]
            show(f"locating the wrong entries: searching {half.size}")
            if not fine(part):
                failing.append(half)
        if not failing:
            blocks.append(idx)
        todo.extend(reversed(failing))  # the first half is searched first
    return found, blocks, bool(todo)


def _names(x, found, blocks, more) -> list[str]:
    names = [x.name(i) for i in found]
    names += [f"{x.name(int(b[0]))} .. {x.name(int(b[-1]))} (together)" for b in blocks]
    return names + (["perhaps more"] if more else [])


def _locate(f, args, wrt, positions, result: CheckResult, right) -> None:
    """The first primitive whose rule is wrong where it ran, else the compiler stage."""
    from adjoint.frontend.lower import lower_function
    from adjoint.ir.interp import interpret
    ir = lower_function(f)
    values: dict = {}

    def record(v, x):
        values[v] = x

    calls = [op for op in walk_ops(ir.body) if isinstance(op, Call)]
    interpret(ir, observe=record)(*args)
    for op in calls:  # program order; inside loops, the values of the last iteration
        entry = registry.entry(op.prim)
        if entry is None or entry.vjp is None or any(
                isinstance(a, type(op.result)) and a not in values for a in op.args):
            continue
        operands = [values[a] if isinstance(a, type(op.result)) else a.value for a in op.args]
        if not any(_float_like(x) for x in operands):
            continue
        kwargs = {k: (values[v] if isinstance(v, type(op.result)) else v.value)
                  for k, v in op.kwargs}
        try:
            problem = check_rule(op.prim.fn, *operands, **kwargs)
        except Exception as e:  # a rule that crashes on these values is wrong too
            problem = f"it raised {type(e).__name__}: {e}"
        if problem:
            result.culprit, result.culprit_rule, result.detail = op.loc, op.prim.name, problem
            return
    if right(result.gradient):  # then the JVP is what disagreed
        result.compiler = ("  the gradient is right and the JVP is not: the forward transform "
                           "or the code generator is at fault (see `adjoint emit --mode "
                           "forward`)")
    else:
        result.compiler = _compiler_fault(f, args, wrt, positions, right)


def _compiler_fault(f, args, wrt, positions, right) -> str:
    """Which stage of the compiler is wrong: a pass (the unoptimised gradient is right),
    or the transform and code generation (it is wrong too)."""
    plain, _ = gradient_with_passes(f, args, positions, 0)
    if not right(plain):
        return ("  compiled with no optimisation pass the gradient is wrong too: the reverse "
                "transform or the code generator is at fault (see `adjoint ir --grad` and "
                "`adjoint emit`)")
    found = bisect(f, *args, wrt=positions)
    if found.ok:  # right unoptimised, wrong optimised, yet no single run changes it
        return "  with no optimisation pass the gradient is right; bisecting found no pass"
    return (f"  with no optimisation pass the gradient is right; the first pass after which "
            f"it changes: {found.culprit} (pass run {found.k} of {found.runs})")
