"""The gradient checker: adjoint's gradient against central finite differences, and,
when they disagree, the first source line whose derivative rule is wrong, or, when
every rule is right, the compiler stage at fault: the first optimisation pass after
which the gradient changes (`bisect`, as LLVM's opt-bisect), or the transform itself.

Every derivative rule is a runnable function, so a rule can be checked on its own:
`check_rule(fn, *inputs)` compares the VJP (and the JVP) of primitive `fn` with
finite differences of `fn` through the inner-product identity
<v, J u> = <J^T v, u>, for random directions u and cotangents v. `check` runs the
function once, records the operands every primitive saw, and checks each rule at
those very values, in program order.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from adjoint.ir.core import Call, Loc, walk_ops
from adjoint.rules import registry


@dataclass
class CheckResult:
    ok: bool
    max_error: float
    gradient: object
    numeric: object
    culprit: Loc | None = None
    culprit_rule: str = ""
    detail: str = ""
    compiler: str = ""  # when no rule is wrong: the stage of the compiler at fault

    def __str__(self) -> str:
        if self.ok:
            return f"ok: the gradient matches finite differences (max error {self.max_error:.2e})"
        text = f"the gradient differs from finite differences by {self.max_error:.3g}"
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


def check(f, *args, wrt=0, rtol: float = 1e-5, atol: float = 1e-7) -> CheckResult:
    """Compare adjoint's gradient of `f` with central finite differences; on a mismatch,
    locate the first primitive (in program order) whose rule is wrong where it ran, or,
    every rule being right, the compiler's stage at fault (`bisect`)."""
    from adjoint.api import grad
    from adjoint.frontend.lower import lower_function
    from adjoint.ir.interp import interpret
    from adjoint.testing import numeric_grad
    g = grad(f, wrt)
    # positions, not names, for the finite differences
    positions = g.wrt if isinstance(wrt, tuple) else g.wrt[0]
    got = g(*args)
    want = numeric_grad(f, args, positions)
    pairs = _pairs(got, want, isinstance(wrt, tuple))
    err = _max_diff(pairs)
    ok = all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in pairs)
    result = CheckResult(ok, err, got, want)
    if ok:
        return result
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
            break
    if result.culprit is None:
        result.compiler = _compiler_fault(f, args, wrt, positions, want, rtol, atol)
    return result


def _compiler_fault(f, args, wrt, positions, want, rtol, atol) -> str:
    """Which stage of the compiler is wrong: a pass (the unoptimised gradient is right),
    or the transform and code generation (it is wrong too)."""
    several = isinstance(wrt, tuple)
    plain, _ = gradient_with_passes(f, args, positions, 0)
    pairs = _pairs(plain, want, several)
    if not all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in pairs):
        return (f"  compiled with no optimisation pass the gradient is wrong too (by "
                f"{_max_diff(pairs):.3g}): the reverse transform or the code generator is at "
                f"fault (see `adjoint ir --grad` and `adjoint emit`)")
    found = bisect(f, *args, wrt=positions)
    if found.ok:  # right unoptimised, wrong optimised, yet no single run changes it
        return "  with no optimisation pass the gradient is right; bisecting found no pass"
    return (f"  with no optimisation pass the gradient is right; the first pass after which "
            f"it changes: {found.culprit} (pass run {found.k} of {found.runs})")
