"""`scipy.stats`: the normal distribution's `logpdf`, `pdf`, `cdf`, `logcdf`, `sf`, `logsf`
and `ppf`, the `logpdf` and `pdf` of `t`, `gamma` and `beta`, `chi2.logpdf`,
`multivariate_normal.logpdf` and `pdf`, and `poisson.logpmf` and `pmf` in its rate (imported when one of them
is first met; see `registry._LAZY`), each differentiable in x and in every parameter
(df, a, b, loc, scale; mean and cov), which broadcast against each other as SciPy's
do. `multivariate_normal.logpdf` takes a (k, k) cov, of which SciPy reads the lower
triangle (and so does the rule), points x along the last axis (k of them), and no
allow_singular=True. They are the methods of
SciPy's distribution objects, called as `scipy.stats.norm.logpdf(x, loc, scale)` or
`norm.logpdf(x, loc=..., scale=...)`; a frozen distribution (`norm(loc, scale).logpdf(x)`)
is lowered to that call (frontend/objects.py's `freeze`).

Each rule is the partial derivatives of the function, written with `scipy.special`'s
functions (digamma, log_ndtr's ratio through erfcx), so a gradient can be
differentiated again. Outside a distribution's support (x <= loc for gamma, x
outside (loc, loc + scale) for beta) logpdf is -inf and its derivatives are NaN:
no value is made up there.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from adjoint.rules.linalg import _mT, _read_triangle, _to_triangle
from adjoint.rules.located import unsupported
from adjoint.rules.special import log_ndtr_slope
from adjoint.rules.registry import defjvp, defvjp, primitive
from adjoint.runtime import unbroadcast

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

for _dist, _methods in [("norm", ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"]),
                        ("t", ["logpdf", "pdf"]), ("gamma", ["logpdf", "pdf"]),
                        ("beta", ["logpdf", "pdf"]), ("chi2", ["logpdf"]),
                        ("poisson", ["logpmf", "pmf"]),
                        ("multivariate_normal", ["logpdf", "pdf"])]:
    for _method in _methods:
        primitive(getattr(getattr(stats, _dist), _method), f"scipy.stats.{_dist}.{_method}")


# ------------------------------------------------------------------ normal

def _norm_partials(kind, ans, x, loc, scale):
    """(d ans / dz at z = (x - loc) / scale, z): the partials in x, loc and scale are
    that over scale times 1, -1 and -z, but for the scale's own term (below)."""
    z = (x - loc) / scale
    if kind == "logpdf":
        return -z, z
    if kind == "pdf":
        return -z * ans, z  # pdf = phi(z) / scale
    if kind == "cdf":
        return np.exp(-0.5 * z * z - _LOG_SQRT_2PI), z
    if kind == "sf":  # cdf(-z)
        return -np.exp(-0.5 * z * z - _LOG_SQRT_2PI), z
    if kind == "logsf":
        return -log_ndtr_slope(-z), z
    return log_ndtr_slope(z), z  # logcdf: pdf / cdf, stable in both tails, every order


def _norm_scale_term(kind, ans):
    """The part of d/dscale that is not through z, times -scale: 1 for logpdf (its
    -log(scale)), pdf for pdf (its 1 / scale factor), 0 otherwise."""
    if kind == "logpdf":
        return 1.0
    if kind == "pdf":
        return ans
    return 0.0 * ans


def _norm_vjp(kind, g, ans, x, loc, scale):
    d, z = _norm_partials(kind, ans, x, loc, scale)
    gz = g * d / scale
    gs = -gz * z - g * _norm_scale_term(kind, ans) / scale
    return unbroadcast(gz, x), unbroadcast(-gz, loc), unbroadcast(gs, scale)


def _norm_jvp(kind, ans, x, loc, scale, x_dot, loc_dot, scale_dot):
    d, z = _norm_partials(kind, ans, x, loc, scale)
    return (d * (x_dot - loc_dot - z * scale_dot) - _norm_scale_term(kind, ans) * scale_dot) \
        / scale


