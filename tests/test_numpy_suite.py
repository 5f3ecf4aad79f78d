"""Every derivative rule, through whole programs the compiler writes.

tests/rules/test_registry.py calls each rule's templates as plain Python on its
CASES. Here the same cases (and the argument kinds below: axis ints, negative
and tuples, keepdims, ord, ddof, broadcasting, 0-d and empty arrays, tuple
results) become small programs, one per case, written to a file and compiled
by `adjoint.vjp` and `adjoint.jvp`, so the rule is exercised as the compiler
inlines it, with its folding and its passes. Each program is checked three
ways along a random direction u and cotangent v:

    <v, J u> by central differences  ==  <VJP(v), u>  ==  <v, JVP(u)>
"""
from __future__ import annotations

import importlib.util
import math
import sys
import warnings
import zlib

import numpy as np
import pytest

import adjoint
from adjoint.rules import registry
from tests.rules import test_registry as reg
from tests.rules.test_registry import N, P, U, case

EPS = 1e-6


class D0(reg.Rand):
    """A 0-d array (not a Python float)."""

    def __init__(self):
        super().__init__(-2.0, 2.0, ())

    def draw(self, rng):
        return np.asarray(rng.uniform(self.lo, self.hi))


# argument kinds the registry's CASES do not all reach
EXTRA = {
    "np.sum": [case(N(2, 3, 4), axis=-2), case(N(2, 3, 4), axis=(0, -1), keepdims=True),
               case(N(0, 3), axis=0), case(N(0, 3)), case(np.float64(1.5)),
               case(N(3, 4), axis=None, keepdims=True)],
    "np.exp": [case(D0()), case(N(0, 2))],
    "np.sin": [case(D0())],
    "np.mean": [case(D0()), case(N(2, 3, 4), axis=(-1, 0)), case(N(3, 4), axis=-1, keepdims=True)],
    "np.var": [case(N(3, 4), axis=0, ddof=1), case(N(2, 3, 4), axis=(0, 2), ddof=2),
               case(N(5), ddof=0, keepdims=True)],
    "np.std": [case(N(3, 4), axis=-1, ddof=1), case(N(2, 3, 4), axis=(1, 2), keepdims=True),
               case(reg.CONST, axis=0), case(np.full(3, 0.1))],
    "np.max": [case(N(2, 3, 4), axis=(0, 2)), case(N(3, 4), axis=-1, keepdims=True)],
    "np.prod": [case(N(2, 3, 4), axis=-1), case(N(0, 2), axis=0)],
    "np.cumsum": [case(N(2, 3, 4), axis=-2)],
    "np.linalg.norm": [case(N(3, 4), "nuc"), case(N(3, 4), 2), case(N(3, 4), -2),
                       case(N(3, 4), 1), case(N(3, 4), -1), case(N(3, 4), np.inf),
                       case(N(3, 4), -np.inf), case(N(2, 3, 4), "nuc", (2, 0), True),
                       case(N(2, 3, 4), -np.inf, (-1, -2)), case(N(5), -1),
                       case(N(5), 0.5), case(N(3, 4), 3, -1, True)],
    "np.dot": [case(N(2, 3, 4), N(4)), case(N(2, 3, 4), N(5, 4, 2)), case(N(4), N(2, 4, 3))],
    "np.inner": [case(N(2, 3, 4), N(5, 4)), case(N(4), N(2, 3, 4))],
    "add": [case(N(3, 1, 4), N(2, 1)), case(N(), N(0, 3))],
    "mul": [case(N(2, 1, 3), N(4, 1)), case(D0(), N(3)), case(N(0, 3), N(3))],
    "pow": [case(P(3, 1), N(4)), case(P(3), 0.0), case(P(), 3)],
    "np.power": [case(P(2, 3), N(3)), case(P(3), 0.0)],
    "np.maximum": [case(N(3, 1), N(1, 4))],
    "np.linalg.slogdet": [case(reg.Mat(3)), case(reg.Mat(3, 2))],
    "np.linalg.eigh": [case(N(3, 3)), case(N(2, 3, 3)), case(N(3, 3), "U")],
    "np.linalg.svd": [case(N(3, 3)), case(N(4, 3), full_matrices=False),
                      case(N(2, 3, 4), full_matrices=False), case(N(3, 5), compute_uv=False),
                      case(N(3, 3), hermitian=True), case(N(3, 3), compute_uv=False,
                                                          hermitian=True)],
    "np.linalg.pinv": [case(N(3, 3), hermitian=True), case(reg.Mat(3), rcond=0.05),
                       case(reg.Spectrum((4, 3), [3.0, 1.0, 0.2]), rcond=0.1),
                       case(reg.Spectrum((3, 3), [3.0, -1.0, 0.2], True), rtol=0.1,
                            hermitian=True)],
    "np.linalg.qr": [case(N(3, 3)), case(N(5, 3)), case(N(2, 4, 3))],
    "np.tril": [case(N(3, 4)), case(N(2, 3, 3), -1)],
    "np.triu": [case(N(3, 4), 1)],
    "np.take": [case(N(5), np.array([-1, 7, 2]), mode="clip"),
                case(N(3, 4), np.array([-1, 0, 5]), axis=1, mode="wrap")],
    "r_concat": [case([N(3), N(), N(2)])],
    "c_concat": [case([N(3), N(3, 2)])],
}


