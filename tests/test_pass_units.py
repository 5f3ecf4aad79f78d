"""Each optimisation pass on its own: IR in, IR out.

The input IR is built by hand (a few lines per case, with the `Ops` builder below),
the pass's output is compared with the exact text `adjoint.ir.printer` prints, and
where it is cheap the reference interpreter runs the IR before and after the pass
on the same inputs. A failure here names one pass, not a whole generated module
(tests/test_passes.py holds the whole pipeline to its generated code).
"""
import math
import operator
import textwrap

import numpy as np
import pytest

from adjoint import runtime
from adjoint.analysis.shapes import Kind
from adjoint.ir.core import Block, Call, Const, For, Function, Loc, Value
from adjoint.ir.interp import interpret
from adjoint.ir.printer import print_function
from adjoint.ir.verify import verify
from adjoint.passes import pipeline
from adjoint.passes.algebra import fold_constants
from adjoint.passes.assign import assign_once
from adjoint.passes.batch import batch_outer
from adjoint.passes.buffers import reuse_buffers
from adjoint.passes.cse import cse
from adjoint.passes.dce import dce
from adjoint.passes.fold import constant_factor, contraction, keepdims_dropped, simplify, \
    unbroadcast_operand
from adjoint.passes.licm import hoist_invariants
from adjoint.passes.privatize import privatize
from adjoint.passes.remat import rematerialize
from adjoint.passes.schedule import sink
from adjoint.passes.sequences import resolve_sequences
from adjoint.passes.specialize import specialize
from adjoint.passes.tapes import iterate_tapes, tapes
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import sequence
from adjoint.rules.tape import iadd, iadd_at, section, tape_new, tape_pop, tape_push

R = np.random.default_rng(3)


# ------------------------------------------------------------------ a small IR builder

def _operand(a):
    return a if isinstance(a, Value) else Const(a)


class Ops:
    """Ops appended in order: `t = b(np.exp, x, name="t")` adds `%t = np.exp(%x)`."""

    def __init__(self):
        self.ops = []

    def __call__(self, fn, *args, name="_t", line=None, **kwargs):
        v = Value(name)
        loc = Loc("f.py", line, 0, "") if line is not None else None
        self.ops.append(Call(prim_of(fn), tuple(map(_operand, args)), v,
                             tuple((k, _operand(x)) for k, x in kwargs.items()), loc))
        return v

    def add(self, op):
        self.ops.append(op)
        return op.results[0] if len(op.results) == 1 else op.results

    def block(self, *results, args=()):
        return Block(tuple(args), tuple(self.ops), tuple(map(_operand, results)))


def func(params, b: Ops, *results, name="f"):
    fn = Function(name, tuple(params), b.block(*results))
    verify(fn)
    return fn


def loop(b: Ops, iter_, inits, make_body, reverse=False, results=None):
    """A For op in `b`: `make_body(body_ops, target, *carried)` returns the yields."""
    target = Value("i")
    carried = [Value(v.name if isinstance(v, Value) else "c") for v in inits]
    body = Ops()
    yields = make_body(body, target, *carried)
    res = tuple(Value(n) for n in (results or [c.name for c in carried]))
    return b.add(For(_operand(iter_), tuple(map(_operand, inits)),
                     body.block(*yields, args=[target, *carried]), res, reverse=reverse))


def text(fn) -> str:
    return print_function(fn)


def expect(fn, expected: str) -> None:
    verify(fn)
    assert text(fn) == textwrap.dedent(expected).strip()


def same_values(before, after, *args) -> None:
    a, b = interpret(before)(*args), interpret(after)(*args)
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        np.testing.assert_array_equal(x, y)


class Facts:
    """Observed kinds, as `analysis.shapes` would give them."""

    def __init__(self, kinds):
        self.kinds = kinds

    def kind(self, v):
        return self.kinds.get(v) if isinstance(v, Value) else None


FLOAT, INT, DICT, LIST = Kind("float"), Kind("int"), Kind("dict"), Kind("list")
VECTOR = Kind("ndarray", (3,), "f")


# ------------------------------------------------------------------ dce

def test_dce_drops_an_unread_pure_call_as_its_docstring_shows():
    x = Value("x")
    b = Ops()
    b(np.exp, x, name="a")
    r = b(operator.mul, x, 2.0, name="b")
    fn = func([x], b, r)
    out = dce(fn)
    expect(out, """
        func f(%x):
          %b = mul(%x, 2.0)
          return %b
    """)
    same_values(fn, out, 1.5)


def test_dce_keeps_a_call_that_may_raise_and_an_effect():
    # math.log(-1.0) raises: dropping the unread call would return a number where f raises
    x = Value("x")
    b = Ops()
    b(math.log, x, name="unread")
    tp = b(tape_new, name="_tape")
    b(tape_push, tp, x, name="_")
    fn = func([x], b, x)
    assert text(dce(fn)) == text(fn)
    with pytest.raises(ValueError):
        interpret(dce(fn))(-1.0)


def test_dce_drops_a_loop_carried_value_that_only_feeds_itself():
    x, n = Value("x"), Value("n")
    b = Ops()
    rng = b(range, n, name="_range")

    def body(o, i, s, p):
        s2 = o(operator.add, s, i, name="s")
        p2 = o(operator.mul, p, x, name="p")
        return s2, p2
    s, p = loop(b, rng, [0, 1.0], body, results=["s", "p"])
    fn = func([x, n], b, p)
    out = dce(fn)
    expect(out, """
        func f(%x, %n):
          %_range = range(%n)
          %p = for %i in %_range carry (%c) = (1.0):
            %p_1 = mul(%c, %x)
            yield %p_1
          return %p
    """)
    same_values(fn, out, 1.5, 4)


