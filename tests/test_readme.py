"""The README stays true: its generated-code blocks are what the compiler writes."""
import re
import sys
from pathlib import Path

import numpy as np

import adjoint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import tour  # noqa: E402


def blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_shows_the_generated_code_as_generated():
    generated = [
        adjoint.source(tour.loss, wrt=(0, 2), args=(0.5, 1.5, 0.1, 1.0)),
        adjoint.source(tour.product, args=(np.ones(4),)),
        adjoint.source(tour.branch, wrt=(0, 1), args=(1.0, 2.0)),
        adjoint.source(tour.mlp, args=({"W1": np.ones((3, 4)), "b1": np.zeros(4),
                                        "W2": np.ones((4, 1))}, np.ones((8, 3)),
                                       np.ones((8, 1)))),
        adjoint.source(tour.rnn, args=(np.eye(3), np.ones((20, 3)), np.ones(3))),
    ]
    shown = [b for b in blocks() if "_bar" in b and not b.startswith("import adjoint")]
    assert len(shown) == 5
    for block, source in zip(shown, generated):
        assert block.strip() in source, block


def test_readme_quick_start_has_two_commands():
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert commands[0].strip().startswith("pip install . && adjoint emit examples/neuron.py")
    assert commands[1].strip() == "pip install '.[test]' && python -m pytest"


def test_the_tours_dict_programs_are_right():
    from adjoint.testing import check_program
    rng = np.random.default_rng(1)
    p = {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4), "W2": rng.normal(size=(4, 1))}
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    (g_mlp, _, _), (g_sgd, _, _) = check_program(tour.mlp, p, x, y), \
        check_program(tour.sgd_loss, p, x, y)
    assert list(g_mlp) == list(p)
    for k in p:  # the step scales every parameter by 0.9
        want = adjoint.grad(tour.mlp)({j: 0.9 * w for j, w in p.items()}, x, y)[k] * 0.9
        np.testing.assert_allclose(g_sgd[k], want, rtol=1e-10)
