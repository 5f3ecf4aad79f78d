"""Round 23's crashes in the runtime and the rules (issue 19): each was a raw exception
where adjoint owes a value or a located AdjointError. Values are checked against a
formula by hand and, away from the singular points, central differences in float64."""
import math
import warnings

import numpy as np
import pytest
from scipy import special, stats

import adjoint

EPS = 1e-6


def _log(x):
    return np.log(x)


def _root(x):
    return x ** 1.5


def _kl(x):
    return special.kl_div(x, 0.5)


def _recip(x):
    return 1.0 / x


def _math_sqrt(x):
    return math.sqrt(x)


# B-F4: a derivative that is infinite at a Python float. Every transform gives what grad
# gives (NumPy's inf there), where the generated code's `out_bar / x` raised.
MODES = {
    "grad": lambda f, x: adjoint.grad(f)(x),
    "value_and_grad": lambda f, x: adjoint.value_and_grad(f)(x)[1],
    "jvp": lambda f, x: adjoint.jvp(f)(x, 1.0)[1],
    "vjp": lambda f, x: adjoint.vjp(f, x)[1](1.0),
    "jacobian": lambda f, x: adjoint.jacobian(f)(x),
}
SECOND = {
    "hvp": lambda f, x: adjoint.hvp(f)(x, 1.0),
    "hessian": lambda f, x: adjoint.hessian(f)(x),
    "grad(grad)": lambda f, x: adjoint.grad(adjoint.grad(f))(x),
}
# f, the first derivative and the second at 0.0, by hand
INFINITE = [(_log, math.inf, -math.inf), (_root, 0.0, math.inf), (_kl, -math.inf, math.inf)]


@pytest.mark.parametrize("mode", sorted(MODES) + sorted(SECOND))
@pytest.mark.parametrize("f, first, second", INFINITE, ids=lambda v: getattr(v, "__name__", ""))
def test_an_infinite_derivative_at_a_python_float_is_numpys_inf(mode, f, first, second):
    expected = first if mode in MODES else second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = {**MODES, **SECOND}[mode](f, 0.0)
    assert float(got) == expected


@pytest.mark.parametrize("mode", sorted(MODES) + sorted(SECOND))
def test_the_retry_is_the_same_derivative_away_from_the_point(mode):
    x = 0.7
    got = {**MODES, **SECOND}[mode](_log, x)
    expected = 1 / x if mode in MODES else -1 / x ** 2
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert float(MODES["grad"](_log, x)) == pytest.approx(
        (np.log(x + EPS) - np.log(x - EPS)) / (2 * EPS), rel=1e-8)


@pytest.mark.parametrize("mode", ["grad", "vjp", "hvp", "grad(grad)"])
def test_fs_own_division_by_zero_is_the_answer(mode):
    with pytest.raises(ZeroDivisionError):
        {**MODES, **SECOND}[mode](_recip, 0.0)


def test_a_division_by_zero_that_remains_is_located():
    # math.sqrt's derivative is a Python float whatever its argument: no retry helps
    with pytest.raises(adjoint.NonDifferentiableError) as e:
        adjoint.grad(_math_sqrt)(0.0)
    assert e.value.loc is not None and e.value.loc.line == _math_sqrt.__code__.co_firstlineno + 1


# B-F6: one compiled derivative called where f's value is real, then where the same code
# makes a complex number: refused at f, as a first call there is, not a raw TypeError.
def _negative_base(p):
    return (-2.0) ** p


def _root_of(x):
    return (x - 1.0) ** 0.5 * 2.0


TRANSFORMS = {
    "grad": lambda f: adjoint.grad(f),
    "value_and_grad": lambda f: lambda x, g=adjoint.value_and_grad(f): g(x)[1],
    "vjp": lambda f: lambda x: adjoint.vjp(f, x)[1](1.0),
    "hvp": lambda f: lambda x, h=adjoint.hvp(f): h(x, 1.0),
    "grad(grad)": lambda f: adjoint.grad(adjoint.grad(f)),
}


@pytest.mark.parametrize("mode", sorted(TRANSFORMS))
@pytest.mark.parametrize("f, real_at, complex_at, first, second", [
    (_negative_base, 2.0, 1.0 / 3.0, 0.0, 0.0),       # d/dp (-2)**p: 0 where log(-2) is not taken
    (_root_of, 5.0, 0.5, 0.5, -1.0 / 16.0)], ids=["negative_base", "root_of"])
