"""The optimisation pipeline: a plain list of passes, each `Function -> Function`."""
from __future__ import annotations

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


def _check(fn: Function, where: str) -> None:
    try:
        verify(fn)
    except VerifyError as e:
        raise VerifyError(f"{fn.name}, {where}: {e}") from e


def optimize(fn: Function, final: bool = True) -> Function:
    if VERIFY:
        _check(fn, "before the passes")
    for p in PIPELINE + (FINAL if final else []):
        fn = p(fn)
        if VERIFY:
            _check(fn, f"after pass {p.__name__}")
    return fn