@defvjp(stats.norm.logpdf)
def norm_logpdf_vjp(g, ans, x, loc=0.0, scale=1.0):
    # d/dx = -(x - loc) / scale^2, d/dscale = (z^2 - 1) / scale
    bars = _norm_vjp("logpdf", g, ans, x, loc, scale)
    return bars[0], bars[1], bars[2]


@defjvp(stats.norm.logpdf)
def norm_logpdf_jvp(ans, x, loc=0.0, scale=1.0, x_dot=None, loc_dot=None, scale_dot=None):
    return _norm_jvp("logpdf", ans, x, loc, scale, x_dot, loc_dot, scale_dot)


@defvjp(stats.norm.pdf)
def norm_pdf_vjp(g, ans, x, loc=0.0, scale=1.0):
    bars = _norm_vjp("pdf", g, ans, x, loc, scale)
    return bars[0], bars[1], bars[2]


@defjvp(stats.norm.pdf)
def norm_pdf_jvp(ans, x, loc=0.0, scale=1.0, x_dot=None, loc_dot=None, scale_dot=None):
    return _norm_jvp("pdf", ans, x, loc, scale, x_dot, loc_dot, scale_dot)


@defvjp(stats.norm.cdf)
def norm_cdf_vjp(g, ans, x, loc=0.0, scale=1.0):
    bars = _norm_vjp("cdf", g, ans, x, loc, scale)
    return bars[0], bars[1], bars[2]


@defjvp(stats.norm.cdf)
def norm_cdf_jvp(ans, x, loc=0.0, scale=1.0, x_dot=None, loc_dot=None, scale_dot=None):
    return _norm_jvp("cdf", ans, x, loc, scale, x_dot, loc_dot, scale_dot)


@defvjp(stats.norm.logcdf)
def norm_logcdf_vjp(g, ans, x, loc=0.0, scale=1.0):
    bars = _norm_vjp("logcdf", g, ans, x, loc, scale)
    return bars[0], bars[1], bars[2]


@defjvp(stats.norm.logcdf)
def norm_logcdf_jvp(ans, x, loc=0.0, scale=1.0, x_dot=None, loc_dot=None, scale_dot=None):
    return _norm_jvp("logcdf", ans, x, loc, scale, x_dot, loc_dot, scale_dot)


@defvjp(stats.norm.sf)
def norm_sf_vjp(g, ans, x, loc=0.0, scale=1.0):
    bars = _norm_vjp("sf", g, ans, x, loc, scale)
    return bars[0], bars[1], bars[2]


@defjvp(stats.norm.sf)
def norm_sf_jvp(ans, x, loc=0.0, scale=1.0, x_dot=None, loc_dot=None, scale_dot=None):
    return _norm_jvp("sf", ans, x, loc, scale, x_dot, loc_dot, scale_dot)


@defvjp(stats.norm.logsf)
def norm_logsf_vjp(g, ans, x, loc=0.0, scale=1.0):
    bars = _norm_vjp("logsf", g, ans, x, loc, scale)
    return bars[0], bars[1], bars[2]


@defjvp(stats.norm.logsf)
def norm_logsf_jvp(ans, x, loc=0.0, scale=1.0, x_dot=None, loc_dot=None, scale_dot=None):
    return _norm_jvp("logsf", ans, x, loc, scale, x_dot, loc_dot, scale_dot)


def _ppf_slope(q):
    """d ndtri(q) / dq = 1 / phi(ndtri(q)): sqrt(2 pi) exp(z^2 / 2)."""
    z = special.ndtri(q)
    return np.exp(0.5 * z * z + _LOG_SQRT_2PI), z


@defvjp(stats.norm.ppf)
def norm_ppf_vjp(g, ans, q, loc=0.0, scale=1.0):
    # ans = loc + scale * ndtri(q)
    d = _ppf_slope(q)
    return unbroadcast(g * scale * d[0], q), unbroadcast(g, loc), unbroadcast(g * d[1], scale)


