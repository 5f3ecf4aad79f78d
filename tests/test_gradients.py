"""End to end: every program of the corpus, differentiated and compared with
central finite differences in float64."""
import numpy as np
import pytest

import adjoint
from adjoint.testing import check_grad, numeric_grad
from tests import programs as P

R = np.random.default_rng(42)


def arr(*shape):
    return R.normal(size=shape)


CASES = [
    (P.neuron, (0.5, 1.5, 0.1, 1.0), (0, 1, 2, 3)),
    (P.scalar_math, (0.7, 0.3), (0, 1)),
    (P.aliases, (arr(5),), 0),
    (P.logistic_regression, (arr(4), arr(10, 4), (R.random(10) > 0.5) * 1.0, 0.1), (0, 3)),
    (P.softmax_xent, (arr(4, 3), arr(6, 4), np.eye(3)[R.integers(0, 3, 6)]), 0),
    (P.mlp, (arr(4, 5), arr(5), arr(5, 3), arr(3), arr(6, 4), np.eye(3)[R.integers(0, 3, 6)]),
     (0, 1, 2, 3)),
    (P.broadcasting, (arr(3, 1), arr(4), 0.7), (0, 1, 2)),
    (P.norms, (arr(3), arr(3, 4)), (0, 1)),
    (P.reductions, (arr(3, 4),), 0),
    (P.shapes, (arr(6),), 0),
    (P.branch, (1.0, 2.0), (0, 1)),
    (P.branch, (-1.0, 2.0), (0, 1)),
    (P.elif_chain, (-2.0,), 0),
    (P.elif_chain, (0.5,), 0),
    (P.elif_chain, (3.0,), 0),
    (P.conditional_expression, (1.5, 0.5), (0, 1)),
    (P.conditional_expression, (-1.5, 0.5), (0, 1)),
    (P.int_branch, (1.5, 4), 0),
    (P.int_branch, (1.5, 3), 0),
    (P.sum_squares, (arr(5),), 0),
    (P.product, (arr(6),), 0),
    (P.scalar_loop, (0.3, 20), 0),
    (P.scalar_loop, (0.3, 0), 0),
    (P.range_forms, (arr(7),), 0),
    (P.iterate_array, (arr(5), 0.5), (0, 1)),
    (P.nested_loops, (arr(3, 4),), 0),
    (P.newton_sqrt, (2.0,), 0),
    (P.rnn, (arr(4, 4) * 0.5, arr(4, 3), arr(5, 3), arr(4)), (0, 1, 2, 3)),
    (P.branch_in_loop, (arr(8),), 0),
    (P.breaks, (np.array([0.5, 1.0, 0.9, 1.2, 0.3]),), 0),
    (P.continues, (arr(6),), 0),
    (P.early_return, (-1.3,), 0),
    (P.early_return, (1.3,), 0),
    (P.calls, (arr(5),), 0),
    (P.tuples, (1.3, 0.4), (0, 1)),
    (P.indexing, (np.array([0.1, 0.5, -0.3, 0.9]), arr(3, 4)), (0, 1)),
    (P.lists, (arr(4),), 0),
    (P.hmm_forward, (np.log(np.full(3, 1 / 3)), np.log(R.dirichlet(np.ones(3), 3)),
                     np.log(R.dirichlet(np.ones(4), 3)), np.array([0, 2, 1, 3, 3])), (0, 1, 2)),
    (P.return_in_loop, (np.array([1.5, 2.0, 1.1, 3.0]),), 0),
    (P.return_in_loop, (np.array([0.5, 0.7, 1.1]),), 0),
    (P.fill, (arr(5),), 0),
    (P.augmented_writes, (arr(4),), 0),
    (P.slice_writes, (arr(3, 4),), 0),
    (P.aliasing, (arr(3),), 0),
    (P.inside, (R.random(5) + 0.5,), 0),
    (P.soft_dtw, (arr(4), arr(5), 0.5), (0, 1)),
]


@pytest.mark.parametrize("f,args,wrt", CASES, ids=[
    f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_matches_finite_differences(f, args, wrt):
    check_grad(f, *args, wrt=wrt)


def test_product_gradient_is_the_leave_one_out_product():
    x = np.array([2.0, 3.0, 5.0, 7.0])
    g = adjoint.grad(P.product)(x)
    assert np.allclose(g, [105.0, 70.0, 42.0, 30.0])


def test_gradients_keep_the_kind_of_their_argument():
    g = adjoint.grad(P.neuron, wrt=(0, 2))(0.5, 1.5, 0.1, 1.0)
    assert all(type(v) is float for v in g)
    x = arr(5)
    assert adjoint.grad(P.sum_squares)(x).shape == (5,)


def test_value_and_grad():
    v, g = adjoint.value_and_grad(P.branch)(1.0, 2.0)
    assert v == P.branch(1.0, 2.0)
    assert np.isclose(g, numeric_grad(P.branch, (1.0, 2.0)))


def test_vjp_split_form():
    x = arr(5)
    out, pullback = adjoint.vjp(P.sum_squares, x)
    assert np.isclose(out, P.sum_squares(x))
    assert np.allclose(pullback(3.0), 6.0 * x)
    assert np.allclose(pullback(1.0), 2.0 * x)  # the pullback can be called again


def test_decorator_keeps_the_function():
    @adjoint.adjoint
    def f(x):
        return x * x

    assert f(3.0) == 9.0
    assert f.grad()(3.0) == 6.0
    assert "def f_grad" in f.source()


def test_the_seed_parameter_is_out_bar_whatever_the_user_names():
    src = adjoint.source(P.lists, args=(arr(3),))
    assert "def lists_grad(x, out_bar=1.0):" in src
    assert "out_bar_1" in src or "out_bar[" in src  # the user's `out` gets a distinct adjoint


def test_a_view_read_after_its_array_is_written_is_rejected():
    A = arr(2, 3)
    with pytest.raises(adjoint.UnsupportedError) as e:
        adjoint.grad(P.view_read_after_write)(A)
    assert "programs.py:375" in str(e.value) and "hint:" in str(e.value)
    check_grad(P.view_copy_is_fine, A)
