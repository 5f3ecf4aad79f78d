"""The error catalogue: every construct adjoint rejects, and how it says so.

Each case is a small module written to a temporary file (errors must name the
user's real file), with the offending line marked `# <-`. For every case:

* the error is the documented class (UnsupportedError for constructs the compiler
  does not handle, NonDifferentiableError for values a gradient cannot pass,
  SourceError when there is no source to read), a subclass of AdjointError;
* the message names `file:line:` of the marked line, quotes that line, puts a
  caret line under it, and ends with a non-empty `hint:` line;
* nothing was written to the (fresh) cache folder for the failed compile.
"""
from __future__ import annotations

import importlib.util
import itertools
import math
import re
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest

import adjoint
from adjoint import AdjointError, NonDifferentiableError, SourceError, UnsupportedError
from adjoint.rules import registry
from adjoint.testing import numeric_grad

MARK = "# <-"


@dataclass
class Case:
    id: str
    cls: type
    source: str
    args: tuple = (1.5,)
    wrt: object = 0
    get: str = "f"  # an expression, evaluated in the module, that gives the function
    token: str | None = None  # the caret must sit under this text of the marked line


CASES = [
    # ---- statements the compiler does not handle
    Case("try-value-unused", UnsupportedError, """
        import numpy as np

        def f(x):
            try:
                check = np.sqrt(x)  # <-
                y = x * 2.0
            except ValueError:
                y = x
            return y
        """, token="check"),
    # a derivative made inside f (a MAML inner step): adjoint's own grad was inlined as
    # user code and refused inside api.py (round 16's U1)
    Case("derivative-made-inside", UnsupportedError, """
        import numpy as np
        import adjoint

        def inner(w):
            return np.sum(np.sin(w) * w)

        def f(x):
            g = adjoint.grad(inner)(x)  # <-
            return inner(x - 0.1 * g)
        """, token="adjoint"),
    # %-formatting of a value a gradient flows through: formatting, not `mod` (round 16's
    # C13 differentiated it as arithmetic: np.floor_divide of the template)
    Case("percent-format", NonDifferentiableError, """
        def f(x):
            return float("%.17g" % x) * 3.0  # <-
        """, token='"%.17g"'),
    # a quantile method quantile_weights does not know: a bare ValueError inside the rule
    # (round 16's C10)
    Case("quantile-method", NonDifferentiableError, """
        import numpy as np

        def f(x):
            return np.quantile(x, 0.37, method="hazen")  # <-
        """, args=(np.array([0.3, -1.2, 2.5, 0.7, 1.1]),), token="np.quantile"),
    Case("with", UnsupportedError, """
        import contextlib

        def f(x):
            with contextlib.suppress(ValueError):  # <-
                y = x * 2.0
            return y
        """, token="with"),
    Case("class", UnsupportedError, """
        def f(x):
            class Box:  # <-
                scale = 2.0
            return x * 2.0
        """, token="class"),
    Case("nested-def-writes-closure", UnsupportedError, """
        import numpy as np

        def f(x):
            y = x * 1.0
            def fill(v):
                y[0] = v  # <-
                return v
            fill(2.0)
            return np.sum(y)
        """, args=(np.array([0.5, 1.5]),), token="y[0]"),
    Case("global", UnsupportedError, """
        COUNT = 0

        def f(x):
            global COUNT  # <-
            return x * 2.0
        """, token="global"),
    Case("nonlocal", UnsupportedError, """
        def outer():
            scale = 2.0

            def f(x):
                nonlocal scale  # <-
                return x * scale
            return f
        """, get="outer()", token="nonlocal"),
    Case("del", UnsupportedError, """
        def f(x):
            y = x * 2.0
            del y  # <-
            return x * x
        """, token="del"),
    Case("raise", UnsupportedError, """
        def f(x):
            if x < 0.0:
                x = -x
                raise ValueError("negative")  # <-
            return x * x
        """, token="raise"),
    Case("import", UnsupportedError, """
        def f(x):
            import math  # <-
            return math.sin(x)
        """, token="import"),
    Case("yield", UnsupportedError, """
        def f(x):
            yield x * 2.0  # <-
        """, token="yield"),
    Case("async-def", UnsupportedError, """
        async def f(x):  # <-
            return x * x
        """, token="async"),
    Case("zero-division-handler", UnsupportedError, """
        def f(x):
            try:
                r = 1.0 / (x - 1.0)
            except ZeroDivisionError:  # <-
                r = x * 5.0
            return r
        """, token="except"),
    Case("kwargs-parameter", UnsupportedError, """
        def f(x, **options):  # <-
            return x * x
        """, token="def"),
    # ---- expressions the compiler does not handle
    Case("set-comprehension", UnsupportedError, """
        def f(x):
            return sum({x * k for k in range(3)})  # <-
        """, token="{x"),
    Case("dict-display-with-a-computed-key", UnsupportedError, """
        def f(x):
            name = "a" + "b"
            d = {name: x}  # <-
            return d["ab"]
        """, token="name:"),
    Case("set-comprehension", UnsupportedError, """
        def f(x):
            s = {x * k for k in range(3)}  # <-
            return x * len(s)
        """, token="{x"),
    Case("generator-to-numpy", UnsupportedError, """
        import numpy as np

        def f(x):
            return np.sum(np.stack(x * k for k in range(3)))  # <-
        """, token="(x * k"),
    # the caret: under `f"` before Python 3.12, under `x` from 3.12 (its f-strings give
    # each part its own position)
    Case("f-string-of-an-active-value", NonDifferentiableError, """
        def f(x):
            return float(f"{x}") * 2.0  # <-
        """),
    Case("walrus", UnsupportedError, """
        def f(x):
            while (y := x * 2.0) > 1.0:  # <-
                x = y * 0.25
            return x
        """, token="y :="),
    Case("star-args-in-call", UnsupportedError, """
        import numpy as np

        def f(x):
            parts = [x]
            parts.append(1.0)
            return np.maximum(*parts)  # <-
        """),
    Case("star-kwargs-of-a-parameter", UnsupportedError, """
        import numpy as np

        def f(x, opts):
            return np.sum(x, **opts)  # <-
        """, args=(np.array([0.5, 1.5]), {"axis": 0}), token="opts)"),
    Case("starred-assignment", UnsupportedError, """
        def f(x):
            a, *rest = (x, x * 2.0, x * 3.0)  # <-
            return a * rest[0]
        """),
    Case("recursion", UnsupportedError, """
        def f(x, y):
            if y < 1.0:
                return x
            return f(x * 1.5, y * 0.5) * x  # <-
        """, args=(1.5, 3.0), token="f(x * 1.5"),
    Case("unsupported-method", UnsupportedError, """
        import numpy as np

        def f(x):
            return np.sum(x.compress([True, False, True]))  # <-
        """, args=(np.array([0.5, 1.5, 2.0]),), token="x.compress"),
    # (`{**p, "b": x}` of a parameter is supported since round 17: a copy of p, checked
    # to be a dict when f runs; a call's `**` still needs keys known here)
    Case("call-unpacking-another", UnsupportedError, """
        def f(x, p):
            e = dict(**p, b=x)  # <-
            return e["a"]
        """, args=(1.5, {"a": 2.0}), token="p, "),
    Case("varargs-parameter-bound-by-a-partial", UnsupportedError, """
        import functools

        def g(x, *rest):  # <-
            return x * rest[0]

        f = functools.partial(g, 1.0, 2.0)
        """, token="rest"),
    Case("attribute-assignment", UnsupportedError, """
        import types

        BOX = types.SimpleNamespace(value=0.0)

        def f(x):
            BOX.value = x * 2.0  # <-
            return x * x
        """, token="BOX"),
    Case("undefined-name", UnsupportedError, """
        def f(x):
            return x * undefined_scale  # <-
        """, token="undefined_scale"),
    # ---- values a gradient cannot flow through
    Case("unknown-c-function-on-active-value", NonDifferentiableError, """
        import numpy as np

        def f(x):
            return np.nextafter(x, 2.0) + x  # <-
        """, token="np.nextafter"),
    # callable instances are rejected where they are called, active or not
    Case("callable-object-with-slots", UnsupportedError, """
        class Scale:
            __slots__ = ()  # no __dict__: not read like a user's object

            def __call__(self, v):
                return 2.0 * v

        scale = Scale()

        def f(x):
            y = x * x
            return scale(y) + x  # <-
        """, token="scale(y)"),
    Case("wrt-an-integer-argument", NonDifferentiableError, """
        def f(x, n):  # <-
            return x * n
        """, args=(1.5, 3), wrt=1),
    Case("wrt-an-integer-array", NonDifferentiableError, """
        import numpy as np

        def f(x):  # <-
            return np.sum(x * x)
        """, args=(np.array([1, 2, 3]),)),
    # round 6, N3: np.imag of a complex argument gave a zero gradient
    Case("wrt-a-complex-array", NonDifferentiableError, """
        import numpy as np

        def f(z):  # <-
            return np.sum(np.imag(z))
        """, args=(np.array([1.0 + 2.0j, -0.5 + 0.3j]),)),
    Case("wrt-a-list-holding-a-complex", NonDifferentiableError, """
        def f(zs):  # <-
            return zs[0] * 2.0
        """, args=([1.0 + 2.0j],)),
    # ---- no source to read
    Case("two-lambdas-on-a-line", SourceError, """
        square, cube = lambda x: x * x, lambda x: x * x * x  # <-
        """, get="cube", token="lambda"),
]


