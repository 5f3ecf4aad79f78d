"""The optimisation pipeline: a plain list of passes, each `Function -> Function`."""
from __future__ import annotations

from adjoint.ir.core import Function
from adjoint.passes.assign import assign_once
from adjoint.passes.batch import batch_outer
from adjoint.passes.cse import cse
from adjoint.passes.dce import dce
from adjoint.passes.licm import hoist_invariants
from adjoint.passes.privatize import privatize
from adjoint.passes.remat import rematerialize
from adjoint.passes.tapes import iterate_tapes, tapes

PIPELINE = [cse, dce, tapes, dce]
# only for the IR that becomes code: another transform must still see the pops
FINAL = [iterate_tapes, batch_outer, hoist_invariants, rematerialize, privatize, assign_once,
         dce]


def optimize(fn: Function, final: bool = True) -> Function:
    for p in PIPELINE + (FINAL if final else []):
        fn = p(fn)
    return fn
