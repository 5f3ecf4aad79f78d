"""`*rest` in the differentiated function's signature, and namedtuples built inside f
(issue 15). wrt positions past the named parameters select rest's arguments, as JAX's
argnums do; one compilation per number of extra arguments. Each gradient is checked
by adjoint.testing.check_program (central differences in float64, the value against f,
jvp against vjp) and against the formula by hand; hvp against differences of the
gradient; each refusal is located."""
import collections
import dataclasses
import functools
import inspect
import os
import typing
from pathlib import Path

import numpy as np
import pytest

import adjoint
from adjoint import AdjointError, UnsupportedError
from adjoint.testing import check_program

X = np.array([0.5, -1.0, 2.0])
A = np.array([1.0, 0.3, -0.7])
B = np.array([0.2, -1.5, 0.4])
C = np.array([-0.6, 0.9, 1.1])
V = np.array([0.3, 0.7, -0.2])
GOLDEN = Path(__file__).parent / "golden" / "varargs_mlp_grad.py"


def mlp(x, *layers):  # the golden's program: keep it first (its lines are quoted)
    for W, b in layers:
        x = np.tanh(W @ x + b)
    return np.sum(x ** 2)


def test_varargs_mlp_golden():
    """The gradient file keeps f's signature, `def mlp_grad(x, *layers, out_bar=1.0)`:
    regenerate with ADJOINT_UPDATE_GOLDEN=1 after an intended change."""
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(3, 3)), rng.normal(size=3)) for _ in range(2)]
    text = adjoint.source(mlp, wrt=(0, 1, 2), args=(X, *layers))
    body = text.split("\n", 1)[1]
    if os.environ.get("ADJOINT_UPDATE_GOLDEN"):
        GOLDEN.write_text(text.split("\n", 1)[0].split(" from ")[0] +
                          " from tests/test_varargs.py:mlp.\n" + body)
    assert body == GOLDEN.read_text().split("\n", 1)[1]
    namespace = {}
    exec(compile(text, str(GOLDEN), "exec"), namespace)
    got = namespace["mlp_grad"](X, *layers)
    want = adjoint.grad(mlp, wrt=(0, 1, 2))(X, *layers)
    assert np.allclose(got[0], want[0])
    for g, w in zip(got[1:], want[1:]):
        assert all(np.allclose(a, b) for a, b in zip(g, w))


def star_sum(x, *rest):
    s = np.sum(x ** 2)
    for r in rest:
        s = s + np.sum(r * x)
    return s


def located(error, f, at: str):
    """The error names f's file and the line of f's source holding `at`, with a hint."""
    lines, first = inspect.getsourcelines(f)
    line = first + next(i for i, text in enumerate(lines) if at in text)
    text = str(error)
    assert f"{__file__}:{line}:" in text, text
    assert "hint:" in text, text


def numeric_hvp(f, args, v, wrt=0, eps=1e-5):
    g = adjoint.grad(f, wrt=wrt)

    def at(t):
        moved = list(args)
        moved[wrt] = args[wrt] + t * v
        return g(*moved)
    return (at(eps) - at(-eps)) / (2 * eps)


# ---------------------------------------------------------------- *rest: first order

@pytest.mark.parametrize("extras", [(), (A,), (A, B), (A, B, C)])
def test_star_rest_against_differences_and_by_hand(extras):
    check_program(star_sum, X, *extras)
    # d/dx = 2x + sum(rest); d/d rest[i] = x
    wrt = tuple(range(1 + len(extras)))
    got = adjoint.grad(star_sum, wrt=wrt)(X, *extras)
    assert len(got) == len(wrt)
    assert np.allclose(got[0], 2 * X + sum(extras, np.zeros(3)))
    for g in got[1:]:
        assert np.allclose(g, X)


def test_positions_past_the_named_parameters_select_rest_arguments():
    g = adjoint.grad(star_sum, wrt=2)(X, A, B)  # one position: one array, as JAX gives
    assert isinstance(g, np.ndarray) and np.allclose(g, X)
    one = adjoint.grad(star_sum, wrt=(2,))(X, A, B)
    assert isinstance(one, tuple) and len(one) == 1 and np.allclose(one[0], X)
    dx, dc = adjoint.grad(star_sum, wrt=(0, 3))(X, A, B, C)
    assert np.allclose(dx, 2 * X + A + B + C) and np.allclose(dc, X)
    value, db = adjoint.value_and_grad(star_sum, wrt=2)(X, A, B)
    assert np.isclose(value, star_sum(X, A, B)) and np.allclose(db, X)
    with pytest.raises(AdjointError, match="wrt=3 does not name a parameter"):
        adjoint.grad(star_sum, wrt=3)(X, A, B)


