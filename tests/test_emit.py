"""The printer: every expression the emitter writes parses back to the operation tree
it was printed from (precedence, associativity and signs included), and evaluates to
what the IR computes; end to end, gradients of code whose printing needs parentheses
agree with central finite differences and the hand-derived formula."""
import ast
import itertools
import math
import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adjoint
from adjoint.codegen.emit import Emitter, Module
from adjoint.ir.core import Block, Call, Const, Function, Value
from adjoint.rules import registry

PRIMS = {e.prim.name: e.prim for e in registry.entries()}
A, B = Value("a"), Value("b")


# ------------------------------------------------------------------ printing a tree

def _build(tree, ops):
    """tree: a Value, a Const, or (prim name, *operand trees[, {kwarg: tree}])."""
    if isinstance(tree, (Value, Const)):
        return tree
    name, *kids = tree
    kwargs = kids.pop() if kids and isinstance(kids[-1], dict) else {}
    args = tuple(_build(k, ops) for k in kids)
    kw = tuple((k, _build(v, ops)) for k, v in kwargs.items())
    r = Value("_t")
    ops.append(Call(PRIMS[name], args, r, kw))
    return r


def printed(tree) -> str:
    """The expression the emitter writes for `tree` (every temporary inlined)."""
    ops = []
    out = _build(tree, ops)
    fn = Function("f", (A, B), Block((), tuple(ops), (out,)))
    lines = Emitter(fn, Module()).function()
    # def, `_t1 = <the whole tree>`, return: every temporary inside one expression
    assert len(lines) == 3 and lines[2] == "    return _t1", lines
    assert lines[1].startswith("    _t1 = ")
    return lines[1][len("    _t1 = "):]


# ------------------------------------------------------------------ canonical trees

def _const(v):
    if isinstance(v, tuple):
        return ("const", "tuple", tuple(_const(e) for e in v))
    if isinstance(v, slice):
        return ("const", "slice", tuple(_const(e) for e in (v.start, v.stop, v.step)))
    return ("const", type(v).__name__, repr(v))


def _norm(node):
    """The same operation written two ways reads as one: -(1) is the number -1, a tuple
    or a slice of constants is a constant, an element read is a subscript."""
    name, *kids = node
    name = {"index": "tuple", "element": "getitem"}.get(name, name)
    if name == "alias":
        return kids[0]
    consts = all(k[0] == "const" for k in kids)
    if name == "neg" and consts and kids[0][1] in ("int", "float", "complex"):
        return _const(-eval(kids[0][2], {"inf": math.inf, "nan": math.nan}))
    if name == "tuple" and consts:
        return ("const", "tuple", tuple(kids))
    if name == "slice" and consts:
        return ("const", "slice", tuple(kids))
    return (name, *kids)


def canon_ir(tree):
    if isinstance(tree, Value):
        return ("name", tree.name)
    if isinstance(tree, Const):
        return _const(tree.value)
    name, *kids = tree
    kwargs = kids.pop() if kids and isinstance(kids[-1], dict) else {}
    out = _norm((name, *(canon_ir(k) for k in kids)))
    if kwargs:
        out = out + (tuple(sorted((k, canon_ir(v)) for k, v in kwargs.items())),)
    return out


_BIN = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
        ast.MatMult: "matmul", ast.Pow: "pow", ast.FloorDiv: "floordiv", ast.Mod: "mod",
        ast.BitAnd: "bitand", ast.BitOr: "bitor", ast.BitXor: "bitxor",
        ast.LShift: "lshift", ast.RShift: "rshift"}
_UN = {ast.USub: "neg", ast.UAdd: "pos", ast.Invert: "invert", ast.Not: "not_"}
_CMP = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq",
        ast.NotEq: "ne", ast.Is: "is_", ast.IsNot: "is_not", ast.In: "in_",
        ast.NotIn: "not_in"}


