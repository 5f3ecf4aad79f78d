"""scipy.special through compiled programs (issue 15).

tests/rules/test_registry.py checks each rule's templates on their own (CASES);
here each function is called in a small program that the compiler differentiates:
against central differences, forward against reverse mode and the forward value
against f's (check_program), against a hand formula where one is short, and twice
(hvp) where the second derivative is a known function. Two models as a user
writes them: logistic regression with expit and xlogy, and Dirichlet and gamma
log-likelihoods with gammaln. The conventions of adjoint/rules/special.py at x = 0
(xlogy, entr, i0e, i1) and the refusals are checked too.
"""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

sp = pytest.importorskip("scipy.special")

import adjoint  # noqa: E402
from adjoint.errors import NonDifferentiableError  # noqa: E402
from adjoint.testing import check_program  # noqa: E402

R = np.random.default_rng(15)
X34 = R.normal(size=(3, 4))
W34 = R.normal(size=(3, 4))
P34 = R.uniform(0.5, 2.0, (3, 4))
Q34 = R.uniform(0.1, 0.9, (3, 4))
X5 = R.normal(size=5)


# ---------------------------------------------------------------- programs, one family each

def logistic(x):
    return np.sum(sp.expit(x) ** 2) + np.sum(sp.log_expit(x) * x)


def logits(p):
    return np.sum(sp.logit(p) ** 2)


def logsumexps(x, w):
    return sp.logsumexp(x) + np.sum(sp.logsumexp(x, axis=1) ** 2) \
        + np.sum(sp.logsumexp(x, axis=0, b=w * w, keepdims=True) * x)


def softmaxes(x, w):
    return np.sum(sp.softmax(x, axis=1) * w) + np.sum(sp.log_softmax(x, axis=0) * w ** 2) \
        + np.sum(sp.softmax(x) * w)


def error_functions(x):
    return np.sum(sp.erf(x) * sp.erfc(x) + sp.erfcx(x) ** 2) \
        + np.sum(sp.ndtr(x) * sp.log_ndtr(x))


def inverses(p):
    return np.sum(sp.erfinv(p - 0.5) ** 2 + sp.erfcinv(p) * sp.ndtri(p)) + np.sum(sp.logit(p))


def gammas(a):
    return np.sum(sp.gammaln(a) + sp.gamma(a) * sp.digamma(a) + sp.loggamma(a) ** 2) \
        + np.sum(sp.multigammaln(a + 1.0, 3) ** 2) + np.sum(sp.psi(a))


def betas(a, b):
    return np.sum(sp.beta(a, b) + sp.betaln(a, b) ** 2)


def entropies(x, y):
    return np.sum(sp.xlogy(x, y) + sp.xlog1py(x, y) ** 2 + sp.entr(y))


def divergences(p, q):
    return np.sum(sp.rel_entr(p, q)) + np.sum(sp.kl_div(q, p) ** 2)


def softplus_of(x):
    return np.sum(sp.softplus(x) ** 2)


def bessels(x):
    return np.sum(sp.i0(x) * sp.i1(x) + sp.i0e(x) ** 2 + sp.i1e(x))


def scalar_mix(x):
    return sp.expit(x) * sp.gammaln(x + 2.0) + sp.erf(x) + sp.xlogy(x + 2.0, x + 3.0)


PROGRAMS = [
    (logistic, (X34,)), (logits, (Q34,)), (logsumexps, (X34, W34)), (softmaxes, (X34, W34)),
    (error_functions, (X34,)), (inverses, (Q34,)), (gammas, (P34,)), (betas, (P34, Q34 + 0.5)),
    (entropies, (X34, P34)), (divergences, (P34, Q34)), (bessels, (X34,)),
    (scalar_mix, (0.7,)),
] + ([(softplus_of, (X34,))] if hasattr(sp, "softplus") else [])  # SciPy 1.15+


@pytest.mark.parametrize("f, args", PROGRAMS, ids=[f.__name__ for f, _ in PROGRAMS])
def test_against_finite_differences_and_forward_mode(f, args):
    check_program(f, *args)


# ---------------------------------------------------------------- hand formulas

def sum_expit(x):
    return np.sum(sp.expit(x))


def sum_gammaln(x):
    return np.sum(sp.gammaln(x))


def lse(x):
    return sp.logsumexp(x)


def erf_of(x):
    return sp.erf(x)


