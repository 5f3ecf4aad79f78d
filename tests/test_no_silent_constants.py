"""No silent constants: a value computed from an active input is inactive only
when its op is registered as non-differentiable or it holds ints or bools.

The walk below calls every public callable of `numpy`, `numpy.linalg` and
`math` that accepts one array (one float, for math) on an active argument, in a
small program written to a file, and asks for the gradient. Each either has a
rule and the gradient matches central differences, or the compiler raises an
AdjointError located at the call's line. A gradient that silently reads the
call as a constant (as slogdet, eigh, svd and qr did) fails here.
"""
from __future__ import annotations

import importlib.util
import inspect
import math
import re
import warnings

import numpy as np
import pytest

import adjoint
from adjoint.errors import AdjointError, NonDifferentiableError, UnsupportedError
from adjoint.rules import registry
from adjoint.testing import check_grad, numeric_grad

# callables that print, touch files or the test runner, or return garbage
SKIP = re.compile(r"save|load|print|info|show|test|file|txt|genfrom|memmap|seterr|setbuf|"
                  r"^empty|get_include|typename|who|deprecate|source|lookfor|disp")

_r = np.random.default_rng(3)
# well conditioned; then inside (0, 1) (arcsin, arctanh), then above 1 (arccosh)
XS = [_r.uniform(0.1, 0.9, size=(3, 3)) + np.diag([2.0, 3.0, 4.0]),
      _r.uniform(0.1, 0.9, size=(3, 3)), _r.uniform(1.2, 1.9, size=(3, 3))]
SS = [0.6, 1.7]
X = XS[0]


def _public(module, prefix):
    out = []
    for name in sorted(dir(module)):
        fn = getattr(module, name)
        if name.startswith("_") or SKIP.search(name) or not callable(fn) or inspect.isclass(fn):
            continue
        out.append((prefix + name, fn))
    return out


def _program(name, fn, xs):
    """(x, the body of `f(x)` that calls `name` on x and reduces what it returns to a
    real number), x the first of `xs` where that is finite; None if the callable does
    not take one of these arguments alone."""
    for x in xs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                r = fn(x.copy() if isinstance(x, np.ndarray) else x)
            except Exception:
                continue
        body = _body(name, r, x)
        if body is not None and np.all(np.isfinite(_reduce(r))):
            return x, body
    return None


def _reduce(r):
    if isinstance(r, tuple):
        return [np.sum(e) for e in r if np.asarray(e).dtype.kind in "fiub"]
    return np.sum(r)


def _body(name, r, x):
    if isinstance(r, tuple):
        parts = [f"np.sum(r[{i}])" for i, e in enumerate(r)
                 if np.asarray(e).dtype.kind in "fiub"]
        return f"    r = {name}(x)\n    return {' + '.join(parts) or '0.0'}\n" if parts else None
    if np.asarray(r).dtype.kind not in "fiub" or callable(r):
        return None
    return f"    return {'np.sum(' if isinstance(x, np.ndarray) else 'float('}{name}(x))\n"


def _programs(tmp_path_factory):
    cases = [(n, f, XS) for n, f in _public(np, "np.") + _public(np.linalg, "np.linalg.")]
    cases += [(n, f, SS) for n, f in _public(math, "math.")]
    found = [(n, *p) for n, f, xs in cases if (p := _program(n, f, xs)) is not None]
    src = "import math\n\nimport numpy as np\n\n"
    lines = {}
    for i, (name, x, body) in enumerate(found):
        src += f"\ndef f_{i}(x):\n"
        lines[i] = src.count("\n") + 1
        src += body
    path = tmp_path_factory.mktemp("walk") / "walked.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("walked_programs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [(name, getattr(module, f"f_{i}"), x, str(path), lines[i])
            for i, (name, x, body) in enumerate(found)]


def _fd(f, x, eps=1e-6):
    if not isinstance(x, np.ndarray):
        return (f(x + eps) - f(x - eps)) / (2 * eps)
    out = np.zeros_like(x)
    for j in range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = eps
        out.flat[j] = (f(x + e) - f(x - e)) / (2 * eps)
    return out


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    return _programs(tmp_path_factory)


