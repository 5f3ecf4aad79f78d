"""The optimisations that make generated gradients cheap: each shows in the generated
source as the rewrite it promises, and the gradient still matches finite differences
(for loops, at zero, one and several trips)."""
import importlib.util
import math

import numpy as np
import pytest

import adjoint
from adjoint.testing import check_grad
from tests import programs as P

R = np.random.default_rng(7)


def code(src: str) -> str:
    """The generated statements, without the comments that quote the source."""
    return "\n".join(line for line in src.splitlines() if not line.lstrip().startswith("#"))


def backward(src: str) -> str:
    return code(src.split("# --- backward ---")[1])


def rnn(W, x, h):
    for t in range(x.shape[0]):
        h = np.tanh(W @ h + x[t])
    return np.sum(h ** 2)


def rnn_two_layers(W, V, x, h):
    for t in range(x.shape[0]):
        g = np.tanh(W @ h + x[t])  # W is 5 x 3: not square
        h = np.sin(V @ g)
    return np.sum(h ** 2)


@pytest.mark.parametrize("steps", [0, 1, 2, 9])
def test_outer_products_of_a_loop_are_one_matrix_product(steps):
    W, x, h = 0.5 * R.normal(size=(3, 3)), R.normal(size=(steps, 3)), R.normal(size=3)
    check_grad(rnn, W, x, h, wrt=(0, 1, 2))
    W, V, x = 0.5 * R.normal(size=(5, 3)), 0.5 * R.normal(size=(3, 5)), R.normal(size=(steps, 5))
    check_grad(rnn_two_layers, W, V, x, h, wrt=(0, 1, 2, 3))


def test_the_walked_tape_is_stacked_once_and_read_as_the_right_factor():
    src = backward(adjoint.source(rnn, args=(np.eye(3), np.ones((4, 3)), np.ones(3))))
    assert "_tape = np.array(_tape)" in src  # under the list's name: the list is freed
    assert "_u = np.array(_u[::-1])" in src  # in the tape's order: both factors contiguous
    assert "W_bar += np.transpose(_u) @ _tape\n" in src
    assert "np.outer" not in src and "_v" not in src
    # both accumulators of a loop are batched, not only the first
    src = backward(adjoint.source(rnn_two_layers, wrt=(0, 1), args=(
        np.ones((5, 3)), np.ones((3, 5)), np.ones((4, 5)), np.ones(3))))
    assert "np.outer" not in src and src.count("np.transpose(") == 2


def hmm(log_pi, log_A, log_B):
    alpha = log_pi + log_B[0]
    for t in range(1, log_B.shape[0]):
        s = alpha[:, None] + log_A
        m = np.max(s, axis=0)
        alpha = m + np.log(np.sum(np.exp(s - m), axis=0)) + log_B[t]
    m = np.max(alpha)
    return m + np.log(np.sum(np.exp(alpha - m)))


def test_a_reduced_broadcast_is_a_matrix_vector_product():
    args = (np.log(np.full(4, 0.25)), np.log(R.dirichlet(np.ones(4), 4)), R.normal(size=(6, 4)))
    check_grad(hmm, *args, wrt=(0, 1, 2))
    src = backward(adjoint.source(hmm, wrt=2, args=args))
    assert "broadcast_to" not in src and "keepdims" not in src and "reshape" not in src
    assert "alpha_bar = _t6 @ (alpha_bar / _t5)" in src  # the backward algorithm


def logistic(w, X, y):
    return np.sum(np.logaddexp(0.0, -y * (X @ w)))


def test_a_negated_parameter_is_negated_again_rather_than_kept():
    args = (R.normal(size=3), R.normal(size=(8, 3)), np.sign(R.normal(size=8)))
    check_grad(logistic, *args, wrt=0)
    src = adjoint.source(logistic, args=args)
    forward, back = map(code, src.split("# --- backward ---"))
    assert "_t1 = -y * (X @ w)" in forward and "= -y\n" not in forward  # no name holds -y
    assert "* -y" in back or "*= -y" in back  # passes/buffers.py writes the product in place
    # (its derivative's weights are exp(x - logaddexp(...)): smooth to every order)


