"""Checkpoints: the binomial schedule, and gradients under every policy equal the
store-everything gradient to rounding."""
import functools

import numpy as np
import pytest

import adjoint
from adjoint.runtime import checkpoint_plan as plan
from adjoint.testing import numeric_grad
from tests import programs as P

cost = plan.cost


@functools.lru_cache(maxsize=None)
def brute_force(l, s):
    """The optimal recomputation count by dynamic programming over every split."""
    if l <= 1:
        return 0
    if s == 0:
        return l * (l - 1) // 2
    return min(m + brute_force(l - m, s - 1) + brute_force(m, s) for m in range(1, l))


@pytest.mark.parametrize("s", range(6))
def test_closed_form_cost_is_the_optimum(s):
    assert [cost(l, s) for l in range(1, 60)] == [brute_force(l, s) for l in range(1, 60)]


@pytest.mark.parametrize("s", range(1, 6))
def test_closed_form_split_is_the_first_best_split(s):
    for l in range(2, 60):
        totals = [m + brute_force(l - m, s - 1) + brute_force(m, s) for m in range(1, l)]
        assert plan.split(l, s) == 1 + totals.index(min(totals)), l


def reference_plan(n, k):
    """The schedule as it was built before it was made online (a list of every action),
    with the best split found by brute force: (stored, backward actions)."""
    actions, todo, in_hand = [], [("run", 0, n, k - 1)] if n else [], True
    while todo:
        item = todo.pop()
        if item[0] == "free":
            actions.append(item)
            continue
        _, start, end, s = item
        if not in_hand:
            actions.append(("restore", start))
        in_hand = True
        if end - start == 1:
            actions.append(("reverse", start))
            in_hand = False
            continue
        if s == 0:
            for i in range(end - 1, start - 1, -1):
                if not in_hand:
                    actions.append(("restore", start))
                if i > start:
                    actions.append(("advance", start, i))
                actions.append(("reverse", i))
                in_hand = False
            continue
        totals = [m + brute_force(end - start - m, s - 1) + brute_force(m, s)
                  for m in range(1, end - start)]
        m = start + 1 + totals.index(min(totals))
        actions += [("advance", start, m), ("store", m)]
        todo += [("run", start, m, s), ("free", m), ("run", m, end, s - 1)]
    first = next((k for k, a in enumerate(actions) if a[0] == "reverse"), len(actions))
    stored = {a[1] for a in actions[:first] if a[0] == "store"} | ({0, n - 1} if n else set())
    backward = [("restore", n - 1)] + actions[first:] if n else []
    return stored, [a + (0,) * (3 - len(a)) for a in backward]


def test_the_online_schedule_makes_the_same_actions_as_the_list_it_replaces():
    for k in range(1, 7):
        for n in range(61):
            stored, backward = reference_plan(n, k)
            p = plan(n, k)
            assert p.stored == stored and list(p.actions()) == backward, (n, k)


def simulate(n, k):
    """Run a plan on fake states (the state before step i is i); return the advances,
    the largest number of schedule snapshots held (the state the forward sweep keeps
    before the last step aside) and the largest number of states held in all."""
    p = plan(n, k)
    snaps = {i: i for i in p.stored}
    extra = {n - 1} if n and all(i != n - 1 for i in p.stored - {n - 1}) else set()
    ckpt = snaps.keys() - extra
    peak, peak_all, state, order, advanced = len(ckpt), len(snaps), None, [], 0
    for what, i, j in p.actions():
        if what == "advance":
            assert state == i
            state, advanced = j, advanced + j - i
        elif what == "store":
            snaps[i] = state
            ckpt = snaps.keys() - extra
            peak, peak_all = max(peak, len(ckpt)), max(peak_all, len(snaps))
        elif what == "restore":
            state = snaps[i]
        elif what == "free":
            del snaps[i]
        else:
            assert state == i, "the adjoint of step i needs the state before step i"
            order.append(i)
            state = None
    assert order == list(range(n - 1, -1, -1))
    return advanced, peak, peak_all


@pytest.mark.parametrize("n", [0, 1, 2, 3, 9, 10, 11, 100, 1000])
@pytest.mark.parametrize("k", [1, 2, 3, 10, 32])
def test_plans_reverse_every_step_with_optimal_recomputation(n, k):
    advanced, peak, peak_all = simulate(n, k)
    assert advanced == plan(n, k).recomputed
    if n:
        # the forward sweep is the first n - 1 advances of the optimal schedule
        assert advanced == cost(n, k - 1) - (n - 1)
    assert peak <= k and peak_all <= k + 1  # k snapshots, and the state before the last step
    assert len(plan(n, k).stored) <= k + 1