def test_every_one_argument_callable_has_a_checked_rule_or_raises_where_it_is_called(walked):
    assert len(walked) > 150  # the walk reaches numpy, numpy.linalg and math
    silent, unlocated, escaped = [], [], []
    for name, f, x, path, line in walked:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                g = adjoint.grad(f)(x)
            except AdjointError as e:
                if e.loc is None or e.loc.filename != path or e.loc.line < line:
                    unlocated.append((name, str(e)[:200]))
                continue
            except Exception as e:  # noqa: BLE001 - anything else escaping is the failure
                escaped.append((name, f"{type(e).__name__}: {str(e)[:200]}"))
                continue
            want = _fd(f, x)
        if np.shape(g) != np.shape(want) or not np.allclose(g, want, rtol=1e-5, atol=1e-6,
                                                            equal_nan=True):
            silent.append((name, g, want))
    assert not silent, f"gradients that differ from finite differences: {silent}"
    assert not unlocated, f"errors without the call's location: {unlocated}"
    assert not escaped, f"exceptions other than AdjointError: {escaped}"


def test_forward_mode_agrees_with_reverse_mode_on_the_walk(walked):
    """For the callables with a gradient, the JVP along a direction is <grad, u>."""
    u = np.random.default_rng(4).normal(size=X.shape)
    checked = 0
    for name, f, x, path, line in walked:
        if not isinstance(x, np.ndarray):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                g = adjoint.grad(f)(x)
            except AdjointError:
                continue
            if not np.all(np.isfinite(g)):
                continue
            try:
                _, d = adjoint.jvp(f)(x, u)
            except AdjointError as e:
                # forward mode may refuse where reverse mode found no cotangent reaching
                # the call (a tuple of int arrays whose kind is not known to be ints)
                assert e.loc is not None and e.loc.filename == path, name
                continue
        assert np.isclose(d, np.sum(g * u), rtol=1e-8, atol=1e-10), name
        checked += 1
    assert checked > 60


