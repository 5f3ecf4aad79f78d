"""The fast checker: a few random directions instead of one finite difference per
entry, with the same verdicts, a cost that does not grow with the input, and a
bisection that still names the wrong entry of a gradient."""
from __future__ import annotations

import functools
import importlib
import importlib.util
import io
import itertools
import sys
import textwrap

import numpy as np
import pytest

import adjoint
check_module = importlib.import_module("adjoint.check")  # adjoint.check is the function

PLANTED = '''
import numpy as np
import adjoint


def spike(x):
    return np.sin(x)


@adjoint.defvjp(spike)
def spike_vjp(g, ans, x):
    # right everywhere but at entry 7: half again too large there (planted)
    return g * np.cos(x) * (1.0 + 0.5 * (np.arange(x.size) == 7))


@adjoint.defjvp(spike)
def spike_jvp(ans, x, x_dot):
    return x_dot * np.cos(x)


def bump(x):
    return np.sin(x)


@adjoint.defvjp(bump)
def bump_vjp(g, ans, x):
    return g * np.cos(x)


@adjoint.defjvp(bump)
def bump_jvp(ans, x, x_dot):
    # the forward rule is wrong at entry (1, 2) of a (3, 4) array only (planted)
    wrong = np.zeros(x.shape)
    wrong[1, 2] = 1.0
    return x_dot * np.cos(x) + x_dot * wrong


def faint(x):
    return np.sin(x)


@adjoint.defvjp(faint)
def faint_vjp(g, ans, x):
    # 1% too large at the middle entry only (planted): along a random direction of
    # 1e5 entries that is far below what a finite difference can resolve
    return g * np.cos(x) * (1.0 + 0.01 * (np.arange(x.size) == x.size // 2))


@adjoint.defjvp(faint)
def faint_jvp(ans, x, x_dot):
    return x_dot * np.cos(x)


def loss(x):
    return np.sum(spike(x) ** 2) + 0.5 * np.sum(x * x)


def faint_loss(x):
    return np.sum(faint(x) * x)


def right(x):
    return np.sum(np.sin(x) ** 2) + 0.5 * np.sum(x * x)


def two(w, b, x):
    return np.sum(np.tanh(w @ x + b) ** 2)


def forward_wrong(w):
    return np.sum(bump(w) * w)


def layered(layers):
    return np.sum(spike(layers[0]) ** 2) + np.sum(np.tanh(layers[1]))
'''

_counter = itertools.count()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted") / "planted_rules.py"
    path.write_text(textwrap.dedent(PLANTED).lstrip("\n"))
    name = f"planted_rules_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def counted(f):
    """f, counting its calls; adjoint compiles f itself (the wrapper says it only calls
    f: adjoint sees through no other wrapper)."""
    @functools.wraps(f)
    def run(*args):
        run.calls += 1
        return f(*args)
    run.calls = 0
    run.__adjoint_transparent__ = f
    return run


@pytest.mark.parametrize("n", [10, 1000, 100_000])
def test_the_cost_of_a_check_does_not_grow_with_the_input(planted, n):
    x = np.random.default_rng(n).normal(size=n)
    f = counted(planted.right)
    result = adjoint.check(f, x)
    assert result.ok, str(result)
    assert result.directions == 3 and "along 3 random directions" in str(result)
    # two calls of f per direction, one gradient, one JVP (which also gives f at x)
    assert f.calls == result.evaluations["f"] == 6
    assert result.evaluations["grad"] == 1 and result.evaluations["jvp"] == 1


def test_the_exhaustive_check_takes_one_difference_per_entry(planted):
    x = np.random.default_rng(1).normal(size=12)
    f = counted(planted.right)
    result = adjoint.check(f, x, exhaustive=True)
    assert result.ok and result.directions == 0 and "entry by entry" in str(result)
    assert f.calls == 2 * x.size
    np.testing.assert_allclose(result.numeric, 2 * np.sin(x) * np.cos(x) + x, rtol=1e-7)


@pytest.mark.parametrize("n", [20, 1000, 5000])
def test_a_planted_wrong_gradient_entry_is_located(planted, n):
    x = np.random.default_rng(2).normal(size=n)
    x[7] = 0.9  # sin and cos far from 0: the planted error shows
    f = counted(planted.loss)
    result = adjoint.check(f, x)
    assert not result.ok
    assert result.wrong == ["x[7]"], str(result)
    text = str(result)
    assert "wrong entries: x[7]" in text and "the gradient gives" in text
    assert "the rule of `" in text and "spike" in result.culprit_rule
    # the bisection: about two evaluations of f per halving
    assert f.calls < 6 + 8 * int(np.ceil(np.log2(n))) + 20
    # the exhaustive mode agrees on where it is wrong
    if n == 20:
        full = adjoint.check(planted.loss, x, exhaustive=True)
        wrong = np.flatnonzero(~np.isclose(full.gradient, full.numeric, rtol=1e-5, atol=1e-7))
        assert list(wrong) == [7]


def test_a_wrong_jvp_is_located_in_a_matrix(planted):
    w = np.random.default_rng(3).normal(size=(3, 4))
    w[1, 2] = 0.7
    result = adjoint.check(planted.forward_wrong, w)
    assert not result.ok
    assert "the JVP gives" in result.mismatch and result.wrong == ["w[1, 2]"], str(result)
    # the gradient itself is right: reverse mode alone passes the exhaustive check
    assert adjoint.check(planted.forward_wrong, w, exhaustive=True).ok


