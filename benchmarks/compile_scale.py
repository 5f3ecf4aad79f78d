"""Compile time against a function's size (issue 16): a straight-line function of n
statements `x = np.sin(x) * w + c_k`, then `return np.sum(x * x)`.

Each size runs in new processes:
- compile: `adjoint.grad(f)` and its first call on an empty cache folder, less one
  steady call (after `import adjoint` and one small compile that loads the compiler's
  modules);
- cached load: in the next new process, `adjoint.grad(f)` and its first call on the
  folder the first filled, less one steady call.
Targets: compile time per statement flat within 1.3x from 100 to 2000 statements, 1000
statements in under 1 s, a cached load under 50 ms. Medians of `--rounds` processes;
wall and CPU (process_time). Python writes bytecode (PYTHONDONTWRITEBYTECODE is unset
for the children), so a cached load imports the module's .pyc, as it does by default.
`--trees A B` compares copies of the source tree (before and after a change), each
first on PYTHONPATH, interleaved in every round.

    OPENBLAS_NUM_THREADS=1 python benchmarks/compile_scale.py [--sizes 100 500 1000 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import importlib.util, json, sys, time
import numpy as np
import adjoint
path, cache = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("long_f", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
x, w = np.array([0.3, -0.2, 0.9]), 0.8
def clocks():
    return time.perf_counter(), time.process_time()
t = clocks()
g = adjoint.grad(module.f, wrt=(0, 1), cache_dir=cache)
g(x, w)
first = [a - b for a, b in zip(clocks(), t)]
t = clocks()
g(x, w)
steady = [a - b for a, b in zip(clocks(), t)]
print(json.dumps(dict(first=first, steady=steady)))
"""

SMALL = "import numpy as np\n\n\ndef g(x):\n    return np.sum(np.sin(x) * x)\n"


def long_function(n: int) -> str:
    lines = ["import numpy as np", "", "", "def f(x, w):"]
    lines += [f"    x = np.sin(x) * w + {0.1 + k * 1e-3!r}" for k in range(n)]
    return "\n".join(lines + ["    return np.sum(x * x)", ""])


def run(path: str, cache: str, env: dict, folder: str) -> dict:
    # a small compile first in the same process (the compiler's modules imported)
    warmup = (f"import sys, importlib.util, tempfile; sys.path.insert(0, {folder!r}); "
              "import adjoint, numpy as np, small; "
              "adjoint.grad(small.g, cache_dir=tempfile.mkdtemp())(np.ones(3))\n")
    out = subprocess.run([sys.executable, "-c", warmup + CHILD, path, cache],
                         capture_output=True, text=True, env=env, cwd=folder)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 250, 500, 1000, 2000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trees", nargs="*", default=[None],
                        help="source trees to compare (default: the installed adjoint)")
    opts = parser.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a cached module's bytecode, as by default
    envs = {tree: env if tree is None else dict(env, PYTHONPATH=os.path.abspath(tree))
            for tree in opts.trees}
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "small.py"), "w") as fh:
        fh.write(SMALL)
    rows = {(t, n): {"compile": [], "load": []} for t in opts.trees for n in opts.sizes}
    print(f"load average at start: {os.getloadavg()}")
    for r in range(opts.rounds):  # interleaved: every size and tree once a round
        for n in opts.sizes:
            for tree in opts.trees:
                path = os.path.join(folder, f"long{n}_{r}_{opts.trees.index(tree)}.py")
                with open(path, "w") as fh:
                    fh.write(long_function(n))
                cache = tempfile.mkdtemp()
                cold = run(path, cache, envs[tree], folder)
                hot = run(path, cache, envs[tree], folder)
                row = rows[tree, n]
                row["compile"].append([a - b for a, b in zip(cold["first"], cold["steady"])])
                row["load"].append([a - b for a, b in zip(hot["first"], hot["steady"])])
    print(f"load average at end: {os.getloadavg()}")
    print("| tree | statements | compile (wall) | compile (CPU) | per statement (CPU) | "
          "cached load (wall) | cached load (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tree in opts.trees:
        for n in opts.sizes:
            def med(key, clock):
                return statistics.median(v[clock] for v in rows[tree, n][key])
            print(f"| {tree or 'installed'} | {n} | {med('compile', 0):.2f} s | "
                  f"{med('compile', 1):.2f} s | {med('compile', 1) / n * 1e3:.2f} ms | "
                  f"{med('load', 0) * 1e3:.0f} ms | {med('load', 1) * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