def test_tuple_results_of_unknown_functions_are_not_constants(tmp_path):
    """A namedtuple of floats from a function without a rule raises, where slogdet's
    did not (its kind had the namedtuple's type name, read as not floating)."""
    path = tmp_path / "m.py"
    path.write_text("import numpy as np\n\n\ndef f(x):\n    r = np.frexp(x)\n"
                    "    return np.sum(r[0])\n")
    spec = importlib.util.spec_from_file_location("tuple_results", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    with pytest.raises(NonDifferentiableError) as e:
        adjoint.grad(m.f)(np.array([1.5, 3.0]))
    assert e.value.loc.line == 5 and "np.frexp" in str(e.value)


def test_index_tricks_of_numpy(tmp_path):
    """np.r_ and np.c_ have rules; np.s_ and np.index_exp are the index itself; another
    object's __getitem__ with a computed index is refused at its line."""
    path = tmp_path / "tricks.py"
    path.write_text(
        "import numpy as np\n\n\n"
        "def r(x, n):\n    return np.sum(np.r_[0:n, x, 2.0 * x, 1.5] ** 2 * np.arange(n + 7.0))\n\n\n"
        "def c(x):\n    return np.sum(np.c_[x, np.outer(x, x), np.ones(3)] ** 3)\n\n\n"
        "def s(x):\n    return np.sum(x[np.s_[1:]] ** 2) + np.sum(x[np.index_exp[:2]] ** 3)\n\n\n"
        "def mgrid(x):\n    return np.sum(np.mgrid[0.0:x[0]:3j])\n\n\n"
        "def directive(x):\n    return np.sum(np.r_['0,2', x, x])\n")
    spec = importlib.util.spec_from_file_location("index_tricks", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    x = np.array([0.5, -1.2, 2.0])
    u = np.array([0.3, 0.1, -0.7])
    for f, args in [(m.r, (x, 2)), (m.c, (x,)), (m.s, (x,))]:
        g = check_grad(f, *args)
        _, d = adjoint.jvp(f)(*args, u)
        assert np.isclose(d, np.sum(g * u))
    # by hand: d/dx sum(r_[0, 1, x, 2x, 1.5]**2 * w) = 2 x w[2:5] + 8 x w[5:8]
    np.testing.assert_allclose(adjoint.grad(m.r)(x, 2), 2 * x * [2, 3, 4] + 8 * x * [5, 6, 7])
    assert not re.search(r"import .*\br_\b", adjoint.source(m.r, args=(x, 2)))
    text = path.read_text().splitlines()
    for f, what in [(m.mgrid, "np.mgrid"), (m.directive, "'0,2'")]:
        with pytest.raises(UnsupportedError) as e:
            adjoint.grad(f)(x)
        line = next(i + 1 for i, t in enumerate(text) if what in t)
        assert e.value.loc.line == line and e.value.hint


def test_a_plain_object_read_from_another_module_is_imported_from_it(tmp_path):
    """`mod.W` (an array of another module) is imported from `mod` in generated code,
    not from the module of the function."""
    (tmp_path / "weights_mod.py").write_text("import numpy as np\nW = np.array([2.0, 3.0])\n")
    (tmp_path / "user_mod.py").write_text(
        "import weights_mod\n\n\ndef f(x):\n    return (weights_mod.W * x * x).sum()\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        import user_mod
        src = adjoint.source(user_mod.f, args=(np.ones(2),))
        assert "from weights_mod import W" in src
        np.testing.assert_allclose(adjoint.grad(user_mod.f)(np.ones(2)), [4.0, 6.0])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("user_mod", None)
        sys.modules.pop("weights_mod", None)


def test_every_registered_callable_without_a_rule_is_refused_when_a_gradient_reaches_it():
    """The registry holds three kinds of entries: rules (checked in tests/rules), the
    declared non-differentiable ones (ints, bools, piecewise constants: checked in
    tests/rules), and callables met in user code without a rule. None of the last
    kind may be folded or dropped as if it were known."""
    for e in registry.entries():
        module = getattr(e.prim.fn, "__module__", None) or ""
        if e.vjp is None and e.jvp is None and not e.nondiff and not module.startswith("adjoint"):
            assert not e.pure, f"{e.prim.name}: no rule, yet declared a pure known primitive"


@pytest.mark.parametrize("body, grad", [
    ("    z = np.exp(1j * x)\n    return np.imag(z)\n", np.cos),  # imag cut the chain: 0
    ("    z = x * (1.0 + 1j)\n    return np.abs(z * z)\n", lambda x: 4 * x),  # no conjugate
    ("    z = 2j * x\n    return np.real(z * z)\n", lambda x: -8 * x),  # a complex literal
])
def test_a_complex_value_made_from_a_differentiated_one_is_right(tmp_path, body, grad):
    """A complex intermediate got plausible wrong gradients (0 for imag(exp(1j x)), no
    conjugate in abs), then was refused; rules/complex.py differentiates it."""
    path = tmp_path / "c.py"
    path.write_text("import numpy as np\n\n\ndef f(x):\n" + body)
    spec = importlib.util.spec_from_file_location("complex_values", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    assert adjoint.grad(m.f)(0.7) == pytest.approx(grad(0.7))
    assert adjoint.jvp(m.f)(0.7, 1.0)[1] == pytest.approx(grad(0.7))


def test_generic_code_refuses_a_write_into_an_array_of_unknown_dtype(tmp_path):
    """Without example arguments, `np.arange(n)` may hold ints (n an int) or floats: a
    differentiated value written into it is truncated or not. Refused, not guessed; with
    a dtype the write is differentiated."""
    path = tmp_path / "unknown_dtype.py"
    path.write_text("import numpy as np\n\n\ndef f(x, n):\n    y = np.arange(n)\n"
                    "    y[1] = 10 * x\n    return np.sum(y * x)\n\n\n"
                    "def g(x, n):\n    y = np.arange(n, dtype=float)\n"
                    "    y[1] = 10 * x\n    return np.sum(y * x)\n")
    spec = importlib.util.spec_from_file_location("unknown_dtype", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    with pytest.raises(adjoint.UnsupportedError, match="dtype") as e:
        adjoint.source(m.f, wrt=0)
    assert e.value.loc.line == 6
    namespace = dict(vars(m))
    exec(compile(str(adjoint.source(m.g, wrt=0)), "<generic>", "exec"), namespace)
    np.testing.assert_allclose(namespace["g_grad"](0.7, 3), 0.0 + 2 * 7.0 + 2.0)
    assert adjoint.grad(m.f)(0.73, 3) == 0 + 7 + 2  # observed: an int array, truncated


@pytest.mark.parametrize("made", ["x * np.exp(1j * np.arange(3.0))", "x.astype(complex)",
                                  "np.asarray(x, dtype='complex64') * 2.0", "np.fft.rfft(x)"])
def test_generic_code_refuses_a_complex_value_made_from_a_literal(tmp_path, made):
    """Without example arguments no kind says that `np.exp(1j * t)` is complex: the
    literal does (a complex dtype, a transform), and a differentiated value multiplied by
    it is refused: it gave a complex gradient for abs(z * z), and the real rule of np.abs
    for a spectrum's (round 16: the generic code of a power spectrum was wrong)."""
    path = tmp_path / "complex_generic.py"
    path.write_text(f"import numpy as np\n\n\ndef f(x):\n    z = {made}\n"
                    "    return np.sum(np.abs(z * z))\n")
    spec = importlib.util.spec_from_file_location("complex_generic", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    with pytest.raises(NonDifferentiableError, match="complex") as e:
        adjoint.source(m.f)
    assert e.value.loc.line in (5, 6)


# int arrays followed through loops, copies, *_like and arithmetic (adversarial round 4)
INT_ARRAY_BODIES = {
    "for_loop": "a = np.zeros(3, dtype=int)\n    for i in range(3):\n        a[i] = x[i] * 10.0",
    "while_loop": "a = np.zeros(3, dtype=int)\n    i = 0\n    while i < 3:\n"
                  "        a[i] = x[i] * 10.0\n        i += 1",
    "zeros_like": "a = np.zeros_like(x, dtype=int)\n    a[0] = x[0] * 10.0",
    "copy": "a = np.arange(3).copy()\n    a[0] = x[0] * 10.0",
    "arithmetic": "a = np.arange(3) * 2\n    a[0] = x[0] * 10.0",
    "branch": "a = np.zeros(3, dtype=int)\n    if x[1] > 0:\n        a = a + 1\n"
              "    a[0] = x[0] * 10.0",
    "bool_loop": "a = np.zeros(3, dtype=bool)\n    for i in range(3):\n"
                 "        a[i] = x[i] * 10.0",
    "float_full": "a = np.full(3, 0.5)\n    a[0] = x[0] * 10.0",
    "from_list": "L = [np.zeros(3, dtype=int)]\n    a = L[0]\n    a[0] = x[0] * 10.0",
    "like_int_param": "a = np.zeros_like(n)\n    a[0] = x[0] * 10.0",
}


@pytest.mark.parametrize("name", sorted(INT_ARRAY_BODIES))
def test_generic_code_is_right_or_refuses_writes_into_int_arrays(tmp_path, name):
    """Generic code (no example arguments) follows dtypes by construction: a float
    written into an int array carries no derivative; where the dtype is not known, the
    write is refused at its line."""
    path = tmp_path / f"int_{name}.py"
    path.write_text("import numpy as np\n\n\ndef f(x, n):\n    " + INT_ARRAY_BODIES[name] +
                    "\n    return np.sum(a * x)\n")
    spec = importlib.util.spec_from_file_location(f"int_{name}", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    x, n = np.array([0.55, -1.23, 0.77]), np.array([1, 2, 3])
    try:
        text = str(adjoint.source(m.f, wrt=0))
    except adjoint.UnsupportedError as e:
        assert name in ("from_list", "like_int_param") and "dtype" in str(e)
        assert e.loc.line >= 5
        return
    namespace = dict(vars(m))
    exec(compile(text, "<generic>", "exec"), namespace)
    np.testing.assert_allclose(namespace["f_grad"](x, n), numeric_grad(m.f, (x, n), 0),
                               atol=1e-6)


def test_a_merge_of_dicts_that_are_not_displays_is_refused(tmp_path):
    """`p | q` of dicts was the registry's bitwise `|`, which passes no gradient: the
    gradient was zero (round 10, W2). A display on the right is a merge lowering knows
    (enumerated: merge-display); two dicts of unknown keys are refused at the `|`."""
    path = tmp_path / "merge.py"
    path.write_text("import numpy as np\n\n\ndef f(p, q):\n    r = p | q\n"
                    "    return np.sum(r['w'] * r['v'])\n")
    spec = importlib.util.spec_from_file_location("dict_merge", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    p, q = {"w": np.array([0.3, -0.7])}, {"v": np.array([1.5, 2.0])}
    calls = (lambda: adjoint.grad(m.f)(p, q), lambda: adjoint.jvp(m.f)(p, q, p),
             lambda: adjoint.source(m.f))
    for call in calls:
        with pytest.raises(NonDifferentiableError, match="dict merge") as e:
            call()
        assert e.value.loc.line == 5


def _int_leaf_exponent(x, t):
    a, k = t
    return np.sum(x ** k) * a


def _int_leaf_dict(x, p):
    return np.sum(x ** p["k"] * p["scale"]) * p["a"]


def test_an_int_leaf_of_a_container_has_no_gradient():
    """An int inside a tuple or dict argument (an exponent, a count) gets 0, as an int
    argument is refused: x ** k's rule has a derivative in k, of k's float extension,
    which is no gradient of an int (round 16's S4 gave k -0.1004)."""
    x = np.array([0.5, -1.2, 0.8, 1.1])
    g = adjoint.grad(_int_leaf_exponent, wrt=1)(x, (0.5, 2))
    assert g == (pytest.approx(np.sum(x ** 2)), 0.0) and type(g[1]) is float
    p = {"a": 0.5, "k": 3, "scale": np.array([1, 2, 0, 1])}
    value, g = adjoint.value_and_grad(_int_leaf_dict, wrt=1)(x, p)
    assert value == pytest.approx(_int_leaf_dict(x, p))
    assert g["a"] == pytest.approx(np.sum(x ** 3 * p["scale"])) and g["k"] == 0.0
    np.testing.assert_array_equal(g["scale"], np.zeros(4))
    _, pullback = adjoint.vjp(_int_leaf_dict, x, p, wrt=(0, 1))
    dx, dp = pullback(1.0)
    np.testing.assert_allclose(dx, 0.5 * 3 * x ** 2 * p["scale"])
    assert dp["k"] == 0.0
    # round 17: the generated code itself gives the int no cotangent (an emitted file
    # returns it as it is), a tangent given for an int is a constant's, and the Hessian
    # has no column for it
    namespace = dict(globals())
    exec(compile(adjoint.source(_int_leaf_dict, wrt=1, args=(x, p)), "<emitted>", "exec"),
         namespace)
    assert namespace["_int_leaf_dict_grad"](x, p)["k"] == 0.0
    tangent = {"a": 1.0, "k": 3, "scale": np.zeros(4)}
    assert adjoint.jvp(_int_leaf_dict, wrt=1)(x, p, tangent)[1] == pytest.approx(
        np.sum(x ** 3 * p["scale"]))
    q = {"w": 1.5, "k": 2}
    H = adjoint.hessian(lambda_free_quadratic)(q, x)
    assert H == {"w": {"w": pytest.approx(2 * np.sum(x ** 2))}}


def lambda_free_quadratic(q, x):
    return q["w"] ** 2 * np.sum(x ** q["k"])


def _grid_from(a):
    return np.sum(np.arange(a, a + 2.5, 0.5) ** 2)  # a, a + 0.5, ..., a + 2


def _grid_step(a):
    return np.sum(np.arange(0.0, 2.0, a) ** 2)  # 0, a, 2a, 3a, 4a at a = 0.45


def _learned_offset(x):
    t = np.arange(x[0], x[0] + 3.0)
    return np.sum(np.sin(t) * x)


def _with_step(a, b):
    y, step = np.linspace(a, b, 3, retstep=True)  # <- no rule
    return step * np.sum(y)


def test_arange_of_a_float_that_carries_a_gradient():
    """np.arange was declared non-differentiable: a gradient through a float start or
    step was silently 0 (round 16's S2). Its values are start + step * i."""
    np.testing.assert_allclose(adjoint.grad(_grid_from)(0.3), 2 * np.sum(0.3 + 0.5 * np.arange(5)))
    np.testing.assert_allclose(adjoint.grad(_grid_step)(0.45), 2 * 0.45 * np.sum(np.arange(5) ** 2))
    x = np.array([0.2, 1.0, -0.5])
    check_grad(_learned_offset, x)
    with pytest.raises(NonDifferentiableError, match="retstep") as e:  # round 16's C4
        adjoint.grad(_with_step, wrt=(0, 1))(0.3, 1.7)
    assert e.value.loc.line == _with_step.__code__.co_firstlineno + 1