def test_dce_keeps_a_carried_value_the_other_carries_read():
    x, n = Value("x"), Value("n")
    b = Ops()
    rng = b(range, n, name="_range")

    def body(o, i, s, p):
        s2 = o(operator.add, s, x, name="s")
        p2 = o(operator.mul, p, s, name="p")  # p reads s: s is not dead
        return s2, p2
    loop(b, rng, [0.5, 1.0], body, results=["s", "p"])
    fn = func([x, n], b, b.ops[-1].results[1])
    assert text(dce(fn)) == text(fn)


# ------------------------------------------------------------------ cse

def test_cse_reads_an_element_once_as_its_docstring_shows():
    x, i = Value("x"), Value("i")
    b = Ops()
    a = b(operator.getitem, x, i, name="a")
    a2 = b(operator.getitem, x, i, name="b")
    c = b(operator.mul, a, a2, name="c")
    fn = func([x, i], b, c)
    out = cse(fn)
    expect(out, """
        func f(%x, %i):
          %a = getitem(%x, %i)
          %c = mul(%a, %a)
          return %c
    """)
    same_values(fn, out, np.arange(4.0), 2)


def test_cse_merges_commuted_operands_and_turns_a_repeated_contribution_into_a_doubling():
    g, x = Value("g"), Value("x")
    b = Ops()
    t1 = b(operator.mul, g, x, name="t")
    t2 = b(operator.mul, x, g, name="t")  # the same product, operands swapped
    xb = b(iadd, t1, t2, name="x_bar")
    fn = func([g, x], b, xb)
    out = cse(fn)
    # the doubled product is read only by the doubling: it becomes a temporary `_t`
    expect(out, """
        func f(%g, %x):
          %_t = mul(%g, %x)
          %x_bar = mul(%_t, 2)
          return %x_bar
    """)
    same_values(fn, out, 1.25, 3.0)


def test_cse_sees_values_of_an_enclosing_block_inside_a_loop():
    x, n = Value("x"), Value("n")
    b = Ops()
    e = b(np.exp, x, name="e")
    rng = b(range, n, name="_range")

    def body(o, i, s):
        e2 = o(np.exp, x, name="e")
        return (o(operator.add, s, e2, name="s"),)
    loop(b, rng, [e], body, results=["s"])
    fn = func([x, n], b, b.ops[-1].results[0])
    out = cse(fn)
    expect(out, """
        func f(%x, %n):
          %e = np.exp(%x)
          %_range = range(%n)
          %s = for %i in %_range carry (%e_1) = (%e):
            %s_1 = add(%e_1, %e)
            yield %s_1
          return %s
    """)
    same_values(fn, out, 0.5, 3)


def test_cse_never_merges_two_copies_nor_two_buffers_that_are_written():
    x = Value("x")
    b = Ops()
    c1 = b(np.copy, x, name="c")
    c2 = b(np.copy, x, name="c")
    z1 = b(np.zeros, 3, name="z")
    z2 = b(np.zeros, 3, name="z")
    w = b(runtime.setitem, z1, 0, 1.0, name="z")
    p1 = b(tape_new, name="_tape")
    p2 = b(tape_new, name="_tape")
    fn = func([x], b, c1, c2, w, z2, p1, p2)
    assert text(cse(fn)) == text(fn)


def test_cse_keeps_a_product_with_minus_zero_apart_from_one_with_zero():
    x = Value("x")
    b = Ops()
    p = b(operator.mul, x, 0.0, name="p")
    m = b(operator.mul, x, -0.0, name="m")
    fn = func([x], b, b(np.arctan2, p, -1.0, name="a"), b(np.arctan2, m, -1.0, name="b"))
    assert interpret(fn)(2.0) == (np.pi, -np.pi)
    assert interpret(cse(fn))(2.0) == (np.pi, -np.pi)


# ------------------------------------------------------------------ fold (rule simplification)

def test_fold_simplifies_identities_and_gathers_constant_factors():
    x, y = Value("x"), Value("y")
    assert simplify(operator.pow, (x, Const(1)), {}) is x
    assert simplify(operator.mul, (Const(1), x), {}) is x
    assert simplify(operator.mul, (x, Const(1.0)), {}) is x
    assert simplify(operator.sub, (x, Const(0)), {}) is x
    assert simplify(operator.truediv, (x, Const(1)), {}) is x
    neg = Call(prim_of(operator.neg), (x,), y)
    assert simplify(operator.neg, (y,), {y: neg}) is x  # -(-x)
    half = Call(prim_of(operator.mul), (Const(0.5), x), y)
    assert constant_factor(operator.mul, (y, Const(2)), {y: half}) == (1.0, x)


def test_fold_never_drops_a_shape_or_a_true_operation():
    x = Value("x")
    assert simplify(operator.mul, (x, Const(0)), {}) is None  # x * 0 keeps x's shape
    assert simplify(operator.pow, (x, Const(2)), {}) is None
    assert simplify(operator.sub, (Const(0), x), {}) is None  # 0 - x is -x, not x
    assert simplify(operator.add, (x, Const(True)), {}) is None
    assert constant_factor(operator.add, (x, Const(2)), {}) is None


def _defs(b: Ops) -> dict:
    return {op.result: op for op in b.ops}


def test_fold_drops_a_broadcast_that_the_elementwise_op_makes_anyway():
    g, y, c = Value("g"), Value("y"), Value("c")
    b = Ops()
    e = b(np.expand_dims, g, 0, name="e")
    bc = b(np.broadcast_to, e, (4, 3), name="bc")
    shapes = {g: (3,), y: (4, 3), c: (), e: (1, 3), bc: (4, 3)}
    # broadcast_to(expand_dims(g, 0), S) * y  ==>  g * y   (y has shape S)
    assert unbroadcast_operand(operator.mul, (bc, y), _defs(b), shapes.get) == ("args", (g, y))
    # broadcast_to(a, S) * c  ==>  broadcast_to(a * c, S)   (c a scalar)
    assert unbroadcast_operand(operator.mul, (c, bc), _defs(b), shapes.get) == \
        ("outside", (c, e), (4, 3))