# not an UnsupportedError: the function's output is the wrong shape for `grad`
NON_SCALAR = Case("non-scalar-output", AdjointError, """
    import numpy as np

    def f(x):  # <-
        y = np.sin(x)
        return y * 2.0  # <-
    """, args=(np.array([0.5, 1.5, 2.0]),))

_counter = itertools.count()


@pytest.fixture(autouse=True)
def restore_registry():
    """Compiling a call of an unknown function (math.gamma here) registers it as a
    primitive in the global registry; undo that so other tests see the registry as
    adjoint ships it (the docs tests list every entry)."""
    saved = (dict(registry._by_id), dict(registry._by_name), list(registry._keepalive))
    yield
    registry._by_id.clear()
    registry._by_id.update(saved[0])
    registry._by_name.clear()
    registry._by_name.update(saved[1])
    registry._keepalive[:] = saved[2]


def load(tmp_path, case: Case):
    """Write the case's module to a file of its own and import it."""
    text = textwrap.dedent(case.source).lstrip("\n")
    path = tmp_path / f"{case.id.replace('-', '_')}.py"
    path.write_text(text)
    name = f"adjoint_errors_case_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    lines = text.splitlines()
    marked = [(i + 1, line) for i, line in enumerate(lines) if MARK in line]
    assert marked, f"case {case.id} marks no line"
    return eval(case.get, vars(module)), path, marked


