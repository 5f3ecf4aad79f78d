"""Checking gradients against central finite differences (float64).

`check_grad(f, *args, wrt=0)` raises AssertionError with the largest error when
adjoint's gradient and the numerical one disagree; users call it in their own
tests, and adjoint's test-suite calls it on every program it differentiates.

`check_program(f, *args, wrt=None)` checks one program three independent ways:
the gradient against finite differences; translation validation (the value the
gradient's forward sweep computes, and the vjp's, is f's own); and forward against
reverse mode by the inner-product identity <v, J u> == <J^T v, u>.

Arguments may be floats, float arrays, or lists, tuples and dicts of those (a
list of (W, b) layers); `wrt` may name parameters by position or by name.
"""
from __future__ import annotations

import copy
import inspect

import numpy as np

from adjoint.runtime import rebuilt


# ---------------------------------------------------------------- structured values


def _flatten(x) -> list:
    """The float leaves of x (floats and arrays, inside lists, tuples and dicts)."""
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in _flatten(x[k])]
    if hasattr(type(x), "__dataclass_fields__"):  # its float fields (not a name, a count)
        return [leaf for f in _float_fields(x) for leaf in _flatten(getattr(x, f))]
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _flatten(item)]
    return [] if x is None else [x]  # (an optional entry left out: no number)


def _float_fields(x) -> list:
    return [f for f in type(x).__dataclass_fields__ if _differentiable(getattr(x, f))]


def _vector(x) -> np.ndarray:
    """x's leaves as one float64 vector."""
    parts = [np.asarray(leaf, dtype=float).reshape(-1) for leaf in _flatten(x)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _unvector(v: np.ndarray, like):
    """A value of `like`'s structure (arrays of its shapes) holding the numbers of v."""
    pos = [0]

    def build(x):
        if isinstance(x, dict):
            # same order as _flatten (sorted keys), rebuilt in the dict's own order
            built = {k: build(x[k]) for k in sorted(x)}
            return {k: built[k] for k in x}
        if hasattr(type(x), "__dataclass_fields__"):
            return rebuilt(x, {f: build(getattr(x, f)) for f in _float_fields(x)})
        if isinstance(x, (list, tuple)):
            items = [build(item) for item in x]
            return rebuilt(x, items) if hasattr(x, "_fields") else type(x)(items)
        if x is None:
            return None
        n = int(np.size(x))
        chunk = v[pos[0]:pos[0] + n]
        pos[0] += n
        if isinstance(x, np.ndarray):
            return chunk.reshape(x.shape).copy()
        return float(chunk[0])
    return build(like)


def _differentiable(x) -> bool:
    """A float, a float array, or a non-empty container of only those."""
    leaves = _flatten(x)
    return bool(leaves) and all(
        isinstance(leaf, (float, np.floating)) or
        (isinstance(leaf, np.ndarray) and leaf.dtype.kind in "fc") for leaf in leaves)


def _indices(f, wrt, n_args: int) -> tuple[int, ...]:
    """`wrt` (an int, a parameter name, or a tuple of those) as argument positions."""
    items = wrt if isinstance(wrt, tuple) else (wrt,)
    names = None
    out = []
    for w in items:
        if isinstance(w, str):
            if names is None:
                names = list(inspect.signature(f).parameters)
            if w not in names:
                raise TypeError(f"{getattr(f, '__name__', f)} has no parameter `{w}`")
            w = names.index(w)
        out.append(w % n_args)
    return tuple(out)


# ---------------------------------------------------------------- finite differences


def numeric_grad(f, args, wrt=0, eps: float = 1e-6, progress=None):
    """Central differences of scalar `f` with respect to args[wrt] (an int, a parameter
    name, or a tuple of those). A gradient has its argument's structure. `progress`,
    if given, is called as progress(entries done, entries in all) along the way."""
    items = _indices(f, wrt, len(args))
    grads = []
    total = sum(_vector(args[i]).size for i in items)
    done = 0

    def step():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)
    for i in items:
        x = args[i]
        if isinstance(x, np.ndarray):
            g = np.zeros(x.shape)
            flat = g.reshape(-1)
            for k in range(x.size):
                up, down = x.astype(float).copy(), x.astype(float).copy()
                up.reshape(-1)[k] += eps
                down.reshape(-1)[k] -= eps
                flat[k] = (_call(f, args, i, up) - _call(f, args, i, down)) / (2 * eps)
                step()
            grads.append(g)
        elif isinstance(x, (list, tuple, dict)) or hasattr(type(x), "__dataclass_fields__"):
            v = _vector(x)
            g = np.zeros(v.shape)
            for k in range(v.size):
                up, down = v.copy(), v.copy()
                up[k] += eps
                down[k] -= eps
                g[k] = (_call(f, args, i, _unvector(up, x)) -
                        _call(f, args, i, _unvector(down, x))) / (2 * eps)
                step()
            grads.append(_unvector(g, x))
        else:
            grads.append((_call(f, args, i, x + eps) - _call(f, args, i, x - eps)) / (2 * eps))
            step()
    return grads[0] if not isinstance(wrt, tuple) else tuple(grads)


