"""x ** 2 written through a kink or a tie, at second order (issue 19, adv24b's F1 and F3).

Each function of `X2_WAYS` equals x ** 2 near x = 0 and has a kink or a tie there.
Away from it, grad(grad(f)), hvp and hessian must give exactly 2 (and agree with
central differences of grad); at it, a located NonDifferentiableError: the rules'
shares, masks and signs are primitives whose derivatives are refused at the kink
(larger_share, abs_slope, tie_weights). The first derivatives keep their documented
conventions (docs/rules.md), checked here at ties whose value is not 0.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import adjoint
from adjoint.errors import NonDifferentiableError
from adjoint.rules.reductions import nanmedian_ties
from adjoint.rules.stats import quantile_ties


def builtin_max_min(x):
    return max(x, 0.0) ** 2 + min(x, 0.0) ** 2


def np_maximum_minimum(x):
    return np.maximum(x, 0.0) ** 2 + np.minimum(x, 0.0) ** 2


def fmax_fmin(x):
    return np.fmax(x, 0.0) ** 2 + np.fmin(x, 0.0) ** 2


def two_clips(x):
    return np.clip(x, 0.0, 5.0) ** 2 + np.clip(x, -5.0, 0.0) ** 2


def one_sided_clips(x):
    return np.clip(x, 0.0, None) ** 2 + np.clip(x, None, 0.0) ** 2


def np_max_of_pair(x):
    return np.max(np.array([x, -x])) ** 2


def np_amax_of_pair(x):
    return np.amax(np.array([x, -x])) ** 2


def np_max_min_of_stack(x):
    return np.max(np.stack([x, 0.0])) ** 2 + np.min(np.stack([x, 0.0])) ** 2


def np_max_initial(x):
    return np.max(np.array([x, -x]), initial=-1.0) ** 2


def nanmax_of_pair(x):
    return np.nanmax(np.array([x, -x, np.nan])) ** 2


def ptp_of_pair(x):
    return np.ptp(np.array([x, 0.0])) ** 2


def norm_1(x):  # (not [x, 0.0]: a zero entry is a kink of the 1-norm, for any x)
    return np.linalg.norm(np.array([x, 2.0 * x]), 1) ** 2 / 9.0


def norm_inf(x):  # (not [x, -x]: a tie for any x)
    return np.linalg.norm(np.array([x, 0.5 * x]), np.inf) ** 2


def quantile_top(x):
    return np.quantile(np.array([x, -x]), 1.0) ** 2


def median_of_three(x):
    return np.median(np.array([x, -x, 5.0])) ** 2


def nanmedian_of_three(x):
    return np.nanmedian(np.array([x, -x, 5.0, np.nan])) ** 2


def abs_squared(x):
    return np.abs(x) ** 2


def math_fabs_squared(x):
    return math.fabs(x) ** 2


def copysign_squared(x):
    return np.copysign(x, 1.0) ** 2


X2_WAYS = [builtin_max_min, np_maximum_minimum, fmax_fmin, two_clips, one_sided_clips,
           np_max_of_pair, np_amax_of_pair, np_max_min_of_stack, np_max_initial,
           nanmax_of_pair, ptp_of_pair, norm_1, norm_inf, quantile_top, median_of_three,
           nanmedian_of_three, abs_squared, math_fabs_squared, copysign_squared]


def _second_orders(f, x):
    """f''(x) by grad(grad), hvp and hessian."""
    return (adjoint.grad(adjoint.grad(f))(x), adjoint.hvp(f)(x, 1.0),
            float(np.squeeze(adjoint.hessian(f)(x))))


@pytest.mark.parametrize("f", X2_WAYS, ids=lambda f: f.__name__)
def test_x_squared_is_2_away_from_the_kink(f):
    for x in (0.7, -0.6):
        assert f(x) == pytest.approx(x * x, rel=1e-15)
        g = adjoint.grad(f)
        fd = (g(x + 1e-6) - g(x - 1e-6)) / 2e-6
        for second in _second_orders(f, x):
            assert second == 2.0, (f.__name__, x, second)
        assert fd == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("f", X2_WAYS, ids=lambda f: f.__name__)
def test_x_squared_at_the_kink_is_refused_at_its_line(f):
    assert adjoint.grad(f)(0.0) == 0.0  # the first derivative: right, and its convention
    line = f.__code__.co_firstlineno + 1
    for second in (lambda: adjoint.grad(adjoint.grad(f))(0.0), lambda: adjoint.hvp(f)(0.0, 1.0),
                   lambda: adjoint.hessian(f)(0.0)):
        with pytest.raises(NonDifferentiableError, match="derivative of the gradient") as e:
            second()
        assert e.value.loc is not None and e.value.loc.filename == __file__
        assert e.value.loc.line == line, f.__name__


# ---------------------------------------------------------------- first-order conventions

def max_builtin_at_1(x):
    return max(x, 1.0)


def clip_top_at_1(x):
    return np.clip(x, 0.0, 1.0)


def clip_bottom_at_1(x):
    return np.clip(x, 1.0, 2.0)


def fmin_at_1(x):
    return np.fmin(x, 1.0)


def np_max_at_1(x):
    return np.max(np.array([x, 1.0, 0.5]))


def ptp_at_1(x):
    return np.ptp(np.array([x, 1.0, 0.0]))


def median_at_1(x):
    return np.median(np.array([x, 1.0, 5.0]))


def norm_inf_at_1(x):
    return np.linalg.norm(np.array([x, -1.0]), np.inf)


def quantile_at_1(x):
    return np.quantile(np.array([x, 1.0, 0.0]), 1.0)


# (f, the documented slope at x = 1: ties split evenly, clip's bounds inclusive)
CONVENTIONS = [(max_builtin_at_1, 0.5), (clip_top_at_1, 1.0), (clip_bottom_at_1, 1.0),
               (fmin_at_1, 0.5), (np_max_at_1, 0.5), (ptp_at_1, 0.5), (median_at_1, 0.5),
               (norm_inf_at_1, 0.5), (quantile_at_1, 0.5)]


@pytest.mark.parametrize("f, slope", CONVENTIONS, ids=lambda c: getattr(c, "__name__", ""))
def test_first_derivatives_at_ties_keep_their_conventions(f, slope):
    assert adjoint.grad(f)(1.0) == slope
    assert adjoint.jvp(f)(1.0, 1.0)[1] == slope
    with pytest.raises(NonDifferentiableError):  # and the second is refused there
        adjoint.hvp(lambda_free_square(f))(1.0, 1.0)


def lambda_free_square(f):
    """f(x) ** 2, as a function with source (the convention's f is linear near 1)."""
    return {max_builtin_at_1: sq_max_builtin, clip_top_at_1: sq_clip_top,
            clip_bottom_at_1: sq_clip_bottom, fmin_at_1: sq_fmin, np_max_at_1: sq_np_max,
            ptp_at_1: sq_ptp, median_at_1: sq_median, norm_inf_at_1: sq_norm_inf,
            quantile_at_1: sq_quantile}[f]


def sq_max_builtin(x):
    return max_builtin_at_1(x) ** 2


def sq_clip_top(x):
    return clip_top_at_1(x) ** 2


def sq_clip_bottom(x):
    return clip_bottom_at_1(x) ** 2


def sq_fmin(x):
    return fmin_at_1(x) ** 2


def sq_np_max(x):
    return np_max_at_1(x) ** 2


def sq_ptp(x):
    return ptp_at_1(x) ** 2


def sq_median(x):
    return median_at_1(x) ** 2


def sq_norm_inf(x):
    return norm_inf_at_1(x) ** 2


def sq_quantile(x):
    return quantile_at_1(x) ** 2


# ---------------------------------------------------------------- vector ties

def max_times_entry(x):
    return np.max(x) ** 2 * x[2]


def median_squared(x):
    return np.median(x) ** 2


def ptp_squared(x):
    return np.ptp(x) ** 2


def norm_inf_squared(x):
    return np.linalg.norm(x, np.inf) ** 2


@pytest.mark.parametrize("f", [max_times_entry, median_squared, ptp_squared, norm_inf_squared],
                         ids=lambda f: f.__name__)
def test_vector_ties_refused_and_untied_hessians_right(f):
    tied = np.array([0.5, 0.5, 0.2])
    with pytest.raises(NonDifferentiableError):
        adjoint.hvp(f)(tied, np.array([1.0, -1.0, 0.5]))
    x = np.array([0.5, 0.3, 0.2])
    h = adjoint.hessian(f)(x)
    g = adjoint.grad(f)
    fd = np.stack([(g(x + 1e-6 * e) - g(x - 1e-6 * e)) / 2e-6 for e in np.eye(3)])
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8)