def _dotted(n) -> str:
    return n.id if isinstance(n, ast.Name) else f"{_dotted(n.value)}.{n.attr}"


def canon_ast(n):
    c = canon_ast
    if isinstance(n, ast.Name):
        return ("name", n.id)
    if isinstance(n, ast.Constant):
        return _const(n.value)
    if isinstance(n, ast.BinOp):
        return _norm((_BIN[type(n.op)], c(n.left), c(n.right)))
    if isinstance(n, ast.UnaryOp):
        return _norm((_UN[type(n.op)], c(n.operand)))
    if isinstance(n, ast.Compare):
        if len(n.ops) > 1:  # a chain: never what the IR's binary comparisons mean
            return ("chain", c(n.left), *map(c, n.comparators))
        right = n.comparators[0]
        if isinstance(n.ops[0], ast.In) and isinstance(right, ast.Attribute) \
                and right.attr == "stored":
            return ("plan_stores", c(right.value), c(n.left))
        return (_CMP[type(n.ops[0])], c(n.left), c(right))
    if isinstance(n, ast.BoolOp):
        name = "and_" if isinstance(n.op, ast.And) else "or_"
        out = c(n.values[0])
        for v in n.values[1:]:  # a and b and c is (a and b) and c
            out = (name, out, c(v))
        return out
    if isinstance(n, ast.Subscript):
        return ("getitem", c(n.value), c(n.slice))
    if isinstance(n, ast.Tuple):
        return _norm(("tuple", *map(c, n.elts)))
    if isinstance(n, ast.List):
        return ("list", *map(c, n.elts))
    if isinstance(n, ast.Slice):
        parts = [c(p) if p is not None else _const(None) for p in (n.lower, n.upper, n.step)]
        return _norm(("slice", *parts))
    if isinstance(n, ast.Attribute) and _dotted(n) in ("math.inf", "math.nan"):
        return _const(getattr(math, n.attr))
    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Constant):
        return ("attr", n.attr, c(n.value))
    if isinstance(n, ast.Dict) and not n.keys:
        return ("snapshots_new",)
    if isinstance(n, ast.Call):
        name, args = _dotted(n.func), [c(a) for a in n.args]
        if name == "complex" and all(a[0] == "const" for a in args):
            return _const(complex(*(eval(a[2], {"inf": math.inf, "nan": math.nan})
                                    for a in args)))
        if name == "slice":  # slice(a, b) has no step
            return _norm(("slice", *args, *[_const(None)] * (3 - len(args))))
        if name == "zip" and all(isinstance(a, ast.Call) and _dotted(a.func) == "reversed"
                                 for a in n.args):
            return ("zip_reversed", *(c(a.args[0]) for a in n.args))
        out = (name, *args)
        if n.keywords:
            out = out + (tuple(sorted((k.arg, c(k.value)) for k in n.keywords)),)
        return out
    raise AssertionError(f"unexpected node {ast.dump(n)}")


def roundtrip(tree):
    text = printed(tree)
    got = canon_ast(ast.parse(text, mode="eval").body)
    assert got == canon_ir(tree), f"{text!r} does not read back as {tree}"
    return text


# ------------------------------------------------------------------ the op set

def _arity(p) -> list[int]:
    if p.style == "infix":
        return [2]
    if p.style == "prefix":
        return [1]
    if p.style == "subscript":
        return [2]
    if p.style == "slice":
        return [3]
    if p.style in ("tuple", "list"):
        return [0, 1, 2]
    if p.style == "format":
        return [len({m for m in __import__("re").findall(r"\{(\d+)\}", p.symbol)})]
    return []


