"""Custom rules, stop_gradient and the gradient checker."""
import numpy as np

import adjoint
from adjoint.testing import check_grad
from tests import custom_rules as C

x = np.array([0.3, -1.2, 0.8])


def test_a_user_rule_is_used_and_called_by_name():
    check_grad(C.loss, x)
    src = adjoint.source(C.loss, args=(x,))
    assert "softplus(x)" in src and "from tests.custom_rules import softplus" in src


def test_check_rule_accepts_a_right_rule_and_names_a_wrong_one():
    assert adjoint.check_rule(C.softplus, x) == ""
    assert "VJP" in adjoint.check_rule(C.wrong, x)
    assert adjoint.check_rule(np.tanh, x) == ""


def test_check_points_at_the_first_wrong_line():
    result = adjoint.check(C.broken, x)
    assert not result.ok
    assert result.culprit.line == 36 and result.culprit_rule.endswith("wrong")
    assert "z = wrong(y)" in str(result)
    assert adjoint.check(C.loss, x).ok


def test_stop_gradient_treats_a_value_as_constant():
    w = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(adjoint.grad(C.frozen)(x, w), w * x)


def test_check_command(capsys):
    from adjoint.cli import main
    assert main(["check", "tests/custom_rules.py:broken", "--args", "np.array([0.3, -1.2])"]) == 1
    assert "z = wrong(y)" in capsys.readouterr().out
    assert main(["check", "tests/custom_rules.py:loss", "--args", "np.array([0.3, -1.2])"]) == 0


def _with_rest(x, *rest):
    s = np.sum(x ** 2)
    for r in rest:
        s = s + np.sum(np.sin(r * x))
    return s


def _by_depth(x, n):
    return x if n == 0 else np.sin(_by_depth(x, n - 1))


def test_check_of_a_function_taking_rest_or_recursing():
    """adjoint.check compiles for the call's arity or depth (it raised AttributeError:
    'ByArity' object has no attribute 'wrt')."""
    x = np.array([0.3, -0.7, 1.1])
    assert adjoint.check(_with_rest, x, x * 2.0, x + 1.0, wrt=(0, 2)).ok
    assert adjoint.check(_by_depth, 0.5, 3).ok
