"""Edges of the public API that crashed without a location (issue 19, round 6): det at a
singular matrix, a Jacobian of a tuple output, keyword arguments to jacobian, hessian
and hvp, a reduction with an axis on a 0-d value, and a file specialised on a shape
tuple. Each answer is checked against central differences in float64 and, where there
is one, the formula by hand."""
import inspect
import math

import numpy as np
import pytest

import adjoint

EPS = 1e-6
R = np.random.default_rng(6)


def fd(f, x, *rest, **kwargs):
    """Central differences of f(x, *rest, **kwargs) with respect to x (an array or a float):
    shaped out.shape + x.shape."""
    if not isinstance(x, np.ndarray):
        return (np.asarray(f(x + EPS, *rest, **kwargs)) - np.asarray(f(x - EPS, *rest, **kwargs))) \
            / (2 * EPS)
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = EPS
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e, *rest, **kwargs)) -
                     np.asarray(f(x - e, *rest, **kwargs))) / (2 * EPS))
    return np.moveaxis(np.stack(cols), 0, -1).reshape(np.shape(cols[0]) + x.shape)


# ---------------------------------------------------------------- det at a singular matrix

def det(A):
    return np.linalg.det(A)


def det_squares(A):
    return np.sum(np.linalg.det(A) ** 2)


def log_abs_det(A):
    return np.linalg.slogdet(A)[1]


def cofactors(A):
    """The cofactor matrix by its definition: signed determinants of the minors."""
    n = A.shape[0]
    C = np.empty_like(A)
    for i in range(n):
        for j in range(n):
            C[i, j] = (-1) ** (i + j) * np.linalg.det(np.delete(np.delete(A, i, 0), j, 1))
    return C


SINGULAR = [np.array([[1.0, 2.0], [2.0, 4.0]]),
            np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]),  # rank 2
            np.diag([1.0, 0.0, 0.0]),  # rank 1: the gradient is 0, the Hessian is not
            np.zeros((3, 3)),
            np.zeros((1, 1))]


@pytest.mark.parametrize("A", SINGULAR, ids=["2x2", "rank2", "rank1", "zeros", "1x1"])
def test_det_gradient_at_a_singular_matrix_is_the_cofactor_matrix(A):
    # np.linalg.det(A) inv(A)^T raised LinAlgError from inside the rule
    assert np.linalg.det(A) == 0.0  # the singular branch is the one checked
    g = adjoint.grad(det)(A)
    want = cofactors(A) if A.shape[0] > 1 else np.ones((1, 1))
    np.testing.assert_allclose(g, want, atol=1e-12)
    np.testing.assert_allclose(g, fd(det, A), atol=1e-8)
    # forward mode: tr(adj(A) dA) = <cofactors, dA>
    dA = R.normal(size=A.shape)
    value, slope = adjoint.jvp(det)(A, dA)
    assert value == 0.0
    np.testing.assert_allclose(slope, np.sum(want * dA), atol=1e-12)


def test_det_of_the_question_is_its_hand_cofactors():
    np.testing.assert_array_equal(adjoint.grad(det)(np.array([[1.0, 2.0], [2.0, 4.0]])),
                                  [[4.0, -2.0], [-2.0, 1.0]])


@pytest.mark.parametrize("A", SINGULAR[:3] + [np.eye(3)], ids=["2x2", "rank2", "rank1", "eye"])
def test_det_hessian_at_a_singular_matrix(A):
    """The second derivative goes through the minors' dets: exact at rank n - 2 too,
    where a formula through the SVD would lose the repeated zero singular value."""
    H = adjoint.hessian(det)(A)
    np.testing.assert_allclose(H, fd(adjoint.grad(det), A), atol=1e-7)
    # by hand: d2 det / dA_ij dA_kl is the signed det of A without rows i, k and
    # columns j, l (zero when i == k or j == l)
    n = A.shape[0]
    want = np.zeros(A.shape + A.shape)
    for i, j, k, l in np.ndindex(n, n, n, n):
        if i != k and j != l:
            rest = np.delete(np.delete(A, [i, k], 0), [j, l], 1)
            # the sign of the permutation taking (i, k) to (j, l) among the others
            s = (-1) ** (i + j + k + l) * (1 if (i < k) == (j < l) else -1)
            want[i, j, k, l] = s * np.linalg.det(rest) if rest.size else s
    np.testing.assert_allclose(H, want, atol=1e-12)


