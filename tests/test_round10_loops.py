"""Round 10a's first-call classes in loops that write arrays in place.

W1 (W1b, W1c): a loop whose body writes an array slot under an `if` (or past a break /
continue test) taped the if's merged array by reference (`g_1 = g; _tape.append((g_1,
_old))`). Every entry was then the one final array: a write after the loop, or later
trips' writes, changed what the reverse sweep read (its slot restores ran on a private
copy and never undid them). The merged array is now known to be written, so the tape
holds a copy, in every reverse mode.

C-A: `c[0] += v` in a loop inside an `if`, then `c = c * c`: the tape kept a slot that
nothing read, and the generated pop unpacked `c, _, _ = _tape.pop()`, then read
`_saved[2]` (NameError). The pop now unpacks whichever positions are read.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import adjoint
from adjoint.testing import numeric_grad


def ifwrite_after(x):  # W1: a slot written on some trips, a write after the loop
    h = np.cos(x)
    s = 0.0
    for t in range(3):
        if x[t] > 0:
            h[t] = np.sum(x * h)
        s = s + np.sum(h * x)
    h[3] = 0.0
    return s + np.sum(h * h)


def forbreak(x):  # W1: a loop that may stop early, its state written in place
    h = np.cos(x)
    s = 0.0
    for t in range(3):
        if np.max(h) > 5.0:
            break
        h[0] = np.sum(x * h)
        s = s + np.sum(h * x)
    h[1] = 0.0
    return s + np.sum(h * h)


def forcont(x):
    b = x ** 2
    c = np.cos(x)
    for i in range(2):
        if x[1] > 0:
            continue
        c[1] = np.sum(x)
        b = b * c
    c[2] = 5.0
    return np.sum(c * b)


def whilebreak(x):
    b = x ** 2
    c = np.cos(x)
    i = 0
    while i < 2:
        if x[1] > 0:
            break
        c[1] = np.sum(x)
        b = b * c
        i += 1
    c[2] = 5.0
    return np.sum(c * b)


def _put(v):
    v[3] = 1.0
    return v


def helper_after(x):  # the write after the loop is a helper's, or a slice
    h = np.cos(x)
    s = 0.0
    for t in range(3):
        if x[t] > 0:
            h[t] = np.sum(x * h)
        else:
            h[3 - t] = np.sum(h * h) * 0.5
        s = s + np.sum(h * x)
    h[:2] = x[:2]
    _put(h)
    return s + np.sum(h * h * x)


def nested_after(x):  # the outer body writes after the inner loop
    h = np.cos(x)
    s = 0.0
    for k in range(2):
        for t in range(3):
            if x[t] > 0:
                h[t] = np.sum(x * h) * 0.5
            s = s + np.sum(h * x)
        h[3] = h[3] * 0.5
    return s + np.sum(h * h)


def loop_in_if(x):  # W1b: the loop inside an if, nothing after it
    h = np.cos(x)
    g = x * 0.5 + 0.1
    if x[3] > 0.0:
        for t in range(3):
            if x[1] > 0.3:
                g[t] = np.sum(h * g)
    return np.sum(h * g)


def loop_ifwrite(x):  # W1c: without the outer if (its hvp was wrong)
    h = np.cos(x)
    g = x * 0.5 + 0.1
    for t in range(3):
        if x[1] > 0.3:
            g[t] = np.sum(h * g)
    return np.sum(h * g)


def iadd_rebind(x):  # C-A
    c = np.cos(x)
    if x[0] > 0:
        for i in range(2):
            c[0] += x[1]
            c = c * c
    return np.sum(c)


X = np.array([0.3, -0.5, 0.7, 0.2])
Y = np.array([-0.989, 0.417, 0.886, 0.213])
W1 = [(ifwrite_after, X), (forbreak, X), (forcont, X), (whilebreak, X), (helper_after, X),
      (nested_after, X), (loop_in_if, Y), (loop_ifwrite, Y), (iadd_rebind, X[:3] + 0.2)]


def _fd_hvp(f, x, v, h=1e-5):
    """Central differences of the gradient (checked against differences of f above)."""
    g = adjoint.grad(f)
    return (g(x + h * v) - g(x - h * v)) / (2 * h)


@pytest.mark.parametrize("f, x", W1, ids=[f.__name__ for f, _ in W1])
def test_every_reverse_mode_matches_differences(f, x):
    want = numeric_grad(f, (x,))
    for label, g in (("grad", adjoint.grad(f)), ("checkpoint=1", adjoint.grad(f, checkpoint=1))):
        np.testing.assert_allclose(g(x.copy()), want, rtol=1e-6, atol=1e-7, err_msg=label)
    _, pullback = adjoint.vjp(f, x.copy())
    np.testing.assert_allclose(pullback(1.0), want, rtol=1e-6, atol=1e-7, err_msg="vjp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba may fall back to NumPy: still right
        got = adjoint.grad(f, backend="numba")(x.copy())
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg="numba")
    # the generic file `adjoint emit` writes without --args
    namespace = dict(globals())
    exec(compile(adjoint.source(f), "<generic>", "exec"), namespace)
    np.testing.assert_allclose(namespace[f"{f.__name__}_grad"](x.copy()), want,
                               rtol=1e-6, atol=1e-7, err_msg="generic")


@pytest.mark.parametrize("f, x", W1[:2] + W1[6:], ids=[f.__name__ for f, _ in W1[:2] + W1[6:]])
def test_hvp_matches_differences_of_the_gradient(f, x):
    v = np.linspace(0.3, -0.4, x.size)
    np.testing.assert_allclose(adjoint.hvp(f)(x.copy(), v), _fd_hvp(f, x, v),
                               rtol=1e-5, atol=1e-6)


def test_a_taped_if_merge_is_a_copy():
    """The mechanism: the forward pushes a copy of the merged array, never the array the
    later trips (or the write after the loop) go on writing."""
    forward = adjoint.source(loop_in_if, args=(Y,)).split("# --- backward")[0]
    lines = [line.strip() for line in forward.splitlines()]
    push = next(k for k, line in enumerate(lines) if line.startswith("_tape.append(("))
    taped = lines[push][len("_tape.append(("):].split(",")[0]
    assert lines[push - 1] == f"{taped} = np.copy({taped})", forward


def test_a_pop_unpacks_the_slots_it_reads():
    """C-A's generated code: one unpacking of the entry, no `_saved` left behind."""
    x = X[:3] + 0.2
    text = adjoint.source(iadd_rebind, args=(x,))
    assert "_saved" not in text, text
    want = numeric_grad(iadd_rebind, (x,))
    np.testing.assert_allclose(adjoint.grad(iadd_rebind)(x), want, rtol=1e-6, atol=1e-7)
