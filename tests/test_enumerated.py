"""The enumerated control-flow programs of tests/enumerate_programs.py, each checked
three independent ways by `adjoint.testing.check_program`: the gradient against
central finite differences, translation validation (value_and_grad's and vjp's values
are f's), and forward against reverse mode (<v, J u> == <J^T v, u>).

A program either differentiates correctly or, for a construct the README lists as
unsupported, raises a located `adjoint.UnsupportedError`; a wrong number or any other
exception (KeyError, NameError, VerifyError, ...) fails.

A fixed pairwise-covering subset runs by default; ADJOINT_ENUM_ALL=1 runs every
program, each loop program also on two more argument sets. Programs that fail today
are listed in KNOWN_FAILING (xfail, strict: a fix makes them pass, and the entry must
then go), grouped by FAILURE_CLASSES.
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import sys

import numpy as np
import pytest

import adjoint
from adjoint.driver import globals_namespace
from adjoint.frontend.lower import lower_function
from adjoint.testing import check_program, numeric_grad

sys.path.insert(0, os.path.dirname(__file__))
import enumerate_programs as E  # noqa: E402

ALL = bool(os.environ.get("ADJOINT_ENUM_ALL"))
PROGRAMS = E.all_programs(all_args=ALL)
if not ALL:
    PROGRAMS = E.ci_subset(PROGRAMS)

# Why programs fail today (issue 19; details and smallest programs in the report)
FAILURE_CLASSES = {
    "alias-array": "`w = z; w += a` on arrays (plain aliasing, no branch) is rejected; "
                   "the README only lists aliasing through a branch",
    "helper-inplace": "a helper's `z *= 0.5` on its array argument is taken as rebinding "
                      "the name (UnsupportedError)",
}

# program name -> class (strict xfail: when a fix lands the test fails, remove the entry)
KNOWN_FAILING: dict[str, str] = {
    'fresh-sub_writes': 'helper-inplace',
    'fresh-while_helper': 'helper-inplace',
    'alias-fresh_array': 'alias-array',
    'alias-loop_array': 'alias-array',
    'alias-argument': 'alias-array',
    'alias-mul_array': 'alias-array',
}


def _params():
    out = []
    for p in PROGRAMS:
        marks = ()
        if p.name in KNOWN_FAILING:
            tag = KNOWN_FAILING[p.name]
            marks = (pytest.mark.xfail(strict=True, reason=f"{tag}: {FAILURE_CLASSES[tag]}"),)
        out.append(pytest.param(p, id=p.name, marks=marks))
    return out


_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("enumerated")


def load(folder, text: str):
    """Write `text` to a new module file and import it (adjoint reads real source)."""
    k = next(_counter)
    path = folder / f"enum_{k}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"adjoint_enum_prog_{k}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("program", _params())
def test_enumerated_program(workdir, program):
    module = load(workdir, program.source)
    where = f"--- {program.name} ---\n{program.source}args: {program.args!r}"
    try:
        check_program(module.f, *program.args, wrt=program.wrt)
    except adjoint.AdjointError as e:
        located = e.loc is not None and f"{e.loc.filename}:{e.loc.line}:" in str(e)
        assert located, f"an AdjointError without a location: {e!r}\n{where}"
        if program.expect_error is None or not isinstance(e, program.expect_error):
            raise AssertionError(f"unexpected {type(e).__name__}:\n{e}\n{where}") from e
        return
    assert program.expect_error is None, \
        f"expected a located {program.expect_error.__name__}, got a gradient\n{where}"


def test_enumeration_is_complete():
    """Every combination of the loop axes was instantiated (a branch- and tie-safe
    threshold was found for each), and the CI subset covers every pair of axis values."""
    programs = E.loop_programs()
    names = {p.name for p in programs}
    for combo in itertools.product(E.LOOPS, E.UPDATES, E.EXITS, E.CONDS):
        if combo[3] == "value" and combo[2] not in E.CONDITIONED:
            continue
        assert "-".join(combo) in names, combo
    chosen = [p for p in E.ci_subset(programs) if p.family == "loop"]
    covered = {(a, b, p.axes[a], p.axes[b]) for p in chosen
               for a, b in itertools.combinations(range(4), 2)}
    everything = {(a, b, p.axes[a], p.axes[b]) for p in programs
                  for a, b in itertools.combinations(range(4), 2)}
    assert covered == everything


def _plain(a) -> bool:
    """A float, an array, or a list of arrays (generic code reads it as it comes)."""
    return isinstance(a, (float, np.ndarray)) or isinstance(a, list) and all(
        isinstance(e, np.ndarray) for e in a)


GENERIC = [p for p in E.array_programs() if p.name not in KNOWN_FAILING and p.expect_error is None
           and p.wrt is None and all(_plain(a) for a in p.args)]


@pytest.mark.parametrize("program", GENERIC, ids=[p.name for p in GENERIC])
def test_generic_code_is_right_or_refused(workdir, program):
    """The code `adjoint emit` writes without --args is specialised on nothing: it must
    still be right on these arguments, or refuse at a located line."""
    module = load(workdir, program.source)
    wrt = tuple(range(len(program.args)))
    try:
        text = adjoint.source(module.f, wrt=wrt)
    except adjoint.AdjointError as e:
        assert e.loc is not None, repr(e)
        return
    namespace = dict(vars(module))
    cells = module.f.__closure__ or ()  # what the file says to set: a closure's values
    namespace.update(zip(module.f.__code__.co_freevars, (c.cell_contents for c in cells)))
    # and an object's attributes (LAYERS_0_W), as adjoint's loader gives them
    namespace.update(globals_namespace(lower_function(module.f)))
    exec(compile(text, "<generic>", "exec"), namespace)
    got = namespace["f_grad"](*[a.copy() if isinstance(a, np.ndarray) else
                                [e.copy() for e in a] if isinstance(a, list) else a
                                for a in program.args])
    for i, g in zip(wrt, got if len(wrt) > 1 else (got,)):
        want = numeric_grad(module.f, program.args, wrt=i)
        for gi, wi in zip(g, want) if isinstance(want, list) else [(g, want)]:  # by entry
            np.testing.assert_allclose(gi, wi, rtol=1e-6, atol=1e-8, err_msg=program.source)