# every printed style the registry holds (new operators are covered as they come), and
# calls with and without keywords
EXPR_OPS = sorted(name for name, p in PRIMS.items() if _arity(p) and registry.entry(p).pure)
LEAVES = [A, Const(2), Const(-1), Const(-1.5), Const(0.5), Const(-0.0), Const(2j),
          Const(complex(-1, 2)), Const(complex(0.0, -1.0)), Const(-2j), Const(math.inf),
          Const(-math.inf), Const(math.nan), Const("s"), Const("a'b\"c"), Const(None),
          Const(True), Const(()), Const((1,)), Const((-1, 2.5)),
          Const(slice(None, None, -1)), Const(slice(-2, None)), Const(Ellipsis),
          Const(10 ** 30), Const(-1e-300)]


def _shapes(name):
    for n in _arity(PRIMS[name]):
        yield n


def test_the_op_set_covers_every_printed_style():
    styles = {PRIMS[n].style for n in EXPR_OPS}
    assert {"infix", "prefix", "subscript", "slice", "tuple", "list", "format"} <= styles
    symbols = {PRIMS[n].symbol.strip() for n in EXPR_OPS}
    assert {"+", "-", "*", "/", "@", "**", "//", "%", "<", "==", "is not", "and", "or",
            "not", "~", "&", "|", "^", "<<", ">>"} <= symbols


def _depth_two():
    """Every op with one operand replaced by every other op (over plain leaves) or by
    every leaf: precedence is decided between a parent and its child, so this meets
    every pair of them, on either side."""
    kids = [(q, *[B] * n) for q in EXPR_OPS for n in _shapes(q) if n] + LEAVES
    for p in EXPR_OPS:
        for n in _shapes(p):
            for i in range(n):
                for kid in kids:
                    args = [A] * n
                    args[i] = kid
                    yield (p, *args)


def test_every_operator_pair_reads_back_as_printed():
    count = 0
    for tree in _depth_two():
        roundtrip(tree)
        count += 1
    assert count > 3000


@pytest.mark.parametrize("tree, text", [
    (("pow", Const(-1), A), "(-1) ** a"),
    (("pow", ("neg", A), Const(2)), "(-a) ** 2"),
    (("neg", ("pow", A, Const(2))), "-a ** 2"),
    (("pow", A, ("neg", B)), "a ** -b"),
    (("pow", A, Const(-1.0)), "a ** -1.0"),
    (("pow", ("pow", A, B), Const(2)), "(a ** b) ** 2"),
    (("pow", A, ("pow", B, Const(2))), "a ** b ** 2"),
    (("sub", A, ("sub", B, Const(1))), "a - (b - 1)"),
    (("truediv", A, ("mul", B, Const(2))), "a / (b * 2)"),
    (("mul", Const(-1), A), "-1 * a"),
    (("lt", ("lt", A, B), Const(1)), "(a < b) < 1"),
    (("eq", A, ("lt", B, Const(0))), "a == (b < 0)"),
    (("not_", ("lt", A, B)), "not a < b"),
    (("neg", ("not_", A)), "-(not a)"),
    (("and_", A, ("and_", B, Const(True))), "a and (b and True)"),
    (("getitem", ("add", A, B), Const(0)), "(a + b)[0]"),
    (("getitem", Const(-1), Const(0)), "(-1)[0]"),
    (("getitem", A, Const((1,))), "a[1,]"),
    (("getitem", A, Const(())), "a[()]"),
    (("getitem", A, Const(((0, 1), 2))), "a[(0, 1), 2]"),
    (("getitem", A, ("tuple", ("tuple", B, Const(1)), Const(2))), "a[(b, 1), 2]"),
    (("getitem", A, ("tuple", ("slice", B, Const(None), Const(-1)), Const(0))), "a[b::-1, 0]"),
    (("getitem", A, ("tuple", ("tuple", ("slice", B, Const(None), Const(None))),)),
     "a[(slice(b, None, None),),]"),
    (("getitem", A, Const(slice(None, None, -1))), "a[::-1]"),
    (("tuple", ("slice", B, Const(1), Const(None))), "(slice(b, 1, None),)"),
    (("tuple",), "()"),
    (("tuple", A), "(a,)"),
    (("pow", A, Const(2j)), "a ** 2j"),
    (("mul", A, Const(complex(-0.0, 1.0))), "a * complex(-0.0, 1.0)"),
    (("pow", Const(-math.inf), A), "(-math.inf) ** a"),
    (("np.sum", ("neg", A), {"axis": Const(-1)}), "np.sum(-a, axis=-1)"),
])
def test_prints_readable_and_right(tree, text):
    assert roundtrip(tree) == text


