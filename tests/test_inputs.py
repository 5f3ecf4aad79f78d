"""What a call hands the compiled code, checked before it runs.

ndarray subclasses: np.ma.MaskedArray's np.sum skips masked entries and np.matrix's `*`
is a matrix product, so differentiating them as plain arrays is wrong. They are refused,
as an argument (wrt or not), inside a container argument, read from a global, or made in
f, naming their type; np.memmap, a plain array on disk, is differentiated.

A pullback's cotangent: an (n,) cotangent for an (n, 1) output, or a number for an
array, would broadcast inside the sweep into a product that is no J^T ct; a short tuple,
a None entry or an unknown dict key would crash in the generated file or be ignored.
Each is refused with the output's shape, length or keys. The gradients that remain are
compared with central differences and hand-derived formulas."""
import numpy as np
import pytest

import adjoint
from adjoint.errors import NonDifferentiableError, UnsupportedError
from adjoint.testing import numeric_grad

# np.matrix warns that it is not recommended: that is what these tests are about
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")


def sum_sq(x):
    return np.sum(x ** 2)


def weighted(x, w):
    return np.sum(w * x ** 2)


def products(A, B):
    return np.sum(A * B)


def from_pair(x, p):
    return np.sum(p[0] * x + p[1])


MASKED_W = np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False])


def reads_global(x):
    return np.sum(MASKED_W * x)


def makes_matrix(x):
    m = np.asmatrix(x)
    return np.sum(m * m.T)


# ---------------------------------------------------------------- ndarray subclasses


def test_masked_wrt_refused_naming_its_type():
    x = np.ma.array([0.3, -0.7, 1.2, 5.0], mask=[False, False, False, True])
    with pytest.raises(NonDifferentiableError, match="`x`: it is a MaskedArray"):
        adjoint.grad(sum_sq)(x)


def test_matrix_wrt_refused_naming_its_type():
    A = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    B = np.matrix([[0.5, -1.0], [2.0, 0.1]])
    with pytest.raises(NonDifferentiableError, match="`A`: it is a matrix"):
        adjoint.grad(products)(A, B)


def test_masked_non_wrt_refused_at_f():
    x = np.array([0.3, -0.7, 1.2, 5.0])
    w = np.ma.array([1.0, 2.0, 3.0, 4.0], mask=[False, True, False, False])
    with pytest.raises(UnsupportedError, match="`w` is a MaskedArray") as e:
        adjoint.grad(weighted)(x, w)
    assert e.value.loc is not None and e.value.loc.line == weighted.__code__.co_firstlineno
    assert "filled" in str(e.value)
    # the same f, with the same shapes, on a plain array: its gradient, 2 w x
    w_plain = np.array([1.0, 0.0, 3.0, 4.0])
    g = adjoint.grad(weighted)(x, w_plain)
    np.testing.assert_allclose(g, 2 * w_plain * x, rtol=1e-12)
    np.testing.assert_allclose(g, numeric_grad(weighted, (x, w_plain), 0), rtol=1e-6)
    # and the refusal holds on a second call (no code was kept for it)
    with pytest.raises(UnsupportedError, match="MaskedArray"):
        adjoint.grad(weighted)(x, w)


def test_matrix_non_wrt_refused_in_vjp_and_jvp():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    B = np.matrix([[0.5, -1.0], [2.0, 0.1]])
    with pytest.raises(UnsupportedError, match="`B` is a matrix"):
        adjoint.vjp(products, A, B)
    with pytest.raises(UnsupportedError, match="`B` is a matrix"):
        adjoint.jvp(products)(A, B, np.ones((2, 2)))


def test_subclass_inside_a_tuple_argument_refused():
    x = np.array([0.5, 1.5])
    p = (np.ma.array([1.0, 2.0], mask=[True, False]), np.array([0.0, 1.0]))
    with pytest.raises(UnsupportedError, match=r"`p\[0\]` is a MaskedArray"):
        adjoint.grad(from_pair)(x, p)


