"""adjoint: a source-to-source differentiation compiler for Python and NumPy."""
__version__ = "0.1.0"

from adjoint import rules  # noqa: F401,E402  (fills the primitive registry)
from adjoint.errors import (AdjointError, NonDifferentiableError, SourceError,  # noqa: E402
                            UnsupportedError)
from adjoint.api import adjoint, grad, ir, jvp, memory, source, value_and_grad, vjp  # noqa: E402
from adjoint.check import check, check_rule  # noqa: E402
from adjoint.higher import hessian, hvp  # noqa: E402
from adjoint.compose import implicit_grad, jacobian  # noqa: E402
from adjoint.explain import explain  # noqa: E402  (callable: adjoint.explain(f, args=...))
from adjoint.frontend.markers import checkpoint, checkpointed  # noqa: E402
from adjoint.rules.registry import defjvp, defvjp, primitive  # noqa: E402
from adjoint.rules.registry import defnondiff as nondifferentiable  # noqa: E402
from adjoint.runtime import stop_gradient  # noqa: E402
from adjoint import testing  # noqa: F401,E402  (adjoint.testing.check_grad, no import of its own)