# ------------------------------------------------------------------ values

_NUMERIC = ["add", "sub", "mul", "truediv", "pow", "floordiv", "mod", "lt", "le", "gt",
            "ge", "eq", "ne", "and_", "or_", "bitand", "bitor", "bitxor", "lshift", "rshift"]
_SMALL_RIGHT = {"pow", "lshift", "rshift"}  # keep 3 ** (3 ** 27) out of a test


def _trees(leaf):
    def extend(inner):
        binary = st.tuples(st.sampled_from(_NUMERIC), inner, inner).map(
            lambda t: (t[0], t[1], t[2] if t[0] not in _SMALL_RIGHT or isinstance(
                t[2], Const) else Const(2)))
        unary = st.tuples(st.sampled_from(["neg", "pos", "not_", "invert"]), inner)
        return binary | unary
    return st.recursive(leaf, extend, max_leaves=8)


_leaf = st.one_of(st.just(A), st.just(B),
                  st.integers(-3, 3).map(Const),
                  st.sampled_from([-1.5, -0.0, 0.5, 2.0, -2.0]).map(Const))


def _evaluate(tree, env):
    if isinstance(tree, Value):
        return env[tree.name]
    if isinstance(tree, Const):
        return tree.value
    name, *kids = tree
    if name in ("and_", "or_"):  # lowering keeps these for operands that cannot fail
        left = _evaluate(kids[0], env)
        return left if bool(left) == (name == "or_") else _evaluate(kids[1], env)
    return PRIMS[name].fn(*(_evaluate(k, env) for k in kids))


def _outcome(thunk):
    try:
        return repr(thunk())
    except Exception as e:  # the same error either way: 1 / 0, ~1.5
        return type(e).__name__


@settings(max_examples=300, deadline=None)
@given(tree=_trees(_leaf), a=st.integers(-3, 3), b=st.sampled_from([-1.5, 0.0, 2.5]))
def test_printed_expression_computes_what_the_ir_computes(tree, a, b):
    if isinstance(tree, (Value, Const)):
        return
    env = {"a": a, "b": b}
    text = printed(tree)
    assert canon_ast(ast.parse(text, mode="eval").body) == canon_ir(tree), text
    assert _outcome(lambda: eval(text, {"math": math}, dict(env))) == \
        _outcome(lambda: _evaluate(tree, env)), text


# ------------------------------------------------------------------ end to end

def _fd(f, args, wrt, h=1e-6):
    args = list(args)
    x = args[wrt]
    if np.ndim(x) == 0:
        up, dn = list(args), list(args)
        up[wrt], dn[wrt] = x + h, x - h
        return (f(*up) - f(*dn)) / (2 * h)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        up, dn = list(args), list(args)
        up[wrt], dn[wrt] = x + e, x - e
        g[i] = (f(*up) - f(*dn)) / (2 * h)
    return g


def minus_one_power(y, n):
    return (-1) ** n * y


def minus_one_power_named(y, n):
    m = -1
    return m ** n * y


def minus_one_float_power(y, n):
    return (-1.0) ** n * y ** 2


@pytest.mark.parametrize("f", [minus_one_power, minus_one_power_named])
@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_minus_one_to_the_n(f, n):
    got = adjoint.grad(f)(1.5, n)
    assert got == (-1) ** n  # d/dy (-1)^n y
    assert abs(got - _fd(f, (1.5, n), 0)) < 1e-8