def test_global_subclass_refused_where_read():
    with pytest.raises(UnsupportedError, match="`MASKED_W` is a MaskedArray") as e:
        adjoint.grad(reads_global)(np.array([0.1, 0.2, 0.3]))
    assert e.value.loc.line == reads_global.__code__.co_firstlineno + 1


def test_subclass_made_in_f_refused_at_its_line():
    with pytest.raises(UnsupportedError, match="is a matrix") as e:
        adjoint.grad(makes_matrix)(np.array([0.1, 0.2, 0.3]))
    assert e.value.loc.line == makes_matrix.__code__.co_firstlineno + 1


class Tagged(np.ndarray):
    """A user's subclass: refused as the library's are."""


def test_user_subclass_refused():
    x = np.array([1.0, 2.0]).view(Tagged)
    with pytest.raises(NonDifferentiableError, match="it is a Tagged"):
        adjoint.grad(sum_sq)(x)
    with pytest.raises(UnsupportedError, match="`w` is a Tagged"):
        adjoint.grad(weighted)(np.array([1.0, 2.0]), x)


def test_memmap_is_a_plain_array(tmp_path):
    x0 = np.array([0.3, -0.7, 1.2, 5.0])
    x = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="w+", shape=(4,))
    x[:] = x0
    w = np.memmap(tmp_path / "w.dat", dtype=np.float64, mode="w+", shape=(4,))
    w[:] = [1.0, 2.0, 3.0, 4.0]
    g = adjoint.grad(sum_sq)(x)
    np.testing.assert_allclose(g, 2 * x0, rtol=1e-12)
    gw = adjoint.grad(weighted, wrt=(0, 1))(x, w)
    np.testing.assert_allclose(gw[0], 2 * np.asarray(w) * x0, rtol=1e-12)
    np.testing.assert_allclose(gw[1], x0 ** 2, rtol=1e-12)
    np.testing.assert_allclose(gw[1], numeric_grad(weighted, (np.array(x), np.array(w)), 1),
                               rtol=1e-6)


def test_other_array_libraries_unaffected():
    da = pytest.importorskip("dask.array")
    x0 = np.array([0.3, -0.7, 1.2, 5.0])
    w0 = np.array([1.0, 2.0, 3.0, 4.0])
    g = adjoint.grad(weighted)(da.from_array(x0, chunks=2), da.from_array(w0, chunks=2))
    np.testing.assert_allclose(np.asarray(g.compute()), 2 * w0 * x0, rtol=1e-12)
    xp = pytest.importorskip("array_api_strict")
    pytest.importorskip("array_api_compat")
    g = adjoint.grad(weighted)(xp.asarray(x0), xp.asarray(w0))
    np.testing.assert_allclose(np.asarray(g), 2 * w0 * x0, rtol=1e-12)


# ---------------------------------------------------------------- a pullback's cotangent


def column(x):
    return np.sin(x)[:, None] * x[0]  # shape (3, 1)


def two(x):
    return np.sin(x), np.sum(x ** 2)


def named(x):
    return {"a": np.sin(x), "b": np.sum(x ** 3)}


X = np.array([0.3, -0.7, 1.2])


def jacobian(f, x):
    """Central differences, one column per entry of x: J[i, j] = d f_i / d x_j."""
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = 1e-6
        cols.append((np.ravel(f(x + e)) - np.ravel(f(x - e))) / 2e-6)
    return np.stack(cols, axis=1)


def test_column_output_needs_a_column_cotangent():
    out, pullback = adjoint.vjp(column, X)
    assert out.shape == (3, 1)
    ct = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"has shape \(3,\), but `out` has shape \(3, 1\)"):
        pullback(ct)
    got = pullback(ct[:, None])
    np.testing.assert_allclose(got, jacobian(column, X).T @ ct, rtol=1e-6)
    # by hand: d/dx_j of sin(x_i) x_0 is cos(x_i) x_0 [i == j] + sin(x_i) [j == 0]
    want = np.cos(X) * X[0] * ct
    want[0] += np.sum(np.sin(X) * ct)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_number_for_an_array_output_refused():
    _, pullback = adjoint.vjp(sin_of, X)
    with pytest.raises(ValueError, match=r"has shape \(\), but `out` has shape \(3,\)"):
        pullback(1.0)
    with pytest.raises(ValueError, match=r"has shape \(1,\)"):
        pullback(np.ones(1))
    np.testing.assert_allclose(pullback(np.ones(3)), np.cos(X), rtol=1e-12)


