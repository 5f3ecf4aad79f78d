"""Derivative rules, one module per family. Importing this package fills the registry."""
from adjoint.rules import arith, structure, tape  # noqa: F401  (operators first)
from adjoint.rules import mathfns, elementwise, reductions, linalg, shape  # noqa: F401
from adjoint.rules import stats, signals, fft, complex  # noqa: F401

try:  # SciPy is optional: without it, scipy's functions have no rules (and no caller)
    import scipy.special  # noqa: F401
except ImportError:
    pass
else:
    from adjoint.rules import special  # noqa: F401
    # (scipy.linalg's and scipy.stats's rules are imported when one of their functions
    # is first met: registry._LAZY)
