"""Binomial checkpointing (Griewank and Walther's "revolve"), as a plan of actions.

Reversing a loop of `n` steps needs the state before each step, in reverse order.
Storing every state costs n snapshots; storing none costs O(n^2) recomputation.
With `s` snapshot slots the minimal number of recomputed steps is known in closed
form: with beta(s, t) = C(s + t, s), if beta(s, t - 1) < l <= beta(s, t) then

    R(l, s) = t * l - beta(s + 1, t - 1)

forward steps reverse l steps (counting the sweep that first reaches step l - 1),
when the state at the start is kept and `s` further snapshots may be held at once.
R is convex in l, so the best place for the next snapshot is found by bisection.

A `Plan` splits the schedule in two: the states the forward sweep keeps as it runs
the loop (`stored`), and the actions of the backward sweep:

    ("advance", i, j)   run steps i .. j - 1 from the state in hand (recomputation)
    ("store", i)        keep the state in hand as the snapshot of step i
    ("restore", i)      take the state of step i back from its snapshot
    ("free", i)         drop the snapshot of step i
    ("reverse", i)      run step i forward and backward (its adjoint)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from math import comb


def beta(s: int, t: int) -> int:
    return comb(s + t, s) if t >= 0 else 0


@functools.lru_cache(maxsize=None)
def cost(l: int, s: int) -> int:
    """R(l, s): forward steps to reverse `l` steps with the start kept and `s` free slots."""
    if l <= 1:
        return 0
    if s == 0:
        return l * (l - 1) // 2
    snaps = s + 1  # revolve counts the kept start state among the snapshots
    t = 1
    while beta(snaps, t) < l:
        t += 1
    return t * l - beta(snaps + 1, t - 1)


def split(l: int, s: int) -> int:
    """The distance from the start to the next snapshot, minimising the total cost."""
    def total(m):
        return m + cost(l - m, s - 1) + cost(m, s)
    lo, hi = 1, l - 1  # total is convex in m: bisect on its forward difference
    while lo < hi:
        mid = (lo + hi) // 2
        if total(mid + 1) < total(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class Plan:
    n: int
    snapshots: int
    stored: frozenset  # steps whose input state the forward sweep keeps
    backward: tuple  # the actions of the backward sweep, as (what, i, j) triples
    recomputed: int  # steps the backward sweep runs again (the "advance" total)


@functools.lru_cache(maxsize=64)
def plan(n: int, snapshots: int) -> Plan:
    """The binomial plan for `n` steps holding at most `snapshots` states at once
    (the loop's initial state included)."""
    if snapshots < 1:
        raise ValueError("checkpointing needs at least one snapshot")
    actions: list = []
    # explicit stack instead of recursion: (start, end, free slots, state in hand?)
    todo = [("run", 0, n, snapshots - 1)] if n else []
    in_hand = True
    while todo:
        item = todo.pop()
        if item[0] == "do":
            actions.append(item[1])
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
        m = start + split(end - start, s)
        actions += [("advance", start, m), ("store", m)]
        # right part first (with one slot fewer), then the left part from `start`
        todo.append(("run", start, m, s))
        todo.append(("do", ("free", m)))
        todo.append(("run", m, end, s - 1))
    # the forward sweep runs the loop once, keeping the chain of first snapshots and the
    # state before the last step; the backward sweep starts at the first reversal
    stored = {0} if n else set()
    first = next((k for k, a in enumerate(actions) if a[0] == "reverse"), len(actions))
    for a in actions[:first]:
        if a[0] == "store":
            stored.add(a[1])
    if n:
        stored.add(n - 1)
    backward = ([("restore", n - 1)] + actions[first:]) if n else []
    backward = [a + (0,) * (3 - len(a)) for a in backward]  # all (what, i, j)
    recomputed = sum(a[2] - a[1] for a in backward if a[0] == "advance")
    return Plan(n, snapshots, frozenset(stored), tuple(backward), recomputed)


__all__ = ["plan", "cost", "split", "beta", "Plan", "snapshots_for_budget"]


def snapshots_for_budget(budget_bytes: int, state_bytes: int) -> int:
    """How many states fit in a memory budget (at least one)."""
    return max(1, int(budget_bytes // max(state_bytes, 1)))