def sin_of(x):
    return np.sin(x)


def test_scalar_output_takes_a_number():
    out, pullback = adjoint.vjp(sum_sq, X)
    assert out == pytest.approx(np.sum(X ** 2))
    np.testing.assert_allclose(pullback(1.0), 2 * X, rtol=1e-12)
    np.testing.assert_allclose(pullback(np.array([2.5])), 5 * X, rtol=1e-12)
    np.testing.assert_allclose(pullback(3), 6 * X, rtol=1e-12)  # an int, as a float
    with pytest.raises(ValueError, match="a number, has shape"):
        pullback(np.ones(2))


def test_tuple_output_cotangent_entries():
    out, pullback = adjoint.vjp(two, X)
    with pytest.raises(ValueError, match="a tuple of 2 entries, must have its 2 entries"):
        pullback((np.ones(3),))
    with pytest.raises(TypeError, match=r"`out\[1\]` is None"):
        pullback((np.ones(3), None))
    with pytest.raises(ValueError, match=r"`out\[0\]` has shape \(2,\)"):
        pullback((np.ones(2), 1.0))
    ct = np.array([1.0, -2.0, 0.5])
    want = np.cos(X) * ct + 2 * X * 0.25
    np.testing.assert_allclose(pullback((ct, 0.25)), want, rtol=1e-12)
    np.testing.assert_allclose(pullback([ct, 0.25]), want, rtol=1e-12)  # a list: the same
    np.testing.assert_allclose(pullback((ct, 0.25)), jacobian(
        lambda z: np.concatenate([np.sin(z), [np.sum(z ** 2)]]), X).T @ np.append(ct, 0.25),
        rtol=1e-6)


def test_dict_output_cotangent_keys():
    out, pullback = adjoint.vjp(named, X)
    assert set(out) == {"a", "b"}
    ct = {"a": np.array([1.0, 2.0, 3.0]), "b": 0.5}
    with pytest.raises(ValueError, match=r"dict with its keys \['a', 'b'\]"):
        pullback({**ct, "c": 1.0})  # a misspelt or extra key is not ignored
    with pytest.raises(ValueError, match="dict with its keys"):
        pullback({"a": ct["a"]})
    np.testing.assert_allclose(pullback(ct), np.cos(X) * ct["a"] + 3 * X ** 2 * 0.5,
                               rtol=1e-12)


def test_cotangent_dtype_kind():
    _, pullback = adjoint.vjp(sin_of, X)
    with pytest.raises(TypeError, match="is complex, but `out` is real"):
        pullback(np.ones(3) * (1 + 1j))
    with pytest.raises(TypeError, match="must be numbers"):
        pullback(np.array(["a", "b", "c"]))
    with pytest.raises(TypeError, match="MaskedArray"):
        pullback(np.ma.array(np.ones(3), mask=[True, False, False]))
    ints = np.array([1, 2, 3])
    np.testing.assert_allclose(pullback(ints), np.cos(X) * ints, rtol=1e-12)
    np.testing.assert_array_equal(ints, [1, 2, 3])  # the caller's array is not written
    np.testing.assert_allclose(pullback([1.0, 2.0, 3.0]), np.cos(X) * ints, rtol=1e-12)


def test_a_masked_tangent_is_refused_not_unmasked():
    # np.asarray would drop the mask: the directional derivative along the data under it
    with pytest.raises(TypeError, match="MaskedArray"):
        adjoint.jvp(sin_of)(X, np.ma.array(np.ones(3), mask=[True, False, False]))
    value, dot = adjoint.jvp(sin_of)(X, np.ones(3))
    np.testing.assert_allclose(dot, np.cos(X), rtol=1e-12)
