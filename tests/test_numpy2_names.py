"""NumPy 2's array-API names, end to end (issue 15): programs that use them, each
checked by adjoint.testing.check_program (the gradient against central differences,
the forward value against f's, jvp against vjp), and hand formulas where they exist.

The rules themselves are in tests/rules/test_registry.py's CASES (the inner-product
identity on every rule). A name missing from the installed NumPy skips its test.
"""
from __future__ import annotations

import numpy as np
import pytest

import adjoint
from adjoint.errors import NonDifferentiableError
from adjoint.testing import check_program

RNG = np.random.default_rng(15)
X34 = RNG.uniform(-1.0, 1.0, (3, 4))
Y34 = RNG.uniform(-1.0, 1.0, (3, 4))
B234 = RNG.uniform(-1.0, 1.0, (2, 3, 4))
V4 = RNG.uniform(-1.0, 1.0, 4)
V3 = RNG.uniform(-1.0, 1.0, 3)
MASK = RNG.random((3, 4)) > 0.4


def needs(*names):
    """Skip where the installed NumPy lacks one of `names` ("linalg.x" for np.linalg.x)."""
    missing = [n for n in names if not hasattr(np.linalg if n.startswith("linalg.") else np,
                                               n.removeprefix("linalg."))]
    return pytest.mark.skipif(bool(missing), reason=f"NumPy {np.__version__} lacks {missing}")


# ---------------------------------------------------------------- products

def cosine_similarity(a, b):
    dots = np.vecdot(a, b)
    return np.sum(dots / (np.linalg.vector_norm(a, axis=-1) * np.linalg.vector_norm(b, axis=-1)))


def columns_dot(a, b):
    return np.sum(np.linalg.vecdot(a, b, axis=0) ** 2)


def dense_layer(W, x, b):
    h = np.tanh(np.matvec(W, x) + b)
    return np.sum(h ** 2)


def read_out(v, W):
    return np.sum(np.sin(np.vecmat(v, W)))


def gram(A):
    return np.sum(np.matrix_transpose(A) @ A * np.linalg.matrix_transpose(A @ A.T)[0, 0])


def batched_gram(B):
    return np.sum(np.matmul(np.permute_dims(B, (0, 2, 1)), B) ** 2)


@needs("vecdot", "linalg.vector_norm", "linalg.vecdot")
def test_vecdot_and_vector_norm():
    check_program(cosine_similarity, X34, Y34)
    check_program(columns_dot, X34, Y34)
    # d/da sum(vecdot(a, b)) is b
    np.testing.assert_allclose(adjoint.grad(lambda_free_vecdot)(X34, Y34), Y34)


def lambda_free_vecdot(a, b):
    return np.sum(np.vecdot(a, b))


@needs("matvec", "vecmat")
def test_matvec_and_vecmat():
    check_program(dense_layer, X34, V4, V3)
    check_program(read_out, V3, X34)
    check_program(dense_layer, B234, V4, V3)  # a stack of matrices, broadcast


@needs("matrix_transpose", "linalg.matrix_transpose", "permute_dims")
def test_transposes():
    check_program(gram, X34)
    check_program(batched_gram, B234)


# ---------------------------------------------------------------- shape and scans

def pairwise(X):
    a, b, c = np.unstack(X, axis=1)
    return np.sum(a * b - c ** 2)


def running_mean(x):
    sums = np.cumulative_sum(x, include_initial=True)
    return np.sum(sums[1:] / np.arange(1.0, len(x) + 1.0))


def survival(p):
    alive = np.cumulative_prod(1.0 - p, axis=1, include_initial=True)
    return np.sum(alive ** 2)


@needs("unstack")
def test_unstack():
    check_program(pairwise, RNG.uniform(-1.0, 1.0, (4, 3)))


@needs("cumulative_sum", "cumulative_prod")
def test_cumulative_scans():
    x = RNG.uniform(-1.0, 1.0, 5)
    check_program(running_mean, x)
    check_program(survival, RNG.uniform(0.1, 0.9, (3, 4)))
    # running_mean's gradient by hand: entry k is in the means k+1..n
    n = len(x)
    want = [sum(1.0 / m for m in range(k + 1, n + 1)) for k in range(n)]
    np.testing.assert_allclose(adjoint.grad(running_mean)(x), want)


# ---------------------------------------------------------------- norms

def norms(X):
    return (np.linalg.vector_norm(X, ord=1) + np.linalg.vector_norm(X, axis=0, ord=np.inf).sum()
            + np.sum(np.linalg.vector_norm(X, axis=(0, 1), keepdims=True, ord=3)))


