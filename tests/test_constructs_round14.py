"""Round 14 of the Python that ML and scientific code uses (issue 15): casts
(`x.astype(np.float64)`, `np.float64(v)`, `np.asarray(x, dtype=...)`, to int and to
float32), `.tolist()`, `sorted(...)` of numbers, namedtuple `_replace`, expression
statements that compute nothing with values (`print(x) if VERBOSE else None`), and
`dict(p)` of a dict parameter. Each gradient is checked by adjoint.testing.check_program
(central differences in float64, value_and_grad's value against f, jvp against vjp) and
against the formula by hand; hvp against central differences of the gradient where it
is cheap. Each construct out of scope is a located AdjointError with a hint."""
import collections
import inspect
import logging
import warnings

import numpy as np
import pytest

import adjoint
from adjoint import AdjointError, NonDifferentiableError, UnsupportedError
from adjoint.testing import check_program, numeric_grad
from tests.test_constructs_round12 import numeric_hvp

X = np.array([0.3, -1.6, 2.2])  # entries, and 3 times them, 0.1 or more from an integer
V = np.array([0.5, 0.7, -0.2])
Layer = collections.namedtuple("Layer", "W b")


def refused(f, *args, at: str, says: str, cls=UnsupportedError, wrt=0):
    """`adjoint.grad(f, wrt)(*args)` raises `cls` at the line of f's source holding `at`."""
    lines, first = inspect.getsourcelines(f)
    line = first + next(i for i, text in enumerate(lines) if at in text)
    with pytest.raises(cls) as info:
        adjoint.grad(f, wrt=wrt)(*args)
    text = str(info.value)
    assert f"{__file__}:{line}:" in text, text
    assert says in text, text
    assert "hint:" in text, text


# ---------------------------------------------------------------- casts

def float64_casts(x):
    a = x.astype(np.float64) * x.astype(float)
    b = np.asarray(x, dtype=np.float64) + np.asarray(x, np.float64) + np.array(x, float)
    c = x.astype("float64", copy=False)
    return np.sum(a * b) + float(np.float64(x[0] * 2.0)) ** 2 + np.float64(x[1]) * np.sum(c)


def test_float64_casts_are_the_value():
    (g,) = check_program(float64_casts, X)
    want = 9.0 * X ** 2 + np.float64(X[1])  # d sum(3 x^3) + d (np.sum(x) x[1])
    want[0] += 8.0 * X[0]
    want[1] += np.sum(X)
    assert np.allclose(g, want)
    np.testing.assert_allclose(adjoint.hvp(float64_casts)(X, V), numeric_hvp(float64_casts,
                                                                           (X,), V), rtol=1e-6)


def widened(x):
    return np.sum(x.astype(np.float64) ** 2)


def test_a_float32_argument_widened_gets_a_float32_gradient():
    x = X.astype(np.float32)
    g = adjoint.grad(widened)(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2.0 * x.astype(np.float64), rtol=1e-6)


def int_casts(x):
    k = x.astype(int) + np.asarray(x * 3.0, dtype=int) + np.array(x, dtype=np.int32)
    m = float(np.int64(x[0] * 7.0)) + np.sum(x, dtype=int)
    return np.sum(k * x) + m * x[2] + np.sum(x.astype(bool) * x)


def test_int_casts_pass_no_gradient_as_int_does():
    (g,) = check_program(int_casts, X)
    k = np.trunc(X) + np.trunc(3.0 * X) + np.trunc(X)
    want = k + 1.0  # x.astype(bool) is 1 at every nonzero entry
    want[2] += float(np.trunc(X[0] * 7.0)) + np.sum(np.trunc(X))
    assert np.allclose(g, want)


def narrowed_astype(x):
    return np.sum(x.astype(np.float32) * x)  # <- astype


def narrowed_scalar(x):
    return np.float32(x[0]) * x[1]  # <- float32


def narrowed_asarray(x):
    y = np.asarray(x, dtype="float16")  # <- float16
    return np.sum(y)