def test_fold_keeps_a_broadcast_that_sets_the_shape():
    g, y = Value("g"), Value("y")
    b = Ops()
    bc = b(np.broadcast_to, g, (4, 3), name="bc")
    zero_d = b(np.broadcast_to, g, (), name="bc0")
    shapes = {g: (3,), y: (3,), bc: (4, 3)}
    assert unbroadcast_operand(operator.mul, (bc, y), _defs(b), shapes.get) is None
    assert unbroadcast_operand(operator.mul, (zero_d, y), _defs(b), shapes.get) is None
    assert unbroadcast_operand(operator.matmul, (bc, y), _defs(b), shapes.get) is None


def test_fold_drops_kept_dims_and_finds_a_matrix_vector_product():
    x, M, v = Value("x"), Value("M"), Value("v")
    b = Ops()
    s1 = b(np.sum, x, axis=1, keepdims=True, name="s")
    mv = b(operator.mul, v, M, name="t")
    shapes = {x: (4, 3), M: (2, 3), v: (3,)}
    assert keepdims_dropped((s1, Const((4,))), _defs(b), shapes.get) == (x, 1)
    assert keepdims_dropped((s1, Const((4, 1))), _defs(b), shapes.get) is None
    assert contraction((mv,), (("axis", Const(-1)),), _defs(b), shapes.get) == (M, v)
    assert contraction((mv,), (("axis", Const(0)),), _defs(b), shapes.get) is None


# ------------------------------------------------------------------ algebra (fold_constants)

def test_fold_constants_folds_the_docstring_examples_on_floats():
    x = Value("x")
    b = Ops()
    one = b(operator.mul, 1.0, 3, name="a")
    r1 = b(operator.mul, one, x, name="r1")        # 1.0 * 3 * x  ==>  3.0 * x
    r2 = b(operator.mul, -1.0, x, name="r2")       # -1.0 * x     ==>  -x
    t = b(operator.mul, 2, x, name="t")
    r3 = b(operator.mul, t, 3, name="r3")          # (2 * x) * 3  ==>  6 * x
    r4 = b(operator.mul, x, 1.0, name="r4")        # x * 1.0      ==>  x
    fn = func([x], b, r1, r2, r3, r4)
    kinds = {v: FLOAT for v in (x, one, r1, r2, t, r3, r4)}
    out = fold_constants(fn, Facts(kinds))
    expect(out, """
        func f(%x):
          %r1 = mul(3.0, %x)
          %r2 = neg(%x)
          %t = mul(2, %x)
          %r3 = mul(6, %x)
          return %r1, %r2, %r3, %x
    """)
    same_values(fn, out, 1.75)


def test_fold_constants_leaves_ints_and_a_division_by_zero():
    n = Value("n")
    b = Ops()
    r = b(operator.mul, n, 1.0, name="r")   # how an int becomes a float
    z = b(operator.truediv, 1.0, 0, name="z")  # raises when run, as Python would
    fn = func([n], b, r, z)
    assert text(fold_constants(fn, Facts({n: INT, r: FLOAT}))) == text(fn)


# ------------------------------------------------------------------ assign

def _scatter(index_of, start=None):
    """x_bar = zeros_like(x); for i in reversed(range(n)): x_bar[index] += x[i] * g"""
    x, g, n = Value("x"), Value("g"), Value("n")
    b = Ops()
    zero = b(np.zeros_like, x, name="x_bar")
    rng = b(range, n, name="_range") if start is None else b(range, start, n, name="_range")

    def body(o, i, acc):
        xi = o(operator.getitem, x, i, name="_t")
        v = o(operator.mul, xi, g, name="_t")
        return (o(iadd_at, acc, index_of(i), v, name="x_bar"),)
    loop(b, rng, [zero], body, reverse=True, results=["x_bar"])
    return func([x, g, n], b, b.ops[-1].results[0])


def test_assign_once_makes_the_only_write_at_the_loop_index_a_store():
    fn = _scatter(lambda i: i)
    out = assign_once(fn)
    expect(out, """
        func f(%x, %g, %n):
          %x_bar = np.zeros_like(%x)
          %_range = range(%n)
          %x_bar_1 = for %i in reversed(%_range) carry (%x_bar_2) = (%x_bar):
            %_t = getitem(%x, %i)
            %_t_1 = mul(%_t, %g)
            %x_bar_3 = setitem(%x_bar_2, %i, %_t_1)
            yield %x_bar_3
          return %x_bar_1
    """)
    same_values(fn, out, np.arange(1.0, 5.0), 2.0, 4)


def test_assign_once_keeps_an_add_where_an_element_is_written_twice():
    fn = _scatter(lambda i: 0)  # every step adds into x_bar[0]
    assert text(assign_once(fn)) == text(fn)


def test_assign_once_keeps_an_add_where_negative_indices_meet_positive_ones():
    fn = _scatter(lambda i: i, start=-3)
    args = (np.array([0.5, 1.0, 2.0]), 2.0, 3)
    same_values(fn, assign_once(fn), *args)


# ------------------------------------------------------------------ batch

def _outer_loop(read_acc_too=False):
    """for t in range(n): W_bar += np.outer(z * a[t], h)"""
    W, a, h, n = Value("W"), Value("a"), Value("h"), Value("n")
    b = Ops()
    wb = b(np.zeros_like, W, name="W_bar")
    rng = b(range, n, name="_range")

    def body(o, t, acc):
        at = o(operator.getitem, a, t, name="z")
        z = o(operator.mul, h, at, name="z")
        if read_acc_too:
            z = o(operator.add, z, o(np.sum, acc, name="_t"), name="z")
        u = o(np.outer, z, h, name="_t")
        return (o(iadd, acc, u, name="W_bar"),)
    loop(b, rng, [wb], body, reverse=True, results=["W_bar"])
    return func([W, a, h, n], b, b.ops[-1].results[0])