def test_hand_formulas():
    s = sp.expit(X34)
    np.testing.assert_allclose(adjoint.grad(sum_expit)(X34), s * (1.0 - s), rtol=1e-14)
    np.testing.assert_allclose(adjoint.grad(sum_gammaln)(P34), sp.digamma(P34), rtol=1e-14)
    np.testing.assert_allclose(adjoint.grad(lse)(X34), sp.softmax(X34), rtol=1e-14)
    g = adjoint.grad(erf_of)(0.3)
    assert type(g) is float and abs(g - 2.0 / math.sqrt(math.pi) * math.exp(-0.09)) < 1e-15
    # second order: gammaln'' = trigamma = polygamma(1, x)
    v = R.normal(size=(3, 4))
    np.testing.assert_allclose(adjoint.hvp(sum_gammaln)(P34, v), sp.polygamma(1, P34) * v,
                               rtol=1e-12)
    # the Hessian of logsumexp is diag(s) - s s^T
    x, u = X5, R.normal(size=5)
    s = sp.softmax(x)
    np.testing.assert_allclose(adjoint.hvp(lse)(x, u), s * u - s * np.dot(s, u), rtol=1e-12)


def softmax_picked(x, k):
    return sp.softmax(x)[k]


def test_the_softmax_jacobian():
    x = X5
    s = sp.softmax(x)
    jac = np.stack([adjoint.grad(softmax_picked)(x, k) for k in range(5)])
    np.testing.assert_allclose(jac, np.diag(s) - np.outer(s, s), atol=1e-15)


def log_ndtr_of(x):
    return sp.log_ndtr(x)


def test_log_ndtr_in_both_tails():
    # d/dx log ndtr(x) = pdf / cdf: the pdf itself far right; at -40 the cdf underflows
    # (1e-350): its asymptotic series, to 1e-14 there
    def pdf(x):
        return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    for x in (-8.0, -1.0, 2.0, 8.0, 30.0):
        want = pdf(x) / sp.ndtr(x)
        assert abs(adjoint.grad(log_ndtr_of)(x) - want) <= 1e-13 * want
    x = -40.0
    want = -x - 1.0 / x + 2.0 / x ** 3 - 10.0 / x ** 5 + 74.0 / x ** 7 - 706.0 / x ** 9
    assert abs(adjoint.grad(log_ndtr_of)(x) - want) < 1e-13 * want


# ---------------------------------------------------------------- conventions at x = 0

def xlogy_sum(x, y):
    return np.sum(sp.xlogy(x, y))


def xlog1py_sum(x, y):
    return np.sum(sp.xlog1py(x, y))


def xlogy_packed(z):
    return np.sum(sp.xlogy(z[0], z[1]))


def test_xlogy_at_zero_follows_jax_in_x_and_is_exact_in_y():
    x, y = np.array([0.0, 0.0, 1.5]), np.array([2.0, 0.0, 3.0])
    with np.errstate(divide="ignore"):
        gx, gy = adjoint.grad(xlogy_sum, wrt=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [math.log(2.0), -np.inf, math.log(3.0)])  # log y (JAX)
    np.testing.assert_array_equal(gy, [0.0, 0.0, 0.5])  # x / y, 0 where x = 0 (JAX: NaN at 0/0)
    with np.errstate(divide="ignore"):
        gx, gy = adjoint.grad(xlog1py_sum, wrt=(0, 1))(np.array([0.0, 2.0]),
                                                       np.array([-1.0, 1.0]))
    np.testing.assert_array_equal(gx, [-np.inf, math.log(2.0)])
    np.testing.assert_array_equal(gy, [0.0, 1.0])
    # the second derivative in x then y at x = 0 is 1 / y, not 0: x_over_y has rules
    z = np.array([[0.0, 1.0], [2.0, 4.0]])
    h = adjoint.hessian(xlogy_packed)(z).reshape(4, 4)
    np.testing.assert_allclose(h[0, 2], 0.5, rtol=1e-14)
    np.testing.assert_allclose(h[1, 3], 0.25, rtol=1e-14)
    np.testing.assert_allclose(np.diag(h), [0.0, 0.0, 0.0, -1.0 / 16.0], atol=1e-15)


def kl_sum(p, q):
    return np.sum(sp.rel_entr(p, q) + 2.0 * sp.kl_div(p, q))


def test_divergences_at_zero_are_exact_in_y():
    p, q = np.array([0.0, 0.0, 0.5]), np.array([0.3, 0.0, 0.25])
    with np.errstate(divide="ignore", invalid="ignore"):
        gp, gq = adjoint.grad(kl_sum, wrt=(0, 1))(p, q)
    # in q: -p / q + 2 (1 - p / q), exactly 2 where p = 0 (also at q = 0)
    np.testing.assert_array_equal(gq, [2.0, 2.0, -2.0 + 2.0 * (1.0 - 2.0)])
    # in p: log(p / q) + 1 + 2 log(p / q), -inf at p = 0; NaN at p = q = 0, where
    # rel_entr(p, 0) jumps from 0 to inf
    np.testing.assert_allclose(gp, [-np.inf, np.nan, 3.0 * math.log(2.0) + 1.0])


def entr_sum(x):
    return np.sum(sp.entr(x))


