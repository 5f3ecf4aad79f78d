"""The driver: the pipeline written down once, as a list of named stages."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from adjoint import driver
from tests import programs as P

ROOT = Path(__file__).resolve().parent.parent


def test_the_pipeline_is_one_list_of_named_stages():
    assert [name for name, _ in driver.STAGES] == [
        "lower", "prepare", "observe", "transform", "specialise", "emit"]


def test_run_fills_in_the_record_stage_by_stage_and_logs_each():
    x = np.linspace(0.5, 1.5, 4)
    job = driver.run(driver.Compilation(P.product, 0, "grad", (x,)), last="prepare")
    assert job.lowered is not None and job.ir is not None and job.facts is None
    assert [name for name, _, _ in job.log] == ["lower", "prepare"]
    job = driver.run(job, "observe")
    assert [name for name, _, _ in job.log][2:] == ["observe", "transform", "specialise",
                                                   "emit"]
    assert "def product_grad(x" in job.source
    namespace: dict = {}
    exec(compile(job.source, "<generated>", "exec"), namespace)
    np.testing.assert_allclose(namespace["product_grad"](x),
                               [np.prod(x) / v for v in x], rtol=1e-12)


def test_emit_stages_prints_each_stage_with_its_time(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "adjoint", "emit", str(ROOT / "examples" / "product.py") +
         ":product", "--args", "(np.linspace(0.5, 1.5, 4),)", "--stages"],
        capture_output=True, text=True, cwd=tmp_path, check=True)
    stages = [line.split()[1] for line in out.stderr.splitlines()
              if line.startswith("adjoint: ")]
    assert set(stages) == {"lower", "prepare", "observe", "transform", "specialise", "emit"}
    assert all(" ms " in line for line in out.stderr.splitlines() if line.startswith("adjoint: "))
    assert "def product_grad(" in out.stdout