def test_batch_outer_stacks_the_vectors_and_multiplies_once():
    fn = _outer_loop()
    out = batch_outer(fn)
    expect(out, """
        func f(%W, %a, %h, %n):
          %W_bar = np.zeros_like(%W)
          %_range = range(%n)
          %_u = list()
          %_v = list()
          %_u_1, %_v_1 = for %i in reversed(%_range) carry (%_u_2, %_v_2) = (%_u, %_v):
            %z = getitem(%a, %i)
            %z_1 = mul(%h, %z)
            %_u_3 = append(%_u_2, %z_1)
            %_v_3 = append(%_v_2, %h)
            yield %_u_3, %_v_3
          %_u_4 = np.array(%_u_1)
          %_v_4 = np.array(%_v_1)
          %_t = np.transpose(%_u_4)
          %_t_1 = matmul(%_t, %_v_4)
          %_t_2 = iadd(%W_bar, %_t_1)
          return %_t_2
    """)
    args = (np.zeros((3, 3)), R.normal(size=4), R.normal(size=3), 4)
    np.testing.assert_allclose(interpret(out)(*args), interpret(fn)(*args), rtol=1e-12)


def test_batch_outer_leaves_an_accumulator_the_loop_reads():
    fn = _outer_loop(read_acc_too=True)
    assert text(batch_outer(fn)) == text(fn)


# ------------------------------------------------------------------ licm

def _backward_loop(b, x, n, sbar, forward_only=False):
    if not forward_only:
        b(section, "backward", name="_")
    rng = b(range, n, name="_range")

    def body(o, i, acc):
        k = o(operator.mul, 200.0, sbar, name="_t")   # invariant
        xi = o(operator.getitem, x, i, name="d")
        v = o(operator.mul, k, xi, name="_t")
        return (o(iadd_at, acc, i, v, name="x_bar"),)
    return body, rng


def test_licm_hoists_an_invariant_product_of_the_backward_sweep():
    x, n, sbar = Value("x"), Value("n"), Value("s_bar")
    b = Ops()
    zero = b(np.zeros_like, x, name="x_bar")
    body, rng = _backward_loop(b, x, n, sbar)
    loop(b, rng, [zero], body, results=["x_bar"])
    fn = func([x, n, sbar], b, b.ops[-1].results[0])
    out = hoist_invariants(fn)
    expect(out, """
        func f(%x, %n, %s_bar):
          %x_bar = np.zeros_like(%x)
          %_ = section('backward')
          %_range = range(%n)
          %_t = mul(200.0, %s_bar)
          %x_bar_1 = for %i in %_range carry (%x_bar_2) = (%x_bar):
            %d = getitem(%x, %i)
            %_t_1 = mul(%_t, %d)
            %x_bar_3 = iadd_at(%x_bar_2, %i, %_t_1)
            yield %x_bar_3
          return %x_bar_1
    """)
    same_values(fn, out, np.arange(3.0), 3, 0.5)


def test_licm_moves_an_exact_scale_onto_the_invariant_factor():
    # (_t3 * d) * 2  ==>  (_t3 * 2) * d, and _t3 * 2 leaves the loop
    x, n, g = Value("x"), Value("n"), Value("g")
    b = Ops()
    b(section, "backward", name="_")
    rng = b(range, n, name="_range")

    def body(o, i, s):
        d = o(operator.getitem, x, i, name="d")
        p = o(operator.mul, g, d, name="_t")
        return (o(operator.add, s, o(operator.mul, p, 2, name="_t"), name="s"),)
    loop(b, rng, [0.0], body, results=["s"])
    fn = func([x, n, g], b, b.ops[-1].results[0])
    out = hoist_invariants(fn)
    # the old product `g * d` is left unread in the loop, for dce (which runs after)
    expect(out, """
        func f(%x, %n, %g):
          %_ = section('backward')
          %_range = range(%n)
          %g_1 = mul(%g, 2)
          %s = for %i in %_range carry (%c) = (0.0):
            %d = getitem(%x, %i)
            %_t = mul(%g, %d)
            %_t_1 = mul(%g_1, %d)
            %s_1 = add(%c, %_t_1)
            yield %s_1
          return %s
    """)
    assert "mul(%g, %d)" not in text(dce(out))
    same_values(fn, out, np.array([0.1, 0.7, 3.0]), 3, 1.3)


def test_licm_leaves_the_forward_sweep_and_values_the_loop_writes():
    x, n, sbar = Value("x"), Value("n"), Value("s_bar")
    # no section: the whole function is a forward sweep, as the user wrote it
    b = Ops()
    zero = b(np.zeros_like, x, name="x_bar")
    body, rng = _backward_loop(b, x, n, sbar, forward_only=True)
    loop(b, rng, [zero], body, results=["x_bar"])
    fn = func([x, n, sbar], b, b.ops[-1].results[0])
    assert text(hoist_invariants(fn)) == text(fn)
    # an operand written in place (w, by setitem) may differ on each step: not invariant
    w = Value("w")
    b = Ops()
    b(section, "backward", name="_")
    rng = b(range, n, name="_range")

    def body2(o, i, ww):
        e = o(operator.mul, w, 2.0, name="e")        # reads w, which the loop writes
        s = o(operator.getitem, e, 0, name="s")
        return (o(runtime.setitem, ww, i, s, name="w"),)
    loop(b, rng, [w], body2, results=["w"])
    fn = func([w, n], b, b.ops[-1].results[0])
    assert text(hoist_invariants(fn)) == text(fn)


def test_licm_does_not_hoist_a_call_that_may_raise():
    x, n = Value("x"), Value("n")
    b = Ops()
    b(section, "backward", name="_")
    rng = b(range, n, name="_range")

    def body(o, i, s):
        return (o(operator.add, s, o(math.log, x, name="l"), name="s"),)
    loop(b, rng, [0.0], body, results=["s"])
    fn = func([x, n], b, b.ops[-1].results[0])
    # run zero times, the loop never calls log(-1.0): hoisted, it would raise
    assert text(hoist_invariants(fn)) == text(fn)
    assert interpret(hoist_invariants(fn))(-1.0, 0) == 0.0


