"""End to end: every program of the corpus, differentiated and checked three ways
(`check_program`): against central finite differences in float64, by the value its
forward sweeps compute, and forward mode against reverse mode."""
import random

import numpy as np
import pytest

import adjoint
from adjoint.testing import check_grad, check_program, numeric_grad
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
    (P.helper_writes, (arr(3),), 0),
    (P.tuple_from_loop, (np.array([0.3, 0.7, 0.9]),), 0),
    (P.cell_recurrence, (arr(6),), 0),
    (P.slice_writes, (arr(3, 4),), 0),
    (P.aliasing, (arr(3),), 0),
    (P.inside, (R.random(5) + 0.5,), 0),
    (P.soft_dtw, (arr(4), arr(5), 0.5), (0, 1)),
    (P.gated, (arr(3, 3), arr(3), P.Norm.L2), (0, 1)),
    (P.gated, (arr(3, 3), arr(3), "l1"), 0),
]


@pytest.mark.parametrize("f,args,wrt", CASES, ids=[
    f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_matches_finite_differences(f, args, wrt):
    check_program(f, *args, wrt=wrt)


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
    assert "def lists_grad(x, *, out_bar=1.0):" in src
    assert "out_bar_1" in src or "out_bar[" in src  # the user's `out` gets a distinct adjoint


def test_an_extra_argument_to_an_emitted_gradient_is_refused_not_taken_as_the_seed():
    """f_grad(x, y, z) for f(x, y) scaled the gradient by z: out_bar is keyword-only."""
    namespace = {}
    exec(adjoint.source(P.neuron, wrt=(0, 2)), namespace)
    args = (0.5, 1.5, 0.1, 1.0)
    want = namespace["neuron_grad"](*args)
    with pytest.raises(TypeError):
        namespace["neuron_grad"](*args, 2.0)
    got = namespace["neuron_grad"](*args, out_bar=2.0)
    np.testing.assert_allclose(got, 2.0 * np.asarray(want), rtol=1e-12)


def test_a_view_read_after_its_array_is_written_is_rejected():
    A = arr(2, 3)
    with pytest.raises(adjoint.UnsupportedError) as e:
        adjoint.grad(P.view_read_after_write)(A)
    import inspect
    lines, first = inspect.getsourcelines(P.view_read_after_write)
    where = first + next(k for k, line in enumerate(lines) if "B[0, 1] =" in line)
    assert f"programs.py:{where}" in str(e.value) and "hint:" in str(e.value)
    check_grad(P.view_copy_is_fine, A)


def test_standalone_source_runs_on_its_own(tmp_path):
    """The standalone module pastes the helpers it calls: it imports only numpy/math."""
    x = arr(4)
    text = adjoint.source(P.reductions, args=(x.reshape(2, 2),), standalone=True)
    assert "adjoint" not in text.split("def reductions_grad")[0].replace(
        "# Generated by adjoint", "")
    namespace = {}
    exec(compile(text, str(tmp_path / "g.py"), "exec"), namespace)
    np.testing.assert_allclose(namespace["reductions_grad"](x.reshape(2, 2)),
                               numeric_grad(P.reductions, (x.reshape(2, 2),)), rtol=1e-5)


def test_the_max_of_a_stable_log_sum_exp_gets_no_adjoint():
    """m + log(sum(exp(x - m))) does not depend on m: no mask, no extra tape."""
    from adjoint.analysis.stabilizers import invariant_shifts
    from adjoint.frontend.lower import lower_function
    for f in (P.softmax_xent, P.mlp, P.hmm_forward):
        assert invariant_shifts(lower_function(f)), f.__name__
    src = adjoint.source(P.softmax_xent, args=(arr(4, 3), arr(6, 4), np.eye(3)[[0, 1, 2, 0, 1, 2]]))
    assert "==" not in src.split("--- backward")[1]  # no argmax mask in the backward sweep

    def not_a_shift(x):
        m = np.max(x)
        return m * np.log(np.sum(np.exp(x - m)))

    from adjoint.frontend.lower import lower_function as lower
    assert not invariant_shifts(lower(not_a_shift))


def test_user_names_like_the_compilers_never_collide():
    """x_bar, _t1, _tape, adjoint, math and out_bar as user variables and parameters."""
    x = arr(3)
    check_grad(P.hygiene, x, 0.7, wrt=(0, 1))
    src = adjoint.source(P.hygiene, (0, 1), args=(x, 0.7))
    assert "def hygiene_grad(x, out_bar, *, out_bar_1=1.0):" in src


def test_a_helper_that_writes_into_and_rebinds_its_argument_is_rejected():
    def rebinds(v):
        v[0] = 1.0
        v = v * 2.0
        return np.sum(v)

    def f(x):
        return rebinds(x * 1.0)

    with pytest.raises(adjoint.UnsupportedError, match="writes into its argument `v`") as e:
        adjoint.grad(f)(np.ones(3))
    assert "v = v * 2.0" in str(e.value)


def safe_sqrt(x):
    return np.sum(np.where(x > 0, np.sqrt(x), 0.0))


def entropy(p):
    return -np.sum(np.where(p > 0, p * np.log(p), 0.0))


def guarded(x, a):
    s = 0.0
    for k in range(3):
        s = s + np.sum(np.where(x < a, 0.0, np.sqrt(x - a) * 2.0 + 1.0 / (x - a + 1e-300)))
    return s


def test_no_nan_from_the_branch_of_where_not_taken():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the forward computes them
        np.testing.assert_array_equal(adjoint.grad(safe_sqrt)(np.array([-1.0, 0.0, 4.0])),
                                      [0.0, 0.0, 0.25])
        np.testing.assert_allclose(adjoint.grad(entropy)(np.array([0.0, 0.25, 0.75])),
                                   [0.0, -np.log(0.25) - 1, -np.log(0.75) - 1])
        x = np.array([-1.0, 0.3, 2.0, 5.0])
        g = adjoint.grad(guarded, wrt=(0, 1))(x, 0.5)
        assert np.all(np.isfinite(g[0])) and np.isfinite(g[1])
        assert g[0][0] == 0.0 and g[0][1] == 0.0
    x = np.array([0.7, 2.0, 5.0])
    check_grad(guarded, x, 0.5, wrt=(0, 1))  # where every branch is defined


def _numbers(x):
    for i in range(3):
        yield x * i


def sums_a_generator(x):
    s = 0.0
    for v in _numbers(x):
        s = s + v
    return s


def nested_zip(x, w):
    s = 0.0
    for a, (i, b) in zip(x, enumerate(w)):
        s = s + a * b * i
    return s


def test_zip_and_enumerate_nest():
    x, w = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.25, -0.75])
    dx, dw = adjoint.grad(nested_zip, wrt=(0, 1))(x, w)
    np.testing.assert_allclose(dx, w * np.arange(3))
    np.testing.assert_allclose(dw, x * np.arange(3))


@pytest.mark.parametrize("f,args,message,hint", [
    (sums_a_generator, (1.0,), "generators are not supported", "yield x * i"),
])
def test_helpers_are_held_to_the_subset_with_located_errors(f, args, message, hint):
    with pytest.raises(adjoint.UnsupportedError, match=message) as e:
        adjoint.grad(f)(*args)
    assert "test_gradients.py:" in str(e.value) and hint in str(e.value)


def noisy(x):
    return np.sum(x * np.random.rand(3)) + random.random() * np.sum(x)


def test_compiling_takes_no_random_draw_and_python_random_is_spelled_as_imported(tmp_path):
    # the first call runs f once more to observe kinds; its draws are given back
    x = np.ones(3)
    np.random.seed(0)
    random.seed(0)
    g = adjoint.grad(noisy, cache_dir=tmp_path)(x)  # an empty cache: compiled here
    np.random.seed(0)
    random.seed(0)
    np.testing.assert_allclose(g, np.random.rand(3) + random.random(), rtol=1e-15)
    src = adjoint.source(noisy, args=(x,))
    assert "import random\n" in src and "_t2 = random.random()" in src