@defjvp(stats.norm.ppf)
def norm_ppf_jvp(ans, q, loc=0.0, scale=1.0, q_dot=None, loc_dot=None, scale_dot=None):
    d = _ppf_slope(q)
    return scale * d[0] * q_dot + loc_dot + d[1] * scale_dot


# ------------------------------------------------------------------ t, gamma, beta

def _t_partials(x, df, loc, scale):
    """The partials of t.logpdf in (x, df, loc, scale): with z = (x - loc) / scale,
    logpdf = gammaln((df + 1) / 2) - gammaln(df / 2) - log(df pi) / 2 - log(scale)
    - (df + 1) / 2 log(1 + z^2 / df)."""
    z = (x - loc) / scale
    r = (df + 1.0) / (df + z * z)
    dz = -r * z
    ddf = 0.5 * (special.digamma(0.5 * (df + 1.0)) - special.digamma(0.5 * df) - 1.0 / df
                 - np.log1p(z * z / df) + r * z * z / df)
    return dz / scale, ddf, -dz / scale, -(dz * z + 1.0) / scale


def _gamma_partials(x, a, loc, scale):
    """Of gamma.logpdf = (a - 1) log y - y - gammaln(a) - log(scale), y = (x - loc) / scale."""
    y = (x - loc) / scale
    dy = (a - 1.0) / y - 1.0
    return dy / scale, np.log(y) - special.digamma(a), -dy / scale, (y - a) / scale


def _beta_partials(x, a, b, loc, scale):
    """Of beta.logpdf = (a - 1) log y + (b - 1) log(1 - y) - betaln(a, b) - log(scale)."""
    y = (x - loc) / scale
    both = special.digamma(a + b)
    dy = (a - 1.0) / y - (b - 1.0) / (1.0 - y)
    return (dy / scale, np.log(y) - special.digamma(a) + both,
            np.log1p(-y) - special.digamma(b) + both, -dy / scale, -(dy * y + 1.0) / scale)


@defvjp(stats.t.logpdf)
def t_logpdf_vjp(g, ans, x, df, loc=0.0, scale=1.0):
    d = _t_partials(x, df, loc, scale)
    return (unbroadcast(g * d[0], x), unbroadcast(g * d[1], df), unbroadcast(g * d[2], loc),
            unbroadcast(g * d[3], scale))


@defjvp(stats.t.logpdf)
def t_logpdf_jvp(ans, x, df, loc=0.0, scale=1.0, x_dot=None, df_dot=None, loc_dot=None,
                 scale_dot=None):
    d = _t_partials(x, df, loc, scale)
    return d[0] * x_dot + d[1] * df_dot + d[2] * loc_dot + d[3] * scale_dot


@defvjp(stats.gamma.logpdf)
def gamma_logpdf_vjp(g, ans, x, a, loc=0.0, scale=1.0):
    d = _gamma_partials(x, a, loc, scale)
    return (unbroadcast(g * d[0], x), unbroadcast(g * d[1], a), unbroadcast(g * d[2], loc),
            unbroadcast(g * d[3], scale))


@defjvp(stats.gamma.logpdf)
def gamma_logpdf_jvp(ans, x, a, loc=0.0, scale=1.0, x_dot=None, a_dot=None, loc_dot=None,
                     scale_dot=None):
    d = _gamma_partials(x, a, loc, scale)
    return d[0] * x_dot + d[1] * a_dot + d[2] * loc_dot + d[3] * scale_dot


@defvjp(stats.beta.logpdf)
def beta_logpdf_vjp(g, ans, x, a, b, loc=0.0, scale=1.0):
    d = _beta_partials(x, a, b, loc, scale)
    return (unbroadcast(g * d[0], x), unbroadcast(g * d[1], a), unbroadcast(g * d[2], b),
            unbroadcast(g * d[3], loc), unbroadcast(g * d[4], scale))


