"""The IR on its own: lowering checked by the reference interpreter,
interpret(lower(f))(*args) == f(*args), over the whole corpus; the printer's text;
and the verifier hook that runs after every pass (ADJOINT_VERIFY, set in conftest)."""
import copy
import inspect

import numpy as np
import pytest

from adjoint.frontend.lower import lower_function
from adjoint.ir.interp import interpret
from adjoint.ir.printer import print_function
from adjoint.ir.verify import VerifyError
from adjoint.passes import pipeline
from tests import programs as P
from tests.test_gradients import CASES

R = np.random.default_rng(5)

# the programs of the corpus that CASES does not list, with arguments like their tests'
EXTRA = [
    (P.checkpointed_call, (R.normal(size=3), R.normal(size=(3, 3)))),
    (P.checkpointed_decorator, (R.normal(size=3), R.normal(size=(3, 3)))),
    (P.rnn_checkpointed, (R.normal(size=(4, 4)) * 0.5, R.normal(size=(7, 4)), R.normal(size=4), 3)),
    (P.view_copy_is_fine, (R.normal(size=(2, 3)),)),
    (P.hygiene, (R.normal(size=3), 0.7)),
    (P.params_mlp, ({"W1": R.normal(size=(3, 4)), "b1": R.normal(size=4),
                     "W2": R.normal(size=(4, 2))}, R.normal(size=(5, 3)), R.normal(size=(5, 2)))),
    (P.comprehension, ([R.normal(size=3), R.normal(size=3)], R.normal(size=3))),
    (P.recursive_helper, (R.normal(size=3),)),
]
ALL = [(f, args) for f, args, _ in CASES] + EXTRA
# Python sees a write through a view that the IR (values, not storage) does not:
# adjoint rejects the program before using its IR, so the interpreter differs here
REJECTED = [(P.view_read_after_write, (R.normal(size=(2, 3)),))]


def test_every_program_of_the_corpus_is_interpreted():
    listed = {f.__name__ for f, _ in ALL + REJECTED}
    defined = {name for name, obj in vars(P).items() if inspect.isfunction(obj)
               and obj.__module__ == P.__name__ and not name.startswith("_")}
    assert defined - listed == set()


@pytest.mark.parametrize("f,args", ALL, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(ALL)])
def test_interpreting_the_lowered_ir_gives_the_functions_value(f, args):
    want = f(*copy.deepcopy(args))  # some programs write into their arguments
    got = interpret(lower_function(f))(*copy.deepcopy(args))
    assert type(got) is type(want) or np.shape(got) == np.shape(want)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("f,args", REJECTED, ids=[c[0].__name__ for c in REJECTED])
def test_a_program_whose_ir_misses_a_view_write_is_rejected_before_its_ir_is_used(f, args):
    from adjoint.analysis.views import check_views
    from adjoint.analysis.shapes import observe
    from adjoint.errors import UnsupportedError
    fn = lower_function(f)
    assert interpret(fn)(*args) != f(*args)
    with pytest.raises(UnsupportedError):
        check_views(fn, observe(fn, args))


def test_the_interpreter_sees_the_lowered_branch_taken():
    fn = lower_function(P.branch)
    assert interpret(fn)(1.0, 2.0) == 4.0  # x > 0: (x * y) ** 2
    assert interpret(fn)(-1.0, 2.0) == 1.0  # else: (x + y) ** 2


def mul_add(x, y):
    return x * y + 1.0


def choose(x):
    if x > 0:
        y = x * 2.0
    else:
        y = -x
    return y


def accumulate(x, n):
    s = 0.0
    for i in range(n):
        s = s + x * i
    return s


def sum_sin(x):
    return np.sum(np.sin(x))


PRINTED = {
    mul_add: """\
func mul_add(%x, %y):
  %_t = mul(%x, %y)
  %_t_1 = add(%_t, 1.0)
  return %_t_1""",
    choose: """\
func choose(%x):
  %_c = gt(%x, 0)
  %y = if %_c:
    %y_1 = mul(%x, 2.0)
    yield %y_1
  else:
    %y_2 = neg(%x)
    yield %y_2
  return %y""",
    accumulate: """\
func accumulate(%x, %n):
  %_range = range(%n)
  %s = for %i in %_range carry (%s_1) = (0.0):
    %_t = mul(%x, %i)
    %s_2 = add(%s_1, %_t)
    yield %s_2
  return %s""",
    sum_sin: """\
func sum_sin(%x):
  %_t = np.sin(%x)
  %_t_1 = np.sum(%_t)
  return %_t_1""",
}


@pytest.mark.parametrize("f", list(PRINTED), ids=lambda f: f.__name__)
def test_printed_ir(f):
    assert print_function(lower_function(f)) == PRINTED[f]


def test_the_verifier_runs_after_every_pass_and_names_the_one_that_broke_the_ir(monkeypatch):
    from dataclasses import replace

    def breaks_ssa(fn):  # returns a value nothing defines
        from adjoint.ir.core import Value
        return replace(fn, body=replace(fn.body, results=(Value("ghost"),)))

    assert pipeline.VERIFY  # conftest sets ADJOINT_VERIFY=1 for the suite
    monkeypatch.setattr(pipeline, "PIPELINE", pipeline.PIPELINE[:2] + [breaks_ssa])
    with pytest.raises(VerifyError) as e:
        pipeline.optimize(lower_function(mul_add), final=False)
    assert "mul_add, after pass breaks_ssa: %ghost" in str(e.value)
    assert "before its definition" in str(e.value)