def test_the_schedule_holds_o_k_memory():
    import tracemalloc

    def held(n, k):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        count = sum(1 for _ in plan(n, k).actions())
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        return peak, count
    small, big = held(1000, 10), held(100_000, 10)
    assert big[1] > 50 * small[1]  # a hundred times the steps, ...
    assert big[0] < 2 * small[0] + 2000 and big[0] < 20_000  # ... the same few bytes


def test_the_runtime_and_a_standalone_checkpointed_gradient_import_nothing_of_adjoint(tmp_path):
    import ast
    import subprocess
    import sys
    from pathlib import Path
    tree = ast.parse(Path(adjoint.runtime.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names]
            assert not any(n.split(".")[0] == "adjoint" for n in names), ast.dump(node)
    xs, h0 = R.normal(size=(9, 4)), R.normal(size=4)
    src = adjoint.source(P.rnn_checkpointed, args=(W, xs, h0, 3), standalone=True)
    (tmp_path / "gen.py").write_text(src)
    np.savez(tmp_path / "args.npz", W=W, xs=xs, h0=h0)
    run = ("import sys, numpy as np\n"
           "class Refuse:\n"
           "    def find_spec(self, name, *a):\n"
           "        if name.split('.')[0] == 'adjoint': raise ImportError(name)\n"
           "sys.meta_path.insert(0, Refuse())\n"
           "import gen\n"
           "a = np.load('args.npz')\n"
           "fn = [v for k, v in vars(gen).items() if k.endswith('_grad') and 'step' not in k][0]\n"
           "np.save('out.npy', fn(a['W'], a['xs'], a['h0'], 3))\n")
    subprocess.run([sys.executable, "-c", run], cwd=tmp_path, check=True)
    want = adjoint.grad(P.rnn_checkpointed)(W, xs, h0, 3)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, rtol=1e-12, atol=1e-14)


def rnn(W, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + xs[t])
    return np.sum(h * h)


R = np.random.default_rng(3)
W = R.normal(size=(4, 4)) * 0.5


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 30])
@pytest.mark.parametrize("policy", [1, 3, {"snapshots": 4}, {"budget": 200}])
def test_checkpointed_loops_match_store_all(n, policy):
    xs, h0 = R.normal(size=(n, 4)), R.normal(size=4)
    want = adjoint.grad(rnn, wrt=(0, 1, 2))(W, xs, h0)
    got = adjoint.grad(rnn, wrt=(0, 1, 2), checkpoint=policy)(W, xs, h0)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("f,args", [
    (P.nested_loops, (R.normal(size=(3, 4)),)),
    (P.inside, (R.random(5) + 0.5,)),
    (P.fill, (R.normal(size=6),)),
    (P.checkpointed_decorator, (R.normal(size=3), R.normal(size=(3, 3)))),
])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_policies_on_nested_loops_writes_and_calls(f, args, k):
    want = adjoint.grad(f)(*args)
    got = adjoint.grad(f, checkpoint=k)(*args)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def recurrence_in_place(a, x):
    y = x * 1.0
    for i in range(x.shape[0] - 1):
        y[i + 1] = y[i + 1] * a + y[i]
    return np.sum(y * y)


def smoothing_in_place(a, x):
    y = x * 1.0
    for i in range(4):
        y[:] = np.sin(y) * a
        y[1:3] += y[0:2] * 0.5
    return np.sum(y * y)


def constant_loop(a, n):
    s = np.tanh(-0.5)
    for i in range(n):
        s = s
    return s * a