@defjvp(stats.beta.logpdf)
def beta_logpdf_jvp(ans, x, a, b, loc=0.0, scale=1.0, x_dot=None, a_dot=None, b_dot=None,
                    loc_dot=None, scale_dot=None):
    d = _beta_partials(x, a, b, loc, scale)
    return d[0] * x_dot + d[1] * a_dot + d[2] * b_dot + d[3] * loc_dot + d[4] * scale_dot


# a density is its logpdf's exponential: its partials are the logpdf's times the density

@defvjp(stats.t.pdf)
def t_pdf_vjp(g, ans, x, df, loc=0.0, scale=1.0):
    d, ga = _t_partials(x, df, loc, scale), g * ans
    return (unbroadcast(ga * d[0], x), unbroadcast(ga * d[1], df), unbroadcast(ga * d[2], loc),
            unbroadcast(ga * d[3], scale))


@defjvp(stats.t.pdf)
def t_pdf_jvp(ans, x, df, loc=0.0, scale=1.0, x_dot=None, df_dot=None, loc_dot=None,
              scale_dot=None):
    d = _t_partials(x, df, loc, scale)
    return ans * (d[0] * x_dot + d[1] * df_dot + d[2] * loc_dot + d[3] * scale_dot)


@defvjp(stats.gamma.pdf)
def gamma_pdf_vjp(g, ans, x, a, loc=0.0, scale=1.0):
    d, ga = _gamma_partials(x, a, loc, scale), g * ans
    return (unbroadcast(ga * d[0], x), unbroadcast(ga * d[1], a), unbroadcast(ga * d[2], loc),
            unbroadcast(ga * d[3], scale))


@defjvp(stats.gamma.pdf)
def gamma_pdf_jvp(ans, x, a, loc=0.0, scale=1.0, x_dot=None, a_dot=None, loc_dot=None,
                  scale_dot=None):
    d = _gamma_partials(x, a, loc, scale)
    return ans * (d[0] * x_dot + d[1] * a_dot + d[2] * loc_dot + d[3] * scale_dot)


@defvjp(stats.beta.pdf)
def beta_pdf_vjp(g, ans, x, a, b, loc=0.0, scale=1.0):
    d, ga = _beta_partials(x, a, b, loc, scale), g * ans
    return (unbroadcast(ga * d[0], x), unbroadcast(ga * d[1], a), unbroadcast(ga * d[2], b),
            unbroadcast(ga * d[3], loc), unbroadcast(ga * d[4], scale))


@defjvp(stats.beta.pdf)
def beta_pdf_jvp(ans, x, a, b, loc=0.0, scale=1.0, x_dot=None, a_dot=None, b_dot=None,
                 loc_dot=None, scale_dot=None):
    d = _beta_partials(x, a, b, loc, scale)
    return ans * (d[0] * x_dot + d[1] * a_dot + d[2] * b_dot + d[3] * loc_dot
                  + d[4] * scale_dot)


# chi2(df) is gamma(df / 2) with twice the scale
@defvjp(stats.chi2.logpdf)
def chi2_logpdf_vjp(g, ans, x, df, loc=0.0, scale=1.0):
    d = _gamma_partials(x, 0.5 * df, loc, 2.0 * scale)
    return (unbroadcast(g * d[0], x), unbroadcast(0.5 * g * d[1], df),
            unbroadcast(g * d[2], loc), unbroadcast(2.0 * g * d[3], scale))


@defjvp(stats.chi2.logpdf)
def chi2_logpdf_jvp(ans, x, df, loc=0.0, scale=1.0, x_dot=None, df_dot=None, loc_dot=None,
                    scale_dot=None):
    d = _gamma_partials(x, 0.5 * df, loc, 2.0 * scale)
    return d[0] * x_dot + 0.5 * d[1] * df_dot + d[2] * loc_dot + 2.0 * d[3] * scale_dot