# ------------------------------------------------------------------ privatize

def _writing_loop(read_after: bool):
    x, n = Value("x"), Value("n")
    b = Ops()
    y = b(np.tanh, x, name="y")
    rng = b(range, n, name="_range")

    def body(o, i, yy):
        yi = o(operator.getitem, yy, i, name="_t")
        return (o(runtime.setitem, yy, i, o(operator.add, yi, 1.0, name="_t"), name="y"),)
    loop(b, rng, [y], body, results=["y"])
    out = b.ops[-1].results[0]
    if read_after:
        out = b(operator.add, out, b(np.sum, y, name="_t"), name="r")  # the old y is read again
    return func([x, n], b, out)


def test_privatize_copies_an_array_the_loop_writes_while_it_is_read_later():
    fn = _writing_loop(read_after=True)
    out = privatize(fn)
    expect(out, """
        func f(%x, %n):
          %y = np.tanh(%x)
          %_range = range(%n)
          %y_1 = private(%y)
          %y_2 = for %i in %_range carry (%y_3) = (%y_1):
            %_t = getitem(%y_3, %i)
            %_t_1 = add(%_t, 1.0)
            %y_4 = setitem(%y_3, %i, %_t_1)
            yield %y_4
          %_t_2 = np.sum(%y)
          %r = add(%y_2, %_t_2)
          return %r
    """)
    same_values(fn, out, np.array([0.1, 0.2, 0.3]), 2)


def test_privatize_leaves_an_array_only_the_loop_reads():
    fn = _writing_loop(read_after=False)
    assert text(privatize(fn)) == text(fn)


# ------------------------------------------------------------------ remat

def _negated(y_written=False, with_section=True):
    y, z, g = Value("y"), Value("z"), Value("g")
    b = Ops()
    n = b(operator.neg, y, name="n")
    a = b(operator.mul, n, z, name="a")
    if y_written:
        b(runtime.setitem, y, 0, 0.0, name="y")
    if with_section:
        b(section, "backward", name="_")
    r = b(operator.mul, g, n, name="b")
    return func([y, z, g], b, a, r)


def test_remat_negates_a_parameter_again_in_the_backward_sweep():
    fn = _negated()
    out = rematerialize(fn)
    expect(out, """
        func f(%y, %z, %g):
          %n = neg(%y)
          %a = mul(%n, %z)
          %_ = section('backward')
          %n_1 = neg(%y)
          %b = mul(%g, %n_1)
          return %a, %b
    """)
    same_values(fn, out, 1.5, 2.0, 3.0)


def test_remat_leaves_a_written_parameter_and_code_without_a_backward_sweep():
    for fn in (_negated(y_written=True), _negated(with_section=False)):
        assert text(rematerialize(fn)) == text(fn)


# ------------------------------------------------------------------ schedule

def test_sink_moves_a_pure_op_down_to_its_only_use_on_its_line():
    g, x, y = Value("g"), Value("x"), Value("y")
    b = Ops()
    b(section, "backward", name="_")
    t = b(operator.mul, g, x, name="t", line=3)
    u = b(np.exp, y, name="u", line=3)
    r = b(operator.add, u, t, name="r", line=3)
    fn = func([g, x, y], b, r)
    out = sink(fn)
    expect(out, """
        func f(%g, %x, %y):
          %_ = section('backward')
          %u = np.exp(%y)
          %t = mul(%g, %x)
          %r = add(%u, %t)
          return %r
    """)
    same_values(fn, out, 2.0, 3.0, 0.5)


def test_sink_computes_a_carried_cotangent_after_the_last_read_of_its_old_value():
    # p_bar_1 = p_bar * x[i]; x_bar[i] += p_bar * p; p_bar = p_bar_1 (the docstring's
    # example): moved after the read, the new p_bar can take the old one's name, and
    # x[i], read only there, moves down with it into that expression
    x, p, n = Value("x"), Value("p"), Value("n")
    b = Ops()
    b(section, "backward", name="_")
    zero = b(np.zeros_like, x, name="x_bar")
    rng = b(range, n, name="_range")

    def body(o, i, xb, pb):
        xi = o(operator.getitem, x, i, name="_t", line=5)
        pb1 = o(operator.mul, pb, xi, name="p_bar", line=5)
        v = o(operator.mul, pb, p, name="_t", line=5)
        return o(iadd_at, xb, i, v, name="x_bar", line=5), pb1
    loop(b, rng, [zero, 1.0], body, reverse=True, results=["x_bar", "p_bar"])
    fn = func([x, p, n], b, *b.ops[-1].results)
    out = sink(fn)
    expect(out, """
        func f(%x, %p, %n):
          %_ = section('backward')
          %x_bar = np.zeros_like(%x)
          %_range = range(%n)
          %x_bar_1, %p_bar = for %i in reversed(%_range) carry (%x_bar_2, %c) = (%x_bar, 1.0):
            %_t = mul(%c, %p)
            %x_bar_3 = iadd_at(%x_bar_2, %i, %_t)
            %_t_1 = getitem(%x, %i)
            %p_bar_1 = mul(%c, %_t_1)
            yield %x_bar_3, %p_bar_1
          return %x_bar_1, %p_bar
    """)
    same_values(fn, out, np.array([0.5, 2.0, 3.0]), 1.5, 3)