def test_a_value_that_turns_complex_on_a_later_call_is_refused_at_f(
        mode, f, real_at, complex_at, first, second):
    d = TRANSFORMS[mode](f)
    expected = first if mode in ("grad", "value_and_grad", "vjp") else second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert float(d(real_at)) == pytest.approx(expected, abs=1e-12)
        with pytest.raises(adjoint.NonDifferentiableError, match="grad needs a real output") as e:
            d(complex_at)
    assert e.value.loc is not None and e.value.loc.line == f.__code__.co_firstlineno


# A-C2: a slice assignment that changes a list's length. The reverse sweep read the
# cotangent at the slice's old positions (IndexError, or entries shifted): refused at its
# line; the same list built by concatenation (the hint) is differentiated.
def _grows(x):
    xs = [x[0], x[1]]
    xs[:0] = [x[1] * 3.0]
    return xs[0] * xs[1] + xs[2]


def _shrinks(ps):
    xs = list(ps)
    xs[1:3] = []
    return xs[0] * 2.0 + xs[1] * 10.0


def _grows_by_concatenation(x):
    xs = [x[0], x[1]]
    xs = xs[:0] + [x[1] * 3.0] + xs[0:]
    return xs[0] * xs[1] + xs[2]


@pytest.mark.parametrize("f, arg, line", [
    (_grows, np.array([0.5, 1.5]), 2), (_shrinks, [0.5, 1.5, -0.7, 2.0], 2)])
def test_a_slice_assignment_that_changes_a_lists_length_is_refused(f, arg, line):
    with pytest.raises(adjoint.UnsupportedError, match="changes the list's length") as e:
        adjoint.grad(f)(arg)
    assert e.value.loc.line == f.__code__.co_firstlineno + line


def test_the_list_built_by_concatenation_is_differentiated():
    x = np.array([0.5, 1.5])
    g = adjoint.grad(_grows_by_concatenation)(x)
    np.testing.assert_allclose(g, [3 * x[1], 3 * x[0] + 1], rtol=1e-12)  # 3 x0 x1 + x1
    value, dot = adjoint.jvp(_grows)(x, np.array([1.0, 0.0]))  # forward mode was right
    assert dot == pytest.approx(3 * x[1], rel=1e-12)


# A-C3: a defaultdict parameter that f reads at a key it lacks. The read inserts the
# default, so the compiled code, the caller's tangent and the next call's dict disagree on
# the keys (jvp: a raw KeyError; hvp: a ValueError naming a key the caller's p lacked;
# grad's second call on a fresh dict: KeyError). Refused at the read, in every transform.
def _reads_missing(p, x):
    return np.sum(p["w"] * x) ** 2 + p["missing"] * 3.0 + p["b"]


def _reads_with_get(p, x):
    return np.sum(p["w"] * x) ** 2 + p.get("missing", 0.0) * 3.0 + p["b"]


def _params():
    import collections
    return collections.defaultdict(float, {"w": np.array([0.5, 1.0]), "b": 0.3})


X2 = np.array([1.0, 2.0])
V2 = {"w": np.array([1.0, 0.0]), "b": 1.0}
ON_PARAMS = {
    "grad": lambda f: adjoint.grad(f)(_params(), X2),
    "jvp": lambda f: adjoint.jvp(f)(_params(), X2, V2)[1],
    "vjp": lambda f: adjoint.vjp(f, _params(), X2)[1](1.0),
    "hvp": lambda f: adjoint.hvp(f)(_params(), X2, V2),
}


@pytest.mark.parametrize("mode", sorted(ON_PARAMS))
def test_a_defaultdict_read_at_a_key_it_lacks_is_refused_at_the_read(mode):
    with pytest.raises(adjoint.UnsupportedError, match="a key it does not hold") as e:
        ON_PARAMS[mode](_reads_missing)
    assert e.value.loc.line == _reads_missing.__code__.co_firstlineno + 1