# poisson.logpmf(k, mu) = k log mu - mu - gammaln(k + 1): k counts (no derivative), mu rate
@defvjp(stats.poisson.logpmf)
def poisson_logpmf_vjp(g, ans, k, mu, loc=0):
    return None, unbroadcast(g * (k / mu - 1.0), mu), None


@defjvp(stats.poisson.logpmf)
def poisson_logpmf_jvp(ans, k, mu, loc=0, k_dot=None, mu_dot=None, loc_dot=None):
    return (k / mu - 1.0) * mu_dot


@defvjp(stats.poisson.pmf)
def poisson_pmf_vjp(g, ans, k, mu, loc=0):
    return None, unbroadcast(g * ans * (k / mu - 1.0), mu), None


@defjvp(stats.poisson.pmf)
def poisson_pmf_jvp(ans, k, mu, loc=0, k_dot=None, mu_dot=None, loc_dot=None):
    return ans * (k / mu - 1.0) * mu_dot


# ------------------------------------------------------------------ multivariate normal

def _mvn_parts(x, mean, cov, allow_singular):
    """(d = x - mean, cov^-1 d along the last axis, cov^-1) of multivariate_normal.logpdf =
    -(k log(2 pi) + log det cov + d^T cov^-1 d) / 2, cov read from its lower triangle."""
    if np.ndim(cov) != 2 or allow_singular or np.ndim(x) == 0 or \
            np.shape(x)[-1] != np.shape(cov)[0]:
        _ = unsupported("scipy.stats.multivariate_normal.logpdf has a derivative rule for a "
                        "(k, k) cov, points along x's last axis, and allow_singular=False",
                        "pass cov as a matrix: np.eye(k) * s for a scalar s")
    inv = np.linalg.inv(_read_triangle(cov, False))
    d = x
    if mean is not None:
        d = x - mean
    return d, d @ inv, inv


@defvjp(stats.multivariate_normal.logpdf)
def mvn_logpdf_vjp(g, ans, x, mean=None, cov=1, allow_singular=False):
    parts = _mvn_parts(x, mean, cov, allow_singular)
    d, s, inv = parts[0], parts[1], parts[2]
    k = np.shape(inv)[0]
    gk = np.reshape(g, np.shape(d)[:-1] + (1,))
    rows = np.reshape(s, (-1, k))
    gs = np.reshape(gk * s, (-1, k))
    # d(log det) = tr(cov^-1 dcov); d(d^T cov^-1 d) = -s^T dcov s for each row s
    gfull = -0.5 * (np.sum(g) * inv - _mT(rows) @ gs)
    return unbroadcast(-gk * s, x), unbroadcast(gk * s, mean), _to_triangle(gfull, False)


@defjvp(stats.multivariate_normal.logpdf)
def mvn_logpdf_jvp(ans, x, mean=None, cov=1, allow_singular=False, x_dot=None,
                   mean_dot=None, cov_dot=None):
    parts = _mvn_parts(x, mean, cov, allow_singular)
    d, s, inv = parts[0], parts[1], parts[2]
    dfull = _read_triangle(cov_dot, False)
    dd = x_dot - mean_dot
    t = -0.5 * (np.trace(inv @ dfull) + 2.0 * np.sum(dd * s, axis=-1)
                - np.sum((s @ dfull) * s, axis=-1))
    return np.reshape(t, np.shape(ans))


# its density: the logpdf's partials times the density
@defvjp(stats.multivariate_normal.pdf)
def mvn_pdf_vjp(g, ans, x, mean=None, cov=1, allow_singular=False):
    bars = mvn_logpdf_vjp(g * ans, np.log(ans), x, mean, cov, allow_singular)
    return bars[0], bars[1], bars[2]


@defjvp(stats.multivariate_normal.pdf)
def mvn_pdf_jvp(ans, x, mean=None, cov=1, allow_singular=False, x_dot=None, mean_dot=None,
                cov_dot=None):
    return ans * mvn_logpdf_jvp(np.log(ans), x, mean, cov, allow_singular, x_dot, mean_dot,
                                cov_dot)