def test_casts_that_round_are_refused_where_a_gradient_flows():
    """float32 rounds a float64 to 24 bits: its derivative is not the identity's that a
    silent cast would give, so a gradient through it is refused at its line."""
    refused(narrowed_astype, X, at="<- astype", says="`np.float32` has no derivative rule",
            cls=NonDifferentiableError)
    refused(narrowed_scalar, X, at="<- float32", says="`np.float32`", cls=NonDifferentiableError)
    refused(narrowed_asarray, X, at="<- float16", says="`np.float16`",
            cls=NonDifferentiableError)


DATA = np.array([1.0, 2.0, 3.0])


def data_in_float32(x):
    d = DATA.astype(np.float32)  # data: it carries no gradient, and is computed
    return np.sum(x * d) + np.sum(np.float32(DATA) * x)


def test_data_cast_to_float32_is_only_computed():
    g = adjoint.grad(data_in_float32)(X)
    np.testing.assert_allclose(g, 2.0 * DATA, rtol=1e-7)


def cast_to_a_dtype_of_a_value(x, y):
    return np.sum(x.astype(y.dtype))  # <- dtype


def test_a_cast_to_a_dtype_computed_in_f_is_refused():
    refused(cast_to_a_dtype_of_a_value, X, np.arange(3), at="<- dtype",
            says="a class or a tuple of classes is needed here")


def test_generated_code_reads_as_the_casts():
    text = adjoint.source(int_casts, args=(X,))
    assert "np.array(x, dtype=int)" in text and "dtype=int64)[()]" in text
    text = adjoint.source(widened, args=(X,))
    assert "np.array(x, dtype=float64)" in text


# ---------------------------------------------------------------- tolist

def entries(x):
    L = (x * 2.0).tolist()
    M = np.outer(x, V).tolist()
    extended = L + [1.0]  # a list: + extends it
    return L[0] * L[2] + sum(M[1]) * extended[3] + np.sum(np.array(L) ** 2) + len(extended)


def test_tolist_gives_the_entries_and_rows_as_lists():
    (g,) = check_program(entries, X)
    want = 8.0 * X
    want[0] += 4.0 * X[2]
    want[2] += 4.0 * X[0]
    want[1] += np.sum(V)
    assert np.allclose(g, want)
    np.testing.assert_allclose(adjoint.hvp(entries)(X, V), numeric_hvp(entries, (X,), V),
                               rtol=1e-6)


def test_tolist_entries_are_python_numbers_as_in_numpy():
    value, _ = adjoint.value_and_grad(entries)(X)
    assert value == pytest.approx(entries(X), rel=1e-15)


def joined(x):
    L = []
    for i in range(3):
        L = L + (x * i).tolist()
    return sum(L) * L[4]


def test_tolist_joins_lists_in_generic_code_too():
    """Without example arguments no kind is seen: `+` of a tolist() is a list's."""
    namespace = {}
    exec(compile(adjoint.source(joined), "<generic>", "exec"), namespace)
    np.testing.assert_allclose(namespace["joined_grad"](X), numeric_grad(joined, (X,)),
                               rtol=1e-7)
    check_program(joined, X)


# ---------------------------------------------------------------- sorted

def sorted_numbers(x):
    a = sorted([x[0] * 2.0, np.sin(x[1]), x[2]])
    b = sorted(x, reverse=True)
    c = []
    for i in range(3):
        c.append(x[i] * x[i])
    c = sorted(c)
    return a[0] * 3.0 + a[2] * b[0] - b[1] * b[2] + a[1] + c[0] * c[2]


def test_sorted_sends_each_gradient_back_through_the_permutation():
    (g,) = check_program(sorted_numbers, X)
    # a = [sin(x1), 2 x0, x2], b = [x2, x0, x1], c = [x0^2, x1^2, x2^2]: f is
    # 3 sin(x1) + x2^2 - x0 x1 + 2 x0 + x0^2 x2^2 at X
    x0, x1, x2 = X
    assert np.allclose(g, [2.0 - x1 + 2.0 * x0 * x2 ** 2, 3.0 * np.cos(x1) - x0,
                           2.0 * x2 + 2.0 * x2 * x0 ** 2])
    np.testing.assert_allclose(adjoint.hvp(sorted_numbers)(X, V),
                               numeric_hvp(sorted_numbers, (X,), V), rtol=1e-5)