def test_the_same_read_with_get_is_differentiated():
    w_dot_x = 2.5
    for _ in range(2):  # a second call on a fresh dict too
        g = ON_PARAMS["grad"](_reads_with_get)
        np.testing.assert_allclose(g["w"], 2 * w_dot_x * X2)
        assert g["b"] == 1.0 and set(g) == {"w", "b"}
    assert ON_PARAMS["jvp"](_reads_with_get) == pytest.approx(2 * w_dot_x * 1.0 + 1.0)
    np.testing.assert_allclose(ON_PARAMS["hvp"](_reads_with_get)["w"], 2 * X2 * 1.0)


# B-F9: the second derivative of log_ndtr (and norm.logcdf) in the far upper tail was
# NaN: the slope sqrt(2/pi) / erfcx(-x/sqrt 2) is 0 where erfcx overflows (x > ~37.6),
# and its quotient's derivative inf / inf. The slope has its own rule, -s (x + s).
def _log_ndtr(x):
    return special.log_ndtr(x)


def _norm_logcdf(x):
    return stats.norm.logcdf(x, 0.5, 2.0)


def _second_by_hand(x):
    """(log Phi)'' = -s (x + s), s = phi / Phi, from the pdf and cdf directly."""
    s = np.exp(stats.norm.logpdf(x) - stats.norm.logcdf(x))
    return -s * (x + s)


@pytest.mark.parametrize("x", [-40.0, -5.0, 0.3, 5.0, 30.0, 40.0, 90.0])
def test_log_ndtrs_second_derivative_is_finite_in_both_tails(x):
    for f, z, scale in [(_log_ndtr, x, 1.0), (_norm_logcdf, x, 2.0)]:
        at = z * scale + (0.5 if scale == 2.0 else 0.0)  # norm.logcdf's x for z
        expected = _second_by_hand(z) / scale ** 2
        for got in (adjoint.hvp(f)(at, 1.0), adjoint.grad(adjoint.grad(f))(at)):
            assert np.isfinite(got) and got == pytest.approx(expected, rel=1e-9, abs=1e-300)
        third = adjoint.grad(adjoint.grad(adjoint.grad(f)))(at)
        assert np.isfinite(third)
    if -6.0 < x < 6.0:  # central differences of the gradient where it is not flat
        fd = (adjoint.grad(_log_ndtr)(x + 1e-5) - adjoint.grad(_log_ndtr)(x - 1e-5)) / 2e-5
        assert adjoint.hvp(_log_ndtr)(x, 1.0) == pytest.approx(fd, rel=1e-6, abs=1e-12)


# A-C1: 0-d arrays. NumPy's arithmetic on them gives scalars, which the generated code
# indexed: `z += x` (computed as z = z + x) then `z[...] = v` raised a TypeError (refused
# at the write now); the cotangent of `z[()] = x * 3.0` was a float that save(z_bar, ())
# indexed; generic code added into `c_bar[()]` where c_bar was math.exp's float.
def _inplace_then_write(x):
    z = np.zeros(())
    z += x
    z[...] = z * x
    return float(z)


def _write_then_mul(x):
    z = np.zeros(())
    z[()] = x * 3.0
    return z * x


def _read_0d(a):
    c = a * 2.0
    return c[()] + math.exp(c)


@pytest.mark.parametrize("mode", ["grad", "jvp", "vjp", "hvp"])
def test_a_write_into_a_0d_array_that_arithmetic_made_a_number_is_refused(mode):
    with pytest.raises(adjoint.UnsupportedError, match="this write is into a number") as e:
        {**MODES, **SECOND}[mode](_inplace_then_write, 0.7)
    assert e.value.loc.line == _inplace_then_write.__code__.co_firstlineno + 3


@pytest.mark.parametrize("x", [0.7, np.array(0.7)], ids=["float", "0d"])
def test_0d_array_writes_and_reads_are_differentiated(x):
    assert float(adjoint.grad(_write_then_mul)(x)) == pytest.approx(6 * 0.7)  # 3 x**2
    assert float(adjoint.hvp(_write_then_mul)(x, 1.0)) == pytest.approx(6.0)


def test_generic_code_reads_a_0d_array_by_its_empty_index():
    ns = {}
    exec(compile(adjoint.source(_read_0d), "<generic read_0d>", "exec"), ns)
    a = np.array(0.5)
    expected = 2 + 2 * math.exp(2 * 0.5)
    assert float(ns["_read_0d_grad"](a)) == pytest.approx(expected, rel=1e-12)
    assert float(adjoint.grad(_read_0d)(a)) == pytest.approx(expected, rel=1e-12)