def test_sink_keeps_lines_the_forward_sweep_and_reads_of_written_arrays():
    g, x, y = Value("g"), Value("x"), Value("y")
    # across lines: the `# line N` groups stay as they are
    b = Ops()
    b(section, "backward", name="_")
    t = b(operator.mul, g, x, name="t", line=3)
    u = b(np.exp, y, name="u", line=4)
    fn = func([g, x, y], b, b(operator.add, u, t, name="r", line=4))
    assert text(sink(fn)) == text(fn)
    # before the section marker: the forward sweep is not scheduled
    b = Ops()
    t = b(operator.mul, g, x, name="t", line=3)
    u = b(np.exp, y, name="u", line=3)
    fn = func([g, x, y], b, b(operator.add, u, t, name="r", line=3))
    assert text(sink(fn)) == text(fn)
    # t reads x, an array written in place later: moving the read past the write is wrong
    b = Ops()
    b(section, "backward", name="_")
    t = b(operator.getitem, x, 0, name="t", line=3)
    w = b(runtime.setitem, x, 0, 5.0, name="x", line=3)
    fn = func([g, x, y], b, b(operator.add, b(np.sum, w, name="u", line=3), t, name="r",
                                line=3))
    assert text(sink(fn)) == text(fn)


# ------------------------------------------------------------------ specialize

def test_specialize_marks_element_reads_copies_and_squares_of_numbers():
    x, n = Value("x"), Value("n")
    b = Ops()
    y = b(runtime.private, x, name="y")
    rng = b(range, n, name="_range")

    def body(o, i, s):
        xi = o(operator.getitem, x, i, name="_t")
        return (o(operator.add, s, o(operator.pow, xi, 2, name="_t"), name="s"),)
    loop(b, rng, [0.0], body, results=["s"])
    fn = func([x, n], b, y, b.ops[-1].results[0])
    xi = b.ops[-1].body.ops[0].result
    kinds = {x: VECTOR, xi: FLOAT, y: VECTOR}
    out = specialize(fn, Facts(kinds))
    expect(out, """
        func f(%x, %n):
          %y = np.copy(%x)
          %_range = range(%n)
          %s = for %i in %_range carry (%c) = (0.0):
            %_t = element(%x, %i)
            %_t_1 = mul(%_t, %_t)
            %s_1 = add(%c, %_t_1)
            yield %s_1
          return %y, %s
    """)
    same_values(fn, out, np.array([1.0, 2.0, 3.0]), 3)


def test_specialize_changes_nothing_it_has_not_observed():
    x = Value("x")
    b = Ops()
    xi = b(operator.getitem, x, 0, name="_t")
    sq = b(operator.pow, xi, 2, name="_t")  # outside a loop: pow stays
    fn = func([x], b, b(runtime.private, x, name="y"), sq)
    assert text(specialize(fn, Facts({}))) == text(fn)  # no kinds: no change
    # an element read of an unobserved base may be a view: kept a getitem, and the copy
    # of a value that may be a list stays `private`
    assert text(specialize(fn, Facts({xi: FLOAT}))) == text(fn)
    out = specialize(fn, Facts({x: VECTOR, xi: FLOAT}))
    assert "element(%x, 0)" in text(out) and "pow(%_t, 2)" in text(out)  # not in a loop


# ------------------------------------------------------------------ tapes

def _taped(pop_uses=(1,), loop_index_used=False):
    """A forward loop pushes (x[i], e) per step; a reverse loop pops and reads slots."""
    x, n = Value("x"), Value("n")
    b = Ops()
    tp = b(tape_new, name="_tape")
    rng = b(range, n, name="_range")

    def fwd(o, i, s):
        xi = o(operator.getitem, x, i, name="xi")
        e = o(np.exp, xi, name="e")
        o(tape_push, tp, xi, e, name="_")
        return (o(operator.add, s, e, name="s"),)
    loop(b, rng, [0.0], fwd, results=["s"])
    s = b.ops[-1].results[0]
    b(section, "backward", name="_")

    def bwd(o, i, acc):
        saved = o(tape_pop, tp, name="_saved")
        got = [o(operator.getitem, saved, k, name=f"slot{k}") for k in (0, 1)]
        total = acc
        for k in pop_uses:
            total = o(operator.add, total, got[k], name="acc")
        if loop_index_used:
            total = o(operator.add, total, i, name="acc")
        return (total,)
    loop(b, rng, [0.0], bwd, reverse=True, results=["acc"])
    return func([x, n], b, s, b.ops[-1].results[0])


def test_tapes_drops_the_slots_no_pop_reads():
    fn = _taped(pop_uses=(1,))
    out = dce(tapes(fn))
    expect(out, """
        func f(%x, %n):
          %_tape = tape_new()
          %_range = range(%n)
          %s = for %i in %_range carry (%c) = (0.0):
            %xi = getitem(%x, %i)
            %e = np.exp(%xi)
            %_ = tape_push(%_tape, %e)
            %s_1 = add(%c, %e)
            yield %s_1
          %__1 = section('backward')
          %acc = for %i_1 in reversed(%_range) carry (%c_1) = (0.0):
            %slot1 = tape_pop(%_tape)
            %acc_1 = add(%c_1, %slot1)
            yield %acc_1
          return %s, %acc
    """)
    same_values(fn, out, np.array([0.5, 1.0, 2.0]), 3)


def test_tapes_keeps_every_slot_that_is_read():
    fn = _taped(pop_uses=(0, 1))
    assert text(tapes(fn)) == text(fn)


def test_iterate_tapes_walks_the_tape_when_the_index_is_unread():
    fn = tapes(_taped(pop_uses=(1,)))
    out = iterate_tapes(fn)
    assert text(out).splitlines()[10:13] == [
        "  %acc = for %slot1 in reversed(%_tape) carry (%c_1) = (0.0):",
        "    %acc_1 = add(%c_1, %slot1)",
        "    yield %acc_1"]
    same_values(fn, out, np.array([0.5, 1.0, 2.0]), 3)


def test_iterate_tapes_zips_the_range_when_the_index_is_read():
    fn = tapes(_taped(pop_uses=(1,), loop_index_used=True))
    out = iterate_tapes(fn)
    assert text(out).splitlines()[10:17] == [
        "  %_steps = zip_reversed(%_range, %_tape)",
        "  %acc = for %_step in %_steps carry (%c_1) = (0.0):",
        "    %i_1 = getitem(%_step, 0)",
        "    %slot1 = getitem(%_step, 1)",
        "    %acc_1 = add(%c_1, %slot1)",
        "    %acc_2 = add(%acc_1, %i_1)",
        "    yield %acc_2"]
    same_values(fn, out, np.array([0.5, 1.0, 2.0]), 3)


