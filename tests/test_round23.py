"""Round 23: what round 22 left open in emitted files and at the edges of the numbers.

- An emitted file whose f has a `try` handler that catches a failure of the body: the
  file ran the body alone, so a call on which f takes the handler raised the body's raw
  IndexError or KeyError. The file now says where f's handler is, as the API does.
- Code emitted without example arguments, where f tests `b is None` on an entry of a
  list or tuple: the None entry's cotangent was added to (TypeError).
- float32 arguments: the generic file's seed and the Jacobian were float64.
- The hvp of `x ** n` at n = 0 and a tiny x: 0 * inf where x ** -2 overflows.
"""
import importlib.util

import numpy as np
import pytest

import adjoint
from adjoint.testing import numeric_grad


def entry_or_first(xs, k):
    try:
        a = xs[k]
    except IndexError:
        a = xs[0] * 2.0
    return a * xs[-1]


def scaled(d, x):
    try:
        s = d["scale"]
    except KeyError:
        s = 1.0
    return s * x * x


def loaded(tmp_path, text, name):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("standalone", [False, True])
def test_an_emitted_file_says_where_fs_handler_would_run(tmp_path, standalone):
    # (a file made for example arguments refuses other ones on entry: k == 1)
    args = ([1.0, 2.0, 3.0], 1)
    text = adjoint.source(entry_or_first, wrt=0, standalone=standalone)
    assert "@refused_where_f_catches(" in text
    assert ("from adjoint" in text) is not standalone
    g = loaded(tmp_path, text, "entry_grad").entry_or_first_grad
    assert list(g(*args)) == [0.0, 3.0, 2.0]
    with pytest.raises(ValueError, match=r"test_round23.py:23:5: on this call the `try` "
                                         r"body raised IndexError"):
        g([1.0, 2.0, 3.0], 5)
    g = loaded(tmp_path, adjoint.source(scaled, wrt=1, standalone=standalone), "scaled_grad")
    assert g.scaled_grad({"scale": 2.0}, 3.0) == 12.0
    with pytest.raises(ValueError, match="test_round23.py:31:5: .* raised KeyError"):
        g.scaled_grad({"offset": 1.0}, 3.0)


def plain_failure(xs, k):
    return xs[k] * 2.0


def test_a_failure_no_handler_catches_is_raised_as_it_is(tmp_path):
    assert "refused_where_f_catches" not in adjoint.source(plain_failure)
    text = adjoint.source(entry_or_first)
    g = loaded(tmp_path, text.replace("xs[-1]", "xs[k + 9]"), "other_grad")
    with pytest.raises(IndexError):  # a line outside the try body: not f's handler's
        g.entry_or_first_grad([1.0, 2.0], 0)


def optional_bias(p, x):
    W, b = p
    z = W * x
    if b is not None:
        z = z + b
    return np.sum(z)


def test_generic_code_refuses_none_entries_where_f_tests_for_none(tmp_path):
    g = loaded(tmp_path, adjoint.source(optional_bias), "bias_grad").optional_bias_grad
    x = np.array([0.5, -1.0])
    W_bar, b_bar = g((2.0, 0.3), x)
    assert W_bar == pytest.approx(-0.5) and b_bar == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no None entry; for None entries generate it with "
                                         "adjoint emit test_round23.py:optional_bias --args"):
        g((2.0, None), x)
    # the API (and a file made for such arguments) knows which entries are None
    assert adjoint.grad(optional_bias)((2.0, None), x) == (pytest.approx(-0.5), None)
    assert "no_none_entries" not in adjoint.source(plain_failure)


def shallow_copy(x):
    p = [x * 1.0, x]
    q = list(p)
    q[0] *= 3.0
    return np.sum(p[0] * x)


def test_a_shallow_copys_alias_is_named_as_the_slot_it_shares():
    # round 22's M: the message named `x`, which the list's other slot holds
    with pytest.raises(adjoint.AdjointError, match="shares another slot of a list or dict"):
        adjoint.grad(shallow_copy)(np.array([1.0, 2.0]))


def tanh_energy(x, w):
    return np.sum(np.tanh(x * w) ** 2)


def mean_sine(x):
    return np.mean(np.sin(x)) * 2.0


def doubled_sine(x):
    return np.sin(x[:2]) * 2.0