def sorted_ties(x):
    L = sorted([x[0], x[1], x[2]])
    return L[0] * 1.0 + L[1] * 2.0 + L[2] * 3.0


def np_sort_ties(x):
    L = np.sort(np.array([x[0], x[1], x[2]]))
    return L[0] * 1.0 + L[1] * 2.0 + L[2] * 3.0


def test_sorted_takes_ties_as_np_sort_does():
    x = np.array([1.0, 1.0, 0.5])
    np.testing.assert_array_equal(adjoint.grad(sorted_ties)(x), adjoint.grad(np_sort_ties)(x))
    np.testing.assert_array_equal(adjoint.grad(sorted_ties)(x), [2.0, 3.0, 1.0])


TABLE = {"b": 0.5, "a": -1.0, "c": 2.0}


def sorted_constants(x):
    s = 0.0
    for i, k in enumerate(sorted(TABLE, key=TABLE.get, reverse=True)):
        s = s + TABLE[k] * x[i]
    d = {"v": x[0], "u": x[1]}
    for k in sorted(d):
        s = s * d[k]
    return s


def test_sorted_of_constants_with_a_key_is_known_here():
    (g,) = check_program(sorted_constants, X)
    s = 2.0 * X[0] + 0.5 * X[1] - X[2]  # c, b, a; then * d['u'] * d['v']
    assert np.allclose(g, [2.0 * X[1] * X[0] + s * X[1], 0.5 * X[1] * X[0] + s * X[0],
                           -X[1] * X[0]])


def sorted_pairs(x):
    return sorted([(x[0], 1), (x[1], 0)])[0][0]  # <- pairs


def sorted_by_values(x):
    return sorted([x[0], x[1]], key=abs)[0]  # <- key


def sorted_rows(x):
    return sorted(np.outer(x, x))[0][0]  # <- rows


def test_sorted_of_pairs_is_refused_and_by_a_computed_key_differentiates():
    refused(sorted_pairs, X, at="<- pairs", says="compares them in order")
    refused(sorted_rows, X, at="<- rows", says="compares them in order")
    # by abs: x[0] = 0.3 first (refused until issue 15)
    g = adjoint.grad(sorted_by_values)(X)
    assert np.allclose(g, [1.0, 0.0, 0.0])
    assert np.allclose(g, numeric_grad(sorted_by_values, (X,)))


# ---------------------------------------------------------------- namedtuple _replace

def replaced_fields(p, x):
    q = p._replace(W=np.sin(p.W) * x, b=p.b * 2.0)
    r = q._replace(b=q.b + np.sum(q.W))
    return np.sum(r.W * p.W) * r.b


def test_replace_makes_a_namedtuple_with_the_fields_given():
    p = Layer(V * 1.0, 0.7)
    gp, gx = check_program(replaced_fields, p, X)
    assert isinstance(gp, Layer)
    s = np.sin(V)
    inner, b = np.sum(s * X * V), 2.0 * 0.7 + np.sum(s * X)
    assert np.allclose(gx, s * V * b + inner * s)
    assert np.allclose(gp.W, (np.cos(V) * X * V + s * X) * b + inner * np.cos(V) * X)
    assert gp.b == pytest.approx(2.0 * inner)
    np.testing.assert_allclose(adjoint.hvp(replaced_fields, wrt=1)(p, X, V),
                               numeric_hvp(replaced_fields, (p, X), V, wrt=1), rtol=1e-6)


def replaced_unread(p, x):
    q = p._replace(W=x * 3.0)  # p.W is not read: its gradient is a zero of its shape
    return np.sum(q.W * x) * q.b


def test_a_replaced_field_passes_no_gradient():
    gp, gx = check_program(replaced_unread, Layer(V * 1.0, 0.7), X)
    assert np.array_equal(gp.W, np.zeros(3)) and gp.b == pytest.approx(3.0 * np.sum(X * X))
    assert np.allclose(gx, 6.0 * 0.7 * X)


def replaced_then_written(p, x):
    z = x * 1.0
    q = p._replace(W=z)
    q.W[0] = 5.0 * x[1]  # <- writes z
    return np.sum(z * x)


def replaced_positional(p, x):
    return np.sum(p._replace(x).W)  # <- positional