def files_in(folder) -> list:
    return sorted(str(p) for p in folder.rglob("*")) if folder.exists() else []


def check_message(err: AdjointError, path, marked, token=None) -> None:
    """`file:line:col:` of a marked line, that line quoted, a caret under it, a hint."""
    msg = str(err)
    lines = msg.splitlines()
    where = [(n, text) for n, text in marked if f"{path}:{n}:" in msg]
    assert where, (f"the message does not name {path} at line "
                   f"{' or '.join(str(n) for n, _ in marked)}:\n{msg}")
    n, text = where[0]
    head = re.match(rf"^{re.escape(str(path))}:{n}:(\d+): ", lines[0])
    assert head, f"the first line is not `{path}:{n}:COL: ...`:\n{msg}"
    col = int(head.group(1))
    carets = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*\^\s*", line)]
    assert carets, f"no caret line:\n{msg}"
    k = carets[0]
    assert k > 0 and lines[k - 1].strip() == text.strip(), \
        f"the line above the caret is not line {n} ({text.strip()!r}):\n{msg}"
    stripped = text.lstrip()
    indent = len(text) - len(stripped)
    caret_at = lines[k].index("^") - (len(lines[k - 1]) - len(lines[k - 1].lstrip()))
    assert 0 <= caret_at < len(stripped.rstrip()), f"the caret is outside the line:\n{msg}"
    assert caret_at == col - 1 - indent, f"the caret is not under column {col}:\n{msg}"
    if token is not None:
        want = stripped.index(token)
        assert caret_at == want, (f"the caret should be under `{token}` (offset {want}), "
                                  f"not at offset {caret_at}:\n{msg}")
    hints = [line for line in lines if line.startswith("hint: ")]
    assert hints and hints[-1][len("hint: "):].strip(), f"no `hint:` line:\n{msg}"
    assert err.hint, "the error has no hint"