@pytest.mark.parametrize("f", [recurrence_in_place, smoothing_in_place])
@pytest.mark.parametrize("policy", [1, 2, 3, {"budget": 112}])
def test_snapshots_of_an_array_written_in_place_are_copies(f, policy):
    # a kept reference would change with the next write: a wrong gradient, not an error
    from adjoint.testing import numeric_grad
    x = np.array([0.3, -0.2, 0.5, 0.9])
    got = adjoint.grad(f, wrt=(0, 1), checkpoint=policy)(0.8, x)
    for a, b in zip(got, numeric_grad(f, (0.8, x), wrt=(0, 1))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def shared_seed(a, b, x, n):
    s0 = 3.0 / (1.0 + a * a)
    s2 = x * 1.0
    for i in range(n):
        s2 = s2 + 0.1 * np.tanh(s0) + 0.2 * np.sin(b)
    return s0 + np.sum(s2) + b  # s0 and b start with the same cotangent


@pytest.mark.parametrize("policy", [1, 2, 5])
def test_accumulators_that_start_from_one_cotangent_stay_apart(policy):
    # the step gradient adds into its accumulators in place: each gets its own buffer
    args = (0.3, 0.77, np.array([1.3, 1.5, -0.02]), 4)
    want = adjoint.grad(shared_seed, wrt=(0, 1))(*args)
    np.testing.assert_allclose(adjoint.grad(shared_seed, wrt=(0, 1), checkpoint=policy)(*args),
                               want, rtol=1e-12)


def zero_state_rnn(x):
    h = np.zeros_like(x)  # the state starts as zeros shaped like x, as x_bar does
    for v in x:
        h = np.tanh(h * 0.5 + v * x)
    return np.sum(h ** 2)


def zero_state_pair(x):
    a, b = np.zeros_like(x), np.zeros_like(x)
    for v in x:
        a = np.tanh(a + v * b + v)
        b = np.sin(b - a * v)
    return np.sum(a ** 2 + b)


@pytest.mark.parametrize("f", [zero_state_rnn, zero_state_pair])
@pytest.mark.parametrize("policy", [1, 2, {"snapshots": 4}, {"budget": 400}])
def test_a_state_and_an_accumulator_made_alike_stay_apart(f, policy):
    # round 18's S1: CSE made the loop's zeros_like(x) and x_bar's one buffer, so the
    # step gradient's `x_bar += ...` wrote into snapshot 0 (the write is in the step
    # gradient, a function of its own, which written_arrays did not look into)
    x = np.array([0.7, -1.3, 0.4, 1.1, -0.6])
    want = numeric_grad(f, (x,))
    np.testing.assert_allclose(adjoint.grad(f)(x), want, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(adjoint.grad(f, checkpoint=policy)(x), want, rtol=1e-6, atol=1e-9)


def _cell(h, w):
    return np.tanh(w * h + 0.3)


def zero_state_marked(x):
    h = np.zeros_like(x)
    for _ in range(3):
        h = adjoint.checkpoint(_cell)(h, x)
    return np.sum(h ** 2)


@pytest.mark.parametrize("f", [zero_state_rnn, zero_state_pair, zero_state_marked])
def test_a_state_and_an_accumulator_made_alike_stay_apart_in_an_hvp(f):
    # round 22's F1: differentiated again, the reverse sweep's x_bar = zeros_like(x) and
    # the state's were made one buffer (CSE did not count `x_bar += c` as a write), and
    # a nested loop's `+=` was not seen by privatize: x_bar's adds wrote into the state
    x = np.array([0.5, -0.7, 1.2, 0.3])
    v = np.array([1.0, 0.5, -0.3, 0.8])
    g, eps = adjoint.grad(f), 1e-5
    np.testing.assert_allclose(g(x), numeric_grad(f, (x,)), rtol=1e-6, atol=1e-9)
    want = (g(x + eps * v) - g(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(adjoint.hvp(f)(x, v), want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(adjoint.hessian(f)(x) @ v, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("policy", [1, 2, {"budget": 16}])
def test_a_loop_whose_body_folds_away_can_be_checkpointed(policy):
    assert adjoint.grad(constant_loop, checkpoint=policy)(0.8, 3) == np.tanh(-0.5)


def test_marked_loop_and_calls_match_finite_differences():
    from adjoint.testing import check_grad
    check_grad(P.rnn_checkpointed, W, R.normal(size=(7, 4)), R.normal(size=4), 3, wrt=(0, 1, 2))
    check_grad(P.checkpointed_call, R.normal(size=3), R.normal(size=(3, 3)), wrt=(0, 1))
    check_grad(P.checkpointed_decorator, R.normal(size=3), R.normal(size=(3, 3)), wrt=(0, 1))


def test_checkpointed_code_shows_the_plan():
    src = adjoint.source(P.rnn_checkpointed, 0, args=(W, R.normal(size=(7, 4)),
                                                       R.normal(size=4), 3))
    for text in ("_plan = checkpoint_plan(len(_range), 3)", "if _k in _plan.stored:",
                 "elif _what == 'restore':", "def rnn_checkpointed_step_", "_snaps[_i] = h"):
        assert text in src
    call = adjoint.source(P.checkpointed_call, 0, args=(R.normal(size=3), R.normal(size=(3, 3))))
    assert "# checkpointed call of _layer" in call
    assert "_tape" not in call  # nothing of the call's inside is kept


def test_markers_are_plain_outside_differentiation():
    assert list(adjoint.checkpointed(range(3), snapshots=2)) == [0, 1, 2]
    x, Wm = R.normal(size=3), R.normal(size=(3, 3))
    assert np.allclose(adjoint.checkpoint(P._layer)(x, Wm), P._layer(x, Wm))
    with pytest.raises(ValueError):
        adjoint.checkpointed(range(3))


def test_memory_report_counts_tape_copies_and_snapshots():
    n = 50
    xs, h0 = R.normal(size=(n, 4)), R.normal(size=4)
    stored = adjoint.memory(rnn, W, xs, h0)
    taped = [e for e in stored.entries if e.how == "tape"]
    assert [(e.name, e.copies, e.bytes_each) for e in taped] == [("h", n, h0.nbytes)]
    checkpointed = adjoint.memory(rnn, W, xs, h0, checkpoint=5)
    snaps = [e for e in checkpointed.entries if e.how == "snapshot"]
    assert [(e.name, e.copies) for e in snaps] == [("h", 6)]
    assert checkpointed.total < stored.total / 5
    assert "tape" in str(stored) and "total" in str(stored)


def test_the_policy_stores_a_loop_whose_tape_is_smaller_than_its_snapshots():
    # one number taped per step against snapshots of the whole array: stored
    x = np.linspace(0.1, 1.0, 50)
    src = adjoint.source(P.cell_recurrence, checkpoint=4, args=(x,))
    assert "checkpoint_plan" not in src and "_tape.append(" in src
    from adjoint.testing import numeric_grad
    np.testing.assert_allclose(adjoint.grad(P.cell_recurrence, checkpoint=4)(x),
                               numeric_grad(P.cell_recurrence, (x,)), rtol=1e-6, atol=1e-9)
    # an RNN tapes a state-sized vector per step: checkpointed
    xs, h0 = R.normal(size=(40, 4)), R.normal(size=4)
    assert "checkpoint_plan" in adjoint.source(rnn, checkpoint=4, args=(W, xs, h0))
    # a loop the user marks is checkpointed whatever it costs
    assert "checkpoint_plan" in adjoint.source(P.rnn_checkpointed, args=(W, xs, h0, 3))


def nested_policy_loops(a, b, x, M, n):  # found by the property tests, as generated
    s0 = (-x)
    s1 = (a + a)
    s2 = (a + a)
    for i0 in range(n):
        s0 = np.tanh((x + a))
        s0 = np.tanh((x + a))
        s0 = np.tanh((x + a))
        for i1 in range(n):
            s1 = np.tanh((a + a))
    return np.sum(s0) + s1 + s2 + (-(a + a))


@pytest.mark.parametrize("policy", [1, 2, {"budget": 96}, {"budget": 10**6}])
@pytest.mark.parametrize("n", [0, 1, 3])
def test_the_cost_model_weighs_nested_loops_without_leaving_traces(policy, n, tmp_path):
    # an inner loop's trial that is undone must not leave values on the outer loop's tape
    # (each case compiles afresh: the trip counts it observes decide the trials)
    args = (0.0, 0.0, np.zeros(3), np.zeros((2, 3)), n)
    got = adjoint.grad(nested_policy_loops, wrt=(0, 1, 2, 3), checkpoint=policy,
                       cache_dir=tmp_path)(*args)
    want = adjoint.grad(nested_policy_loops, wrt=(0, 1, 2, 3))(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_step_gradients_hand_their_outer_products_to_a_buffer():
    # one np.outer per reversed step costs more than the step; a few stacked into one
    # matrix product at a time cost a fraction (runtime.outer_sum keeps at most 16)
    xs, h0 = R.normal(size=(40, 4)), R.normal(size=4)
    src = adjoint.source(rnn, checkpoint=4, args=(W, xs, h0))
    assert "np.outer" not in src and "outer_add(W_bar, " in src
    assert "W_bar = outer_sum(" in src and "W_bar = outer_total(W_bar)" in src
    want = adjoint.grad(rnn, wrt=(0, 1, 2))(W, xs, h0)
    for a, b in zip(adjoint.grad(rnn, wrt=(0, 1, 2), checkpoint=4)(W, xs, h0), want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def two_checkpointed_loops(W, xs, h0):
    h = h0
    for t in adjoint.checkpointed(range(xs.shape[0]), snapshots=2):
        h = np.tanh(W @ h + xs[t])
    g = h
    for t in adjoint.checkpointed(range(xs.shape[0]), snapshots=7):
        g = np.sin(W @ g)
    return np.sum(g * h)


def test_memory_report_counts_each_loops_own_snapshots():
    # each loop holds its own k + 1 states (the first loop's k was taken for every loop)
    xs, h0 = R.normal(size=(30, 4)), R.normal(size=4)
    report = adjoint.memory(two_checkpointed_loops, W, xs, h0)
    snaps = [(e.name, e.copies) for e in report.entries if e.how == "snapshot"]
    assert snaps == [("h", 3), ("g", 8)]
    from adjoint.testing import check_grad
    check_grad(two_checkpointed_loops, W, xs, h0, wrt=(0, 1, 2))


def two_loops_one_plan(a, x):
    s = a * 1.0
    for t in adjoint.checkpointed(range(x.shape[0]), snapshots=3):
        s = s + 0.3 * np.sin(s * x[t])
    for t in adjoint.checkpointed(range(x.shape[0]), snapshots=3):
        s = s * np.cos(0.2 * x[t]) + 0.1 * s * s
    return s


@pytest.mark.parametrize("policy", [None, 3])
def test_loops_that_share_a_plan_each_get_every_action(policy):
    # the two loops' plans are the same value and are merged into one; the actions are
    # made one at a time, so each backward loop must make them afresh (the second loop
    # once found them used up: a zero gradient)
    from adjoint.testing import numeric_grad
    x = np.array([0.4, -0.3, 0.8, 0.1, 0.5])
    got = adjoint.grad(two_loops_one_plan, wrt=(0, 1), checkpoint=policy)(0.7, x)
    for g, w in zip(got, numeric_grad(two_loops_one_plan, (0.7, x), wrt=(0, 1))):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9)


def test_a_budget_holds_the_plan_or_says_the_least_that_would(tmp_path):
    # the forward sweep keeps up to snapshots + 1 states and the final one: all in budget
    # (it was read as `snapshots` states, and the plan kept about twice the budget)
    from adjoint.ad.schedule import snapshots_for_budget
    assert snapshots_for_budget(10 * 80, 80) == 8
    xs, h0 = R.normal(size=(20, 4)), R.normal(size=4)
    state = 4 * 8
    with pytest.raises(adjoint.AdjointError, match="checkpoint budget") as e:
        adjoint.grad(rnn, checkpoint={"budget": state + 7}, cache_dir=tmp_path)(W, xs, h0)
    assert e.value.loc is not None and f"at least {3 * state} bytes" in e.value.hint
    got = adjoint.grad(rnn, checkpoint={"budget": 3 * state}, cache_dir=tmp_path)(W, xs, h0)
    np.testing.assert_allclose(got, adjoint.grad(rnn)(W, xs, h0), rtol=1e-12)


def short_rnn(x):
    h = np.zeros(5)
    for t in adjoint.checkpointed(range(5), snapshots=2):
        h = np.tanh(h * 0.5 + x[t] * x)
    return h[:2]


def test_a_checkpointed_pullback_can_be_called_again_and_a_jacobian_taken():
    # round 18's C2: the backward sweep frees the plan's snapshots, and the pullback's
    # second call found them gone (KeyError); jacobian pulls back once per output
    x = np.array([0.7, -1.3, 0.4, 1.1, -0.6])
    _, pullback = adjoint.vjp(short_rnn, x)
    first, second = pullback(np.array([1.0, 0.0])), pullback(np.array([0.0, 1.0]))
    rows = np.stack([numeric_grad(lambda y: short_rnn(y)[k], (x,)) for k in (0, 1)])
    np.testing.assert_allclose(np.stack([first, second]), rows, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(adjoint.jacobian(short_rnn)(x), rows, rtol=1e-6, atol=1e-9)