def _user_level(e) -> bool:
    """A primitive user code calls (NumPy, math, operators, builtins, np.r_/np.c_), not
    one of the compiler's own helpers (tapes, scatters, unbroadcast: their templates
    are checked in tests/rules)."""
    module = getattr(e.prim.fn, "__module__", None) or ""
    return not module.startswith("adjoint") or e.prim.name in ("r_concat", "c_concat")


def _cases():
    """(name, i, case): the registry's cases (at most 3 per rule: the suite stays fast)
    and all of EXTRA."""
    out = []
    for name in sorted(set(reg.CASES) | set(EXTRA)):
        e = reg.ENTRIES.get(name)
        if e is None or e.vjp is None or not _user_level(e):
            continue
        for i, c in enumerate(reg.CASES.get(name, [])[:3] + EXTRA.get(name, [])):
            out.append((name, i, c))
    return out


def _literal(x) -> bool:
    if isinstance(x, (tuple, list)):
        return all(_literal(e) for e in x)
    if isinstance(x, float) and not math.isfinite(x):
        return False  # repr(inf) is not Python
    return x is None or isinstance(x, (bool, int, float, str)) and not isinstance(
        x, np.floating)


def call_source(k, names, diff, args, kwargs, env):
    """The parameters (a0, a1, ... for the inputs in `diff`), the call's argument texts and
    the parameters' values of program k: every other argument a literal or a constant
    C{k}_<name> set in env."""
    params, call, values = [], [], []

    def operand(value, pname):
        if pname in diff:
            params.append(f"a{len(params)}")
            values.append(value)
            return params[-1]
        if _literal(value):
            return repr(value)
        env[f"C{k}_{pname}"] = value
        return f"C{k}_{pname}"
    for j, a in enumerate(args):
        call.append(operand(a, names[j]))
    for kw, v in kwargs.items():
        call.append(f"{kw}={operand(v, kw)}")
    return params, call, values


def _build(cases, tmp_path):
    """Write one program per case: its differentiable inputs are parameters, every other
    argument a constant of the module; returns [(name, fn, args, wrt)]."""
    lines = ["import numpy as np", "import math", ""]
    env, built = {}, []
    for k, (name, i, c) in enumerate(cases):
        e = reg.ENTRIES[name]
        rng = np.random.default_rng(zlib.crc32(f"suite/{name}/{i}".encode()))
        args, kwargs = c.draw(rng)
        names, inputs = reg.bind_inputs(e, args, kwargs)
        diff = reg.differentiable(e, names, inputs)
        if not diff:
            continue
        params, call, values = call_source(k, names, diff, args, kwargs, env)
        env[f"F{k}"] = e.prim.fn
        lines += [f"def p{k}({', '.join(params)}):", f"    return F{k}({', '.join(call)})", ""]
        built.append((f"{name}{c!r}#{i}", f"p{k}", values))
    module = load_programs(tmp_path / "suite_programs.py", lines, env)
    return [(label, getattr(module, fname), values) for label, fname, values in built]


def load_programs(path, lines, env):
    """Write `lines` to `path` and import it (adjoint reads real source), `env` (the
    constants) set in its namespace."""
    path.write_text("\n".join(lines) + "\n")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(env)
    spec.loader.exec_module(module)
    sys.modules[spec.name] = module  # generated code imports the constants from it
    return module


