"""Derivative rules, one module per family. Importing this package fills the registry."""
from adjoint.rules import arith, structure, tape  # noqa: F401  (operators first)
from adjoint.rules import mathfns, elementwise, reductions, linalg, shape  # noqa: F401
from adjoint.rules import stats, signals  # noqa: F401
