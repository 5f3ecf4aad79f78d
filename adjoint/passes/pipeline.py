"""The optimisation pipeline: a plain list of passes, each `Function -> Function`."""
from __future__ import annotations

from adjoint.ir.core import Function
from adjoint.passes.cse import cse
from adjoint.passes.dce import dce
from adjoint.passes.tapes import tapes

PIPELINE = [cse, dce, tapes, dce]


def optimize(fn: Function) -> Function:
    for p in PIPELINE:
        fn = p(fn)
    return fn
