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
        adjoint.source(tour.rnn, args=(np.eye(3), np.ones((20, 3)), np.ones(3))),
    ]
    shown = [b for b in blocks() if "_bar" in b and not b.startswith("import adjoint")]
    assert len(shown) == 4
    for block, source in zip(shown, generated):
        assert block.strip() in source, block


def test_readme_quick_start_has_two_commands():
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert commands[0].strip().startswith("pip install . && adjoint emit examples/neuron.py")
    assert commands[1].strip() == "pip install '.[test]' && python -m pytest"
