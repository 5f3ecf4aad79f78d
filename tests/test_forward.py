"""Forward mode: every program of the corpus, its JVP compared with central finite
differences along random tangents, and with the reverse-mode gradient
(<grad f(x), v> == jvp(f)(x, v))."""
import math

import numpy as np
import pytest

import adjoint
from adjoint.ad.forward import forward
from adjoint.analysis.shapes import observe
from adjoint import jvp
from adjoint.errors import NonDifferentiableError
from adjoint.frontend.lower import lower_function
from adjoint.ir.interp import interpret
from adjoint.ir.verify import verify


def source_forward(f, wrt=0, args=None):
    return adjoint.source(f, wrt, mode="forward", args=args)
from tests import programs as P
from tests.test_gradients import CASES

IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]


def _wrt(wrt):
    return wrt if isinstance(wrt, tuple) else (wrt,)


def _tangents(args, wrt, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in _wrt(wrt):
        x = args[i]
        out.append(rng.normal(size=x.shape) if isinstance(x, np.ndarray) else float(rng.normal()))
    return tuple(out)


def _shift(args, wrt, tangents, eps):
    args = list(args)
    for i, t in zip(_wrt(wrt), tangents):
        args[i] = args[i] + eps * t
    return args


def directional_fd(f, args, wrt, tangents, eps=1e-6):
    up = f(*_shift(args, wrt, tangents, eps))
    down = f(*_shift(args, wrt, tangents, -eps))
    return (np.asarray(up, dtype=float) - np.asarray(down, dtype=float)) / (2 * eps)


def _call_jvp(f, args, wrt, tangents):
    t = tangents if isinstance(wrt, tuple) else tangents[0]
    return jvp(f, wrt)(*args, t)


@pytest.mark.parametrize("f,args,wrt", CASES, ids=IDS)
def test_jvp_matches_finite_differences(f, args, wrt):
    for seed in (0, 1):
        tangents = _tangents(args, wrt, seed)
        value, dot = _call_jvp(f, args, wrt, tangents)
        assert np.allclose(value, f(*args), rtol=1e-12, atol=1e-12)
        want = directional_fd(f, args, wrt, tangents)
        assert np.shape(dot) == np.shape(want)
        assert np.allclose(dot, want, rtol=1e-5, atol=1e-6), (dot, want)


@pytest.mark.parametrize("f,args,wrt", CASES, ids=IDS)
def test_jvp_matches_reverse_gradient(f, args, wrt):
    tangents = _tangents(args, wrt, 7)
    grads = adjoint.grad(f, wrt)(*args)
    grads = grads if isinstance(wrt, tuple) else (grads,)
    want = sum(float(np.sum(np.asarray(g) * np.asarray(t))) for g, t in zip(grads, tangents))
    _, dot = _call_jvp(f, args, wrt, tangents)
    assert np.isclose(dot, want, rtol=1e-9, atol=1e-10), (dot, want)


@pytest.mark.parametrize("f,args,wrt", CASES, ids=IDS)
def test_jvp_ir_verifies_and_interprets(f, args, wrt):
    """The transform's IR (before optimisation) is well formed and runs in the reference
    interpreter to the same numbers as the compiled module."""
    ir = lower_function(f)
    fn = verify(forward(ir, _wrt(wrt), observe(ir, args)))
    tangents = _tangents(args, wrt, 3)
    value, dot = interpret(fn)(*args, *tangents)
    want_value, want_dot = _call_jvp(f, args, wrt, tangents)
    assert np.allclose(value, want_value) and np.allclose(dot, want_dot)


def _stacks(x, c):
    a = np.stack([x, c, x * 2.0])
    b = np.hstack([c, x])
    return np.sum(a * a) + np.sum(np.sin(b))


def _solves(A, b):
    y = np.linalg.solve(A, b)
    return np.sum(y * y) + np.linalg.det(A) + np.sum(np.linalg.inv(A))


def _wheres(x, y):
    z = np.where(x > 0, x * y, y)
    return np.sum(np.clip(z, -0.5, 0.5) + np.maximum(x, 0.1))


def _minmax(x, y):
    return max(x, y) * min(x, 2.0) + abs(x)


def _while_array(x):
    v = x
    k = 0
    while k < 5:
        v = np.tanh(v) + 0.1 * x
        k = k + 1
    return np.sum(v)


def _scans(x):
    return np.sum(np.cumsum(x) * np.cumprod(x)) + np.prod(x) + np.std(x)


def _scalar_into_array(a, s):
    return np.sum(a + s) + np.sum(s * np.ones(3))


def _reshapes(A, v):
    B = A.reshape(6, 2).T
    return np.sum(B @ v[:6]) + np.trace(A @ A.T) + np.sum(np.outer(v, v)) + np.dot(v, v)


def _list_writes(x):
    out = [x, x * 2.0]
    out[1] = out[1] + 1.0
    return out[0] * out[1]


_R = np.random.default_rng(5)
EXTRA = [
    (_stacks, (_R.normal(size=3), _R.normal(size=3)), 0),
    (_solves, (_R.normal(size=(3, 3)) + 3 * np.eye(3), _R.normal(size=3)), (0, 1)),
    (_solves, (_R.normal(size=(3, 3)) + 3 * np.eye(3), _R.normal(size=3)), 1),
    (_wheres, (_R.normal(size=5), _R.normal(size=5)), (0, 1)),
    (_wheres, (_R.normal(size=5), _R.normal(size=5)), 1),
    (_minmax, (0.3, 0.7), (0, 1)),
    (_minmax, (0.9, 0.7), 1),
    (_while_array, (_R.normal(size=4),), 0),
    (_scans, (_R.normal(size=4),), 0),
    (_scalar_into_array, (_R.normal(size=3), 0.5), 1),
    (_reshapes, (_R.normal(size=(3, 4)), _R.normal(size=7)), (0, 1)),
    (_reshapes, (_R.normal(size=(3, 4)), _R.normal(size=7)), 1),
    (_list_writes, (1.3,), 0),
]


@pytest.mark.parametrize("f,args,wrt", EXTRA, ids=[
    f"{c[0].__name__.strip('_')}-{i}" for i, c in enumerate(EXTRA)])
def test_more_primitives(f, args, wrt):
    tangents = _tangents(args, wrt, 11)
    value, dot = _call_jvp(f, args, wrt, tangents)
    assert np.allclose(value, f(*args))
    assert np.allclose(dot, directional_fd(f, args, wrt, tangents), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("f,args,wrt", CASES, ids=IDS)
def test_generic_source_runs(f, args, wrt):
    """Without example arguments the code knows no shapes: it is generic, and right."""
    ns = dict(vars(P))
    exec(compile(source_forward(f, wrt), f"<{f.__name__}_jvp>", "exec"), ns)
    tangents = _tangents(args, wrt, 5)
    value, dot = ns[f.__name__ + "_jvp"](*args, *tangents)
    want_value, want_dot = _call_jvp(f, args, wrt, tangents)
    assert np.allclose(value, want_value) and np.allclose(dot, want_dot)


# ---------------------------------------------------------------- the API


def test_jvp_keeps_the_kind_of_its_output():
    value, dot = jvp(P.neuron)(0.5, 1.5, 0.1, 1.0, 1.0)
    assert type(dot) is type(value) and isinstance(dot, float)
    assert np.isclose(dot, adjoint.grad(P.neuron)(0.5, 1.5, 0.1, 1.0))


def test_jvp_of_a_vector_function():
    def layer(W, x):
        return np.tanh(W @ x) * 2.0

    rng = np.random.default_rng(0)
    W, x, v = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=4)
    value, dot = jvp(layer, 1)(W, x, v)
    assert value.shape == dot.shape == (3,)
    assert np.allclose(dot, directional_fd(layer, (W, x), 1, (v,)), atol=1e-7)
    # the Jacobian, a column at a time
    J = np.stack([jvp(layer, 1)(W, x, e)[1] for e in np.eye(4)], axis=1)
    assert np.allclose(J, (1 - np.tanh(W @ x) ** 2)[:, None] * W * 2.0)


def test_jvp_of_several_outputs():
    def two(x, y):
        return x * y, np.sin(x) + y

    value, dot = jvp(two, (0, 1))(0.3, 2.0, (1.0, 0.5))
    assert np.allclose(value, two(0.3, 2.0))
    assert np.allclose(dot, (1.0 * 2.0 + 0.3 * 0.5, math.cos(0.3) + 0.5))


def test_tangent_keyword_and_tuple():
    f = jvp(P.branch, (0, 1))
    a = f(1.0, 2.0, (1.0, 0.0))
    b = f(1.0, 2.0, tangent=(1.0, 0.0))
    assert a == b
    assert np.isclose(a[1], adjoint.grad(P.branch)(1.0, 2.0))
    with pytest.raises(TypeError):
        f(1.0, 2.0, 1.0)


def test_tangent_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        jvp(P.sum_squares)(np.ones(3), np.ones(4))


def test_output_independent_of_wrt_has_a_zero_tangent():
    def f(x, y):
        return np.sum(y * y)

    value, dot = jvp(f, 0)(np.ones(3), np.ones(3), np.ones(3))
    assert dot == 0.0 and type(dot) is type(value)


def test_jvp_is_compiled_once_per_signature():
    f = jvp(P.product)
    f(np.arange(1.0, 4.0), np.ones(3))
    f(np.arange(2.0, 5.0), np.ones(3))
    assert len(f.compiled) == 1
    f(np.arange(2.0, 6.0), np.ones(4))
    assert len(f.compiled) == 2


# ---------------------------------------------------------------- generated code


def test_scalar_source_reads_cleanly():
    src = source_forward(P.neuron, wrt=0, args=(0.5, 1.5, 0.1, 1.0))
    assert "def neuron_jvp(w, x, b, t, w_dot):" in src
    assert "z_dot = w_dot * x\n" in src
    for junk in ("* 0.0", "0.0 *", "+ 0.0", "- 0.0", "0.0 +", "zeros", "-0.0"):
        assert junk not in src, junk
    src = source_forward(P.scalar_math, wrt=0, args=(0.7, 0.3))
    for junk in ("* 0.0", "0.0 *", "+ 0.0", "- 0.0", "0.0 +", "zeros"):
        assert junk not in src, junk


def test_loops_carry_tangents_without_a_tape():
    src = source_forward(P.scalar_loop, wrt=0, args=(0.3, 20))
    assert "_tape" not in src
    assert "y, y_dot = x, x_dot" in src
    assert "y_dot = y_dot * math.cos(y) * 1.1 + 0.1 * x_dot" in src


def test_broadcast_zero_terms_keep_the_shape():
    # b's tangent alone has shape (4,); the sum has shape (3, 4)
    def f(a, b):
        return np.sum((a + b) ** 2)

    a, b, v = np.ones((3, 1)), np.arange(4.0), np.ones(4)
    _, dot = jvp(f, 1)(a, b, v)
    assert np.isclose(dot, directional_fd(f, (a, b), 1, (v,)))


def test_inactive_array_written_by_an_active_value():
    def f(x):
        y = np.zeros(3)
        y[1] = x * 2.0
        return np.sum(y * y)

    src = source_forward(f, 0, args=(1.5,))
    assert "    y_dot = np.zeros_like(y)\n    y_dot[1] = x_dot * 2.0\n" in src
    assert np.isclose(jvp(f)(1.5, 1.0)[1], 8.0 * 1.5)  # d/dx (2x)^2


def test_generic_source_without_example_arguments():
    src = source_forward(P.neuron, wrt=(0, 2))
    assert "def neuron_jvp(w, x, b, t, w_dot, b_dot):" in src
    ns = {}
    exec(compile(src, "<jvp>", "exec"), ns)
    value, dot = ns["neuron_jvp"](0.5, 1.5, 0.1, 1.0, 1.0, 0.0)
    assert np.isclose(dot, adjoint.grad(P.neuron)(0.5, 1.5, 0.1, 1.0))


# ---------------------------------------------------------------- errors


# np.nextafter has no derivative rule: an opaque call, fine on constants only


def _uses_opaque(x):
    return np.nextafter(x, 2.0) + 1.0  # no rule


def _uses_opaque_on_a_constant(x, n):
    return x * np.nextafter(n, 5.0)


def test_a_primitive_without_a_jvp_raises_at_its_line():
    with pytest.raises(NonDifferentiableError) as e:
        jvp(_uses_opaque)(1.0, 1.0)
    assert e.value.loc is not None and "np.nextafter(x" in e.value.loc.text


def test_a_primitive_without_a_jvp_is_fine_on_constants():
    assert jvp(_uses_opaque_on_a_constant)(1.5, 4.0, 1.0) == (1.5 * np.nextafter(4.0, 5.0),
                                                              np.nextafter(4.0, 5.0))