def test_float32_arguments_keep_float32_derivatives(tmp_path):
    x, w = np.array([0.1, 0.2, -0.3], np.float32), np.float32(0.5)
    g = loaded(tmp_path, adjoint.source(tanh_energy), "tanh_grad").tanh_energy_grad
    assert g(x, w).dtype == np.float32
    np.testing.assert_allclose(g(x, w), adjoint.grad(tanh_energy)(x.astype(float), 0.5),
                               rtol=1e-6)
    g = loaded(tmp_path, adjoint.source(mean_sine), "mean_grad").mean_sine_grad
    assert g(x).dtype == np.float32
    for f in (mean_sine, doubled_sine):  # by VJPs, and by JVPs
        J = adjoint.jacobian(f)(x)
        assert J.dtype == np.float32
        np.testing.assert_allclose(J, adjoint.jacobian(f)(x.astype(float)), rtol=1e-6)
    assert adjoint.jacobian(doubled_sine)(x.astype(float)).dtype == np.float64


def power_sum(x, n):
    return np.sum(x ** n)


def power_of_scalar(x, n):
    return x ** n * 3.0


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_second_derivatives_of_integer_powers_at_tiny_bases(n):
    x = np.array([1e-300, -1e-200, 0.0, 2.0])
    want = n * (n - 1) * np.where(x == 0.0, 0.0 if n != 2 else 1.0, x) ** max(n - 2, 0)
    np.testing.assert_allclose(adjoint.hvp(power_sum)(x, n, np.ones(4)), want, atol=1e-300)
    H = adjoint.hessian(power_sum)(x, n)
    np.testing.assert_allclose(np.diag(H), want, atol=1e-300)
    assert adjoint.grad(adjoint.grad(power_of_scalar))(1e-300, n) == \
        pytest.approx(3.0 * n * (n - 1) * (1e-300 ** max(n - 2, 0) if n != 2 else 1.0),
                      abs=1e-300)


def test_a_float_exponents_derivative_is_still_one_over_x_at_zero_exponent():
    # the exponent moves to 1 only for int exponents or subnormal bases: d/dy of the
    # slope y * x ** (y - 1) at y = 0 is 1 / x
    mixed = adjoint.grad(adjoint.grad(power_of_scalar), wrt=1)
    for x in (0.5, 1e-100):
        assert mixed(x, 0.0) == pytest.approx(3.0 / x, rel=1e-9)
        assert numeric_grad(lambda y: 3.0 * y * x ** (y - 1), (0.0,)) == \
            pytest.approx(3.0 / x, rel=1e-5)


def test_generic_code_refuses_an_int_or_bool_argument_to_differentiate(tmp_path):
    # round 22's minor: np.tanh of a bool array is float16, and the gradient was too
    g = loaded(tmp_path, adjoint.source(power_sum), "power_grad").power_sum_grad
    np.testing.assert_allclose(g(np.array([0.5, 2.0]), 3), [0.75, 12.0])  # n: an int, fine
    for x in (np.array([True, False]), np.array([1, 2]), 3, True):
        with pytest.raises(ValueError, match="cannot differentiate with respect to an int "
                                             r"or bool argument \(x\)"):
            g(x, 2)


def rgamma_at(x):
    return scipy_special.rgamma(x)


def i1_at(x):
    return scipy_special.i1(x)


def softplus_by_logaddexp(x):
    return np.logaddexp(0.0, x)


def regularised_gamma(x):
    return np.sum(scipy_special.gammainc(2.5, x / 2.0))


scipy_special = pytest.importorskip("scipy.special")


@pytest.mark.parametrize("x, want", [(0.0, 1.1544313298030657), (-1.0, 0.8455686701969343),
                                     (-2.0, -3.6911373403939970)])
def test_rgammas_second_derivative_at_a_pole(x, want):
    # round 23: the pole's branch cos(pi x) gamma(1 - x) is the slope at the pole alone;
    # 2 * gamma's poles' -(-1)^n n! (psi(n + 1)) is the second derivative
    assert adjoint.grad(adjoint.grad(rgamma_at))(x) == pytest.approx(want, rel=1e-9)
    assert adjoint.hvp(rgamma_at)(x, 1.0) == pytest.approx(want, rel=1e-9)