def i_at(x):
    return sp.i1(x) + sp.i0e(x) + 3.0 * sp.i1e(x)


def test_entr_and_bessels_at_zero():
    with np.errstate(divide="ignore"):
        g = adjoint.grad(entr_sum)(np.array([-1.0, 0.0, 1.0, math.e]))
    np.testing.assert_array_equal(g, [0.0, np.inf, -1.0, -2.0])  # -(log x + 1); as JAX
    # i1'(0) = 1/2 (the limit of i0 - i1 / x); i0e has a kink at 0: 0, the mean slope;
    # i1e'(0) = 1/2
    assert adjoint.grad(i_at)(0.0) == 0.5 + 0.0 + 1.5
    check_program(i_at, 0.4)
    check_program(i_at, -1.3)


# ---------------------------------------------------------------- models

def logistic_regression(w, X, t):
    p = sp.expit(X @ w)
    return -np.sum(sp.xlogy(t, p) + sp.xlog1py(1.0 - t, -p))


def dirichlet_loglik(alpha, x):
    n = x.shape[0]
    norm = sp.gammaln(np.sum(alpha)) - np.sum(sp.gammaln(alpha))
    return n * norm + np.sum((alpha - 1.0) * np.log(x))


def gamma_loglik(k, rate, x):
    return np.sum(k * np.log(rate) + (k - 1.0) * np.log(x) - rate * x - sp.gammaln(k))


def test_logistic_regression():
    X = R.normal(size=(8, 3))
    t = (R.random(8) > 0.5) * 1.0
    w = R.normal(size=3)
    g = adjoint.grad(logistic_regression)(w, X, t)
    np.testing.assert_allclose(g, X.T @ (sp.expit(X @ w) - t), rtol=1e-12)  # X^T (p - t)
    check_program(logistic_regression, w, X, t, wrt=0)
    # the Hessian is X^T diag(p (1 - p)) X
    p = sp.expit(X @ w)
    v = R.normal(size=3)
    np.testing.assert_allclose(adjoint.hvp(logistic_regression)(w, X, t, v),
                               X.T @ (p * (1.0 - p) * (X @ v)), rtol=1e-10)


def test_dirichlet_and_gamma_log_likelihoods():
    alpha = np.array([0.8, 2.0, 3.5])
    x = R.dirichlet(alpha, size=6)
    g = adjoint.grad(dirichlet_loglik)(alpha, x)
    want = 6 * (sp.digamma(np.sum(alpha)) - sp.digamma(alpha)) + np.sum(np.log(x), axis=0)
    np.testing.assert_allclose(g, want, rtol=1e-12)
    check_program(dirichlet_loglik, alpha, x, wrt=0)
    k, rate, data = 2.5, 1.5, R.gamma(2.5, 1.0 / 1.5, size=7)
    gk, gr = adjoint.grad(gamma_loglik, wrt=(0, 1))(k, rate, data)
    assert abs(gk - (7 * math.log(rate) + np.sum(np.log(data)) - 7 * sp.digamma(k))) < 1e-11
    assert abs(gr - (7 * k / rate - np.sum(data))) < 1e-11
    check_program(gamma_loglik, k, rate, data, wrt=(0, 1))
    # d2/dk2 = -n trigamma(k)
    assert abs(adjoint.hvp(gamma_loglik)(k, rate, data, 1.0) + 7 * sp.polygamma(1, k)) < 1e-10


# ---------------------------------------------------------------- refusals, SciPy optional

def lse_signed(x):
    s, sign = sp.logsumexp(x, b=np.array([1.0, -1.0, 2.0]), return_sign=True)
    return s * sign


def expit_weighted(x):
    return np.sum(sp.expit(x) * x)


def test_on_array_api_arrays_scipy_is_refused_at_its_line():
    # SciPy computes with NumPy: the array-API form of a gradient cannot call it (it was
    # passed through, and raised a TypeError without a line)
    xp = pytest.importorskip("array_api_strict")
    with pytest.raises(adjoint.UnsupportedError, match="scipy.special.expit") as info:
        adjoint.grad(expit_weighted)(xp.asarray(np.array([0.5, 1.0])))
    assert "test_special.py" in str(info.value)


def test_return_sign_is_refused_at_its_line():
    with pytest.raises(NonDifferentiableError, match="return_sign") as info:
        adjoint.grad(lse_signed)(np.array([0.1, 0.2, 0.3]))
    assert "sp.logsumexp(x, b=" in str(info.value)  # the user's line, shown


def polygamma_call(x, n):
    return np.sum(sp.polygamma(n, x))


def test_polygamma_in_x_and_a_fractional_order_refused():
    x = np.array([1.5, 2.0])
    np.testing.assert_allclose(adjoint.grad(polygamma_call)(x, 2), sp.polygamma(3, x),
                               rtol=1e-14)
    with pytest.raises(NonDifferentiableError, match="whole order") as info:
        adjoint.grad(polygamma_call)(x, 1.5)
    assert "sp.polygamma(n, x)" in str(info.value)