def _call(f, args, i, value) -> float:
    # fresh copies: a function that updates an argument in place must not change the
    # arguments of the next evaluation
    args = list(copy.deepcopy(args))
    args[i] = value
    return float(np.sum(f(*args)))


def _close(a, b, rtol, atol) -> tuple[bool, float]:
    """Whether structured values a and b agree, and their largest difference."""
    if _shapes(a) != _shapes(b):
        return False, float("inf")
    va, vb = _vector(a), _vector(b)
    err = float(np.max(np.abs(va - vb))) if va.size else 0.0
    return bool(np.allclose(va, vb, rtol=rtol, atol=atol)), err


def _shapes(x):
    return [np.shape(leaf) for leaf in _flatten(x)]


def check_grad(f, *args, wrt=0, rtol: float = 1e-5, atol: float = 1e-7, eps: float = 1e-6):
    """Assert that `adjoint.grad(f, wrt)(*args)` matches finite differences; returns it.
    `wrt` may name parameters (`wrt='w'`, `wrt=('w', 'b')`)."""
    from adjoint.api import grad
    got = grad(f, wrt)(*args)
    want = numeric_grad(f, args, wrt, eps)
    pairs = zip(got, want) if isinstance(wrt, tuple) else [(got, want)]
    for k, (a, b) in enumerate(pairs):
        if _shapes(a) != _shapes(b):
            raise AssertionError(f"gradient {k}: shape {_shapes(a)} != {_shapes(b)}")
        ok, err = _close(a, b, rtol, atol)
        if not ok:
            raise AssertionError(f"gradient {k} differs from finite differences by {err:.3g}:\n"
                                 f"adjoint: {a}\nnumeric: {b}")
    return got


# ---------------------------------------------------------------- three-way check


def _source_of(f) -> str:
    try:
        return inspect.getsource(f)
    except (OSError, TypeError):
        return f"<no source for {f!r}>"


class _Stage:
    """`with stage(name):` notes on an exception escaping adjoint which check ran."""

    def __call__(self, name):
        self.name = name
        return self

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if e is not None and hasattr(e, "add_note"):  # Python 3.11+
            e.add_note(f"check_program: raised by adjoint's {self.name}")
        return False