def compile_and_call(f, case: Case, cache):
    return adjoint.grad(f, wrt=case.wrt, cache_dir=cache)(*case.args)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rejected_with_location_and_hint(tmp_path, case):
    f, path, marked = load(tmp_path, case)
    cache = tmp_path / "cache"
    with pytest.raises(AdjointError) as info:
        compile_and_call(f, case, cache)
    err = info.value
    assert isinstance(err, case.cls), \
        f"expected {case.cls.__name__}, got {type(err).__name__}: {err}"
    assert issubclass(case.cls, AdjointError)
    check_message(err, path, marked, case.token)
    assert files_in(cache) == [], f"a failed compile wrote to the cache: {files_in(cache)}"


NO_OUTPUT = Case("no-output", AdjointError, """
    def f(x):  # <-
        y = x * 2.0
    """)


def test_a_function_without_a_return_is_rejected(tmp_path):
    """grad of a function that returns None: an error, not a silent zero gradient."""
    f, path, marked = load(tmp_path, NO_OUTPUT)
    cache = tmp_path / "cache"
    with pytest.raises(AdjointError) as info:
        compile_and_call(f, NO_OUTPUT, cache)
    check_message(info.value, path, marked)
    assert files_in(cache) == []


def test_default_arguments_are_filled_in(tmp_path):
    """Not an error: `f(x, k=2.0)` called as f(1.5) is differentiated like Python calls it."""
    case = Case("defaults", AdjointError, """
        def f(x, k=2.0):  # <-
            return x * x * k
        """)
    f, _, _ = load(tmp_path, case)
    assert np.isclose(adjoint.grad(f, cache_dir=tmp_path / "cache")(1.5), 6.0)
    assert np.isclose(adjoint.grad(f, cache_dir=tmp_path / "cache")(1.5, 3.0), 9.0)


def test_non_scalar_output(tmp_path):
    """grad of a vector-valued function: an AdjointError at the def or the return."""
    f, path, marked = load(tmp_path, NON_SCALAR)
    cache = tmp_path / "cache"
    with pytest.raises(AdjointError) as info:
        compile_and_call(f, NON_SCALAR, cache)
    assert "scalar" in str(info.value)
    check_message(info.value, path, marked)
    assert files_in(cache) == []
    # vjp is the way to differentiate it, and works
    x = NON_SCALAR.args[0]
    out, pullback = adjoint.vjp(f, x, cache_dir=tmp_path / "vjp-cache")
    assert np.allclose(pullback(np.ones(3)), 2.0 * np.cos(x))


@pytest.mark.parametrize("fn", [np.sin, math.sin, len, np.add],
                         ids=["np.sin", "math.sin", "len", "np.add"])
def test_builtin_passed_to_grad(tmp_path, fn):
    """No source to read: a SourceError with a hint, nothing cached."""
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as info:
        adjoint.grad(fn, cache_dir=cache)(0.5)
    msg = str(info.value)
    assert "SourceError" in msg and "source" in msg
    assert any(line.startswith("hint: ") for line in msg.splitlines()), msg
    assert info.value.hint
    assert files_in(cache) == []


def test_every_error_class_is_exported_and_an_adjoint_error():
    for cls in (UnsupportedError, NonDifferentiableError, SourceError):
        assert issubclass(cls, AdjointError)
        assert getattr(adjoint, cls.__name__) is cls


def test_int_of_an_active_value_is_a_constant(tmp_path):
    """`int()` is piecewise constant: it passes no gradient, and that is not an error
    (finite differences away from the integers agree)."""
    case = Case("int-of-active", AdjointError, """
        def f(x):
            k = int(x * 3.0)  # <-
            return k * 0.5 + x * x
        """, args=(0.4,))
    f, path, marked = load(tmp_path, case)
    g = adjoint.grad(f, cache_dir=tmp_path / "cache")(0.4)
    assert np.isclose(g, numeric_grad(f, (0.4,))) and np.isclose(g, 0.8)


