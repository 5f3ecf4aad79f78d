"""What a distribution of adjoint ships: its license, its type-hint marker, a
version in one place, adjoint.testing without an import of its own, and an sdist
that holds what its tests read."""
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import adjoint

ROOT = Path(__file__).resolve().parents[1]


def test_the_license_is_mit_and_declared_by_its_spdx_name():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the adjoint developers\n")
    assert "WITHOUT WARRANTY OF ANY KIND" in text
    project = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "MIT"$', project, re.M)
    assert re.search(r'^license-files = \["LICENSE"\]$', project, re.M)


def test_the_package_is_typed_and_ships_its_marker():
    assert (ROOT / "adjoint" / "py.typed").is_file()
    assert 'adjoint = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_the_version_is_written_once():
    assert re.fullmatch(r"\d+\.\d+\.\d+", adjoint.__version__)
    assert importlib.metadata.version("adjoint") == adjoint.__version__
    assert 'version = { attr = "adjoint.__version__" }' in (ROOT / "pyproject.toml").read_text()


def test_adjoint_testing_needs_no_import_of_its_own(tmp_path):
    script = tmp_path / "use_testing.py"
    script.write_text("import adjoint, numpy as np\n\n\n"
                      "def f(x):\n    return np.sum(np.sin(x))\n\n\n"
                      "adjoint.testing.check_grad(f, np.ones(3))\n"
                      "print(adjoint.testing.numeric_grad(f, (np.zeros(2),)))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[1.", "1.]"]


def test_the_sdist_holds_what_the_tests_read():
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    grafted = {line.split()[1] for line in manifest if line.startswith("graft ")}
    # tests/ holds programs.py, enumerate_programs.py, custom_rules.py and golden/;
    # the tests also read examples/, docs/ and the README
    assert {"tests", "examples", "docs"} <= grafted
    assert "include LICENSE README.md" in manifest
    for helper in ("tests/programs.py", "tests/enumerate_programs.py", "tests/custom_rules.py",
                   "tests/golden", "tests/conftest.py", "examples/neuron.py", "docs/rules.md"):
        assert (ROOT / helper).exists(), helper