def matrix_norms(B):
    return (np.sum(np.linalg.matrix_norm(B)) + np.sum(np.linalg.matrix_norm(B, ord="nuc"))
            + np.sum(np.linalg.matrix_norm(B, ord=2, keepdims=True)))


@needs("linalg.vector_norm", "linalg.matrix_norm")
def test_vector_and_matrix_norms():
    check_program(norms, X34)
    check_program(matrix_norms, B234)
    # the Frobenius norm's gradient is X / |X|
    np.testing.assert_allclose(adjoint.grad(frobenius)(X34), X34 / np.linalg.norm(X34))


def frobenius(X):
    return np.linalg.matrix_norm(X)


# ---------------------------------------------------------------- casts

def cast_float(x):
    return np.sum(np.astype(x, "float64") ** 2)


def cast_int(x):
    return np.sum(np.astype(x, "int64") * x)


def cast_narrow(x):
    return np.sum(np.astype(x, "float32") ** 2)


@needs("astype")
def test_astype():
    x = np.array([1.5, -2.5, 0.25])
    check_program(cast_float, x)
    # an int cast is a constant (as x.astype(int)): d/dx (trunc(x) * x) = trunc(x)
    np.testing.assert_allclose(adjoint.grad(cast_int)(x), [1.0, -2.0, 0.0])
    with pytest.raises(NonDifferentiableError, match="narrower float") as caught:
        adjoint.grad(cast_narrow)(x)
    assert "cast_narrow" in str(caught.value) or "np.astype(x" in str(caught.value)


# ---------------------------------------------------------------- keyword forms

def masked_loss(x, t):
    return np.sum((x - t) ** 2, where=MASK)


def floor_at(x, c):
    return np.sum(np.max(x, axis=1, initial=c)) + np.min(x, initial=c, where=MASK)


def offset_sum(x, c):
    return np.sum(x ** 2, axis=0, initial=c)[1]


def test_sum_where_and_initial():
    check_program(masked_loss, X34, Y34)
    np.testing.assert_allclose(adjoint.grad(masked_loss)(X34, Y34), 2.0 * (X34 - Y34) * MASK)
    check_program(offset_sum, X34, 0.3)


def test_max_and_min_with_initial_and_where():
    # c wins in some rows (x in [-1, 1), c = 0.2) and loses in others
    check_program(floor_at, X34, 0.2)
    check_program(floor_at, X34, 1.5)  # c is every row's max: x gets 0 from max
    # by hand at c = 1.5: c is each row's max (d/dc = 3 rows), the min is the least
    # entry the mask keeps (x gets 1 there, 0 elsewhere)
    gx, gc = adjoint.grad(floor_at, wrt=(0, 1))(X34, 1.5)
    least = np.where(MASK, X34, np.inf)
    np.testing.assert_array_equal(gx, least == least.min())
    assert gc == 3.0


# ---------------------------------------------------------------- gufuncs under np.where

A33 = np.array([[1.0, 2.0, 0.5], [-1.0, 0.3, 2.0], [0.7, -0.4, 1.1]])


def where_matmul(x):
    return np.sum(np.where(x > 0.0, np.matmul(A33, x), 0.0))


def where_matvec(x):
    return np.sum(np.where(x > 0.0, np.matvec(A33, x), 0.0))


@needs("matvec")
def test_a_gufunc_under_where_is_not_masked_entry_by_entry():
    """np.matmul and np.matvec are ufuncs, but generalised ones: np.where's mask is not
    applied to x's cotangent entry by entry (it was: d/dx[1] came back 0, it is 1.6)."""
    x = np.array([0.5, -0.7, 1.2])
    want = (x > 0.0) @ A33  # d/dx sum over kept rows of A x
    np.testing.assert_allclose(adjoint.grad(where_matmul)(x), want)
    np.testing.assert_allclose(adjoint.grad(where_matvec)(x), want)


def astype_by_class(x):
    return np.sum(np.sin(np.astype(x, np.float64) * x))


def astype_narrowed(x):
    return np.sum(np.astype(x, np.float32) * x)


@needs("astype")
def test_astype_takes_the_dtype_class_by_position():
    """np.astype(x, np.float64), the class by position, as x.astype(np.float64) (it was
    refused: "a function or module cannot be a value here"); float32 is refused."""
    x = np.array([0.3, 0.5])
    np.testing.assert_allclose(adjoint.grad(astype_by_class)(x), 2 * x * np.cos(x * x),
                               rtol=1e-12)
    with pytest.raises(adjoint.AdjointError, match="narrower float"):
        adjoint.grad(astype_narrowed)(x)