def test_several_arguments_name_their_entries(planted):
    rng = np.random.default_rng(4)
    w, b, x = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=2)
    result = adjoint.check(planted.two, w, b, x, wrt=("w", "b"))
    assert result.ok, str(result)
    dw, db = result.gradient
    z = np.tanh(w @ x + b)
    np.testing.assert_allclose(db, 2 * z * (1 - z ** 2), rtol=1e-10)
    np.testing.assert_allclose(dw, np.outer(2 * z * (1 - z ** 2), x), rtol=1e-10)
    inputs = check_module._Inputs(planted.two, (w, b, x), (0, 1))
    assert [inputs.name(k) for k in (0, 5, 6, 8)] == ["w[0, 0]", "w[2, 1]", "b[0]", "b[2]"]


def test_list_and_dict_arguments_name_their_leaves():
    layers = [np.zeros((2, 2)), (np.zeros(3), 1.5)]
    inputs = check_module._Inputs(lambda layers: 0.0, (layers,), (0,))
    assert [inputs.name(k) for k in (0, 3, 4, 6, 7)] == [
        "layers[0][0, 0]", "layers[0][1, 1]", "layers[1][0][0]", "layers[1][0][2]",
        "layers[1][1]"]
    params = {"w": np.zeros((2, 3)), "b": np.zeros(2)}  # flattened in sorted key order
    inputs = check_module._Inputs(lambda params: 0.0, (params,), (0,))
    assert [inputs.name(k) for k in (0, 1, 2, 7)] == [
        "params['b'][0]", "params['b'][1]", "params['w'][0, 0]", "params['w'][1, 2]"]


def test_a_wrong_entry_of_a_list_of_layers_is_named(planted):
    rng = np.random.default_rng(8)
    layers = [rng.uniform(0.5, 1.0, size=10), rng.uniform(0.5, 1.0, size=(2, 4))]
    layers[0][7] = 0.9
    result = adjoint.check(planted.layered, layers)
    assert not result.ok and result.wrong == ["layers[0][7]"], str(result)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_shown_on_a_terminal_only(planted, monkeypatch):
    monkeypatch.setattr(check_module, "PROGRESS_AFTER", 0.0)
    x = np.random.default_rng(5).normal(size=50)
    x[7] = 0.9
    tty, log = Terminal(), io.StringIO()
    assert not adjoint.check(planted.loss, x, progress=tty).ok
    assert not adjoint.check(planted.loss, x, progress=log).ok
    shown = tty.getvalue()
    assert "adjoint check: direction 1/3" in shown
    assert "adjoint check: locating the wrong entries" in shown
    assert shown.endswith("\r\033[K")  # the line is cleared at the end
    assert log.getvalue() == ""
    tty = Terminal()
    assert adjoint.check(planted.right, x, exhaustive=True, progress=tty).ok
    assert "adjoint check: finite differences 50/50" in tty.getvalue()
    monkeypatch.setattr(check_module, "PROGRESS_AFTER", 3600.0)
    tty = Terminal()
    assert adjoint.check(planted.right, x, progress=tty).ok and tty.getvalue() == ""


def test_check_command_modes(planted, capsys):
    from adjoint.cli import main
    path = planted.__file__
    assert main(["check", f"{path}:loss", "--args", "np.linspace(-1, 1, 30)"]) == 1
    out = capsys.readouterr().out
    assert "along random direction 1" in out and "wrong entries: x[" in out
    assert main(["check", f"{path}:right", "--args", "np.linspace(-1, 1, 30)",
                 "--exhaustive"]) == 0
    assert "entry by entry" in capsys.readouterr().out
    assert main(["check", f"{path}:right", "--args", "np.linspace(-1, 1, 30)",
                 "--directions", "5"]) == 0
    assert "along 5 random directions" in capsys.readouterr().out


def test_the_exhaustive_check_names_the_wrong_entries(planted):
    x = np.random.default_rng(6).normal(size=16)
    x[7] = 0.9
    result = adjoint.check(planted.loss, x, exhaustive=True)
    assert not result.ok and result.wrong == ["x[7]"]
    assert "wrong entries: x[7]" in str(result)


def test_a_faint_wrong_entry_is_caught_by_the_jvp_and_its_own_difference(planted):
    # <g, u> and J u are one number computed two ways: they must agree to rounding,
    # which sees a 1% error in one entry of 1e5; that entry's own finite difference
    # then says which of the two is wrong
    n = 100_000
    x = np.random.default_rng(7).uniform(0.5, 1.0, size=n)
    f = counted(planted.faint_loss)
    result = adjoint.check(f, x)
    assert not result.ok, str(result)
    assert result.wrong == [f"x[{n // 2}]"]
    assert "the gradient and the JVP differ beyond rounding" in result.mismatch
    assert result.mismatch.endswith("the gradient is wrong")
    i = n // 2
    want = np.sin(x[i]) + x[i] * np.cos(x[i])
    assert np.isclose(result.gradient[i], want + 0.01 * x[i] * np.cos(x[i]), rtol=1e-12)
    assert f.calls < 40  # no finite difference per entry
    # the same function with the mistake gone passes
    assert adjoint.check(planted.right, x).ok


def test_a_float32_model_is_judged_at_float32_rounding(planted):
    # <g, u> and J u differ by float32 rounding there: that is no reason to search
    rng = np.random.default_rng(9)
    w, b, x = (rng.normal(size=(30, 20)).astype(np.float32), np.zeros(30, np.float32),
               rng.normal(size=20).astype(np.float32))
    f = counted(planted.two)
    result = adjoint.check(f, w, b, x, wrt=(0, 1))
    assert result.ok, str(result)
    assert f.calls == 6 and result.evaluations["jvp"] == 1
    assert check_module._epsilon([1.0, [np.ones(2)], {"a": w}]) == np.finfo(np.float32).eps
    assert check_module._epsilon([1.0, np.float64(2.0), np.arange(3)]) == np.finfo(float).eps