def test_third_derivatives_at_zero_of_smooth_rules():
    third = adjoint.grad(adjoint.grad(adjoint.grad(i1_at)))
    assert third(0.0) == pytest.approx(0.375, rel=1e-12)  # i1 = x/2 + x^3/16 + ...
    third = adjoint.grad(adjoint.grad(adjoint.grad(softplus_by_logaddexp)))
    assert third(0.0) == pytest.approx(0.0, abs=1e-12)  # sigmoid'' at 0
    assert third(1.0) == pytest.approx(
        numeric_grad(adjoint.grad(adjoint.grad(softplus_by_logaddexp)), (1.0,)), rel=1e-6)


def test_a_buffer_negated_in_place_is_not_read_by_its_own_subtraction():
    # round 23's F7: `1.0 - t` was written `t *= -1.0; t += o` with o an inlined
    # expression of t (gammainc's slope reads x / 2.0's buffer): NaN
    x = np.array([0.7, 1.3, 4.0])
    np.testing.assert_allclose(adjoint.grad(regularised_gamma)(x),
                               numeric_grad(regularised_gamma, (x,)), rtol=1e-6)


def rest_and_keyword(x, *rest, k=1.0):
    return np.sum(x ** 2) * k + sum(np.sum(r * x) for r in rest)


def test_a_position_past_the_rest_arguments_is_not_a_keyword_only_parameter():
    # round 23's S1: with one rest argument, wrt=2 gave dk (5.0), with three a rest
    # argument's gradient: positions count the arguments given by position, as argnums
    x, r = np.array([1.0, 2.0]), np.array([0.5, 0.5])
    for wrt in (2, (0, 2)):
        with pytest.raises(adjoint.AdjointError, match="keyword-only `k`"):
            adjoint.grad(rest_and_keyword, wrt=wrt)(x, r)
    assert adjoint.grad(rest_and_keyword, wrt="k")(x, r) == pytest.approx(5.0)
    np.testing.assert_allclose(adjoint.grad(rest_and_keyword, wrt=2)(x, r, r, r), x)
    np.testing.assert_allclose(adjoint.grad(rest_and_keyword, wrt=1)(x, r), x)


def squared_abs(x):
    return np.sum(np.abs(x) ** 2)


def stable_softplus(x):
    return np.sum(np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x))))


def split_square(x):
    return np.sum(np.maximum(x, 0.0) ** 2 + np.minimum(x, 0.0) ** 2)


@pytest.mark.parametrize("f", [squared_abs, stable_softplus, split_square])
def test_a_second_derivative_through_a_kink_is_refused_there_and_right_elsewhere(f):
    # round 23's F5: abs'(0) = 0 and maximum's half share on a tie made the second
    # derivative of abs(x) ** 2 (= x ** 2) 0 and of the stable softplus 0 at 0; JAX's
    # abs'(0) = 1 would make the softplus's first derivative 0 there (true: 1/2)
    x = np.array([0.0, 0.7])
    with pytest.raises(adjoint.NonDifferentiableError, match="derivative of the gradient of"):
        adjoint.hvp(f)(x, np.ones(2))
    assert adjoint.grad(f)(x)[0] == pytest.approx(0.5 if f is stable_softplus else 0.0)
    x = np.array([-0.3, 0.7])
    slopes = [(adjoint.grad(f)(x + e)[i] - adjoint.grad(f)(x - e)[i]) / 2e-6
              for i, e in enumerate(1e-6 * np.eye(2))]  # the Hessian is diagonal
    np.testing.assert_allclose(adjoint.hessian(f)(x), np.diag(slopes), rtol=1e-5, atol=1e-8)


def fancy_copy_written(x):
    y = x * 2.0
    c = y[[0, 1]]  # advanced indexing: a copy
    c *= 5.0
    m = y[y > 0.0]  # a mask: a copy
    m += 7.0
    return np.sum(y * x) + np.sum(c) + np.sum(m * m)


def slice_view_written(x):
    y = x * 2.0
    c = y[:2]  # a view
    c *= 5.0
    return np.sum(y * x) + np.sum(c)


def test_a_write_into_an_advanced_index_copy_is_not_a_view():
    # round 23's M1: refused as "shares the array's memory"; NumPy always copies there
    x = np.array([0.5, -1.5, 2.0])
    np.testing.assert_allclose(adjoint.grad(fancy_copy_written)(x),
                               numeric_grad(fancy_copy_written, (x,)), rtol=1e-6)
    with pytest.raises(adjoint.AdjointError, match="shares the array's memory"):
        adjoint.grad(slice_view_written)(x)