def test_the_median_of_two_equal_entries_is_no_tie():
    # both middle entries weigh 1/2 whatever their order: smooth, not refused
    assert not quantile_ties(np.array([2.0, 2.0]), 0.5)
    assert quantile_ties(np.array([2.0, 2.0]), 1.0)
    assert quantile_ties(np.array([1.0, 2.0, 2.0]), 0.5)
    assert not nanmedian_ties(np.array([2.0, 2.0, np.nan]))
    assert nanmedian_ties(np.array([2.0, 2.0, 1.0, np.nan]))
    assert nanmedian_ties(np.array([[2.0, 2.0, 2.0, 1.0], [1.0, 2.0, 3.0, np.nan]]), 1)


# ---------------------------------------------------------------- third order (F3)

def norm_cubed(x):
    return np.linalg.norm(np.array([x, 1.0])) ** 3


def norm_1_cubed(x):
    return np.linalg.norm(np.array([x, 1.0]), 1) ** 3


def norm_inf_cubed(x):
    return np.linalg.norm(np.array([x, 1.0]), np.inf) ** 3


@pytest.mark.parametrize("f, x, exact", [
    (norm_cubed, 0.7, 3 * 0.7 * (2 * 0.7 ** 2 + 3) / (0.7 ** 2 + 1) ** 1.5),
    (norm_1_cubed, 0.7, 6.0),  # (x + 1) ** 3
    (norm_inf_cubed, 1.5, 6.0)], ids=["2", "1", "inf"])  # x ** 3
def test_third_order_through_norm(f, x, exact):
    third = adjoint.grad(adjoint.grad(adjoint.grad(f)))(x)
    assert third == pytest.approx(exact, rel=1e-12)
    g2 = adjoint.grad(adjoint.grad(f))
    assert (g2(x + 1e-5) - g2(x - 1e-5)) / 2e-5 == pytest.approx(exact, rel=1e-6)