def test_rejected_constructs_in_an_untaken_branch_are_still_reported(tmp_path):
    """Checking is syntactic: a `with` in a branch that never runs is still an error."""
    case = Case("with-in-dead-branch", UnsupportedError, """
        def f(x):
            if False:
                with open("log.txt") as log:  # <-
                    x = x * 2.0
            return x * x
        """, token="with")
    f, path, marked = load(tmp_path, case)
    with pytest.raises(UnsupportedError) as info:
        compile_and_call(f, case, tmp_path / "cache")
    check_message(info.value, path, marked, case.token)


def test_the_first_offending_line_is_reported(tmp_path):
    case = Case("two-errors", UnsupportedError, """
        def f(x):
            y = x * 2.0
            del y  # <-
            z = [v for v in range(3)]
            return x * x
        """, token="del")
    f, path, marked = load(tmp_path, case)
    with pytest.raises(UnsupportedError) as info:
        compile_and_call(f, case, tmp_path / "cache")
    check_message(info.value, path, marked, case.token)


def test_an_error_in_an_inlined_helper_names_the_helpers_file(tmp_path):
    """Callees are inlined: a rejected construct in a helper from another file is
    reported at the helper's own file and line."""
    f_comp, helper_path, marked = load(tmp_path, Case("helper_errs", UnsupportedError, """
        import numpy as np

        def helper_comp(v):
            w = v * 2.0
            return sum({w * k for k in range(3)})  # <-
        """, get="helper_comp"))
    sys.modules["helper_errs_mod"] = sys.modules[f_comp.__module__]
    user = Case("user_of_helper", UnsupportedError, """
        from helper_errs_mod import helper_comp

        def f(x):
            return helper_comp(x) * x  # <-
        """)
    f, user_path, _ = load(tmp_path, user)
    with pytest.raises(UnsupportedError) as info:
        compile_and_call(f, user, tmp_path / "cache")
    check_message(info.value, helper_path, marked, "{w")
    assert files_in(tmp_path / "cache") == []


def test_unknown_functions_are_fine_on_inactive_values(tmp_path):
    """An unknown function is only an error when a gradient has to flow through it."""
    case = Case("unknown-on-inactive", NonDifferentiableError, """
        import math

        def f(x, n):
            return math.gamma(n) * x * x  # <-
        """, args=(1.5, 4))
    f, _, _ = load(tmp_path, case)
    g = adjoint.grad(f, cache_dir=tmp_path / "cache")(1.5, 4)
    assert np.isclose(g, 6.0 * 2 * 1.5)


def test_a_division_by_zero_in_the_gradient_is_numpys_inf_or_a_located_error(tmp_path):
    # Python floats raise where NumPy's give inf: x ** 0.5 at 0.0 has the derivative inf
    # (as f(np.float64(0.0)) would); math.sqrt's float result divides Python's way, and
    # is refused at f's line; f's own ZeroDivisionError stays f's
    from tests.test_guards import module
    m = module(tmp_path, """
        import math


        def power(x):
            return x ** 0.5


        def root(x):
            y = x * 2.0
            return math.sqrt(y)


        def reciprocal(x):
            return 1.0 / x
        """)
    with np.errstate(divide="ignore"):
        assert adjoint.grad(m.power)(0.0) == np.inf
    with pytest.raises(adjoint.NonDifferentiableError, match="divides by zero") as e:
        adjoint.grad(m.root)(0.0)
    assert e.value.loc.line == 11 and e.value.loc.col == 4 and e.value.hint
    assert "math.sqrt(y)" in str(e.value)
    with pytest.raises(ZeroDivisionError):
        adjoint.grad(m.reciprocal)(0.0)
    assert adjoint.grad(m.root)(2.0) == pytest.approx(0.5)