def reduction(x, a):
    s = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            s = s + a * x[i, j] ** 2 * 3.0
    return s


@pytest.mark.parametrize("rows", [0, 1, 3])  # the source is specialised on 3 rows
def test_loop_invariant_cotangent_factors_are_computed_once(rows):
    check_grad(reduction, R.normal(size=(rows, 2)), 1.3, wrt=(0, 1))
    src = backward(adjoint.source(reduction, wrt=(0, 1), args=(R.normal(size=(3, 2)), 1.3)))
    loop = src.index("    for i in")
    assert "out_bar * 3.0" in src[:loop]  # hoisted out of both loops
    assert "out_bar" not in src[loop:] and "s_bar" not in src  # no longer carried


def rosenbrock(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


@pytest.mark.parametrize("n", [1, 2, 6])
def test_scales_and_signs_move_onto_the_hoisted_factor(n):
    x = R.normal(size=n)
    g = adjoint.grad(rosenbrock)(x)
    hand = np.zeros(n)
    for i in range(n - 1):
        d = x[i + 1] - x[i] * x[i]
        hand[i] += -400.0 * d * x[i] - 2.0 * (1.0 - x[i])
        hand[i + 1] += 200.0 * d
    np.testing.assert_allclose(g, hand, rtol=1e-13, atol=1e-13)
    check_grad(rosenbrock, x)
    src = backward(adjoint.source(rosenbrock, args=(R.normal(size=6),)))
    loop = src.index("    for i in")
    # `(s_bar * 2) * d` and `-(s_bar * 2 * y)`: the 2 and the sign join the constant
    assert "-400.0 * out_bar" in src[:loop] and "-2 * out_bar" in src[:loop]
    assert " * 2" not in src[loop:] and "-(" not in src[loop:]
    assert "** 2" not in src[loop:] and "_t4 * _t4" in src[loop:]  # a number's square


def sin_loop(x, a, n):
    for i in range(n):
        x = math.sin(x) * a
    return x


@pytest.mark.parametrize("n", [0, 1, 5])
def test_a_carried_cotangent_is_computed_after_the_last_read_of_its_old_value(n):
    src = backward(adjoint.source(sin_loop, wrt=(0, 1), args=(0.3, 1.1, 5)))
    # one name per cotangent: the rule's `x_bar * a` waits for the read of the old x_bar
    assert "        a_bar += x_bar * math.sin(x_1)\n        x_bar = x_bar * a * math.cos(x_1)" \
        in src and "_t_bar" not in src
    check_grad(sin_loop, 0.3, 1.1, n, wrt=(0, 1))


def sum_of_squares(r, w, lam):
    return np.sum(r * r) + lam * np.sum(w * w)


def test_two_equal_contributions_are_one_doubling():
    args = (R.normal(size=4), R.normal(size=3), 0.3)
    src = backward(adjoint.source(sum_of_squares, wrt=(0, 1), args=args))
    assert "r_bar = out_bar * r * 2" in src and "w_bar = out_bar * lam * w * 2" in src
    assert "+=" not in src
    check_grad(sum_of_squares, *args, wrt=(0, 1))


def scaled_loop(x, b, n):
    for i in range(n):
        x = np.sin(x) * (b * 2.0)
    return np.sum(x)


def test_the_forward_sweep_stays_as_written():
    src = adjoint.source(scaled_loop, wrt=(0, 1), args=(np.ones(3), 0.5, 4))
    forward, back = map(code, src.split("# --- backward ---"))
    assert "        x = _t1 * (b * 2.0)" in forward  # in the loop, as written
    assert "\n    _t2 = b * 2.0" in back  # once, before the reverse loop
    check_grad(scaled_loop, R.normal(size=3), 0.5, 4, wrt=(0, 1))


def test_a_loop_writing_one_cell_per_step_writes_in_place():
    # O(1) per step: an element read is a number, not a view, so nothing forces a copy
    x = R.normal(size=6)
    check_grad(P.cell_recurrence, x)
    src = code(adjoint.source(P.cell_recurrence, args=(x,)))
    assert "copy" not in src.replace("y_bar = np.copy(y_bar)", "")  # the seed's broadcast, once
    assert "        y[i] = np.sin(x[i] * " in src and "        y_bar[i] = 0.0" in src


def test_the_tangent_of_a_batched_accumulation_is_batched_too():
    # forward over reverse accumulates np.outer(u_dot, h) + np.outer(u, h_dot) per step
    W, x, h, v = 0.5 * R.normal(size=(3, 3)), R.normal(size=(5, 3)), R.normal(size=3), \
        R.normal(size=(3, 3))
    hvp = adjoint.hvp(rnn)
    src = hvp.source(W, x, h, v)
    assert "np.outer" not in src and "W_bar_dot += np.transpose(_u) @ _v" in src
    eps = 1e-6
    g = adjoint.grad(rnn)
    want = (g(W + eps * v, x, h) - g(W - eps * v, x, h)) / (2 * eps)
    np.testing.assert_allclose(hvp(W, x, h, v), want, rtol=1e-6, atol=1e-8)


def sum_tanh(x):
    return np.sum(np.tanh(x))


def tanh_squares(x, y):
    t = np.tanh(x)
    return np.sum(t ** 2) + np.sum(t * y)


def test_an_elementwise_chain_writes_into_buffers_whose_last_read_has_passed():
    x = R.normal(size=5)
    src = adjoint.source(sum_tanh, args=(x,))
    assert backward(src).strip("\n").split("\n") == [
        "    _t1 *= _t1",
        "    np.subtract(1.0, _t1, out=_t1)",
        "    x_bar = _t1  # reuses _t1's buffer: _t1 is not read again",
        "    if out_bar != 1.0:",
        "        x_bar *= out_bar",
        "    return x_bar"]
    namespace = {}
    exec(compile(src, "<sum_tanh>", "exec"), namespace)
    kept = x.copy()
    np.testing.assert_allclose(namespace["sum_tanh_grad"](x), 1.0 - np.tanh(x) ** 2)
    np.testing.assert_allclose(namespace["sum_tanh_grad"](x, out_bar=2.5),
                               2.5 * (1.0 - np.tanh(x) ** 2))
    np.testing.assert_array_equal(x, kept)  # the argument's buffer is never written
    for dtype in (np.float32, np.float64):  # each keeps its dtype
        g = adjoint.grad(sum_tanh)(x.astype(dtype))
        assert g.dtype == dtype
        np.testing.assert_allclose(g, 1.0 - np.tanh(x) ** 2, rtol=1e-5)
    check_grad(sum_tanh, x)


def test_a_gradient_written_with_out_is_differentiated_again(tmp_path):
    # the frontend reads `np.subtract(1.0, t, out=t)` as `t[...] = np.subtract(1.0, t)`
    x = R.normal(size=5)
    path = tmp_path / "tanh_grad_module.py"
    path.write_text(adjoint.source(sum_tanh, args=(x,)))
    spec = importlib.util.spec_from_file_location("tanh_grad_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    t = np.tanh(x)
    np.testing.assert_allclose(adjoint.jacobian(module.sum_tanh_grad)(x),
                               np.diag(-2.0 * t * (1.0 - t * t)), rtol=1e-10)


def test_a_buffer_still_read_or_of_another_array_is_not_written():
    x, y = R.normal(size=4), R.normal(size=4)
    src = backward(adjoint.source(tanh_squares, wrt=(0, 1), args=(x, y)))
    assert "y *=" not in src and "y_bar *=" not in src and "t_bar *=" not in src
    assert "= t  # reuses" not in src  # t is the user's variable: never renamed
    check_grad(tanh_squares, x, y, wrt=(0, 1))
    g = adjoint.grad(tanh_squares, wrt=(0, 1))(x.astype(np.float32), y)
    assert g[1].dtype == np.float64  # y_bar = t, a float32 array: never y's buffer