def test_a_write_into_a_replaced_field_and_positional_replace_are_refused():
    p = Layer(V * 1.0, V * 2.0)
    refused(replaced_then_written, p, X, at="<- writes z", says="shares the array's memory",
            wrt=1)
    refused(replaced_positional, p, X, at="<- positional", says="takes the fields by name",
            wrt=1)


# ---------------------------------------------------------------- expression statements

VERBOSE = False
LOUD = True


def flagged_output(x, verbose=False):
    print(x) if VERBOSE else None
    print("loss", np.sum(x)) if verbose else None
    VERBOSE and print(x)
    LOUD or print(x)
    x.shape
    len(x)
    None
    ...
    return np.sum(x ** 2)


def test_output_under_a_flag_and_statements_of_constants_compile():
    (g,) = check_program(flagged_output, X)
    assert np.allclose(g, 2.0 * X)
    assert np.allclose(adjoint.grad(flagged_output)(X, True), 2.0 * X)  # a value's branch


def loud_output(x):
    print("x =", x) if LOUD else None  # (output only: the gradient prints nothing)
    return np.sum(x ** 2)


def test_output_under_a_true_flag_compiles():
    (g,) = check_program(loud_output, X)
    assert np.allclose(g, 2.0 * X)


LOG = logging.getLogger("adjoint.tests.round14")


def logged(x):
    LOG.debug("x = %s", x)
    logging.info("step")
    warnings.warn("a warning f gives")
    LOG.info("loss %f", np.sum(x)) if VERBOSE else None
    return np.sum(x ** 2)


def test_logging_and_warnings_are_output_as_print_is():
    with pytest.warns(UserWarning, match="a warning f gives"):  # (f's own call, in check)
        (g,) = check_program(logged, X)
    assert np.allclose(g, 2.0 * X)


def computed_for_nothing(x):
    np.sin(x) if LOUD else None  # <- sin
    return np.sum(x)


def product_for_nothing(x):
    x * 2.0  # <- product
    return np.sum(x)


def test_statements_that_compute_with_values_stay_refused():
    refused(computed_for_nothing, X, at="<- sin", says="no effect on the result")
    refused(product_for_nothing, X, at="<- product", says="no effect on the result")


# ---------------------------------------------------------------- dict(p)

def copied(params, x):
    q = dict(params)
    q["W"] = q["W"] * 0.5
    r = dict(q, b=params["b"] * 2.0)
    s = 0.0
    for k in r:
        s = s + np.sum(r[k] * x)
    return s + np.sum(params["W"] * x)


def test_dict_of_a_dict_parameter_is_a_copy():
    p = {"W": V * 1.0, "b": 0.3}
    gp, gx = check_program(copied, p, X)
    assert np.allclose(gp["W"], 1.5 * X) and gp["b"] == pytest.approx(2.0 * np.sum(X))
    assert np.allclose(gx, 1.5 * V + 0.6)
    assert np.array_equal(p["W"], V)  # the parameter was not written


SCALES = {"a": 1.5, "b": 2.0}


def copied_global(x):
    q = dict(SCALES)
    q["a"] = x[0]
    return q["a"] * q["b"] * x[1]


def test_dict_of_a_global_dict_is_a_copy():
    (g,) = check_program(copied_global, X)
    assert np.allclose(g, [2.0 * X[1], 2.0 * X[0], 0.0]) and SCALES["a"] == 1.5


def copied_pairs(pairs, x):
    d = dict(pairs)  # <- pairs
    return d["a"] * x[0]


NUMBERS = [1.0, 2.0]


def copied_list_global(x):
    return dict(NUMBERS)["a"] * x[0]  # <- list


def test_dict_of_a_list_is_refused_where_it_is_seen():
    refused(copied_pairs, [("a", 0.5)], X, at="<- pairs", says="on this call a list", wrt=1)
    refused(copied_list_global, X, at="<- list", says="dict() of a list")


def test_a_dict_parameter_copy_is_checked_in_generic_code_too():
    text = adjoint.source(copied, wrt=(0, 1))
    assert "mapping(params)" in text
    namespace = {}
    exec(compile(text, "<generic>", "exec"), namespace)
    with pytest.raises(AdjointError, match="on this call a list"):
        namespace["copied_grad"]([("W", V)], X)
