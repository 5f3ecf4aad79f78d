"""scipy.stats through compiled programs (issue 15): norm's logpdf, pdf, cdf and logcdf,
and the logpdf of t, gamma, beta and multivariate_normal, in x and in their
parameters.

tests/rules/test_registry.py checks each rule's templates on their own (CASES);
here each is called as a user writes it (`scipy.stats.norm.logpdf`, or `norm` imported,
parameters by position or by keyword), differentiated by the compiler, and checked
with check_program, against hand formulas, and twice (hvp) against the second
derivative written out.
"""
from __future__ import annotations

import numpy as np
import pytest

stats = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")

import scipy  # noqa: E402

import adjoint  # noqa: E402
from adjoint.testing import check_program  # noqa: E402

R = np.random.default_rng(23)
X5 = R.normal(size=5)
P5 = R.uniform(0.5, 2.0, 5)
U5 = R.uniform(0.1, 0.9, 5)
norm = stats.norm


def normal_loglik(x, m, s):
    return np.sum(scipy.stats.norm.logpdf(x, m, s))


def normal_keywords(x, m, s):
    return np.sum(norm.logpdf(x, loc=m, scale=s) + norm.pdf(x, scale=s, loc=m))


def normal_cdfs(x, m, s):
    return np.sum(norm.cdf(x, m, s) ** 2 + norm.logcdf(x, m, s))


def student(x, df, s):
    return np.sum(stats.t.logpdf(x, df, 0.3, s))


def gamma_loglik(x, a, s):
    return np.sum(stats.gamma.logpdf(x, a, scale=s))


def beta_loglik(x, a, b):
    return np.sum(stats.beta.logpdf(x, a, b))


@pytest.mark.parametrize("f, args", [
    (normal_loglik, (X5, 0.4, 1.3)), (normal_loglik, (X5, X5[::-1], P5)),
    (normal_keywords, (X5, 0.4, 1.3)), (normal_cdfs, (X5, -0.2, 0.8)),
    (student, (X5, 3.5, 1.2)), (student, (X5, P5 + 1.0, 0.9)),
    (gamma_loglik, (P5, 2.5, 1.5)), (beta_loglik, (U5, 2.0, 3.5)), (beta_loglik, (U5, P5, P5))])
def test_against_finite_differences(f, args):
    check_program(f, *args)


def test_normal_logpdf_by_hand():
    # d/dx logpdf(x, m, s) = -(x - m) / s^2; d/dm = (x - m) / s^2;
    # d/ds = ((x - m)^2 / s^2 - 1) / s
    x, m, s = X5, 0.4, 1.3
    gx, gm, gs = adjoint.grad(normal_loglik, wrt=(0, 1, 2))(x, m, s)
    np.testing.assert_allclose(gx, -(x - m) / s ** 2, rtol=1e-13)
    np.testing.assert_allclose(gm, np.sum(x - m) / s ** 2, rtol=1e-13)
    np.testing.assert_allclose(gs, np.sum(((x - m) ** 2 / s ** 2 - 1.0) / s), rtol=1e-13)


def test_normal_cdf_and_logcdf_by_hand():
    # d/dx cdf = pdf; d/dx logcdf = pdf / cdf, finite far in the lower tail
    x = np.array([-40.0, -3.0, 0.5, 6.0])
    got = adjoint.grad(lambda x: np.sum(norm.cdf(x, 0.5, 2.0)))(x)
    np.testing.assert_allclose(got, norm.pdf(x, 0.5, 2.0), rtol=1e-13)
    got = adjoint.grad(lambda x: np.sum(norm.logcdf(x)))(x)
    z = x[1:]
    np.testing.assert_allclose(got[1:], norm.pdf(z) / norm.cdf(z), rtol=1e-12)
    assert np.isfinite(got[0]) and abs(got[0] - 40.0) < 0.1  # ~ -x in the far tail


