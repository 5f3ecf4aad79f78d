"""Round 24 (issue 19): classes of crashes and wrong values found this round, each with
the test that failed before its fix. Values are checked against a formula by hand and
central differences in float64."""
import collections
import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.linalg
from scipy import special

import adjoint
from tests.test_emitted_imports import emitted

EPS = 1e-6


def _root(x):
    return x ** 0.5


def _cube_root_of_square(x):
    return (x * x) ** (1.0 / 3.0) + x


def _soft_root(x):
    return 1.0 / (1.0 + abs(x) ** 0.5)


def _recip_sum(x, y):
    return 1.0 / x * y


def _math_root(x):
    return math.sqrt(x) * 3.0


def _central(f, x):
    return (f(x + EPS) - f(x - EPS)) / (2 * EPS)


# ------------------------------------- emitted files called with Python floats at a pole
# Python's float arithmetic raises ZeroDivisionError where NumPy's gives inf: the derivative
# of x ** 0.5 at the Python float 0.0 raised inside a generated file, where the API gives inf.

@pytest.mark.parametrize("standalone", [False, True])
def test_an_emitted_gradient_at_an_infinite_derivative_gives_inf_as_the_api(tmp_path,
                                                                           standalone):
    grad = emitted(tmp_path, adjoint.source(_root, standalone=standalone))._root_grad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert grad(0.0) == math.inf == adjoint.grad(_root)(0.0)
    assert grad(4.0) == pytest.approx(0.25, rel=1e-12)  # 1 / (2 sqrt(x)), by hand
    assert grad(2.0) == pytest.approx(_central(_root, 2.0), rel=1e-8)
    assert type(grad(4.0)) is float  # away from the pole, Python floats stay Python floats