def test_a_new_number_of_extra_arguments_compiles_again():
    g = adjoint.grad(star_sum)
    for extras in [(A, B), (A, B, C), (A,), (), (A, B)]:
        assert np.allclose(g(X, *extras), 2 * X + sum(extras, np.zeros(3)))
    two = adjoint.source(star_sum, args=(X, A, B))
    three = adjoint.source(star_sum, args=(X, A, B, C))
    # the file is called as f is: an extra argument is refused, not taken as out_bar
    assert "def star_sum_grad(x, *rest, out_bar=1.0):" in two
    assert "    rest_0, rest_1 = rest\n" in two and "rest_0, rest_1, rest_2 = rest" in three
    namespace = {}
    exec(compile(two, "<two>", "exec"), namespace)
    assert np.allclose(namespace["star_sum_grad"](X, A, B), 2 * X + A + B)
    assert np.allclose(namespace["star_sum_grad"](X, A, B, out_bar=2.0), 2 * (2 * X + A + B))
    with pytest.raises(TypeError, match="generated for 2 arguments in \\*rest, not 3"):
        namespace["star_sum_grad"](X, A, B, C)


def test_jvp_and_vjp():
    value, slope = adjoint.jvp(star_sum)(X, A, B, V)
    assert np.isclose(value, star_sum(X, A, B))
    assert np.isclose(slope, np.dot(2 * X + A + B, V))
    _, slope_b = adjoint.jvp(star_sum, wrt=2)(X, A, B, V)
    assert np.isclose(slope_b, np.dot(X, V))
    out, pullback = adjoint.vjp(star_sum, X, A, B, wrt=(0, 2))
    dx, db = pullback(2.0)
    assert np.isclose(out, star_sum(X, A, B))
    assert np.allclose(dx, 2 * (2 * X + A + B)) and np.allclose(db, 2 * X)


def weighted(x, *rest):
    return np.sum(np.sin(x) * x) + sum(np.sum(r * r * x ** 2) for r in rest)


def test_second_order():
    args = (X, A, B)
    # d2/dx2 = diag(2 cos x - x sin x + 2 sum r^2)
    h = adjoint.hessian(weighted)(*args)
    assert np.allclose(h, np.diag(2 * np.cos(X) - X * np.sin(X) + 2 * (A * A + B * B)))
    assert np.allclose(adjoint.hvp(weighted)(*args, V), numeric_hvp(weighted, args, V),
                       rtol=1e-5, atol=1e-7)
    # in rest[0]: d2/da2 = diag(2 x^2)
    assert np.allclose(adjoint.hvp(weighted, wrt=2)(*args, V), 2 * X ** 2 * V)
    assert np.allclose(adjoint.hvp(weighted, wrt=2)(*args, V),
                       numeric_hvp(weighted, args, V, wrt=2), rtol=1e-5, atol=1e-7)

    def scalar(t, *rest):
        return t ** 3 * rest[0] + t * rest[1]
    assert np.isclose(adjoint.grad(adjoint.grad(scalar))(1.5, 2.0, 0.5), 6 * 1.5 * 2.0)
    assert np.isclose(adjoint.grad(adjoint.grad(scalar))(1.5, 2.0, 0.5, 9.0), 6 * 1.5 * 2.0)


def scaled(x, y=2.0, *rest, scale=1.0):
    total = y * np.sum(x ** 3)
    for r in rest:
        total = total + np.sum(r * r * x)
    return scale * total


def test_defaults_and_keyword_only_parameters_around_rest():
    dx, dy, da, db = adjoint.grad(scaled, wrt=(0, 1, 2, 3))(X, 3.0, A, B, scale=2.0)
    assert np.allclose(dx, 2.0 * (3 * 3.0 * X ** 2 + A * A + B * B))
    assert np.isclose(dy, 2.0 * np.sum(X ** 3))
    assert np.allclose(da, 2.0 * 2 * A * X) and np.allclose(db, 2.0 * 2 * B * X)
    assert np.allclose(adjoint.grad(scaled, wrt="y")(X, 4.0, A, scale=1.0), np.sum(X ** 3))
    check_program(functools.partial(scaled, scale=0.5), X, 3.0, A, B)
    text = adjoint.source(scaled, args=(X, 3.0, A))
    assert "def scaled_grad(x, y=2.0, *rest, scale=1.0, out_bar=1.0):" in text
    namespace = {}
    exec(compile(text, "<scaled>", "exec"), namespace)
    assert np.allclose(namespace["scaled_grad"](X, 3.0, A, scale=2.0),
                       2.0 * (3 * 3.0 * X ** 2 + A * A))