def test_a_custom_rule_returning_a_broadcast_cotangent_is_located(tmp_path):
    # round 7, K7f: a ValueError from reshaping the gradient, with no line
    from tests.test_guards import module
    m = module(tmp_path, """
        import numpy as np

        import adjoint


        def scale(x, b):
            return x * b


        @adjoint.defvjp(scale)
        def scale_vjp(g, ans, x, b):
            return g * b, g * x  # b's cotangent has x's shape: not summed


        def f(b, x):
            return np.sum(scale(x, b) ** 2)
        """)
    with pytest.raises(adjoint.AdjointError, match="wrong shape") as e:
        adjoint.grad(m.f)(0.7, np.ones(3))
    assert e.value.loc.line == 16 and "unbroadcast" in e.value.hint


def test_a_function_with_rules_named_like_a_helper_of_the_rules_is_rejected(tmp_path):
    """A user's primitive named `polygamma`, as the helper mathfns's lgamma rule calls:
    the generated module imported both under one name, and one shadowed the other (a
    silently wrong gradient, found in round 15)."""
    case = Case("rule-helper-name", UnsupportedError, """
        import math

        import adjoint


        def polygamma(n, x):
            return n * x ** 3


        @adjoint.defvjp(polygamma)
        def polygamma_vjp(g, ans, n, x):
            return None, g * 3.0 * n * x ** 2


        def f(x):
            return polygamma(2.0, x) * math.lgamma(x)  # <-
        """, args=(1.7,), token="polygamma(2.0")
    f, path, marked = load(tmp_path, case)
    with pytest.raises(UnsupportedError, match="name of your function") as info:
        adjoint.grad(f)(1.7)
    check_message(info.value, path, marked, case.token)


def test_a_global_named_like_a_runtime_helper_is_rejected(tmp_path):
    """An array global f reads is imported into the generated module by name: named
    `unbroadcast`, it would take that helper's place (round 9, C3)."""
    case = Case("helper-name", UnsupportedError, """
        import numpy as np

        unbroadcast = np.array([1.0, 2.0, 3.0])


        def f(x, w):
            return np.sum(x * w * unbroadcast)  # <-
        """)
    f, path, marked = load(tmp_path, case)
    with pytest.raises(UnsupportedError) as info:
        adjoint.source(f, wrt=(0, 1))  # generic code calls the helper
    check_message(info.value, path, marked)


def test_a_global_named_like_a_helper_of_the_second_order_code_is_rejected(tmp_path):
    """The hvp's module imports helpers a gradient may not (`save`): a global of that name
    is refused at its line there too (round 20's C3: the helper replaced the user's array,
    TypeError in the generated hvp)."""
    case = Case("helper-name-hvp", UnsupportedError, """
        import numpy as np

        save = np.array([0.5, 1.5, 2.0])


        def f(x):
            y = x.copy()
            y[1] = np.sin(x[0]) * save[1]  # <-
            return np.sum(y ** 2 * save)
        """)
    f, path, marked = load(tmp_path, case)
    with pytest.raises(UnsupportedError) as info:
        adjoint.hvp(f)(np.array([0.3, 0.7, 1.1]), np.ones(3))
    check_message(info.value, path, marked)


def _reads_at(x, idx):
    y = np.sin(x)
    return np.sum(y[idx] * 2.0)  # <- idx out of range


def _bool_product(a, m):
    return np.sum(a * m)  # <- array_api_strict multiplies no bools


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are Python 3.11's")
def test_an_exception_of_f_or_of_its_arguments_names_the_line_of_f():
    """f's own error, raised while its kinds are observed or by the generated code, keeps
    its type and gains a note naming the line of f it was running or differentiating."""
    with pytest.raises(IndexError) as e:
        adjoint.grad(_reads_at)(np.array([0.5, 1.0]), 7)
    line = _reads_at.__code__.co_firstlineno + 2
    assert any(f"test_errors.py:{line}:" in n for n in e.value.__notes__), e.value.__notes__
    xp = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError) as e:
        adjoint.grad(_bool_product)(xp.asarray([0.5, -1.0]), xp.asarray([True, False]))
    line = _bool_product.__code__.co_firstlineno + 1
    assert any(f"test_errors.py:{line}:" in n and "generated code" in n
               for n in e.value.__notes__), e.value.__notes__