def test_gamma_and_t_by_hand():
    # gamma: d/da = log(x / s) - digamma(a) per entry; t: d/dx = -(df + 1) z / (df + z^2) / s
    x, a, s = P5, 2.5, 1.5
    ga = adjoint.grad(gamma_loglik, wrt=1)(x, a, s)
    np.testing.assert_allclose(ga, np.sum(np.log(x / s) - special.digamma(a)), rtol=1e-12)
    df, s = 3.5, 1.2
    z = (X5 - 0.3) / s
    gx = adjoint.grad(student)(X5, df, s)
    np.testing.assert_allclose(gx, -(df + 1.0) * z / (df + z * z) / s, rtol=1e-12)


def test_second_derivative_in_the_scale():
    # d^2/ds^2 of -log s - (x - m)^2 / (2 s^2) = 1 / s^2 - 3 (x - m)^2 / s^4
    x, m, s = X5, 0.4, 1.3
    got = adjoint.hvp(normal_loglik, wrt=2)(x, m, s, 1.0)
    np.testing.assert_allclose(got, np.sum(1.0 / s ** 2 - 3.0 * (x - m) ** 2 / s ** 4),
                               rtol=1e-12)


def test_a_frozen_distribution_is_its_method_with_its_parameters():
    # (refused until issue 15; more in tests/test_coverage23.py): d/dx logpdf = -x
    assert adjoint.grad(frozen)(0.3) == pytest.approx(-0.3, rel=1e-14)
    from adjoint.errors import AdjointError
    with pytest.raises(AdjointError) as e:
        adjoint.grad(frozen_draw)(0.3)
    assert e.value.loc is not None and "norm(x, 1.0).rvs()" in e.value.loc.text


def frozen(x):
    return norm(0.0, 1.0).logpdf(x)


def frozen_draw(x):
    return norm(x, 1.0).rvs()


B3 = R.normal(size=(3, 3))
COV3 = B3 @ B3.T + 3.0 * np.eye(3)
X43 = R.normal(size=(4, 3))


def mvn_loglik(x, m, c):
    return np.sum(stats.multivariate_normal.logpdf(x, m, c))


def mvn_centred(x, c):
    return stats.multivariate_normal.logpdf(x, cov=c) ** 2


@pytest.mark.parametrize("f, args", [(mvn_loglik, (X43, X5[:3], COV3)),
                                     (mvn_loglik, (X43[0], X5[:3], COV3)),
                                     (mvn_centred, (X43[1], COV3))])
def test_multivariate_normal_against_finite_differences(f, args):
    check_program(f, *args)


def test_multivariate_normal_by_hand():
    # logpdf = -(k log 2 pi + log det C + d^T C^-1 d) / 2, d = x - m: in x, -C^-1 d; in m,
    # C^-1 d; in C (read from its lower triangle), G = -(C^-1 - C^-1 d d^T C^-1) / 2 with
    # the upper triangle's share folded onto the lower one
    x, m = X43[0], X5[:3]
    gx, gm, gc = adjoint.grad(mvn_loglik, wrt=(0, 1, 2))(x, m, COV3)
    inv = np.linalg.inv(COV3)
    s = inv @ (x - m)
    np.testing.assert_allclose(gx, -s, rtol=1e-12)
    np.testing.assert_allclose(gm, s, rtol=1e-12)
    full = -0.5 * (inv - np.outer(s, s))
    np.testing.assert_allclose(gc, np.tril(full + full.T) - np.diag(np.diag(full)), rtol=1e-10,
                               atol=1e-14)


def test_multivariate_normal_with_a_scalar_cov_is_refused():
    from adjoint.errors import NonDifferentiableError
    with pytest.raises(NonDifferentiableError, match=r"\(k, k\) cov"):
        adjoint.grad(lambda x: np.sum(stats.multivariate_normal.logpdf(x, cov=2.0)))(X43[0])