def test_an_empty_rest_whose_loop_body_nothing_types_is_refused_at_its_line():
    # with no extra argument the loop never runs, and `r * r` may repeat a sequence:
    # refused where it is (a loop over any constant empty tuple is, today)
    with pytest.raises(UnsupportedError) as info:
        adjoint.grad(scaled)(X)
    located(info.value, scaled, "r * r * x")


def test_layers_in_rest_are_tuples_of_arrays():
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(3, 3)), rng.normal(size=3)) for _ in range(2)]
    check_program(mlp, X, *layers, wrt=(0, 1, 2))
    dx, first = adjoint.grad(mlp, wrt=(0, 1))(X, *layers)
    assert isinstance(first, tuple) and first[0].shape == (3, 3) and first[1].shape == (3,)


def stacked(x, *rest):
    return np.sum(np.stack(rest) @ x) + len(rest) * np.sum(rest[-1] * x) + \
        sum(np.sum(r) for r in rest)


def zipped(x, *rest):
    t = 0.0
    for r, w in zip(rest, (1.0, 2.0, 3.0)):
        t = t + w * np.sum(np.tanh(r * x))
    return t


def only_rest(*rest):
    return np.sum(rest[0] * rest[1])


def powered(x, *rest):
    return np.sum(x ** rest[0]) * rest[1]


def test_rest_read_as_a_tuple():
    check_program(stacked, X, A, B)
    # d/dx = A + B + 2 B; d/dA = x + 1; d/dB = x + 2 x + 1
    dx, da, db = adjoint.grad(stacked, wrt=(0, 1, 2))(X, A, B)
    assert np.allclose(dx, A + 3 * B) and np.allclose(da, X + 1) and np.allclose(db, 3 * X + 1)
    check_program(zipped, X, A, B)
    assert np.allclose(adjoint.grad(zipped, wrt=-1)(X, A, B), 2 * X / np.cosh(B * X) ** 2)
    check_program(only_rest, A, B)
    assert np.allclose(adjoint.grad(only_rest, wrt=1)(A, B), A)
    # an int in rest is keyed by its value, as a named int argument is
    g = adjoint.grad(powered)
    assert np.allclose(g(X, 3, 2.0), 6 * X ** 2) and np.allclose(g(X, 2, 2.0), 4 * X)


def peeled(x, *rest):
    if not rest:
        return x * x
    return peeled(x * rest[0], *rest[1:])  # a recursion as deep as rest is long


def test_rest_peeled_by_a_recursion():
    # (x a b)^2: d/dx = 2 x a^2 b^2, d/da = 2 x^2 a b^2, d/db = 2 x^2 a^2 b
    x, a, b = 1.5, 2.0, 3.0
    got = adjoint.grad(peeled, wrt=(0, 1, 2))(x, a, b)
    assert np.allclose(got, (2 * x * a * a * b * b, 2 * x * x * a * b * b, 2 * x * x * a * a * b))
    check_program(peeled, x, a, b, 0.5)


class Model:
    def __init__(self):
        self.w = 2.0

    def loss(self, x, *rest):
        return self.w * star_sum(x, *rest)


def test_method_and_call_site_unpacking():
    m = Model()
    dx, da = adjoint.grad(m.loss, wrt=(0, 1))(X, A)
    assert np.allclose(dx, 2.0 * (2 * X + A)) and np.allclose(da, 2.0 * X)
    assert np.allclose(adjoint.grad(m.loss)(X, *[A, B]), 2.0 * (2 * X + A + B))
    assert np.allclose(adjoint.adjoint(star_sum).grad(wrt=1)(X, A), X)


def star_kwargs(x, **options):
    return np.sum(x)


def test_refusals_are_located():
    with pytest.raises(UnsupportedError) as info:
        adjoint.grad(star_kwargs)(X)
    located(info.value, star_kwargs, "def star_kwargs")
    assert "**options" in str(info.value)
    with pytest.raises(UnsupportedError) as info:  # a partial binding rest's arguments
        adjoint.grad(functools.partial(star_sum, X, A))(B)
    located(info.value, star_sum, "def star_sum")
    with pytest.raises(UnsupportedError) as info:  # no call: rest's length is unknown
        adjoint.ir(star_sum)
    located(info.value, star_sum, "def star_sum")


