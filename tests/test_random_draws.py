"""Random draws and recomputation. A checkpointed region is run again in the reverse
sweep, and each row of a Hessian is an HVP that runs f again: a draw there would give the
derivative of other random numbers than the forward value used. An explicit region or a
Hessian that draws is refused at the draw; a checkpoint policy stores a loop that draws."""
import random

import numpy as np
import pytest

import adjoint


def _line(marker: str) -> int:
    """The line of this file that ends with `marker` (a comment)."""
    with open(__file__) as fh:
        return next(k for k, text in enumerate(fh, 1) if text.rstrip().endswith(marker))


def fd_same_draws(f, args, i, state, h=1e-6):
    """Central differences of f in args[i], with np.random reset to `state` before every
    evaluation (so every evaluation draws the same numbers)."""
    x = np.array(args[i], dtype=float)
    out = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        vals = []
        for s in (h, -h):
            a = list(args)
            y = x.copy()
            y[j] += s
            a[i] = y
            np.random.set_state(state)
            vals.append(f(*a))
        out[j] = (vals[0] - vals[1]) / (2 * h)
    return out


def dropout_rnn(x, W):
    h = x
    for t in range(6):
        mask = np.random.rand(x.shape[0]) > 0.3
        h = np.tanh(W @ (h * mask) + 0.1 * t)
    return np.sum(h ** 2)


def dropout_checkpointed(x):
    s = 0.0
    h = x
    for t in adjoint.checkpointed(range(6), snapshots=2):
        m = np.random.rand(3) > 0.5  # draw: checkpointed
        h = np.tanh(h * m + 0.1)
        s = s + np.sum(h)
    return s


def noisy_step(h, t):
    return np.tanh(h + 0.1 * t + random.random())  # draw: step


def noisy_call(x):
    return np.sum(adjoint.checkpoint(noisy_step)(x, 1) ** 2)


def nested_draw(x):
    h = x
    for t in adjoint.checkpointed(range(4), snapshots=1):
        if t % 2 == 0:
            h = h * np.random.normal(size=3)  # draw: nested
        h = np.sin(h)
    return np.sum(h)


def masked_cube(x):
    mask = np.random.rand(6) > 0.5  # draw: hessian
    return np.sum(x * mask) ** 3


def masked_cube_given(x, mask):
    return np.sum(x * mask) ** 3


def pure_rnn(x, W):
    h = x
    for t in range(12):
        h = np.tanh(W @ h + 0.1 * t)
    return np.sum(h ** 2)


def pure_checkpointed(x, W):
    h = x
    for t in adjoint.checkpointed(range(9), snapshots=2):
        h = np.sin(W @ h) + 0.05 * t
    return np.sum(h ** 3)


@pytest.mark.parametrize("f, marker", [(dropout_checkpointed, "# draw: checkpointed"),
                                       (noisy_call, "# draw: step"),
                                       (nested_draw, "# draw: nested")])
def test_a_checkpointed_region_that_draws_is_refused_at_the_draw(f, marker, tmp_path):
    with pytest.raises(adjoint.AdjointError, match="recomputed in the reverse sweep") as e:
        adjoint.grad(f, cache_dir=tmp_path)(np.array([0.3, -0.5, 0.8]))
    assert e.value.loc.filename == __file__ and e.value.loc.line == _line(marker)
    assert "outside the region" in e.value.hint


def test_a_policy_stores_a_loop_that_draws(tmp_path):
    # checkpoint=2 would recompute the steps, drawing other masks: the loop is stored,
    # and the gradient is that of the masks the forward sweep drew
    rng = np.random.default_rng(1)
    x, W = rng.normal(size=8), rng.normal(size=(8, 8)) / 2
    np.random.seed(7)
    state = np.random.get_state()
    got = adjoint.grad(dropout_rnn, checkpoint=2, cache_dir=tmp_path)(x, W)
    want = fd_same_draws(dropout_rnn, (x, W), 0, state)
    assert np.count_nonzero(want) >= 4  # the masks let the gradient through
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
    assert "plan_actions" not in adjoint.source(dropout_rnn, checkpoint=2, args=(x, W))


def test_hessian_of_a_function_that_draws_is_refused(tmp_path):
    x = np.linspace(0.1, 0.6, 6)
    with pytest.raises(adjoint.AdjointError, match="Hessian's rows") as e:
        adjoint.hessian(masked_cube, cache_dir=tmp_path)(x)
    assert e.value.loc.filename == __file__ and e.value.loc.line == _line("# draw: hessian")
    # the draw made an argument: the Hessian of that draw, 6 s m m^T with s = sum(x * m)
    mask = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    got = adjoint.hessian(masked_cube_given, cache_dir=tmp_path)(x, mask)
    np.testing.assert_allclose(got, 6 * np.sum(x * mask) * np.outer(mask, mask), rtol=1e-12)


@pytest.mark.parametrize("f, kw", [(pure_rnn, {"checkpoint": 2}), (pure_checkpointed, {})])
def test_a_pure_checkpointed_loop_is_unaffected(f, kw, tmp_path):
    rng = np.random.default_rng(2)
    x, W = rng.normal(size=4), rng.normal(size=(4, 4)) / 2
    assert "plan_actions" in adjoint.source(f, args=(x, W), **kw)  # still recomputed
    for i in (0, 1):
        got = adjoint.grad(f, wrt=i, cache_dir=tmp_path, **kw)(x, W)
        want = fd_same_draws(f, (x, W), i, np.random.get_state())
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


RNG = np.random.default_rng(5)


def dropout(w, X, rng):
    mask = rng.uniform(size=X.shape[0]) > 0.3
    return np.sum(np.tanh(X @ w) ** 2 * mask)


def jittered(w, X):
    return np.sum(np.tanh(X @ w + 0.1 * RNG.normal(size=X.shape[0])) ** 2)


def test_a_generator_s_draws_are_constants_of_the_gradient():
    """`rng.uniform(...)` of a Generator passed in, and `RNG.normal(...)` of a module's:
    the draws the gradient makes are those f would make from the same state; compiling
    (which runs f once) gives its draws back (round 21's R7: refused as methods)."""
    w, X = np.array([0.3, -0.2]), np.random.default_rng(1).standard_normal((6, 2))
    mask = np.random.default_rng(0).uniform(size=6) > 0.3
    t = np.tanh(X @ w)
    np.testing.assert_allclose(adjoint.grad(dropout)(w, X, np.random.default_rng(0)),
                               X.T @ (2 * t * (1 - t ** 2) * mask), rtol=1e-12)
    state = RNG.bit_generator.state
    g = adjoint.grad(jittered)(w, X)
    RNG.bit_generator.state = state
    t = np.tanh(X @ w + 0.1 * RNG.normal(size=6))
    np.testing.assert_allclose(g, X.T @ (2 * t * (1 - t ** 2)), rtol=1e-12)
    assert "rng.uniform(size=" in adjoint.source(dropout, args=(w, X, np.random.default_rng(0)))
    with pytest.raises(adjoint.AdjointError, match="draw"):
        adjoint.hessian(dropout)(w, X, np.random.default_rng(0))
