"""The markers a user writes to ask for recomputation checkpoints. Lowering reads
them (the schedules and the recompute transform are in adjoint.ad).

In user code both markers are no-ops when the function runs normally:

    y = adjoint.checkpoint(layer)(x, W)        # keep x, W; recompute layer's inside
    for t in adjoint.checkpointed(range(n), snapshots=10):   # O(10) states, not O(n)
        h = step(h, t)
"""
from __future__ import annotations

import functools


class checkpoint:
    """Mark a call (or, as a decorator, every call of a function) for recomputation:
    the forward sweep keeps only the call's inputs, and the reverse sweep runs the
    call again before its adjoint."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def checkpointed(iterable, snapshots: int | None = None, budget: int | None = None):
    """`iterable` itself; under differentiation, the loop over it keeps `snapshots`
    states (or as many as `budget` bytes hold) and recomputes the rest with the
    binomial schedule of Griewank and Walther."""
    if snapshots is None and budget is None:
        raise ValueError("checkpointed() needs snapshots= or budget=")
    return iterable