@pytest.mark.parametrize("n", [2, 3])
def test_minus_one_float_to_the_n(n):
    got = adjoint.grad(minus_one_float_power)(1.5, n)
    assert abs(got - (-1.0) ** n * 2 * 1.5) < 1e-12
    assert abs(got - _fd(minus_one_float_power, (1.5, n), 0)) < 1e-7


def signs(x, a, b):
    u = -x ** 2 + (-x) ** 3  # -(x^2) and (-x)^3
    v = a - (b - x)  # the right operand's own subtraction
    w = a / (b * x)
    p = (x ** a) ** b + x ** a ** b  # left-nested vs right-nested powers
    return u + v * w + p + 2.0 ** -x


def signs_formula(x, a, b):
    du = -2 * x - 3 * x ** 2
    v, w = a - b + x, a / (b * x)
    dv, dw = 1.0, -a / (b * x ** 2)
    dp = a * b * x ** (a * b - 1) + a ** b * x ** (a ** b - 1)
    return du + dv * w + v * dw + dp - math.log(2.0) * 2.0 ** -x


@pytest.mark.parametrize("x", [0.7, 1.3])
def test_signs_and_grouping(x):
    args = (x, 1.5, 2.0)
    got = adjoint.grad(signs)(*args)
    assert abs(got - signs_formula(*args)) < 1e-10
    assert abs(got - _fd(signs, args, 0)) < 1e-6


def chained(x, y):
    big = (x < y) == (y < 2.0)  # two comparisons compared: not a < b == c
    return x * y if big else x - y


@pytest.mark.parametrize("x, y", [(0.5, 1.0), (1.5, 1.0), (0.5, 3.0), (3.0, 2.5)])
def test_compared_comparisons(x, y):
    big = (x < y) == (y < 2.0)
    got = adjoint.grad(chained, wrt=(0, 1))(x, y)
    assert got == ((y, x) if big else (1.0, -1.0))


def nested_index(x):
    return np.sum(x[(0, 1), 2] * x[-1, :0:-1])  # x[0, 2] * x[2, 2] + x[1, 2] * x[2, 1]


def test_nested_tuple_index():
    x = np.arange(9.0).reshape(3, 3) / 7.0
    got = adjoint.grad(nested_index)(x)
    want = np.zeros((3, 3))
    want[0, 2], want[2, 2], want[1, 2], want[2, 1] = x[2, 2], x[0, 2], x[2, 1], x[1, 2]
    assert np.allclose(got, want, atol=1e-12)
    assert np.allclose(got, _fd(nested_index, (x,), 0), atol=1e-8)


def test_generated_module_parses_and_means_the_same_as_the_source():
    src = adjoint.source(signs, args=(0.7, 1.5, 2.0))
    ast.parse(src)
    assert "(-x) ** 3" in src and "a - (b - x)" in src and "(x ** a) ** b" in src


def test_two_globals_of_one_name_are_refused(tmp_path, monkeypatch):
    """`helpers.W` and the module's own `W` printed (and imported) as one name: the
    gradient read one array twice, silently wrong. Refused at the line until each can
    have its own name."""
    (tmp_path / "emit_helpers.py").write_text("import numpy as np\nW = np.array([1.0, 2.0])\n")
    (tmp_path / "emit_user.py").write_text(
        "import numpy as np\nimport emit_helpers\nW = np.array([10.0, 20.0])\n\n\n"
        "def one(x):\n    return np.sum(x * emit_helpers.W)\n\n\n"
        "def both(x):\n    return np.sum(x * emit_helpers.W) + np.sum(x * x * W)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import emit_user
    x = np.array([0.5, -1.0])
    assert np.allclose(adjoint.grad(emit_user.one)(x), [1.0, 2.0])
    with pytest.raises(adjoint.AdjointError) as e:
        adjoint.grad(emit_user.both)(x)
    assert e.value.loc.line == 11 and "`W`" in str(e.value)