# ---------------------------------------------------------------- namedtuples built in f

Pair = collections.namedtuple("Pair", "a b")


class State(typing.NamedTuple):
    h: np.ndarray
    c: float = 3.0


def built_pair(x):
    p = Pair(x * 2, b=x + 1)
    s = State(np.sin(x))
    p = p._replace(a=p.a * s.c)
    return np.sum(p.a * p.b * s.h)


def test_namedtuples_built_inside_f():
    check_program(built_pair, X)
    # f = 6 sum(x (x + 1) sin x)
    assert np.allclose(adjoint.grad(built_pair)(X),
                       6 * ((2 * X + 1) * np.sin(X) + X * (X + 1) * np.cos(X)))
    assert np.allclose(adjoint.hvp(built_pair)(X, V), numeric_hvp(built_pair, (X,), V),
                       rtol=1e-5, atol=1e-7)


def scalar_pair(t):
    p = Pair(t ** 3, b=np.sin(t))
    return p.a * p.b


def test_second_derivative_through_a_built_namedtuple():
    t = 0.8  # f = t^3 sin t
    want = 6 * t * np.sin(t) + 6 * t ** 2 * np.cos(t) - t ** 3 * np.sin(t)
    assert np.isclose(adjoint.grad(adjoint.grad(scalar_pair))(t), want)


def test_the_hessian_through_a_built_namedtuple():
    """adjoint.hessian of f that builds a namedtuple (round 21's R1: the class's call was
    taken for one that may draw random numbers, and refused)."""
    H = adjoint.hessian(built_pair)(X)
    for v in np.eye(len(X)):
        np.testing.assert_allclose(H @ v, adjoint.hvp(built_pair)(X, v), rtol=1e-12)
    np.testing.assert_allclose(H @ V, numeric_hvp(built_pair, (X,), V), rtol=1e-5, atol=1e-7)


def recurrent(x, W):
    s = State(h=x, c=0.0)
    for _ in range(3):
        s = State(h=np.tanh(W @ s.h), c=s.c + np.sum(s.h ** 2))
    return s.c + np.sum(s.h)


def test_namedtuple_rebuilt_in_a_loop():
    W = np.array([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6], [-0.1, 0.2, 0.7]])
    check_program(recurrent, X, W)


def as_pair(x):
    return Pair(x * 2, x ** 2)


def test_a_built_namedtuple_as_the_output():
    out, pullback = adjoint.vjp(as_pair, X)
    assert type(out) is Pair and np.allclose(out.a, 2 * X) and np.allclose(out.b, X ** 2)
    assert np.allclose(pullback(Pair(np.ones(3), np.ones(3))), 2 + 2 * X)
    value, slope = adjoint.jvp(as_pair)(X, V)
    assert type(slope) is Pair and np.allclose(slope.a, 2 * V) and np.allclose(slope.b, 2 * X * V)


Defaulted = collections.namedtuple("Defaulted", "a b", defaults=(np.array([1.0, 2.0, 3.0]),))


class Doubled(collections.namedtuple("Doubled", "a b")):
    def __new__(cls, a, b=None):
        return super().__new__(cls, a, a * 2 if b is None else b)


class Norms(Pair):
    def total(self):
        return np.sum(self.a) + np.sum(self.b)


def defaulted(x):
    q = Defaulted(x * 2)
    return np.sum(q.a * q.b)


def doubled(x):
    d = Doubled(x)
    return np.sum(d.a * d.b)


def normed(x):
    n = Norms(x ** 2, b=np.sin(x))
    return np.sum(n.a * n.b) + n.a[0]


def test_field_defaults_subclasses_and_their_own_constructors():
    assert np.allclose(adjoint.grad(defaulted)(X), 2 * np.array([1.0, 2.0, 3.0]))
    check_program(normed, X)
    with pytest.raises(UnsupportedError) as info:  # its __new__ computes b: not read
        adjoint.grad(doubled)(X)
    located(info.value, doubled, "d = Doubled(")


@dataclasses.dataclass
class Cell:
    h: np.ndarray
    c: np.ndarray


def builds_a_dataclass(x):
    cell = Cell(h=x, c=x * 2)
    return np.sum(cell.h * cell.c)


@dataclasses.dataclass
class Checked:
    w: np.ndarray

    def __post_init__(self):
        assert self.w.ndim == 1


def builds_a_checked_dataclass(x):
    return np.sum(Checked(x * 2).w)


