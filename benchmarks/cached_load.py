"""A cached load in a new process (issue 16: under 50 ms): the gradient's module is in
the cache folder already, and a fresh process imports adjoint and f's module, then
calls `adjoint.grad(f)` once.

For each function, one process compiles into an empty cache folder; then `--rounds`
new processes each measure, on that folder:
- import adjoint;
- import f's module;
- the load: `g = adjoint.grad(f)` and its first call, less one steady call (the
  gradient's own run), and whether f was lowered (`lowered`: yes on a miss of the
  index, adjoint/index.py).
The functions: benchmarks/compile_model.py's model (42 lines, a loop and branches) and
compile_scale.py's straight-line function of n statements. Medians; wall and CPU
(process_time). Python writes bytecode, as by default, so the module's .pyc is used.
`--trees A B` runs each source tree (first on PYTHONPATH) in turn, interleaved.

    OPENBLAS_NUM_THREADS=1 python benchmarks/cached_load.py [--sizes 100 1000 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from compile_scale import long_function  # noqa: E402

CHILD = r"""
import json, sys, time
def clocks():
    return time.perf_counter(), time.process_time()
def since(t):
    return [a - b for a, b in zip(clocks(), t)]
t = clocks()
import numpy as np
import adjoint
imported = since(t)
folder, name, cache = sys.argv[1:4]
sys.path.insert(0, folder)
t = clocks()
module = __import__(name)
own = since(t)
args, wrt = module.make_args(), module.WRT
t = clocks()
g = adjoint.grad(module.f, wrt=wrt, cache_dir=cache)
g(*args)
first = since(t)
t = clocks()
g(*args)
steady = since(t)
print(json.dumps(dict(adjoint=imported, module=own, load=[a - b for a, b in zip(first, steady)],
                      lowered=getattr(g, "_job", True) is not None)))  # (no index before)
"""

MODEL = """
import sys
sys.path.insert(0, {here!r})
from compile_model import WRT, make_args, model as f
"""

# compile_scale.py's function, with its arguments
LONG_ARGS = """

WRT = (0, 1)


def make_args():
    return np.array([0.3, -0.2, 0.9]), 0.8
"""


def child(folder: str, name: str, cache: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, folder, name, cache],
                         capture_output=True, text=True, env=env, cwd=folder)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 2000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trees", nargs="*", default=[None],
                        help="source trees to compare (default: the installed adjoint)")
    opts = parser.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("ADJOINT_CACHE_DIR", None)
    envs = {tree: env if tree is None else dict(env, PYTHONPATH=os.path.abspath(tree))
            for tree in opts.trees}
    folder = tempfile.mkdtemp()
    functions = {"model": MODEL.format(here=HERE)}
    functions.update({f"long{n}": long_function(n) + LONG_ARGS for n in opts.sizes})
    for name, text in functions.items():
        with open(os.path.join(folder, f"{name}.py"), "w") as fh:
            fh.write(text)
    caches = {(tree, name): tempfile.mkdtemp() for tree in opts.trees for name in functions}
    for (tree, name), cache in caches.items():  # the compile that fills each folder
        child(folder, name, cache, envs[tree])
    rows = {key: [] for key in caches}
    print(f"load average at start: {os.getloadavg()}")
    for _ in range(opts.rounds):
        for name in functions:
            for tree in opts.trees:
                rows[tree, name].append(child(folder, name, caches[tree, name], envs[tree]))
    print(f"load average at end: {os.getloadavg()}")
    print("| tree | function | import adjoint (CPU) | import f's module (CPU) | "
          "cached load (wall) | cached load (CPU) | f lowered? |")
    print("|---|---|---:|---:|---:|---:|---|")
    for tree in opts.trees:
        for name in functions:
            runs = rows[tree, name]

            def med(key, clock):
                return statistics.median(r[key][clock] for r in runs) * 1e3
            lowered = "/".join(sorted({"yes" if r["lowered"] else "no" for r in runs}))
            print(f"| {tree or 'installed'} | {name} | {med('adjoint', 1):.0f} ms | "
                  f"{med('module', 1):.1f} ms | {med('load', 0):.1f} ms | "
                  f"{med('load', 1):.1f} ms | {lowered} |")
    for cache in caches.values():
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
