"""Golden files: the generated source of a few programs, kept in tests/golden.

Generated code is deterministic, so any change to it shows up here as a diff to
review. After an intended change, regenerate with
    ADJOINT_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
The first line (path and hash of the source file) is machine-specific and skipped.
"""
import os
from pathlib import Path

import numpy as np
import pytest

import adjoint
from tests import programs as P

GOLDEN = Path(__file__).parent / "golden"
R = np.random.default_rng(0)

CASES = {
    "neuron": (P.neuron, (0, 2), (0.5, 1.5, 0.1, 1.0)),
    "product": (P.product, 0, (R.normal(size=5),)),
    "branch": (P.branch, (0, 1), (1.0, 2.0)),
    "scalar_loop": (P.scalar_loop, 0, (0.3, 20)),
    "newton_sqrt": (P.newton_sqrt, 0, (2.0,)),
    "fill": (P.fill, 0, (R.normal(size=5),)),
    "rnn": (P.rnn, 0, (R.normal(size=(4, 4)), R.normal(size=(4, 3)), R.normal(size=(5, 3)),
                       R.normal(size=4))),
    "logistic_regression": (P.logistic_regression, 0, (R.normal(size=4), R.normal(size=(10, 4)),
                                                      (R.random(10) > 0.5) * 1.0, 0.1)),
    "params_mlp": (P.params_mlp, 0, ({"W1": R.normal(size=(3, 4)), "b1": R.normal(size=4),
                                      "W2": R.normal(size=(4, 2))}, R.normal(size=(5, 3)),
                                     R.normal(size=(5, 2)))),
    "comprehension": (P.comprehension, 1, ([R.normal(size=3), R.normal(size=3)],
                                           R.normal(size=3))),
    "recursive_helper": (P.recursive_helper, 0, (R.normal(size=3),)),
    "method": (P.Quadratic(np.eye(3) * 2.0 + 0.5).loss, 0, (R.normal(size=3),)),
}


def _body(text: str) -> str:
    return text.split("\n", 1)[1]


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_source_matches_golden_file(name):
    f, wrt, args = CASES[name]
    got = _body(adjoint.source(f, wrt, args=args))
    path = GOLDEN / f"{name}_grad.py"
    if os.environ.get("ADJOINT_UPDATE_GOLDEN"):
        path.write_text(adjoint.source(f, wrt, args=args).split("\n", 1)[0].split(" from ")[0]
                        + f" from tests/programs.py:{f.__name__}.\n" + got)
    assert path.exists(), f"no golden file {path}; run with ADJOINT_UPDATE_GOLDEN=1"
    assert got == _body(path.read_text())


@pytest.mark.parametrize("name", ["params_mlp", "comprehension", "recursive_helper", "method"])
def test_the_coverage_goldens_are_right(name):
    """The goldens of the constructs users write first also differentiate correctly."""
    from adjoint.testing import check_program
    f, wrt, args = CASES[name]
    check_program(f, *args, wrt=wrt)
