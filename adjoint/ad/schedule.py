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

from adjoint.errors import AdjointError
from adjoint.runtime import checkpoint_plan

plan = checkpoint_plan  # plan(n, snapshots): .stored, .actions(), .recomputed
cost = checkpoint_plan.cost  # cost(l, s): forward steps to reverse l steps, s slots free
split = checkpoint_plan.split  # split(l, s): the distance from the start to the next snapshot


def beta(s: int, t: int) -> int:
    return comb(s + t, s) if t >= 0 else 0


def snapshots_for_budget(budget_bytes: int, state_bytes: int) -> int:
    """The plan's `snapshots` for a memory budget: the forward sweep keeps up to
    snapshots + 1 states (the last step's input too) and the loop's final state, and
    all of them must fit."""
    state_bytes = max(state_bytes, 1)
    fits = int(budget_bytes // state_bytes)
    if fits < 3:
        raise AdjointError(
            f"a checkpoint budget of {budget_bytes} bytes holds {fits} of this loop's "
            f"states ({state_bytes} bytes each); checkpointing keeps at least 3",
            None, f"give a budget of at least {3 * state_bytes} bytes, or snapshots=1")
    return fits - 2


__all__ = ["plan", "cost", "split", "beta", "checkpoint_plan", "snapshots_for_budget"]