def incomplete_gammas(a, x):
    return np.sum(sp.gammainc(a, x) ** 2 + sp.gammaincc(a, x))


def bessel_j(v, x):
    return np.sum(sp.jv(v, x) ** 2)


def test_gammainc_jv_rgamma_in_x():
    # d/dx gammainc(a, x) = x^(a - 1) e^-x / gamma(a); gammaincc = 1 - gammainc;
    # J0' = -J1; (1 / gamma)' = -digamma / gamma, and (-1)^n n! at the pole x = -n
    x = np.array([0.3, 1.2, 2.5, 4.0])
    check_program(incomplete_gammas, 2.5, x, wrt=1)
    check_program(bessel_j, 1.5, x, wrt=1)
    check_program(bessel_j, 2, X5, wrt=1)
    check_program(lambda x: np.sum(sp.rgamma(x) ** 2), X5)
    slope = x ** 1.5 * np.exp(-x) / math.gamma(2.5)
    np.testing.assert_allclose(adjoint.grad(lambda x: np.sum(sp.gammainc(2.5, x)))(x), slope,
                               rtol=1e-13)
    np.testing.assert_allclose(adjoint.grad(lambda x: np.sum(sp.gammaincc(2.5, x)))(x), -slope,
                               rtol=1e-13)
    assert adjoint.grad(lambda x: sp.gammainc(1.0, x))(0.0) == 1.0  # e^-x at 0, not 0 * inf
    np.testing.assert_allclose(adjoint.grad(lambda x: np.sum(sp.jv(0, x)))(X5), -sp.jv(1, X5),
                               rtol=1e-13)
    z = np.array([0.7, 2.5, -2.0, -3.0])
    np.testing.assert_allclose(adjoint.grad(lambda z: np.sum(sp.rgamma(z)))(z),
                               [-sp.digamma(0.7) / sp.gamma(0.7), -sp.digamma(2.5) / sp.gamma(2.5),
                                2.0, -6.0], rtol=1e-12)


@pytest.mark.parametrize("f, args, wrt, match", [
    (incomplete_gammas, (2.5, np.array([0.3, 1.2])), 0, "differentiated in x only"),
    (bessel_j, (1.5, np.abs(X5) + 0.1), 0, "order v is held constant")])
def test_gammainc_in_a_and_jv_in_its_order_are_refused_at_their_line(f, args, wrt, match):
    for mode in ("grad", "jvp"):
        with pytest.raises(NonDifferentiableError, match=match) as info:
            if mode == "grad":
                adjoint.grad(f, wrt=wrt)(*args)
            else:
                adjoint.jvp(f, wrt=wrt)(*args, 1.0)
        assert "test_special.py" in str(info.value) and "sp." in str(info.value)
    # and a derivative in x alone goes through, with a (or v) a float argument
    assert np.all(np.isfinite(adjoint.jvp(f, wrt=1)(*args, np.ones_like(args[1]))[1]))


def test_without_scipy_nothing_is_registered():
    code = textwrap.dedent("""
        import sys
        sys.modules["scipy"] = None  # import scipy.special raises ImportError
        import numpy as np
        import adjoint
        from adjoint.rules import registry
        names = [e.prim.name for e in registry.entries()]
        assert not [n for n in names if n.startswith("scipy.")], names
        assert "np.exp" in names
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_standalone_file_runs_without_adjoint(tmp_path):
    src = tmp_path / "dirichlet_model.py"
    src.write_text("import numpy as np\nimport scipy.special as sp\n\n\n"
                   "def f(a, x):\n"
                   "    return np.sum(sp.digamma(a) * sp.xlogy(x, a)) + sp.logsumexp(a)\n")
    out = tmp_path / "grad_f.py"
    subprocess.run([sys.executable, "-m", "adjoint", "emit", f"{src}:f", "--args",
                    "np.array([1.5, 2.0]), np.array([0.0, 3.0])", "--standalone", "-o",
                    str(out)], check=True, capture_output=True)
    text = out.read_text()
    assert "from adjoint" not in text and "def x_over_y" in text
    run = textwrap.dedent(f"""
        import sys
        sys.modules["adjoint"] = None  # the file stands alone
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        from grad_f import f_grad
        print(repr(f_grad(np.array([1.5, 2.0]), np.array([0.0, 3.0])).tolist()))
    """)
    got = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                         cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    a, x = np.array([1.5, 2.0]), np.array([0.0, 3.0])
    want = (sp.polygamma(1, a) * x * np.log(a) + sp.digamma(a) * x / a + sp.softmax(a))
    np.testing.assert_allclose(eval(got.stdout), want, rtol=1e-13)