def check_program(f, *args, wrt=None, rtol: float = 1e-5, atol: float = 1e-6,
                  eps: float = 1e-6, seed: int = 0, exact_rtol: float = 1e-12):
    """Check adjoint on `f(*args)` (a scalar function) three independent ways:

    1. `grad` against central finite differences (atol scaled by max(1, |f|));
    2. translation validation: value_and_grad's value and vjp's value are f(*args)
       (to `exact_rtol`), and value_and_grad's and pullback(1.0)'s gradients are grad's;
    3. forward against reverse: `<v, J u> == <J^T v, u>` for a random tangent u and a
       random cotangent v (jvp against vjp), and jvp's value is f(*args) too.

    `wrt` defaults to every float argument (floats, float arrays and containers of
    them). Raises AssertionError naming the check that failed, the numbers and f's
    source; returns the gradient (a tuple, one per differentiated argument).
    """
    from adjoint.api import grad, jvp, value_and_grad, vjp
    if wrt is None:
        wrt = tuple(i for i, a in enumerate(args) if _differentiable(a))
        if not wrt:
            raise TypeError("check_program: no float argument to differentiate")
    elif not isinstance(wrt, tuple):
        wrt = (wrt,)
    idx = _indices(f, wrt, len(args))
    where = f"\nargs: {args!r}\nwrt: {wrt!r}\n--- program ---\n{_source_of(f)}"

    def fail(what):
        raise AssertionError(what + where)

    before = copy.deepcopy(args)
    value = f(*copy.deepcopy(args))
    if np.ndim(value) != 0 or not np.isfinite(value):
        fail(f"f(*args) = {value!r}: check_program needs a finite scalar")
    value = float(value)
    scale = max(1.0, abs(value))

    def unchanged(what):
        for k, (a, b) in enumerate(zip(args, before)):
            if isinstance(a, (type(None), str, bool, int)) and a == b:
                continue  # (None is not a number to compare as one)
            if not _close(a, b, 0.0, 0.0)[0]:
                fail(f"{what} wrote into argument {k}")

    def same(got, want, what, tol_r, tol_a):
        for k, (a, b) in enumerate(zip(got, want)):
            if _shapes(a) != _shapes(b):
                fail(f"{what}: gradient {k} has shapes {_shapes(a)}, expected {_shapes(b)}")
            ok, err = _close(a, b, tol_r, tol_a)
            if not ok:
                fail(f"{what}: gradient {k} (argument {idx[k]}) differs by {err:.3g}:\n"
                     f"got:      {a}\nexpected: {b}")

    # 1. against finite differences
    stage = _Stage()
    with stage("grad"):
        got = grad(f, wrt)(*args)
    unchanged("grad")
    got = tuple(got)  # wrt is a tuple: so is the gradient (a 1-tuple for one)
    want = numeric_grad(f, args, wrt, eps)
    same(got, want, "grad against finite differences", rtol, atol * scale)
    for g, i in zip(got, idx):
        if isinstance(args[i], float) and type(g) is not float:
            fail(f"the gradient of float argument {i} is a {type(g).__name__}")
    # each returned array is the caller's own: clipping one gradient in place must not
    # change another, or an argument
    mine, given = ([a for a in _flatten(x) if isinstance(a, np.ndarray)] for x in (got, args))
    for k, a in enumerate(mine):
        if any(np.may_share_memory(a, b) for b in mine[k + 1:] + given):
            fail("grad returned an array that shares memory with another gradient or an "
                 "argument")

    # 2. translation validation: the forward sweeps compute f
    with stage("value_and_grad"):
        v2, g2 = value_and_grad(f, wrt)(*args)
    unchanged("value_and_grad")
    if not np.isclose(v2, value, rtol=exact_rtol, atol=exact_rtol):
        fail(f"value_and_grad's value {v2!r} != f(*args) = {value!r}")
    same(tuple(g2), got, "value_and_grad against grad",
         1e-9, 1e-12 * scale)
    with stage("vjp"):
        out, pullback = vjp(f, *args, wrt=wrt)
    unchanged("vjp")
    if not np.isclose(out, value, rtol=exact_rtol, atol=exact_rtol):
        fail(f"vjp's value {out!r} != f(*args) = {value!r}")
    with stage("vjp pullback"):
        pb1 = pullback(1.0)
    same(tuple(pb1), got, "vjp pullback(1.0) against grad",
         1e-9, 1e-12 * scale)

    # 3. forward against reverse: <v, J u> == <J^T v, u>
    rng = np.random.default_rng(seed)
    u = tuple(_unvector(rng.uniform(-1, 1, _vector(args[i]).size), args[i]) for i in idx)
    v = float(rng.uniform(0.5, 1.5))
    with stage("jvp"):
        out3, dot = jvp(f, wrt)(*args, u if len(wrt) > 1 else u[0])
    unchanged("jvp")
    if not np.isclose(out3, value, rtol=exact_rtol, atol=exact_rtol):
        fail(f"jvp's value {out3!r} != f(*args) = {value!r}")
    with stage("vjp pullback"):
        pbv = pullback(v)
    pbv = tuple(pbv)
    lhs = v * float(dot)
    terms = [_vector(a) * _vector(b) for a, b in zip(pbv, u)]
    rhs = float(sum(np.sum(t) for t in terms))
    size = float(sum(np.sum(np.abs(t)) for t in terms))
    if not np.isclose(lhs, rhs, rtol=1e-9, atol=1e-11 * max(1.0, size)):
        fail(f"forward and reverse disagree: <v, J u> = {lhs!r} (jvp) but "
             f"<J^T v, u> = {rhs!r} (vjp), v = {v!r}, u = {u!r}")
    return got
