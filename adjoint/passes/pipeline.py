"""The optimisation pipeline: a plain list of passes, each `Function -> Function`.

Every pass is an optimisation: the gradient must be the same without it. Two
switches check that, as LLVM's opt-bisect does:

- `ADJOINT_OPT=0` in the environment (or `limited(0)`) runs no pass at all; a
  test compares every program's gradient with and without the passes;
- `limited(k)` runs only the first k pass runs of a compilation (counted over
  every `optimize` call and the kind-driven rewrites) and skips the rest, so
  bisecting k names the first pass run after which a gradient changes
  (`adjoint check --bisect`).

No pass is needed for correctness (the transforms and the code generator take any
verified IR; tests/test_bisect.py holds every program of the corpus to that), so
none is exempt. Folding inside the lowering of rule templates (passes/fold.py,
called by frontend/lower.py as each rule is inlined) is part of lowering, not a
pass, and stays on.
"""
from __future__ import annotations

import contextlib
import os

from adjoint.ir.core import Function
from adjoint.ir.verify import VerifyError, verify
from adjoint.passes.assign import assign_once
from adjoint.passes.batch import batch_outer
from adjoint.passes.cse import cse
from adjoint.passes.dce import dce
from adjoint.passes.licm import hoist_invariants
from adjoint.passes.privatize import privatize
from adjoint.passes.remat import rematerialize
from adjoint.passes.schedule import sink
from adjoint.passes.tapes import iterate_tapes, tapes

PIPELINE = [cse, dce, tapes, dce]
# only for the IR that becomes code: another transform must still see the pops
FINAL = [iterate_tapes, batch_outer, hoist_invariants, rematerialize, privatize, assign_once,
         dce, sink]


# ADJOINT_VERIFY=1 (set by the tests) verifies the IR after every pass
VERIFY = os.environ.get("ADJOINT_VERIFY", "") not in ("", "0")


class _Budget:
    """How many pass runs this compilation may make (None: all), and a log of those made."""

    def __init__(self) -> None:
        self.limit: int | None = 0 if os.environ.get("ADJOINT_OPT", "").strip() == "0" else None
        self.log: list[str] | None = None  # kept only within `limited`


budget = _Budget()


def setting():
    """What the cache key must hold about the passes: None when all run."""
    return budget.limit


@contextlib.contextmanager
def limited(k: int | None):
    """Within this block, run only the first `k` pass runs (None: all); yields the log
    of the pass runs made, `"pass on function"`, in order."""
    saved = budget.limit, budget.log
    budget.limit, budget.log = k, []
    try:
        yield budget.log
    finally:
        budget.limit, budget.log = saved


def run_pass(p, fn: Function, *extra) -> Function:
    """`p(fn, *extra)`, unless the budget is spent: then `fn` as it is."""
    log = budget.log
    if budget.limit is not None and (log is None or len(log) >= budget.limit):
        return fn
    if log is not None:
        log.append(f"{p.__name__} on {fn.name}")
    out = p(fn, *extra)
    if VERIFY:
        _check(out, f"after pass {p.__name__}")
    return out


def _check(fn: Function, where: str) -> None:
    try:
        verify(fn)
    except VerifyError as e:
        raise VerifyError(f"{fn.name}, {where}: {e}") from e


def optimize(fn: Function, final: bool = True) -> Function:
    if VERIFY:
        _check(fn, "before the passes")
    for p in PIPELINE + (FINAL if final else []):
        fn = run_pass(p, fn)
    return fn