def test_det_rank_one_hessian_is_the_two_by_two_minor():
    H = adjoint.hessian(det)(np.diag([1.0, 0.0, 0.0]))
    want = np.zeros((3, 3, 3, 3))
    want[1, 1, 2, 2] = want[2, 2, 1, 1] = 1.0
    want[1, 2, 2, 1] = want[2, 1, 1, 2] = -1.0
    np.testing.assert_allclose(H, want, atol=1e-14)


def test_det_of_a_stack_with_one_singular_matrix():
    A = np.stack([np.array([[1.0, 2.0], [2.0, 4.0]]), np.array([[2.0, 1.0], [1.0, 3.0]])])
    g = adjoint.grad(det_squares)(A)
    d = np.linalg.det(A)
    want = np.stack([2 * d[0] * cofactors(A[0]), 2 * d[1] * cofactors(A[1])])
    np.testing.assert_allclose(g, want, atol=1e-12)
    np.testing.assert_allclose(g, fd(det_squares, A), atol=1e-7)


def test_det_nonsingular_is_unchanged():
    A = R.normal(size=(4, 4))
    np.testing.assert_allclose(adjoint.grad(det)(A), cofactors(A), rtol=1e-10)
    np.testing.assert_allclose(adjoint.hessian(det)(A), fd(adjoint.grad(det), A), atol=1e-7)


def test_slogdet_of_a_singular_matrix_is_refused_at_the_line():
    """log|det| is -inf at a singular matrix: no gradient (cofactors / 0, and 0 / 0 where
    a cofactor is 0). A located error, not NumPy's LinAlgError from inside the rule."""
    A = np.array([[1.0, 2.0], [2.0, 4.0]])
    line = inspect.getsourcelines(log_abs_det)[1] + 1
    with pytest.raises(adjoint.NonDifferentiableError, match="singular") as e:
        adjoint.grad(log_abs_det)(A)
    assert e.value.loc is not None and e.value.loc.line == line
    assert e.value.loc.filename == __file__ and "det" in e.value.hint
    with pytest.raises(adjoint.NonDifferentiableError, match="singular") as e:
        adjoint.jvp(log_abs_det)(A, np.ones((2, 2)))
    assert e.value.loc.line == line
    B = np.array([[2.0, 1.0], [1.0, 3.0]])  # nonsingular: inv(B)^T
    np.testing.assert_allclose(adjoint.grad(log_abs_det)(B), np.linalg.inv(B).T, rtol=1e-12)


def test_det_of_a_singular_matrix_too_large_for_its_minors_is_refused_at_the_line():
    A = np.zeros((60, 60))  # 60^4 numbers of minors: more than the rule holds
    with pytest.raises(adjoint.NonDifferentiableError, match="cofactor") as e:
        adjoint.grad(det)(A)
    assert e.value.loc is not None and e.value.loc.filename == __file__
    assert e.value.loc.line == inspect.getsourcelines(det)[1] + 1


def svd_corner(A):
    u, s, vt = np.linalg.svd(A)  # full_matrices: u's last column is not unique
    return u[-1, -1]


def test_a_rule_refusing_at_run_time_names_the_users_line():
    # unsupported() raised without a location
    with pytest.raises(adjoint.NonDifferentiableError, match="full_matrices") as e:
        adjoint.grad(svd_corner)(R.normal(size=(3, 2)))
    assert e.value.loc is not None and e.value.loc.filename == __file__
    assert e.value.loc.line == inspect.getsourcelines(svd_corner)[1] + 1
    assert "np.linalg.svd(A)" in e.value.render()


# ---------------------------------------------------------------- jacobian

def pair(x, y):
    return np.sum(x * y), np.tanh(x) * 2.0


def named(x):
    return {"a": np.outer(x, x), "b": np.sum(x ** 3)}


def scaled(x, y, scale=1.0):
    return np.sum(np.outer(x, y) ** 2) * scale


def scaled_vector(x, scale=1.0):
    return np.sin(x) * scale


def test_jacobian_of_a_tuple_output_is_a_tuple_of_jacobians():
    # np.array of ragged rows raised ValueError in compose.py
    x, y = R.normal(size=3), R.normal(size=3)
    jx = adjoint.jacobian(pair)(x, y)
    assert isinstance(jx, tuple) and len(jx) == 2
    assert jx[0].shape == (3,) and jx[1].shape == (3, 3)
    np.testing.assert_allclose(jx[0], y, rtol=1e-12)  # d sum(x y) / dx
    np.testing.assert_allclose(jx[1], np.diag(2.0 * (1 - np.tanh(x) ** 2)), rtol=1e-12)
    jy = adjoint.jacobian(pair, wrt="y")(x, y)
    np.testing.assert_allclose(jy[0], x, rtol=1e-12)
    np.testing.assert_allclose(jy[1], np.zeros((3, 3)))
    np.testing.assert_allclose(jx[1], fd(lambda v: pair(v, y)[1], x), atol=1e-8)


