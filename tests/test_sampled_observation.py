"""Observing a call samples its loops (adjoint/ir/interp.py): a loop body runs observed
until it has learned nothing new SETTLE times in a row, then unobserved, its runs
counted, each value it binds checked to be of the kind observed. The facts must be the
ones a run observing every trip gathers: the same kinds, trip counts, sizes and complex
values, or the observation starts again (Relearn).

The net: every program of the corpus and every enumerated program, observed both ways
with SETTLE = 1 (the most eager sampling), gives the same facts. Then long loops whose
kinds change late, each against central differences."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import adjoint
from adjoint.analysis.shapes import Observed, nbytes, observe
from adjoint.frontend.lower import lower_function
from adjoint.ir import interp
from adjoint.testing import numeric_grad
from tests import test_ir
from tests.test_enumerated import PROGRAMS, load


def _facts(fn, args, sample: bool):
    facts = Observed()
    run = interp.interpret(fn, facts=facts) if sample else \
        interp.interpret(fn, observe=facts.record)
    value = run(*copy.deepcopy(args))
    return facts, value


def _same_facts(fn, args):
    full, want = _facts(fn, args, sample=False)
    try:
        sampled, got = _facts(fn, args, sample=True)
    except interp.Relearn:
        return "relearned"
    np.testing.assert_array_equal(got, want)
    assert sampled.kinds == full.kinds
    assert sampled.counts == full.counts
    assert sampled.bytes == full.bytes
    assert sampled.mixed == full.mixed
    assert sampled.complex_seen == full.complex_seen
    return "sampled"


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setattr(interp, "SETTLE", 1)


@pytest.mark.parametrize("f,args", test_ir.ALL,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(test_ir.ALL)])
def test_sampled_facts_of_the_corpus_are_the_full_ones(eager, f, args):
    _same_facts(lower_function(f), args)


LOOPS = [p for p in PROGRAMS if p.expect_error is None]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("sampled")


@pytest.mark.parametrize("program", LOOPS, ids=[p.name for p in LOOPS])
def test_sampled_facts_of_enumerated_programs_are_the_full_ones(eager, workdir, program):
    module = load(workdir, program.source)
    try:
        fn = lower_function(module.f)
    except adjoint.AdjointError:
        return
    _same_facts(fn, program.args)


# -- long loops whose kinds change late ---------------------------------------------------

def int_then_float_on_the_last_trip(x):
    c = 1
    s = 0.0
    for i in range(len(x)):
        if i == len(x) - 1:
            c = 2.5  # a carried int becomes a float on the last trip only
        s = s + c * x[i] ** 2
    return s


def inner_loop_first_runs_late(x):
    s = 0.0
    for i in range(len(x)):
        for j in range(i - 40):  # runs from trip 41 on, long after the outer settled
            s = s + x[j] * x[i]
        s = s + np.sin(x[i])
    return s


def while_with_a_late_break(x):
    s, i = 0.0, 0
    while i < len(x):
        s = s + np.cos(x[i]) * x[i]
        if s > 1e9 or i == len(x) - 3:
            break
        i += 1
    return s


def list_grown_in_the_loop(x):
    parts = []
    for i in range(len(x)):
        parts.append(x[i] ** 2)  # its kind (length) changes every trip: never settles
    return sum(parts) * np.tanh(x[0])


def view_then_copy(x):
    s = 0.0
    for i in range(len(x) - 1):
        w = x[i:i + 2] if i < 30 else x[i:i + 2] * 1.0  # a view, then a fresh array
        s = s + np.sum(w ** 2)
    return s


def nested_rosenbrock(x):
    s = 0.0
    for k in range(3):
        for i in range(len(x) - 1):
            s = s + (k + 1.0) * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


# a value whose kind changes on a late trip with no new block to run (round 19's S0, S2,
# C1): the unobserved trips check each value's kind, and observe again where one differs


def minibatches_with_a_short_last_one(x):
    s = 0.0
    for b in range(0, len(x), 7):  # 60 = 8 * 7 + 4: np.mean divides by 4 on the last
        s = s + np.mean(np.tanh(x[b:b + 7]) ** 2)
    return s


def batches_listed_short_last(x):
    batches = [x[b:b + 7] for b in range(0, len(x), 7)]
    s = 0.0
    for xb in batches:
        s = s + np.mean(xb * np.sin(xb))
    return s


def while_over_chunks(x):
    s, b = 0.0, 0
    while b < len(x):
        s = s + np.mean((x[b:b + 8] - 0.5) ** 2)
        b += 8
    return s


def window_widened_late(x):
    s = 0.0
    for i in range(len(x) - 3):
        w = x[:1 + 2 * (i // 45)]  # 1 entry until trip 45, then 3: summed, not broadcast
        s = s + np.sum(w * x[i:i + 3]) * (i + 1)
    return s


def moving_average_clipped(x):
    s = 0.0
    for i in range(len(x)):
        s = s + (np.mean(x[i:i + 3]) - 0.5) ** 2  # the last two windows are shorter
    return s


def carried_swap_of_a_new_kind(x):
    s = 0.0
    for i in range(8):
        a, b = (x[0] * 1.0, x[1] * 1.0) if i == 0 else (x[:2] * 1.0, x[2:4] * 1.0)
        t = 0.0
        for j in range(6):  # settled on the first outer trip, unobserved from the second
            c = a  # arrays now: only the carried a and b show it (no op: a swap of names),
            a = b  # np.sum(a) is a float either way
            b = c
            t = t + np.sum(a) * x[j]
        s = s + t
    return s


LATE = [int_then_float_on_the_last_trip, inner_loop_first_runs_late,
        while_with_a_late_break, list_grown_in_the_loop, view_then_copy, nested_rosenbrock,
        minibatches_with_a_short_last_one, batches_listed_short_last, while_over_chunks,
        window_widened_late, moving_average_clipped, carried_swap_of_a_new_kind]


@pytest.mark.parametrize("f", LATE, ids=[f.__name__ for f in LATE])
def test_long_loops_are_right_and_their_facts_are_the_full_ones(tmp_path, f):
    x = np.random.default_rng(3).uniform(0.1, 0.9, 60)
    _same_facts(lower_function(f), (x,))
    g = adjoint.grad(f, cache_dir=tmp_path)
    np.testing.assert_allclose(g(x), numeric_grad(f, (x,)), rtol=1e-6, atol=1e-8)
    y = np.random.default_rng(4).uniform(0.1, 0.9, 60)  # the second call, other data
    np.testing.assert_allclose(g(y), numeric_grad(f, (y,)), rtol=1e-6, atol=1e-8)
    u = np.random.default_rng(5).standard_normal(60)
    want = (g(x + 1e-5 * u) - g(x - 1e-5 * u)) / 2e-5
    np.testing.assert_allclose(adjoint.hvp(f, cache_dir=tmp_path)(x, u), want,
                               rtol=1e-5, atol=1e-6 * np.max(np.abs(want)))


def complex_on_a_late_trip(x):
    acc = 0.0
    for v in x.tolist():
        acc = acc + abs(v ** 0.5)  # Python's float ** 0.5 of a negative v is complex
    return acc


def test_a_value_turning_complex_on_a_late_trip_is_refused(tmp_path):
    x = np.concatenate([np.linspace(1.0, 2.0, 9), [-1.5]])
    with pytest.raises(adjoint.NonDifferentiableError, match="seen complex"):
        adjoint.grad(complex_on_a_late_trip, cache_dir=tmp_path)(x)


def test_a_settled_loop_is_not_observed_trip_by_trip():
    """The point of sampling: a 10,000-trip loop is observed a few trips, and its trip
    counts are still exact."""
    fn = lower_function(nested_rosenbrock)
    seen = []
    facts = Observed()
    record = facts.record
    facts.record = lambda v, x: (seen.append(v), record(v, x))
    x = np.linspace(0.1, 0.9, 10_001)
    value = interp.interpret(fn, facts=facts)(x)
    assert math.isclose(value, nested_rosenbrock(x), rel_tol=1e-12)
    assert len(seen) < 1000
    assert max(facts.counts.values()) == 3 * 10_000


def last_of_a_loop(x):
    m = None  # carried: None, then an array every trip (a mixed kind, known after one)
    s = 0.0
    for i in range(len(x) - 1):
        m = np.maximum(x[i:i + 2], 0.5)
        s = s + np.sum(m)
    return s + np.sum(m)


def test_a_value_of_mixed_kinds_settles_too():
    fn = lower_function(last_of_a_loop)
    seen = []
    facts = Observed()
    record = facts.record
    facts.record = lambda v, x: (seen.append(v), record(v, x))
    x = np.linspace(0.1, 0.9, 5_001)
    assert interp.interpret(fn, facts=facts)(x) == last_of_a_loop(x)
    assert len(seen) < 500
    _same_facts(fn, (x,))


def states_collected(x):
    h, hs = 0.0, []
    for i in range(len(x)):
        h = np.tanh(0.5 * h + x[i])
        hs.append(h)
    return np.sum(np.array(hs) ** 2)


def test_a_list_appended_to_in_a_loop_is_sized_in_constant_time_a_trip(monkeypatch):
    """A list that grows never settles (its size is new every trip): each trip adds the
    appended element's size to the last one's, it does not size the whole list again
    (round 19's P1: 4000 appends took 8 s to observe). The sizes are the full ones."""
    from adjoint.analysis import shapes
    fn, x = lower_function(states_collected), np.linspace(-1.0, 1.0, 2000)
    sized = []
    with monkeypatch.context() as m:
        m.setattr(shapes, "nbytes", lambda x: (sized.append(1), nbytes(x))[1])
        facts = observe(fn, (x,))
    assert len(sized) < 10 * len(x)

    def in_full(self, v, xs):
        if nbytes(xs) > self.bytes.get(v, -1):
            self.bytes[v], self.learned = nbytes(xs), self.learned + 1
    monkeypatch.setattr(Observed, "_grown", in_full)
    assert observe(fn, (x,)).bytes == facts.bytes


def test_a_block_first_run_after_its_loop_settled_observes_again():
    fn = lower_function(int_then_float_on_the_last_trip)
    x = np.linspace(0.1, 0.9, 50)
    with pytest.raises(interp.Relearn):
        interp.interpret(fn, facts=Observed())(x)
    facts = observe(fn, (x,))  # which observe does, every trip
    assert any(k is None for k in facts.kinds.values())  # c: an int, then a float


def test_a_long_elif_chain_is_interpreted(tmp_path):
    """Branches nested deeper than Python's cap on indentation (100 levels) are written
    as functions of their own."""
    n = 150
    text = ("import numpy as np\n\ndef f(x, k):\n    if k == 0:\n        y = x * 0.0\n" +
            "".join(f"    elif k == {i}:\n        y = x * {i}.0\n" for i in range(1, n)) +
            "    else:\n        y = x\n    return np.sum(y ** 2)\n")
    module = load(tmp_path, text)
    fn = lower_function(module.f)
    x = np.array([1.0, 2.0])
    for k in (0, 77, 149, 500):
        assert interp.interpret(fn)(x, k) == module.f(x, k)
    facts = observe(fn, (x, 140))
    assert facts.counts[fn.params[0]] == 1
