"""Binomial checkpointing (Griewank and Walther's "revolve").

The schedule itself is `adjoint.runtime.checkpoint_plan`: generated code runs it, and a
standalone file carries its source, so it lives in the runtime, which imports nothing
of the compiler. It is online: it holds O(snapshots) numbers, computes the states the
forward sweep keeps (`stored`) from the chain of first splits, and yields the backward
sweep's actions one at a time (`actions()`), never a list of the O(n) actions.

Reversing a loop of `n` steps needs the state before each step, in reverse order.
Storing every state costs n snapshots; storing none costs O(n^2) recomputation.
With `s` free slots the minimal number of recomputed steps is known in closed form
(`cost`), and splitting each range where the rest costs least attains it (`split`).
"""
from __future__ import annotations

from math import comb

from adjoint.runtime import checkpoint_plan

plan = checkpoint_plan  # plan(n, snapshots): .stored, .actions(), .recomputed
cost = checkpoint_plan.cost  # cost(l, s): forward steps to reverse l steps, s slots free
split = checkpoint_plan.split  # split(l, s): the distance from the start to the next snapshot


def beta(s: int, t: int) -> int:
    return comb(s + t, s) if t >= 0 else 0


def snapshots_for_budget(budget_bytes: int, state_bytes: int) -> int:
    """How many states fit in a memory budget (at least one)."""
    return max(1, int(budget_bytes // max(state_bytes, 1)))


__all__ = ["plan", "cost", "split", "beta", "checkpoint_plan", "snapshots_for_budget"]