def _saved_on_an_outer_tape(fn):
    """`fn` with its tape also pushed onto another tape (as a nested loop's tape is)."""
    tp = fn.body.ops[0].result
    b = Ops()
    outer = b(tape_new, name="_outer")
    b(tape_push, outer, tp, name="_")
    ops = (fn.body.ops[0],) + tuple(b.ops) + fn.body.ops[1:]
    out = Function(fn.name, fn.params, Block((), ops, fn.body.results))
    verify(out)
    return out


def test_tapes_leave_a_tape_that_is_saved_elsewhere():
    fn = _saved_on_an_outer_tape(_taped(pop_uses=(1,)))
    assert text(tapes(fn)) == text(fn)
    assert text(iterate_tapes(fn)) == text(fn)


# ------------------------------------------------------------------ sequences

def test_resolve_sequences_walks_a_dicts_keys_and_anything_else_itself():
    p, xs = Value("p"), Value("xs")
    b = Ops()
    sp = b(sequence, p, name="s")
    sx = b(sequence, xs, name="s")
    fn = func([p, xs], b, sp, sx)
    out = resolve_sequences(fn, Facts({p: DICT, xs: LIST}))
    expect(out, """
        func f(%p, %xs):
          %s = keys(%p)
          return %s, %xs
    """)
    d, lst = {"a": 1.0, "b": 2.0}, [3.0, 4.0]
    assert list(interpret(out)(d, lst)[0]) == ["a", "b"]
    assert list(interpret(fn)(d, lst)[1]) == lst


def test_resolve_sequences_leaves_generic_code_alone():
    p = Value("p")
    b = Ops()
    fn = func([p], b, b(sequence, p, name="s"))
    assert resolve_sequences(fn, None) is fn
    assert resolve_sequences(fn, Facts({})) is fn


# ------------------------------------------------------------------ pipeline

def test_optimize_runs_the_passes_in_order_within_a_budget():
    fn = _negated()
    with pipeline.limited(None) as log:
        pipeline.optimize(fn)
    names = [entry.split(" on ")[0] for entry in log]
    assert names == [p.__name__ for p in pipeline.PIPELINE + pipeline.FINAL]
    with pipeline.limited(2) as log:
        pipeline.optimize(fn)
    assert log == ["cse on f", "dce on f"]


def test_optimize_with_no_budget_changes_nothing():
    x = Value("x")
    b = Ops()
    b(np.exp, x, name="dead")
    fn = func([x], b, x)
    with pipeline.limited(0) as log:
        assert pipeline.optimize(fn) is fn
    assert log == []
    assert "np.exp" not in text(pipeline.optimize(fn))  # with the passes, dce drops it


# ------------------------------------------------------------------ every pass on real gradients

def _cases():
    from tests import programs as P
    r = np.random.default_rng(1)
    return [
        (P.rnn, (0.3 * r.normal(size=(3, 3)), 0.3 * r.normal(size=(3, 3)), r.normal(size=(4, 3)),
                 r.normal(size=3)), (0, 1, 3)),
        (P.soft_dtw, (r.normal(size=4), r.normal(size=3), 0.5), (0, 1)),
        (P.augmented_writes, (r.normal(size=5),), 0),
        (P.slice_writes, (r.normal(size=(3, 4)),), 0),
        (P.cell_recurrence, (r.normal(size=5),), 0),
        (P.breaks, (r.normal(size=5),), 0),
        (P.newton_sqrt, (2.0,), 0),
        (P.lists, (r.normal(size=4),), 0),
        (P.nested_loops, (r.normal(size=(3, 3)),), 0),
        (P.branch_in_loop, (r.normal(size=5),), 0),
        (P.fill, (r.normal(size=4),), 0),
    ]


@pytest.mark.parametrize("f, args, wrt", _cases(), ids=lambda c: getattr(c, "__name__", ""))
def test_each_pass_alone_keeps_the_gradient_ir_s_values(f, args, wrt):
    """The unoptimised gradient IR of a corpus program, each pass applied alone (and
    then all in order), run by the interpreter: a change names the pass."""
    from adjoint import driver
    with pipeline.limited(0):
        c = driver.run(driver.Compilation(f, wrt=wrt, args=args), last="transform")
    fn = c.functions[0][0]

    def run(g):
        out = interpret(g)(*args, 1.0)
        return out if isinstance(out, tuple) else (out,)
    ref = run(fn)
    passes = [(p.__name__, p) for p in pipeline.PIPELINE + pipeline.FINAL]
    passes.append(("specialize", lambda g: specialize(g, c.facts)))
    chained = fn
    for name, p in passes:
        chained = p(chained)
        for g in (p(fn), chained):
            verify(g)
            for a, b in zip(ref, run(g)):
                np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-300, err_msg=name)


# ------------------------------------------------------------------ codegen/naming

def _names(fn, *values, reserved=()):
    from adjoint.codegen.naming import Namer
    namer = Namer(fn, {}, set(reserved))
    return [namer(v) for v in values]


def test_namer_gives_two_live_values_two_names():
    x = Value("x")
    b = Ops()
    a1, a2 = b(np.exp, x, name="a"), b(np.sin, x, name="a")
    r = b(operator.add, a1, a2, name="r")
    assert _names(func([x], b, r), x, a1, a2, r) == ["x", "a", "a_1", "r"]


def test_namer_accumulates_a_cotangent_in_place_under_one_name():
    x, g = Value("x"), Value("g")
    b = Ops()
    z = b(np.zeros_like, x, name="x_bar")
    z1 = b(iadd, z, g, name="x_bar")
    z2 = b(iadd, z1, x, name="x_bar")
    assert _names(func([x, g], b, z2), z, z1, z2) == ["x_bar"] * 3