def _check(label, f, values, rng):
    wrt = tuple(range(len(values)))
    out = f(*values)
    v = reg.rand_like(out, rng)
    u = [reg.rand_like(x, rng) for x in values]
    plus = f(*[reg.axpy(x, EPS, d) for x, d in zip(values, u)])
    minus = f(*[reg.axpy(x, -EPS, d) for x, d in zip(values, u)])
    ju = (reg.flat(plus) - reg.flat(minus)) / (2 * EPS)
    fd = float(reg.flat(v) @ ju)
    tol = 1e-5 * (np.linalg.norm(reg.flat(v)) * np.linalg.norm(ju) + abs(fd)) + 1e-7

    out2, pullback = adjoint.vjp(f, *values, wrt=wrt if len(wrt) > 1 else 0)
    cots = pullback(v)
    cots = cots if len(wrt) > 1 else (cots,)
    for c, x in zip(cots, values):
        assert reg.same_structure(c, x), f"{label}: cotangent shaped {np.shape(c)}"
    rev = sum(reg.inner(c, d) for c, d in zip(cots, u))
    assert abs(rev - fd) <= tol, f"{label}: <VJP(v), u> = {rev!r}, finite differences {fd!r}"

    jvp = adjoint.jvp(f, wrt=wrt if len(wrt) > 1 else 0)
    val, t = jvp(*values, tuple(u) if len(wrt) > 1 else u[0])
    assert reg.same_structure(t, out), f"{label}: tangent shaped {np.shape(t)}"
    fwd = reg.inner(v, t)
    assert abs(fwd - fd) <= tol, f"{label}: <v, JVP(u)> = {fwd!r}, finite differences {fd!r}"
    if len(wrt) > 1:
        _check_each_input(label, f, values, v, u)


def _check_each_input(label, f, values, v, u):
    """With two or more inputs, each one alone, the others constant: a template then
    reads the others' tangents as symbolic zeros (np.average's JVP read a tangent it
    never defined with the weights constant, round 16 C1)."""
    for i in range(len(values)):
        moved = [list(values), list(values)]
        moved[0][i] = reg.axpy(values[i], EPS, u[i])
        moved[1][i] = reg.axpy(values[i], -EPS, u[i])
        ju = (reg.flat(f(*moved[0])) - reg.flat(f(*moved[1]))) / (2 * EPS)
        fd = float(reg.flat(v) @ ju)
        tol = 1e-5 * (np.linalg.norm(reg.flat(v)) * np.linalg.norm(ju) + abs(fd)) + 1e-7
        _, t = adjoint.jvp(f, wrt=i)(*values, u[i])
        fwd = reg.inner(v, t)
        assert abs(fwd - fd) <= tol, \
            f"{label}, input {i} alone: <v, JVP(u)> = {fwd!r}, finite differences {fd!r}"
        _, pullback = adjoint.vjp(f, *values, wrt=i)
        rev = reg.inner(pullback(v), u[i])
        assert abs(rev - fd) <= tol, \
            f"{label}, input {i} alone: <VJP(v), u> = {rev!r}, finite differences {fd!r}"


CASES = _cases()


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    return _build(CASES, tmp_path_factory.mktemp("suite"))


def test_the_suite_reaches_every_rule():
    names = {name for name, _, _ in CASES}
    missing = [e.prim.name for e in reg.ENTRIES.values()
               if e.vjp is not None and _user_level(e) and e.prim.name not in names
               and e.prim.name not in reg.EXCLUDED]
    assert not missing, f"rules with no program in the suite: {missing}"


