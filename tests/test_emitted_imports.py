"""What an emitted file names from the user's module: its globals' values in the entry
check, the module itself (under a name nothing in the file shadows, and importable
whatever the module is called), and the constants lowering folded in (enum members).
Round 23's F1-F5: each file here imported, or checked its globals, wrongly."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap

import numpy as np
import pytest

import adjoint

_count = [0]


def user_module(tmp_path, monkeypatch, name: str, text: str):
    """`text` written to `name`.py on sys.path and imported by that name (which need not
    be an identifier: importlib imports `my-model`)."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def emitted(tmp_path, text: str):
    """The module of an emitted file, imported from disk as a user would import it."""
    _count[0] += 1
    path = tmp_path / f"emitted_{_count[0]}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ F2: inf and nan

def test_an_inf_or_nan_global_is_checked_as_python_writes_it(tmp_path, monkeypatch):
    # the entry check wrote `mod.LIMIT == inf` (a NameError on every call), and a nan
    # compared with == never holds: it is math.inf, and math.isnan
    m = user_module(tmp_path, monkeypatch, "limits23", """
        import math

        import numpy as np

        LIMIT = float("inf")
        FILL = float("nan")
        BOUNDS = [0.0, -float("inf")]


        def h(x):
            if math.isnan(FILL):
                return min(x, LIMIT) * x + max(x, BOUNDS[1]) * x
            return FILL * x
        """)
    text = adjoint.source(m.h)
    assert "math.inf" in text and "math.isnan(limits23.FILL)" in text
    grad = emitted(tmp_path, text).h_grad
    assert grad(1.5) == pytest.approx(4 * 1.5)  # by hand: d(2 x^2)/dx
    for name, changed in (("LIMIT", 1.0), ("FILL", 1.0)):
        old = getattr(m, name)
        setattr(m, name, changed)
        with pytest.raises(RuntimeError, match=rf"limits23\.{name}.*regenerate it"):
            grad(1.5)
        setattr(m, name, old)
    m.BOUNDS[1] = 0.0  # a number in a global list, folded or not, is checked too
    with pytest.raises(RuntimeError, match="regenerate it"):
        grad(1.5)