@pytest.mark.parametrize("f", [_cube_root_of_square, _soft_root])
@pytest.mark.parametrize("mode", ["reverse", "vjp"])
def test_every_pole_reached_through_python_floats_gives_what_the_api_gives(tmp_path, f, mode):
    module = emitted(tmp_path, adjoint.source(f, mode=mode))
    name = f.__name__

    def emitted_grad(x):
        if mode == "reverse":
            return getattr(module, f"{name}_grad")(x)
        _, residuals = getattr(module, f"{name}_fwd")(x)
        return getattr(module, f"{name}_bwd")(*residuals, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_equal(emitted_grad(0.0), adjoint.grad(f)(0.0))
    assert emitted_grad(0.7) == pytest.approx(_central(f, 0.7), rel=1e-7)


def test_the_split_backward_at_an_infinite_derivative_gives_inf(tmp_path):
    module = emitted(tmp_path, adjoint.source(_root, mode="vjp"))
    value, residuals = module._root_fwd(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert module._root_bwd(*residuals, 1.0) == math.inf
    assert value == 0.0


def test_a_division_by_zero_of_f_itself_stays_f_own_error(tmp_path):
    # 1.0 / x at x = 0.0 raises in f: the gradient raises as f does, no inf is made up
    grad = emitted(tmp_path, adjoint.source(_recip_sum))._recip_sum_grad
    with pytest.raises(ZeroDivisionError):
        _recip_sum(0.0, 1.0)
    with pytest.raises(ZeroDivisionError):
        grad(0.0, 1.0)
    assert grad(2.0, 3.0) == pytest.approx(-3.0 / 4.0, rel=1e-12)


def test_a_tangent_sweep_at_a_pole_says_where_it_divides_by_zero(tmp_path):
    # f's lines and their tangents interleave: which one raised is not known, so it is said
    jvp = emitted(tmp_path, adjoint.source(_root, mode="jvp"))._root_jvp
    with pytest.raises(ValueError, match=r"line \d+ \(return x \*\* 0.5\) or its derivative "
                                         r"divides by zero.*np.float64"):
        jvp(0.0, 1.0)
    value, tangent = jvp(4.0, 2.0)
    assert (value, tangent) == (2.0, pytest.approx(0.5, rel=1e-12))


def test_a_derivative_that_stays_a_python_float_says_where_it_divides_by_zero(tmp_path):
    # math.sqrt gives a Python float whatever its argument: NumPy's floats do not help
    grad = emitted(tmp_path, adjoint.source(_math_root))._math_root_grad
    with pytest.raises(ValueError, match=r"the derivative of line \d+ \(return math.sqrt"):
        grad(0.0)
    assert grad(4.0) == pytest.approx(0.75, rel=1e-12)


def test_a_file_whose_f_has_a_try_handler_still_checks_its_globals(tmp_path, monkeypatch):
    # the handler check's decorator made the global check skip the function
    from tests.test_emitted_imports import user_module
    m = user_module(tmp_path, monkeypatch, "handled", """
        import numpy as np

        SCALE = 2.0


        def f(x, table):
            try:
                t = table[3]
            except IndexError:
                t = 1.0
            return SCALE * np.sum(x * x) * t
        """)
    grad = emitted(tmp_path, adjoint.source(m.f)).f_grad
    x = np.array([0.5, -1.0])
    np.testing.assert_allclose(grad(x, [1.0, 1.0, 1.0, 3.0]), 2.0 * 2 * x * 3.0)  # by hand
    monkeypatch.setattr(m, "SCALE", 3.0)
    with pytest.raises(RuntimeError, match=r"handled\.SCALE.*regenerate it"):
        grad(x, [1.0, 1.0, 1.0, 3.0])


# ------------------------------------------ a masked-out NaN in generic code (round 23's N1)

def _masked_labels(w, X, y):
    pred = X @ w
    ok = ~np.isnan(y)
    return np.sum(np.where(ok, (pred - y) ** 2, 0.0)) / np.sum(ok)


def _masked_root(x, c):
    return np.sum(np.where(x > 0.0, np.sqrt(x) * c, 0.0))


def test_generic_code_keeps_an_np_where_mask_through_the_rules_that_follow(tmp_path):
    # the cotangent of the taken branch is zero where labels are missing; 2 * (pred - y) is
    # NaN there: generic code, which knows no shapes, now masks as it runs (zero_outside)
    X = np.array([[1.0, 0.5], [0.2, -1.0], [0.3, 0.3]])
    y, w = np.array([1.0, np.nan, -0.5]), np.array([0.4, -0.2])
    ok = ~np.isnan(y)
    want = 2 * X[ok].T @ (X[ok] @ w - y[ok]) / ok.sum()  # by hand
    grad = emitted(tmp_path, adjoint.source(_masked_labels))._masked_labels_grad
    np.testing.assert_allclose(grad(w, X, y), want, rtol=1e-12)
    np.testing.assert_allclose(adjoint.grad(_masked_labels)(w, X, y), want, rtol=1e-12)
    # a mask of another shape than the branch's operand (a broadcast c) is not applied
    grad = emitted(tmp_path, adjoint.source(_masked_root, wrt=(0, 1)))._masked_root_grad
    x, c = np.array([0.0, 4.0, 1.0]), np.array([[2.0], [3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gx, gc = grad(x, c)
        api = adjoint.grad(_masked_root, wrt=(0, 1))(x, c)
    np.testing.assert_allclose(gx, [0.0, 5.0 / 4.0, 5.0 / 2.0])  # (2 + 3) / (2 sqrt(x))
    np.testing.assert_allclose(gc, [[3.0], [3.0]])  # sqrt(4) + sqrt(1), where x > 0
    np.testing.assert_allclose(api[0], gx)
    np.testing.assert_allclose(api[1], gc)


def _relu_or_gelu(x, act):
    if act == "gelu":
        h = x * 0.5 * (1.0 + np.tanh(0.8 * x))
    else:
        h = np.maximum(x, 0.0)
    return np.sum(h * h * x)


def test_hvp_of_a_kink_rule_in_a_branch_the_first_call_did_not_take():
    # maximum's rule multiplies by larger_share(x1, x2), a runtime helper the kinds pass did
    # not know for a number: `*` was refused as maybe repeating a sequence (adv24a's p01)
    x, v = np.array([0.5, -0.7, 1.3]), np.array([1.0, 0.5, -2.0])
    hvp = adjoint.hvp(_relu_or_gelu)
    hvp(x, "gelu", v)
    want = 6.0 * np.where(x > 0, x, 0.0) * v  # d2/dx2 of max(x, 0)^2 x is 6x for x > 0
    np.testing.assert_allclose(hvp(x, "relu", v), want, rtol=1e-10)


def _boundary(u, bc):
    un = u * 1.0
    if bc == "copy_next":
        un[0] = un[1]
    else:
        un[0] = un[2]
    return np.sum(un ** 2)


def test_an_entry_read_on_a_branch_no_call_took_is_a_number_not_a_view():
    # un[2] of a 1-D array, on the side the first call did not take, was read as a possible
    # view of un, and the write refused (adv24a's M1a, heat-equation boundary conditions)
    grad = adjoint.grad(_boundary)
    u = np.array([1.0, 2.0, 3.0, 4.0])
    for bc, want in (("copy_next", [0.0, 8.0, 6.0, 8.0]), ("copy_two", [0.0, 4.0, 12.0, 8.0])):
        got = grad(u, bc)  # by hand: 2 u_k for each entry that un holds
        np.testing.assert_allclose(got, want)
        fd = [(_boundary(u + EPS * e, bc) - _boundary(u - EPS * e, bc)) / (2 * EPS)
              for e in np.eye(4)]
        np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-7)


def _products(x):
    return x[1] * x[0] + np.sum(x[1:] ** 2)


def test_a_generic_gradient_of_a_float32_array_is_float32(tmp_path):
    # the gradient accumulated into zeros_like(x), whose dtype was result_type(x, float):
    # float64 (adv24b's M1); adjoint.grad gave float32, as the README says
    grad = emitted(tmp_path, adjoint.source(_products))._products_grad
    x = np.array([0.3, -0.5, 0.9], dtype=np.float32)
    got = grad(x)
    assert got.dtype == np.float32 == adjoint.grad(_products)(x).dtype
    np.testing.assert_allclose(got, [-0.5, 0.3 - 1.0, 1.8], rtol=1e-6)  # by hand
    assert grad(x.astype(np.float64)).dtype == np.float64


def _pairs(x):
    s = 0.0
    for i, j in itertools.combinations(range(len(x)), 2):
        s = s + x[i] * x[j]
    return s


def _interactions(ws, x):
    total = 0.0
    for a, b in itertools.permutations(ws, 2):
        total = total + np.sum(np.tanh(a * x) * b)
    for a, b in itertools.combinations_with_replacement(ws, r=2):
        total = total + np.sum(a * b) ** 2
    return total


def test_combinations_and_permutations_choose_entries_by_position(tmp_path):
    # refused with a hint to write a rule (adv24b's M2a); now the positions are computed as
    # f runs, so one compiled gradient serves every length, generic code too
    grad = adjoint.grad(_pairs)
    for x in (np.array([0.3, 0.5, 0.9]), np.array([0.3, -0.5, 0.9, 2.0])):
        np.testing.assert_allclose(grad(x), np.sum(x) - x)  # by hand: the others' sum
    grad, generic = adjoint.grad(_interactions), emitted(
        tmp_path, adjoint.source(_interactions))._interactions_grad
    rng = np.random.default_rng(0)
    x = rng.normal(size=3)
    for n in (3, 2, 4):
        ws = [rng.normal(size=3) for _ in range(n)]
        want = [np.array([(_interactions([w + EPS * d if k == j else w for k, w in enumerate(ws)],
                                         x) -
                           _interactions([w - EPS * d if k == j else w for k, w in enumerate(ws)],
                                         x)) / (2 * EPS) for d in np.eye(3)]) for j in range(n)]
        for got in (grad(ws, x), generic(ws, x)):
            np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6, atol=1e-8)


def _counts(x):
    d = collections.defaultdict(float)
    d[0] += x * x
    return d[0]


def test_a_defaultdict_made_in_f_is_refused_with_what_to_write():
    with pytest.raises(adjoint.AdjointError, match=r"defaultdict made in the function") as e:
        adjoint.grad(_counts)(0.7)
    assert "d.get(k, 0.0)" in str(e.value) and "test_round24.py:" in str(e.value)


def _eigvals_square_sum(M):
    return np.sum(np.real(np.linalg.eigvals(M)) ** 2)


@pytest.mark.parametrize("M", [2.0 * np.eye(2), np.diag([1.0, 3.0, 1.0])])
def test_eigvals_at_a_repeated_eigenvalue_matches_values_one_to_one(M):
    # the nearest of eig's values picked one eigenvector twice: LinAlgError from the
    # generated code (adv24c's C1). sum(w ** 2) is trace(M @ M): its gradient is 2 M^T
    np.testing.assert_allclose(adjoint.grad(_eigvals_square_sum)(M), 2 * M.T, atol=1e-12)
    V = np.arange(M.size, dtype=float).reshape(M.shape) / 10
    _, tangent = adjoint.jvp(_eigvals_square_sum)(M, V)
    assert tangent == pytest.approx(2 * np.trace(M @ V), rel=1e-12)  # by hand


def _det_by_elimination(M):
    A = M.copy()
    n = A.shape[0]
    for k in range(n):
        for i in range(k + 1, n):
            A[i, :] -= A[i, k] / A[k, k] * A[k, :]
    return np.prod(np.diag(A))


def test_generic_code_reads_an_array_shape_as_numbers_not_a_view(tmp_path):
    # n = A.shape[0] was taken for a view of A, and the write into A refused as changing n
    # (adv24c's M1): the generic gradient of a determinant by elimination, det(M) M^-T
    grad = emitted(tmp_path, adjoint.source(_det_by_elimination))._det_by_elimination_grad
    for M in (np.array([[3.0, 1.0], [0.5, 2.0]]),
              np.array([[4.0, 1.0, 0.5], [0.3, 3.0, -1.0], [1.0, 0.2, 2.5]])):
        want = np.linalg.det(M) * np.linalg.inv(M).T  # by hand: Jacobi's formula
        np.testing.assert_allclose(grad(M), want, rtol=1e-10)


def _scaled_bessel(x):
    return special.i0e(x) * 2.0


def test_the_scaled_bessel_kink_refuses_a_second_derivative_at_zero():
    # i0e = exp(-|x|) i0 has |x|'s kink at 0: its slope there is the mean of the sides (0),
    # and a second derivative through it was a plausible number where none exists
    assert adjoint.grad(_scaled_bessel)(0.0) == 0.0
    with pytest.raises(adjoint.AdjointError, match=r"test_round24.py:\d+"):
        adjoint.grad(adjoint.grad(_scaled_bessel))(0.0)
    x = 0.7  # away from it, right at second order: i0e'' by central differences of i0e'
    want = (adjoint.grad(_scaled_bessel)(x + EPS) - adjoint.grad(_scaled_bessel)(x - EPS)) \
        / (2 * EPS)
    assert adjoint.grad(adjoint.grad(_scaled_bessel))(x) == pytest.approx(want, rel=1e-6)


def _scipy_linalg_mix(A, b):
    x = scipy.linalg.solve(A, b, check_finite=False)
    w = scipy.linalg.eigvalsh(A @ A.T)
    return np.sum(x ** 2) + scipy.linalg.det(A) + np.sum(w) + np.sum(scipy.linalg.inv(A)) \
        + scipy.linalg.norm(A, 'fro') + np.sum(scipy.linalg.svd(A, compute_uv=False))


def _scipy_eigh(A):
    w, v = scipy.linalg.eigh(A + A.T)
    return np.sum(w ** 2) + np.sum(v[:, -1] ** 4)


def test_scipy_linalg_functions_that_are_numpy_s_are_differentiated_as_numpy_s():
    # refused before, where autograd differentiates them (adv24c's coverage list)
    R = np.random.default_rng(5)
    A, b = R.normal(size=(3, 3)) + 3 * np.eye(3), R.normal(size=3)
    for f, args in ((_scipy_linalg_mix, (A, b)), (_scipy_eigh, (A,))):
        got = adjoint.grad(f)(*args)
        want = np.zeros_like(A)
        for i in np.ndindex(A.shape):
            d = np.zeros_like(A)
            d[i] = EPS
            want[i] = (f(A + d, *args[1:]) - f(A - d, *args[1:])) / (2 * EPS)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # an option NumPy's twin has not is not read as NumPy's: refused, located
    with pytest.raises(adjoint.AdjointError, match=r"test_round24.py:\d+"):
        adjoint.grad(_scipy_solve_upper)(A, b)


def _scipy_solve_upper(A, b):
    return np.sum(scipy.linalg.solve(A, b, assume_a="sym"))


def _ufunc_methods(x, y):
    a = np.add.reduce(x * y)
    b = np.multiply.reduce(np.tanh(x), axis=1)
    c = np.add.accumulate(x, axis=1)
    d = np.subtract.outer(y[0], y[1])
    e = np.maximum.reduce(np.sin(y), axis=0)
    return np.sum(a ** 2) + np.sum(b) + np.sum(c ** 2) + np.sum(np.exp(d) * 0.5) + np.sum(e)


def test_a_ufunc_s_reduce_accumulate_and_outer_are_numpy_functions(tmp_path):
    # refused before (adv24c's coverage list): np.add.reduce is np.sum along axis 0,
    # accumulate the cumulative function, outer the ufunc of a with b's axes added
    R = np.random.default_rng(6)
    x, y = R.normal(size=(2, 3)), R.normal(size=(2, 3))
    generic = emitted(tmp_path, adjoint.source(_ufunc_methods, wrt=(0, 1)))._ufunc_methods_grad
    for w in (0, 1):
        want = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            d = np.zeros_like(x)
            d[i] = EPS
            up, down = [x, y], [x, y]
            up[w], down[w] = up[w] + d, down[w] - d
            want[i] = (_ufunc_methods(*up) - _ufunc_methods(*down)) / (2 * EPS)
        np.testing.assert_allclose(adjoint.grad(_ufunc_methods, w)(x, y), want, rtol=1e-6,
                                   atol=1e-8)
        np.testing.assert_allclose(generic(x, y)[w], want, rtol=1e-6, atol=1e-8)


def _extended(x, w):
    xs = [x * 2.0]
    xs.extend([np.sin(x), x ** 2])
    buf = np.zeros(3)
    buf.fill(np.sum(x))
    out = 0.0
    for v in xs:
        out = out + np.sum(v * w)
    return out + np.sum(buf * w)


def _extended_alias(x, w):
    xs = [x * 2.0]
    ys = xs
    xs.extend([np.sin(x)])
    return np.sum(ys[-1] * w)


def test_list_extend_and_array_fill_change_the_value_in_place():
    # refused as method calls before (adv24c's coverage list)
    R = np.random.default_rng(7)
    x, w = R.normal(size=3), R.normal(size=3)
    want = [(_extended(x + EPS * d, w) - _extended(x - EPS * d, w)) / (2 * EPS)
            for d in np.eye(3)]
    value, got = adjoint.value_and_grad(_extended)(x, w)
    assert value == pytest.approx(_extended(x, w), rel=1e-14)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    # another name for the list would see the change: refused, located, as `+=` is
    with pytest.raises(adjoint.AdjointError, match=r"test_round24.py:\d+"):
        adjoint.grad(_extended_alias)(x, w)


def _two_arguments(x, s):
    return np.sum(np.sin(x) * s ** 2) + s * np.sum(x ** 3)


def test_the_hessian_with_respect_to_several_arguments_is_a_tuple_of_blocks():
    # refused before (adv24c's list); block [a][b] is d grad_a / d arg_b, JAX's layout
    x, s = np.array([0.3, -0.5, 0.9]), 1.7
    H = adjoint.hessian(_two_arguments, wrt=(0, 1))(x, s)
    grad = adjoint.grad(_two_arguments, (0, 1))
    want_xx = np.diag(-np.sin(x) * s ** 2 + 6 * s * x)  # by hand
    np.testing.assert_allclose(H[0][0], want_xx, rtol=1e-12)
    np.testing.assert_allclose(H[0][1], 2 * s * np.cos(x) + 3 * x ** 2, rtol=1e-12)
    np.testing.assert_allclose(H[1][0], H[0][1], rtol=1e-12)
    assert np.shape(H[1][1]) == () and H[1][1] == pytest.approx(2 * np.sum(np.sin(x)))
    ds = (np.asarray(grad(x, s + EPS)[0]) - np.asarray(grad(x, s - EPS)[0])) / (2 * EPS)
    np.testing.assert_allclose(H[0][1], ds, rtol=1e-7)


def _activation(h, kind):
    if kind == "tanh":
        return np.tanh(h)
    elif kind == "relu":
        return np.maximum(h, 0.0)
    else:
        raise ValueError(f"unknown activation {kind}")


def _activated(x, kind):
    return np.sum(_activation(x, kind) ** 2)


def _checked_first(x, scale):
    if scale <= 0.0:
        raise ValueError("scale must be positive")
    else:
        y = np.sin(x) * scale
    return np.sum(y * y)


def test_an_if_elif_chain_that_ends_in_else_raise_is_a_check(tmp_path):
    # `else: raise ValueError(...)` after the options was refused as a raise outside a
    # check (adv24a's refusals): it is the check of `not test`, the chain's other branches
    # run as before; an `if bad: raise` with an else likewise
    x = np.array([0.3, -0.5, 1.2])
    grad = adjoint.grad(_activated)
    np.testing.assert_allclose(grad(x, "tanh"), 2 * np.tanh(x) * (1 - np.tanh(x) ** 2))
    np.testing.assert_allclose(grad(x, "relu"), 2 * np.maximum(x, 0.0))
    with pytest.raises(ValueError, match=r"test_round24.py:\d+: raise ValueError"):
        grad(x, "gelu")
    generic = emitted(tmp_path, adjoint.source(_activated))._activated_grad
    np.testing.assert_allclose(generic(x, "relu"), 2 * np.maximum(x, 0.0))
    with pytest.raises(ValueError):
        generic(x, "gelu")
    g = adjoint.grad(_checked_first)
    np.testing.assert_allclose(g(x, 2.0), 2 * 4.0 * np.sin(x) * np.cos(x))  # by hand
    with pytest.raises(ValueError, match="scale must be positive"):
        g(x, -1.0)


def _log_quietly(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(x)
    return np.sum(y * x)


def _log_raising(x):
    with np.errstate(divide="raise"):
        y = np.log(x)
    return np.sum(y)


def test_a_quiet_errstate_block_is_its_body():
    # `with np.errstate(divide="ignore")` was refused as a with statement (adv24a's list);
    # "raise" changes what f does where NumPy would warn: still refused, located
    x = np.array([0.3, 0.5, 2.0])
    np.testing.assert_allclose(adjoint.grad(_log_quietly)(x), np.log(x) + 1.0)  # by hand
    with pytest.raises(adjoint.AdjointError, match=r"test_round24.py:\d+"):
        adjoint.grad(_log_raising)(x)