@pytest.mark.parametrize("n", [2, 6], ids=["jvps", "vjps"])
def test_jacobian_of_a_dict_output_by_either_mode(n):
    # 2 inputs: fewer than the 5 outputs, by JVPs; 6 inputs: fewer outputs, by VJPs
    x = R.normal(size=n)
    j = adjoint.jacobian(named)(x)
    assert set(j) == {"a", "b"} and j["a"].shape == (n, n, n) and j["b"].shape == (n,)
    np.testing.assert_allclose(j["b"], 3 * x ** 2, rtol=1e-12)
    np.testing.assert_allclose(j["a"], fd(lambda v: named(v)["a"], x), atol=1e-8)
    eye = np.eye(n)
    np.testing.assert_allclose(j["a"], eye[:, None, :] * x[None, :, None] +
                               x[:, None, None] * eye[None, :, :], rtol=1e-12)


def test_jacobian_hessian_and_hvp_take_keywords_at_call_time():
    x, y, v = R.normal(size=3), R.normal(size=3), R.normal(size=3)
    # d/dx scale * sum_ij x_i^2 y_j^2 = 2 scale |y|^2 x; the Hessian 2 scale |y|^2 I
    yy = np.sum(y ** 2)
    np.testing.assert_allclose(adjoint.jacobian(scaled)(x, y, scale=2.0), 4 * yy * x, rtol=1e-12)
    np.testing.assert_allclose(adjoint.jacobian(scaled)(x, y=y), 2 * yy * x, rtol=1e-12)
    np.testing.assert_allclose(adjoint.hessian(scaled)(x, y, scale=2.0), 4 * yy * np.eye(3),
                               rtol=1e-12)
    np.testing.assert_allclose(adjoint.hvp(scaled)(x, y, v, scale=3.0), 6 * yy * v, rtol=1e-12)
    np.testing.assert_allclose(adjoint.hessian(scaled)(x, y, scale=2.0),
                               fd(adjoint.grad(scaled), x, y, scale=2.0), atol=1e-6)
    j = adjoint.jacobian(scaled_vector)(x, scale=0.5)
    np.testing.assert_allclose(j, np.diag(0.5 * np.cos(x)), rtol=1e-12)
    np.testing.assert_allclose(j, fd(scaled_vector, x, scale=0.5), atol=1e-8)


def cube_scaled(x, scale=1.0):
    return x ** 3 * scale


def test_grad_of_grad_takes_keywords_at_call_time():
    g2 = adjoint.grad(adjoint.grad(cube_scaled))
    assert math.isclose(g2(0.7, scale=2.0), 6 * 0.7 * 2.0, rel_tol=1e-12)
    assert math.isclose(g2(0.7, scale=2.0), fd(adjoint.grad(cube_scaled), 0.7, scale=2.0),
                        rel_tol=1e-7)


# ---------------------------------------------------------------- reductions of a 0-d value

def max_last(x):
    return np.max(x, axis=-1) ** 2


def min_first(x):
    return np.min(x, axis=0) ** 2


def prod_first(x):
    return np.prod(x, axis=0) * x


def sum_last_kept(x):
    return np.sum(np.sum(x, axis=-1, keepdims=True) ** 3)


def scans(x):
    return np.sum(np.cumsum(x, axis=0) ** 2) + np.sum(np.cumprod(x, axis=-1) ** 3)


# (f, d f/dx at x, d2 f/dx2 at x)
ZERO_D = [(max_last, lambda x: 2 * x, lambda x: 2.0),
          (min_first, lambda x: 2 * x, lambda x: 2.0),
          (prod_first, lambda x: 2 * x, lambda x: 2.0),
          (sum_last_kept, lambda x: 3 * x ** 2, lambda x: 6 * x),
          (scans, lambda x: 2 * x + 3 * x ** 2, lambda x: 2 + 6 * x)]