@pytest.mark.parametrize("part", range(4))
def test_rules_through_compiled_programs(programs, part):
    """FD == VJP == JVP for every program (in four parts, to keep failures readable)."""
    failures = []
    for k, (label, f, values) in enumerate(programs):
        if k % 4 != part:
            continue
        rng = np.random.default_rng(zlib.crc32(label.encode()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                _check(label, f, values, rng)
            except Exception as e:  # noqa: BLE001 - collect every failing rule, then report
                failures.append(f"{label}: {type(e).__name__}: {str(e)[:300]}")
    assert not failures, "\n".join(failures)


def _check_generic(label, f, values, rng):
    """<VJP(v), u> against differences, through the generic source of f's vjp (no example
    arguments, so no kinds: the code must read a call's form off the call, as an svd
    with compute_uv=False, round 19's C2)."""
    wrt = tuple(range(len(values)))
    namespace = dict(sys.modules[f.__module__].__dict__)
    exec(compile(adjoint.source(f, wrt=wrt, mode="vjp"), f"<generic {label}>", "exec"),
         namespace)
    out, residuals = namespace[f.__name__ + "_fwd"](*values)
    np.testing.assert_allclose(reg.flat(out), reg.flat(f(*values)), rtol=1e-12,
                               err_msg=f"{label}: the forward sweep's value")
    v = reg.rand_like(out, rng)
    u = [reg.rand_like(x, rng) for x in values]
    ju = (reg.flat(f(*[reg.axpy(x, EPS, d) for x, d in zip(values, u)])) -
          reg.flat(f(*[reg.axpy(x, -EPS, d) for x, d in zip(values, u)]))) / (2 * EPS)
    fd = float(reg.flat(v) @ ju)
    tol = 1e-5 * (np.linalg.norm(reg.flat(v)) * np.linalg.norm(ju) + abs(fd)) + 1e-7
    cots = namespace[f.__name__ + "_bwd"](*residuals, v)
    cots = cots if len(wrt) > 1 else (cots,)
    rev = sum(reg.inner(c, d) for c, d in zip(cots, u))
    assert abs(rev - fd) <= tol, f"{label}: generic <VJP(v), u> = {rev!r}, differences {fd!r}"


@pytest.mark.parametrize("part", range(4))
def test_rules_through_generic_code(programs, part):
    """Every program through code generated with no example arguments: the same numbers,
    or a located refusal."""
    failures = []
    for k, (label, f, values) in enumerate(programs):
        if k % 4 != part:
            continue
        rng = np.random.default_rng(zlib.crc32(("generic" + label).encode()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                _check_generic(label, f, values, rng)
            except adjoint.AdjointError as e:
                if e.loc is None or "internal" in str(e):
                    failures.append(f"{label}: unlocated or internal: {str(e)[:300]}")
            except Exception as e:  # noqa: BLE001 - collect every failing rule, then report
                failures.append(f"{label}: {type(e).__name__}: {str(e)[:300]}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- rules at their edges

POWER_AT_ZERO = """
import math

import numpy as np


def op(x, p):
    return x ** p


def npp(x, p):
    return np.sum(np.power(x, p))


def mp(x, p):
    return math.pow(x, p)


def bp(x, p):
    return pow(x, p)


def fabs(x):
    return math.fabs(x[0]) - math.fabs(x[1]) + math.fabs(x[2])
"""


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    path = tmp_path_factory.mktemp("edges") / "edge_programs.py"
    path.write_text(POWER_AT_ZERO)
    spec = importlib.util.spec_from_file_location("edge_programs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("p, slope", [(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, 0.0), (1, 1.0),
                                      (2, 0.0)])
@pytest.mark.parametrize("fn", ["op", "npp", "mp", "bp"])
def test_power_at_zero_is_the_derivative_of_a_constant_not_nan(edges, fn, p, slope):
    """d/dx x ** p at x = 0 is p * 0 ** (p - 1): 0 for p = 0 (x ** 0 is the constant 1,
    where the rule computed 0 * inf), 1 for p = 1, 0 for p >= 2; in both modes, and
    with the exponent a variable too."""
    f = getattr(edges, fn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero on the way
        g = adjoint.grad(f)(0.0, p)
        _, t = adjoint.jvp(f)(0.0, p, 1.0)
        if isinstance(p, float):
            gx, _ = adjoint.grad(f, wrt=(0, 1))(0.0, p)
            assert gx == slope
    assert g == slope and t == slope


def test_power_with_a_zero_exponent_among_others(edges):
    x = np.array([0.0, 0.0, 2.0, 0.5])
    p = np.array([0.0, 1.0, 0.0, 2.5])
    g = adjoint.grad(edges.npp)(x, p)
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0, 2.5 * 0.5 ** 1.5])
    _, t = adjoint.jvp(edges.npp)(x, p, np.ones(4))
    assert t == np.sum(g)


def test_math_fabs_of_array_elements(edges):
    """math.fabs(x[0]): x[0] is a NumPy float, whose comparisons are NumPy bools (the
    rule subtracted them and raised TypeError)."""
    x = np.array([-1.5, 2.0, 0.0])
    np.testing.assert_array_equal(adjoint.grad(edges.fabs)(x), [-1.0, -1.0, 0.0])
    assert adjoint.jvp(edges.fabs)(x, np.array([1.0, 10.0, 100.0]))[1] == -11.0