@pytest.mark.parametrize("view", [np.transpose, np.flip, np.ravel])
def test_namer_does_not_write_into_a_view_of_a_live_cotangent(view):
    x, g = Value("x"), Value("g")
    b = Ops()
    a = b(operator.mul, g, 2.0, name="a_bar")
    t = b(view, a, name="t_bar")
    t2 = b(iadd, t, x, name="t_bar")
    # a_bar is returned after the write: `t_bar += x` would change it too
    assert _names(func([x, g], b, a, t2), a, t, t2) == ["a_bar", "t_bar", "t_bar_1"]
    # once a_bar is dead, the write may reuse its buffer
    b = Ops()
    a = b(operator.mul, g, 2.0, name="a_bar")
    t = b(view, a, name="t_bar")
    t2 = b(iadd, t, x, name="t_bar")
    assert _names(func([x, g], b, t2), t, t2) == ["t_bar", "t_bar"]


def test_namer_never_writes_into_a_parameter_or_a_broadcast():
    x, g = Value("x"), Value("g")
    b = Ops()
    x1 = b(iadd, x, g, name="x")   # the caller's array
    assert _names(func([x, g], b, x1), x, x1) == ["x", "x_1"]
    b = Ops()
    s = b(operator.mul, g, 2.0, name="s")
    bc = b(np.broadcast_to, s, (3,), name="t_bar")   # read-only
    w = b(iadd, bc, x, name="t_bar")
    assert _names(func([x, g], b, w), bc, w) == ["t_bar", "t_bar_1"]


def test_namer_avoids_reserved_names():
    x = Value("x")
    b = Ops()
    y = b(np.exp, x, name="np")
    z = b(np.exp, y, name="x")
    assert _names(func([x], b, z), y, z, reserved={"np"}) == ["np_1", "x_1"]


# ------------------------------------------------------------------ reuse_buffers

def _tanh_gradient(out_bar_kind=FLOAT):
    """The gradient of sum(tanh(x)): x_bar = out_bar * (1.0 - t * t)."""
    x, out_bar = Value("x"), Value("out_bar")
    b = Ops()
    t = b(np.tanh, x, name="_t")
    b(section, "backward", name="_")
    sq = b(operator.mul, t, t, name="_t")
    d = b(operator.sub, 1.0, sq, name="_t")
    g = b(operator.mul, out_bar, d, name="x_bar")
    fn = func([x, out_bar], b, g)
    return fn, {x: VECTOR, out_bar: out_bar_kind, t: VECTOR, sq: VECTOR, d: VECTOR, g: VECTOR}


def test_reuse_buffers_writes_a_chain_into_a_buffer_read_for_the_last_time():
    fn, kinds = _tanh_gradient()
    out = reuse_buffers(fn, Facts(kinds))
    expect(out, """
        func f(%x, %out_bar):
          %_t = np.tanh(%x)
          %_ = section('backward')
          %_t_1 = in_place *(%_t, %_t)
          %_t_2 = in_place r-(%_t_1, 1.0)
          %x_bar = in_place *(%_t_2, %out_bar)
          return %x_bar
    """)
    same_values(fn, out, np.array([0.5, -1.0, 2.0]), 0.5)


def test_reuse_buffers_leaves_what_it_cannot_prove_fresh_and_dead():
    # generic code (no kinds), a kind that is not a float array, a seed that is an array
    # of another origin (its dtype may be wider), a parameter, a value read again later
    fn, kinds = _tanh_gradient(out_bar_kind=VECTOR)
    assert text(reuse_buffers(fn, Facts({}))) == text(fn)
    out = text(reuse_buffers(fn, Facts(kinds)))
    assert "%x_bar = mul(%out_bar, %_t_2)" in out  # out_bar's dtype is not _t's
    x = Value("x")
    b = Ops()
    t = b(np.tanh, x, name="t")
    u = b(operator.mul, x, 2.0, name="u")        # x: the caller's
    v = b(operator.mul, t, 2.0, name="_v")       # t is read again below
    s = b(np.sum, v, name="s")                   # a read that keeps nothing of v
    w = b(operator.add, t, v, name="w")          # t, v: last reads, but t is returned;
    # the temporary _v becomes w's buffer, and takes its name
    fn = func([x], b, w, t, s)
    kinds = {x: VECTOR, t: VECTOR, u: VECTOR, v: VECTOR, w: VECTOR, s: FLOAT}
    out = reuse_buffers(fn, Facts(kinds))
    expect(out, """
        func f(%x):
          %t = np.tanh(%x)
          %u = mul(%x, 2.0)
          %w = mul(%t, 2.0)
          %s = np.sum(%w)
          %w_1 = in_place +(%w, %t)
          return %w_1, %t, %s
    """)
    same_values(fn, out, np.array([0.5, -1.0, 2.0]))


def test_reuse_buffers_keeps_a_taped_or_broadcast_value():
    x, tape = Value("x"), Value("_tape")
    b = Ops()
    t = b(np.exp, x, name="t")
    b(tape_push, tape, t, name="_")
    y = b(operator.mul, t, 3.0, name="y")        # t is on the tape: not written
    s = b(np.exp, x, name="s")
    z = b(operator.add, s, Value("m"), name="z")  # the other operand is of unknown kind
    m = b.ops[-1].args[1]
    fn = Function("f", (x, tape, m), Block((), tuple(b.ops), (y, z)))
    verify(fn)
    kinds = {x: VECTOR, t: VECTOR, y: VECTOR, s: VECTOR, z: VECTOR}
    assert "in_place" not in text(reuse_buffers(fn, Facts(kinds)))
    grown = Kind("ndarray", (2, 3), "f")         # s broadcast to a larger result
    kinds = {x: VECTOR, t: VECTOR, y: VECTOR, s: VECTOR, z: grown, m: grown}
    assert "in_place" not in text(reuse_buffers(fn, Facts(kinds)))