@pytest.mark.parametrize("f, d1, d2", ZERO_D, ids=[c[0].__name__ for c in ZERO_D])
@pytest.mark.parametrize("x", [0.7, np.array(-1.3)], ids=["float", "0-d"])
def test_a_reduction_with_an_axis_of_a_0d_value(f, d1, d2, x):
    # NumPy reduces a 0-d value along axis 0 or -1; the rules expanded the cotangent
    # along that axis (ValueError) or moved it (AxisError)
    g = adjoint.grad(f)(x)
    assert np.shape(g) == ()
    assert math.isclose(float(g), float(d1(x)), rel_tol=1e-12)
    assert math.isclose(float(g), float(fd(f, x)), rel_tol=1e-7)
    _, slope = adjoint.jvp(f)(x, 1.0 if isinstance(x, float) else np.array(1.0))
    assert math.isclose(float(slope), float(d1(x)), rel_tol=1e-12)
    h = adjoint.hvp(f)(x, 1.0 if isinstance(x, float) else np.array(1.0))
    assert math.isclose(float(h), float(d2(x)), rel_tol=1e-12, abs_tol=1e-12)


# ---------------------------------------------------------------- an emitted shape tuple

def rows_of(x, shape):
    return np.sum(x.reshape(shape)[0] ** 2)


def test_a_file_specialised_on_a_shape_tuple_runs():
    # its entry check printed `shape == (Kind(type='int', ...), 2), ...)`: NameError
    x = R.normal(size=4)
    text = adjoint.source(rows_of, wrt=0, args=(x, (2, 2)))
    assert "Kind(" not in text and "shape == (2, 2)" in text
    namespace = {"np": np}
    exec(compile(text, "rows_of_grad.py", "exec"), namespace)
    got = namespace["rows_of_grad"](x, (2, 2))
    np.testing.assert_allclose(got, [2 * x[0], 2 * x[1], 0.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(got, fd(rows_of, x, (2, 2)), atol=1e-8)
    with pytest.raises(ValueError, match="generated for"):
        namespace["rows_of_grad"](x, (1, 4))


def _weighted(x, y):
    return np.sum(x * y)


def test_a_tuple_wrt_gives_a_tuple_of_gradients_a_1_tuple_for_one():
    # as JAX's argnums: wrt=('x',) is a 1-tuple, wrt='x' (or 0) the gradient itself
    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    (gx,) = adjoint.grad(_weighted, wrt=("x",))(x, y)
    np.testing.assert_array_equal(gx, y)
    value, (gy,) = adjoint.value_and_grad(_weighted, wrt=(1,))(x, y)
    np.testing.assert_array_equal(gy, x)
    np.testing.assert_array_equal(adjoint.grad(_weighted, wrt="x")(x, y), y)
    _, pullback = adjoint.vjp(_weighted, x, y, wrt=(0,))
    (px,) = pullback(2.0)
    np.testing.assert_array_equal(px, 2.0 * y)


def _writes_a_new_key(p):
    p["c"] = p["b"] * 3.0
    return np.sum(p["a"] * p["c"])


def test_a_key_written_into_a_dict_argument_is_not_in_its_gradient():
    p = {"a": np.array([0.5, 1.0]), "b": np.array([2.0, -1.0])}
    g = adjoint.grad(_writes_a_new_key)(dict(p))
    assert set(g) == {"a", "b"}
    np.testing.assert_allclose(g["a"], 3.0 * p["b"], rtol=1e-12)
    np.testing.assert_allclose(g["b"], 3.0 * p["a"], rtol=1e-12)


def keyword_only_scale(x, y=1.0, *, s=2.0):
    return np.sum(x ** 2) * y * s


def test_an_extra_positional_argument_is_refused_as_python_refuses_it():
    # round 18's M1: three positional arguments, as many as f has parameters, were
    # taken as already placed, s = 3.0 among them; Python raises TypeError for f itself
    x = np.array([0.7, -1.3, 0.4])
    for call in (adjoint.grad(keyword_only_scale), adjoint.value_and_grad(keyword_only_scale)):
        with pytest.raises(TypeError, match="too many positional"):
            call(x, 1.0, 3.0)
    with pytest.raises(TypeError, match="too many positional"):
        adjoint.hvp(keyword_only_scale)(x, 1.0, 3.0, x)
    np.testing.assert_allclose(adjoint.grad(keyword_only_scale)(x, 1.0, s=3.0), 6.0 * x)
    np.testing.assert_allclose(adjoint.hvp(keyword_only_scale)(x, 2.0, x, s=1.0), 4.0 * x)
