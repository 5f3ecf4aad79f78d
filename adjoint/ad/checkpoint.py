"""The reverse sweep of checkpointed regions: recompute instead of store.

A checkpointed loop's body becomes a *step function* `f_step(t, *state, *invariants)`
and its adjoint `f_step_grad(t, *state, *invariants, *state_bar, *invariant_bars)`,
both written into the generated module. The forward sweep runs the loop as
usual, keeping a snapshot of the state at the steps the binomial plan names
(`_k in _plan.stored`, a set of at most k + 1 steps);
the backward sweep follows the plan's actions in plain sight:

    for _what, _i, _j in plan_actions(_plan):   # made one at a time, O(k) state
        if _what == 'advance':              # recompute steps _i .. _j - 1
            for _k in range(_i, _j):
                h = f_step(_range[_k], h, W, xs)
        elif _what == 'store':              # keep a snapshot
            _snaps[_i] = h
        elif _what == 'restore':            # go back to one
            h = _snaps[_i]
        elif _what == 'free':
            del _snaps[_i]
        else:                               # the adjoint of step _i
            h_bar, W_bar = f_step_grad(_range[_i], h, W, xs, h_bar, W_bar)

A checkpointed call is a region that runs once: the forward sweep runs it
inline and keeps nothing of its inside; the backward sweep calls its step
gradient, which runs the call's forward again before its adjoint.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import numpy as np

from adjoint import runtime
from adjoint.ad.instrument import Instrumented, cotangent_base
from adjoint.errors import AdjointError
from adjoint.rules import registry
from adjoint.rules.registry import prim_of
from adjoint.ir.core import Block, Call, Const, For, Function, If, Prim, Value, defined, \
    free_operands, walk_ops

_steps = 0

DRAW_HINT = ("draw the random numbers outside the region and pass them in (a mask argument "
             "of the step, or an array of masks indexed by the loop's counter)")


def first_draw(block: Block):
    """The first call in `block` (or its nested regions) that may give another value when
    run again: a call lowering marked impure (np.random.*, random.random, any callable
    adjoint does not know) that is not `deterministic`. adjoint's own impure ops (asserts,
    tapes) are deterministic."""
    for op in walk_ops(block):
        if isinstance(op, Call) and not registry.pure(op) and not deterministic(op) and \
                not (getattr(op.prim.fn, "__module__", None) or "").startswith("adjoint."):
            return op
    return None


# Libraries whose functions give the same value whenever they are called on the same
# arguments (np.triu_indices, np.vander, math.comb): running one again in a recomputed
# region or a Hessian's row draws nothing new. Not np.random (a generator's state),
# nor what reads files or changes settings; nor random, secrets, time or os.
_SAME_EACH_CALL = ("numpy", "math", "cmath", "operator", "_operator")
_NUMPY_STATE = frozenset({
    "load", "loadtxt", "genfromtxt", "fromfile", "fromregex", "save", "savez",
    "savez_compressed", "savetxt", "seterr", "seterrcall", "setbufsize",
    "set_printoptions"})
# builtins without a rule that compute from their arguments alone (not next, id,
# input, open, print, getattr, which may run a property, nor eval)
_PLAIN_BUILTINS = frozenset({
    "str", "repr", "ascii", "format", "all", "any", "bin", "chr", "hex", "oct", "ord",
    "divmod", "sorted", "callable", "issubclass", "hash"})
# values a deterministic function may be given: numbers, strings, arrays and their
# containers (a user object's method could draw)
_DATA = (int, float, complex, bool, str, bytes, type(None), range, np.ndarray, np.generic)


def deterministic(op: Call) -> bool:
    """Whether `op` calls a library function (not a user's callable) whose result is the
    same each time it runs on the same arguments, and gives it only data."""
    fn = op.prim.fn
    if isinstance(fn, type) and (hasattr(fn, "_fields") or hasattr(fn, "__dataclass_fields__")):
        return True  # a namedtuple or dataclass f builds (lowering checked it only stores)
    owner = getattr(fn, "__self__", None)
    module = getattr(fn, "__module__", None) or ""
    if isinstance(owner, np.ufunc):  # np.add.outer, np.maximum.reduce
        module = "numpy"
    elif owner is not None and not isinstance(owner, type(np)):  # a bound method
        return False
    top = module.split(".")[0]
    if top == "builtins":
        known = getattr(fn, "__name__", "") in _PLAIN_BUILTINS
    else:
        known = top in _SAME_EACH_CALL and not module.startswith("numpy.random") and \
            not (top == "numpy" and getattr(fn, "__name__", "") in _NUMPY_STATE)
    return known and all(_data(o.value) for o in op.operands if not isinstance(o, Value))


def _data(v) -> bool:
    if isinstance(v, (list, tuple)):
        return all(_data(e) for e in v)
    if isinstance(v, dict):
        return all(_data(e) for e in v.values())
    if isinstance(v, type):  # a dtype given as a type: np.float64, int
        return v in (int, float, complex, bool) or issubclass(v, np.generic)
    return isinstance(v, (_DATA, slice, np.dtype))


def _refuse_draws(op: For) -> None:
    """A checkpointed region is run again in the reverse sweep: a draw inside it would
    give the gradient of other random numbers than the forward sweep used."""
    draw = first_draw(op.body)
    if draw is None:
        return
    what = "checkpointed call" if op.checkpoint[0] == "call" else "checkpointed loop"
    at = f" at line {op.loc.line}" if op.loc else ""
    raise AdjointError(f"`{draw.prim.name}` may draw other values when the {what}{at} is "
                       f"recomputed in the reverse sweep; its gradient would be the derivative "
                       f"of another draw", draw.loc or op.loc, DRAW_HINT)


@dataclass
class _Steps:
    """A checkpointed region's step function and step gradient, as the reverse sweep
    calls them: which of the loop's carried values (`slots`) and which free values read
    inside (`accs`) carry cotangents, and which accumulators take outer-product buffers."""

    args: list        # the loop's carried values, as the body names them
    free: list        # what the body reads from outside
    slots: list       # positions in `args` whose cotangents flow
    accs: list        # free values with cotangents (accumulated over the steps)
    buffered: set     # positions in `accs` that take an outer_sum buffer
    call_step: Prim
    call_grad: Prim


def reverse_checkpointed(R, op: For, adj: dict) -> None:
    """The reverse of checkpointed region `op` inside Reverse `R` (see the module's
    docstring): its step function and step gradient join R's extra functions; a call
    becomes one call of the step gradient; a loop keeps the plan's snapshots in the
    forward sweep and follows the plan's actions in the backward sweep."""
    _refuse_draws(op)
    steps = _step_functions(R, op)
    R.loc = op.loc
    seeds = [adj.pop(op.results[k]) if op.results[k] in adj else R.zero(op.results[k])
             for k in steps.slots]
    acc_inits = [_accumulator(R, adj, u, k in steps.buffered) for k, u in enumerate(steps.accs)]
    for r in op.results:
        adj.pop(r, None)
    free_r = [R.read(u) for u in steps.free]
    if op.checkpoint[0] == "call":
        outs = _call(R, steps.call_grad, (Const(0), *(Const(None) for _ in steps.args), *free_r,
                                          *seeds, *acc_inits),
                     len(steps.accs), [f"{cotangent_base(u)}_bar" for u in steps.accs])
        for u, r in zip(steps.accs, outs):
            adj[u] = r
        return
    plan, snaps = _keep_snapshots(R, op, steps.args)
    results = _follow_plan(R, op, steps, plan, snaps, seeds, acc_inits, free_r)
    n_args, n_slots = len(steps.args), len(steps.slots)
    for k, (u, r) in enumerate(zip(steps.accs, results[n_args + n_slots:])):
        adj[u] = R.emit(prim_of(runtime.outer_total), (r,), r.name) if k in steps.buffered else r
    for k, r in zip(steps.slots, results[n_args:n_args + n_slots]):
        R.accumulate(adj, op.inits[k], r)


def _step_functions(R, op: For) -> _Steps:
    """The loop's body as `f_step(t, *state, *free)` and its gradient, a Reverse of the
    step with respect to the state that carries cotangents and the free values read."""
    kind = op.checkpoint[0]
    target, args = op.body.args[0], list(op.body.args[1:])
    free = free_operands(op.body, defined(op.body) | set(op.body.args))
    slots = [k for k, a in enumerate(args)
             if a in R.active or op.results[k] in R.active or op.body.results[k] in R.active]
    accs = [u for u in free if u in R.active]
    name = _step_name(R.fn.name, op)
    step = Function(name, (target, *args, *free), Block((), op.body.ops, op.body.results),
                    op.loc, (), f"One step of the loop at line {op.loc.line}." if op.loc else "")
    acc_index = [1 + len(args) + free.index(u) for u in accs]
    wrt = tuple(acc_index) if kind == "call" else tuple(1 + k for k in slots) + tuple(acc_index)
    inner = type(R)(step, wrt, R.facts)  # a Reverse of the step function
    step_grad = inner.run_step(f"{name}_grad", slots, acc_index)
    buffered = set()
    if kind != "call":  # a loop: its steps' outer products are added a few at a time
        step_grad, buffered = _buffer_outer_products(step_grad, step_grad.params[-len(accs):]
                                                     if accs else ())
    R.extra_functions += [step, step_grad] + inner.extra_functions
    return _Steps(args, free, slots, accs, buffered, Prim(step.name, None),
                  Prim(step_grad.name, None))


def _accumulator(R, adj: dict, u: Value, buffered: bool) -> Value:
    """The initial cotangent of free value `u`, which the step gradient adds into in
    place: a buffer of its own (an outer_sum is one already: it adds into a new matrix)."""
    if buffered:
        return R.emit(prim_of(runtime.outer_sum), (adj[u] if u in adj else R.zero(u),),
                      f"{cotangent_base(u)}_bar")
    return R.emit(prim_of(runtime.private), (adj[u],), f"{cotangent_base(u)}_bar") if u in adj \
        else R.zero(u)


def _keep_snapshots(R, op: For, args: list) -> tuple[Value, Value]:
    """Instrument the forward sweep: count the loop's steps, make the plan, and keep a
    snapshot of the state before each step the plan names. Returns (plan, snapshots)."""
    n, plan, snaps = Value("_n"), Value("_plan"), Value("_snaps")
    k = _snapshots(op, args, R.facts)
    before = [Call(prim_of(len), (op.iter,), n, (), op.loc),
              Call(prim_of(runtime.checkpoint_plan), (n, Const(k)), plan, (), op.loc),
              Call(prim_of(runtime.snapshots_new), (), snaps, (), op.loc)]
    if R.region.kind != "top":
        R.region.defined.update((plan, snaps))
    counter, counter_next, keep = Value("_k"), Value("_k"), Value("_c")
    body = op.body
    # an array the loop writes in place is snapshotted as a copy: the next write
    # would change a kept reference too
    copies = [Call(prim_of(runtime.private), (a,), Value("_t"), (), None)
              for a in args if a in R.written]
    kept = iter(c.result for c in copies)
    state_now = [next(kept) if a in R.written else a for a in args]
    store_ops = (Call(prim_of(runtime.plan_stores), (plan, counter), keep, (), None),
                 If(keep, Block((), tuple(copies) + (
                     Call(prim_of(runtime.snap_store), (snaps, counter, *state_now), Value("_"),
                          (), None),), ()),
                    Block((), (), ()), (), None))
    inc = Call(prim_of(operator.add), (counter, Const(1)), counter_next, (), None)
    ops = body.ops + (inc,) if body.ops else store_ops + (inc,)  # an empty body: no op to precede
    fwd = For(op.iter, op.inits + (Const(0),),
              Block(body.args + (counter,), ops, body.results + (counter_next,)),
              op.results + (Value("_k"),), op.loc, checkpoint=op.checkpoint)
    ins = R.instrument.setdefault(op, Instrumented())
    ins.before += before
    ins.op = fwd
    if body.ops:
        R.instrument.setdefault(body.ops[0], Instrumented()).before[:0] = list(store_ops)
    return plan, snaps


def _follow_plan(R, op: For, steps: _Steps, plan: Value, snaps: Value, seeds: list,
                 acc_inits: list, free_r: list) -> tuple:
    """The backward sweep: a loop over the plan's actions whose body is an if/elif on
    the action (advance, store, restore, free, or reverse one step). Returns the loop's
    results: the state, then the slots' cotangents, then the accumulators."""
    args, slots, accs = steps.args, steps.slots, steps.accs
    target = op.body.args[0]
    iterable = R.read(op.iter)
    loop_loc, R.loc = op.loc, None  # the plan's machinery gets no source comments
    plan_r, snaps_r = R.read(plan), R.read(snaps)
    actions = R.emit(prim_of(runtime.plan_actions), (plan_r,), "_actions")
    action = Value("_action")
    state = [Value(a.name) for a in args]
    bars = [Value(f"{cotangent_base(args[k])}_bar") for k in slots]
    accs_in = [Value(f"{cotangent_base(u)}_bar") for u in accs]
    carried = state + bars + accs_in
    saved_ops = R.ops
    R.ops = []
    what = R.emit(prim_of(operator.getitem), (action, Const(0)), "_what")
    i = R.emit(prim_of(operator.getitem), (action, Const(1)), "_i")
    j = R.emit(prim_of(operator.getitem), (action, Const(2)), "_j")
    head = R.ops

    def branch(build) -> Block:
        R.ops = []
        out = build()
        return Block((), tuple(R.ops), tuple(out))

    def advance():
        kk = Value("_k")
        inner_state = [Value(a.name) for a in args]
        R.ops = []
        t = R.emit(prim_of(operator.getitem), (iterable, kk), target.name)
        nxt = _call(R, steps.call_step, (t, *inner_state, *free_r), len(args),
                    [a.name for a in args])
        loop_body = Block((kk, *inner_state), tuple(R.ops), tuple(nxt))
        R.ops = []
        trips = R.emit(prim_of(range), (i, j), "_steps")
        results = tuple(Value(a.name) for a in args)
        R.ops.append(For(trips, tuple(state), loop_body, results, None))
        return list(results) + bars + accs_in

    def store():
        R.ops.append(Call(prim_of(runtime.snap_store), (snaps_r, i, *state), Value("_"), (),
                          None))
        return carried

    def restore():
        loaded = _call(R, prim_of(runtime.snap_load), (snaps_r, i),
                       len(args), [a.name for a in args])
        return list(loaded) + bars + accs_in

    def free_():
        R.ops.append(Call(prim_of(runtime.snap_free), (snaps_r, i), Value("_"), (), None))
        return carried

    def reverse_step():
        t = R.emit(prim_of(operator.getitem), (iterable, i), target.name)
        got = _call(R, steps.call_grad, (t, *state, *free_r, *bars, *accs_in),
                    len(slots) + len(accs), [b.name for b in bars + accs_in])
        return state + list(got)

    chain = branch(reverse_step)  # if/elif on the action, built from the last branch up
    for word, build in (("free", free_), ("restore", restore), ("store", store),
                        ("advance", advance)):
        R.ops = []
        test = R.emit(prim_of(operator.eq), (what, Const(word)), "_c")
        test_ops = tuple(R.ops)
        outs = tuple(Value(v.name) for v in carried)
        then = branch(build)
        chain = Block((), test_ops + (If(test, then, chain, outs, None),), outs)
    R.ops, R.loc = saved_ops, loop_loc
    results = tuple(Value(v.name) for v in carried)
    R.ops.append(For(actions, tuple([Const(None)] * len(args) + seeds + acc_inits),
                     Block((action, *carried), tuple(head) + chain.ops, chain.results), results,
                     op.loc))
    return results


def _buffer_outer_products(fn: Function, accs) -> tuple[Function, set]:
    """A step gradient whose accumulator only ever gains outer products (`W_bar +=
    np.outer(z_bar, h)`, or sums of them) takes an `outer_sum` buffer instead of the
    matrix and hands it the vectors: `W_bar = outer_add(W_bar, z_bar, h)`. Returns the
    new function and the positions (among `accs`) of the accumulators so changed."""
    from adjoint.ir.core import uses
    from adjoint.passes.batch import outer_terms
    from adjoint.rules.tape import iadd
    ops = [o for o in fn.body.ops if isinstance(o, Call)]
    if len(ops) != len(fn.body.ops):
        return fn, set()  # a region op may read an accumulator: keep the simple form
    defs = {o.result: o for o in ops}
    counts = uses(fn.body)
    user = {a: o for o in ops for a in o.args if isinstance(a, Value)}
    returned = list(fn.body.results)
    rewrites, drop, buffered = {}, set(), set()
    for k, acc in enumerate(accs):
        x, chain = acc, []
        while counts.get(x) == 1 and x in user and user[x].prim.fn is iadd and \
                user[x].args[0] is x:
            terms = outer_terms(user[x].args[1], defs, counts)
            if terms is None:
                break
            chain.append((user[x], terms))
            x = user[x].result
        if not chain or counts.get(x) != 1 or returned.count(x) != 1:
            continue
        # every pair of the chain is added where its last link stood (all exist by then)
        new, current = [], acc
        for op, (pairs, consumed) in chain:
            drop |= consumed | {op}
            for u, v in pairs:
                out = Value(acc.name)
                new.append(Call(prim_of(runtime.outer_add), (current, u, v), out, (), op.loc))
                current = out
        last = chain[-1][0]
        drop.discard(last)
        rewrites[last] = new
        returned[returned.index(x)] = current
        buffered.add(k)
    if not buffered:
        return fn, set()
    body = []
    for o in fn.body.ops:
        if o in drop:
            continue
        body.extend(rewrites.get(o, [o]))
    return replace(fn, body=Block((), tuple(body), tuple(returned))), buffered


def _call(R, prim: Prim, args, n_results: int, names: list[str]) -> list:
    """Call a generated function; unpack its tuple result into named values."""
    out = Value("_" + prim.name.split("_")[-1] if n_results != 1 else names[0])
    R.ops.append(Call(prim, tuple(args), out, (), R.loc))
    if n_results == 1:
        return [out]
    return [R.emit(prim_of(operator.getitem), (out, Const(k)), names[k]) for k in range(n_results)]


def _step_name(base: str, op: For) -> str:
    global _steps
    _steps += 1
    kind = "call" if op.checkpoint[0] == "call" else "step"
    label = op.checkpoint[1] if op.checkpoint[0] == "call" else kind
    return f"{base}_{label}_{op.loc.line}" if op.loc else f"{base}_{kind}{_steps}"


def _snapshots(op: For, args, facts) -> int:
    kind, value = op.checkpoint[:2]
    if kind == "snapshots":
        return value
    size = 0
    for a in args:  # the bytes one snapshot of the loop's state takes
        k = facts.kind(a)
        size += int(np.prod(k.shape)) * 8 if k is not None and k.type == "ndarray" else 8
    try:
        return runtime_snapshots(value, size)
    except AdjointError as e:  # the loop whose state does not fit is the place to show
        raise AdjointError(e.message, op.loc, e.hint) from None


def runtime_snapshots(budget: int, state_bytes: int) -> int:
    from adjoint.ad.schedule import snapshots_for_budget
    return snapshots_for_budget(budget, state_bytes)


def apply_policy(fn: Function, policy) -> Function:
    """Checkpoint every `for` loop of `fn` by a transform-wide policy: an int k or
    {"snapshots": k} keeps k states per loop; {"budget": bytes} as many as fit.
    None (the default) stores everything. Loops already marked keep their marks.
    A loop that draws random numbers (`first_draw`) is stored: recomputing it would draw
    again, and unlike an explicit region, the policy names no loop to refuse.
    A loop the policy marks is checkpointed only where that keeps less memory than
    storing its tapes (the cost model in `Reverse._stored_instead`)."""
    from dataclasses import replace

    from adjoint.ir.core import map_blocks
    if policy in (None, "store"):
        return fn
    if isinstance(policy, int):
        policy = {"snapshots": policy}
    if not (isinstance(policy, dict) and len(policy) == 1 and
            set(policy) <= {"snapshots", "budget"}):
        raise ValueError(f"checkpoint={policy!r}: use an int, {{'snapshots': k}} or "
                         f"{{'budget': bytes}}")
    (key, value), = policy.items()

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            op = map_blocks(op, block)
            if isinstance(op, For) and op.checkpoint is None and not op.reverse and \
                    first_draw(op.body) is None:
                op = replace(op, checkpoint=(key, value, "policy"))
            ops.append(op)
        return replace(b, ops=tuple(ops))

    return replace(fn, body=block(fn.body))



def snapshot_bytes(op: For, facts) -> int | None:
    """What the plan's snapshots of a loop's state hold at most, from observed sizes
    (None without them)."""
    n = getattr(facts, "counts", {}).get(op.body.args[0])
    sizes = getattr(facts, "bytes", {})
    if not n or not sizes:
        return None
    state = sum(sizes.get(a, 8) for a in op.body.args[1:])
    return min(n, _snapshots(op, list(op.body.args[1:]), facts) + 1) * state