def test_a_dataclass_built_inside_f():
    """Built field by field as a namedtuple is (round 21: it was refused); one whose
    __post_init__ runs code is refused at its line."""
    (g,) = check_program(builds_a_dataclass, X)
    np.testing.assert_allclose(g, 4 * X, rtol=1e-12)
    with pytest.raises(UnsupportedError) as info:
        adjoint.grad(builds_a_checked_dataclass)(X)
    located(info.value, builds_a_checked_dataclass, "return np.sum(Checked(")
    assert "__post_init__" in str(info.value)


def test_adjoint_emit_writes_the_star_signature(tmp_path):
    import contextlib
    import io

    from adjoint.cli import main
    for extra in ((), ("--standalone",)):
        out = tmp_path / f"star_sum_grad{len(extra)}.py"
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["emit", f"{__file__}:star_sum", "--args",
                         "np.array([0.5, -1.0, 2.0]), np.ones(3), np.arange(3.0)",
                         *extra, "-o", str(out)])
        assert code == 0, err.getvalue()
        namespace = {}
        exec(compile(out.read_text(), str(out), "exec"), namespace)
        grad = namespace["star_sum_grad"]
        assert "def star_sum_grad(x, *rest, out_bar=1.0):" in out.read_text()
        assert np.allclose(grad(X, A, B), 2 * X + A + B)
        with pytest.raises(TypeError, match="in \\*rest, not 1"):
            grad(X, A)


def test_memory_and_the_gradient_ir_take_rest_from_the_arguments():
    assert "def star_sum(x, *rest):" in str(adjoint.memory(star_sum, X, A, B))
    import contextlib
    import io

    from adjoint.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["ir", f"{__file__}:star_sum", "--grad", "--args",
                     "np.ones(3), np.ones(3), np.arange(3.0)"])
    assert code == 0 and "func star_sum_grad(%x, %rest_0, %rest_1, %out_bar)" in out.getvalue()


WEIGHTS = np.array([1.0, 2.0, 3.0])


def built_from_constants_and_a_tuple(x, v):
    s = Pair(v * x, b=0.0)
    t = Pair(WEIGHTS, x)  # a global array field: a constant of P(...), not replaced
    pair = (x * 2, v)
    u = Pair(*pair)
    for _ in range(2):
        s = Pair(a=np.tanh(s.a * x + v), b=s.b + np.sum(s.a))
    return s.b + np.sum(s.a * v) + np.sum(t.a) * t.b + np.sum(u.a * u.b)


def test_constant_fields_are_given_to_the_class():
    check_program(built_from_constants_and_a_tuple, 0.7, V)
    text = adjoint.source(built_from_constants_and_a_tuple, args=(0.7, V))
    assert "t = Pair(WEIGHTS, 0.0)" in text and "t = replaced(t, 'b', x)" in text


def test_a_numba_file_takes_out_bar_by_keyword(tmp_path, monkeypatch):
    pytest.importorskip("numba")
    text = adjoint.source(star_sum, args=(X, A, B), backend="numba")
    assert "def star_sum_grad(x, rest_0, rest_1, *, out_bar=1.0):" in text
    (tmp_path / "star_sum_numba_grad.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    import star_sum_numba_grad as emitted
    assert np.allclose(emitted.star_sum_grad(X, A, B), 2 * X + A + B)
    with pytest.raises(TypeError):  # a third extra argument is not taken as out_bar
        emitted.star_sum_grad(X, A, B, C)


class _WithDefault(typing.NamedTuple):
    a: float
    b: float = 0.0


def _namedtuple_plus_tuple(x):
    s = _WithDefault(x[0] * 2.0, x[1] ** 2)
    t = s + (x[2] * 3.0,)  # a plain 3-tuple, as in Python
    return t[0] + t[1] * 5.0 + t[2] * t[0]


def test_a_namedtuple_plus_a_tuple_is_a_tuple():
    """runtime.concat rebuilt `s + (y,)` as the namedtuple with the list [a, b, y] in its
    first field and the default in the second (round 20's S4: jvp's value and tangent
    were wrong, silently)."""
    x = np.array([0.87, 0.54, 0.34])
    for u in np.eye(3):
        value, tangent = adjoint.jvp(_namedtuple_plus_tuple)(x, u)
        assert value == pytest.approx(_namedtuple_plus_tuple(x), rel=1e-12)
        want = (_namedtuple_plus_tuple(x + 1e-6 * u) - _namedtuple_plus_tuple(x - 1e-6 * u)) / 2e-6
        assert tangent == pytest.approx(want, rel=1e-6)
