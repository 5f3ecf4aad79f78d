#!/usr/bin/env python
"""Shape programs for the numba backend: a generator and a corpus run (issue 16).

    python benchmarks/numba_shapes.py [N] [--seed S]     # N programs, prints a summary

Each program is a few statements on x of shape (3, 4) that reshape, transpose,
slice with steps, ravel, swap axes, broadcast, index with arrays (repeated indices
too) and write into arrays in loops, ending in a number. Its gradient with
backend="numba" is compared with the NumPy backend's (rtol 1e-12) and the NumPy
backend's with central differences (rtol 1e-6), at an x that is C-ordered, Fortran-ordered
or a view with a negative step by turns; a crash, a different number, or a
fallback to NumPy (with numba's reason) is counted. tests/test_numba.py runs a fixed
few of them (`program(seed)`).
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import random
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

X_SHAPE = (3, 4)


def _factorings(size: int, rng: random.Random) -> str:
    """A shape of `size` elements, written as reshape's arguments (-1 in some)."""
    choices = [(size,)] + [(a, size // a) for a in range(2, size) if size % a == 0] + \
        [(a, b, size // (a * b)) for a in range(2, size) for b in range(2, size)
         if size % (a * b) == 0 and size // (a * b) > 1]
    shape = list(rng.choice(choices))
    if len(shape) > 1 and rng.random() < 0.3:
        shape[rng.randrange(len(shape))] = -1
    return ", ".join(map(str, shape))


def _steps(a: str, shape: tuple, rng: random.Random) -> list[str]:
    """The operations the generator may apply to the array `a` of this shape."""
    n = len(shape)
    ops = [f"{a}.reshape({_factorings(int(np.prod(shape)), rng)})",
           f"np.reshape({a}, ({_factorings(int(np.prod(shape)), rng)},))",
           f"{a}[::-1]", f"{a}.ravel()", f"np.ravel({a})", f"{a}.flatten()",
           f"np.sin({a}) * {a}", f"{a} * {a}[::-1]", f"np.exp(0.3 * {a})"]
    if shape[0] > 2:
        ops += [f"{a}[::2]", f"{a}[1::2]", f"{a}[np.array([0, 2, 2, 1])]", f"{a}[[1, 0]]"]
    if n >= 2:
        ops += [f"{a}.T", f"np.transpose({a})", f"np.swapaxes({a}, 0, {n - 1})",
                f"{a}[:, ::-1]", f"{a}[:, 1::2]", f"{a}[1:, ::2]", f"{a}[:, 0]",
                f"{a}[:, np.array([1, 1, 0])]", f"{a} * {a}[:1]", f"{a} + {a}[:, :1]",
                f"np.sum({a}, axis=0)", f"{a}.sum(axis=1)", f"np.mean({a}, axis=-1)",
                f"{a}[..., None] * {a}[:, None]", f"np.expand_dims({a}, 1)"]
    if n == 1:
        ops += [f"{a}[:, None] * {a}", f"{a}[None, :] + {a}[:, None]", f"np.outer({a}, {a})",
                f"np.cumsum({a})"]
    if n == 3:
        ops += [f"np.transpose({a}, (1, 2, 0))", f"np.moveaxis({a}, 0, -1)"]
    return ops


def _loops(a: str, out: str, shape: tuple, rng: random.Random) -> list[str]:
    """A loop writing into a fresh array, element or row at a time."""
    n = shape[0]
    forms = [
        [f"{out} = np.zeros({shape})", f"for i in range({n}):",
         f"    {out}[i] = {a}[i] * (i + 1.0)"],
        [f"{out} = np.zeros({shape})", f"for i in range(1, {n}):",
         f"    {out}[i] = {out}[i - 1] * 0.5 + np.sin({a}[i])"],
        [f"{out} = np.ones({shape})", f"for i in range({n}):",
         f"    {out}[i] += {a}[i] * {a}[{n - 1} - i]"],
        [f"{out} = {a}.copy()", f"for i in range({n}):",
         f"    {out}[i] *= {out}[i]"],
        [f"{out} = np.zeros({shape[::-1]})", f"for i in range({n}):",
         f"    {out}[..., i] = {a}[i].T"],
    ]
    if len(shape) >= 2 and shape[1] > 2:
        forms += [[f"{out} = np.zeros({shape})", f"for i in range({n}):",
                   f"    {out}[i, ::2] = {a}[i, ::2] * 2.0",
                   f"    {out}[i, 1::2] += {a}[i, ::-1][1::2]"],
                  [f"{out} = np.zeros({shape})", f"for j in range({shape[1]}):",
                   f"    {out}[:, j] = {a}[:, j] * {a}[:, {shape[1] - 1} - j]"]]
    return rng.choice(forms)


def program(seed: int) -> str:
    """The text of shape program `seed`: `def f(x): ...` returning a number."""
    rng = random.Random(seed)
    x = np.random.default_rng(seed).standard_normal(X_SHAPE)
    lines, names = [], {"x": x}
    for k in range(rng.randint(2, 5)):
        a = rng.choice(list(names)[-2:])
        new = f"v{k}"
        for _ in range(50):  # until a step that runs on these shapes
            if rng.random() < 0.25 and np.ndim(names[a]) >= 1:
                step = _loops(a, new, np.shape(names[a]), rng)
            else:
                step = [f"{new} = {rng.choice(_steps(a, np.shape(names[a]), rng))}"]
            scope = dict(names, np=np)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    exec("\n".join(step), scope)
            except Exception:  # noqa: BLE001 - a step that does not fit: draw again
                continue
            value = scope[new]
            if np.ndim(value) == 0 or np.size(value) > 200:
                continue
            lines += step
            names[new] = value
            break
    last = list(names)[-1]
    other = rng.choice(list(names))
    lines.append(f"return np.sum(np.cos({last}) * {last}) + 0.5 * np.sum({other} ** 2)")
    return "import numpy as np\n\n\ndef f(x):\n" + "".join(f"    {line}\n" for line in lines)


def argument(seed: int) -> np.ndarray:
    """x for program `seed`: C-ordered, Fortran-ordered or a view with a negative step, by
    turns (numba compiles a function for each layout)."""
    x = np.random.default_rng(seed).standard_normal(X_SHAPE)
    return (x, np.asfortranarray(x), x[:, ::-1].copy()[:, ::-1])[seed % 3]


def load(text: str, folder: Path, name: str):
    """The function f of `text`, written to folder/name.py and imported."""
    path = folder / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.f


def check(f, x) -> tuple[str, str]:
    """("ok" | "fallback" | "numba crash" | "numba differs" | "numpy differs from fd" |
    "numpy refuses", detail) for the program f at x."""
    import adjoint
    from adjoint.errors import AdjointError
    from adjoint.testing import numeric_grad
    try:
        want = adjoint.grad(f)(x)
    except AdjointError as e:
        return "numpy refuses", str(e).splitlines()[0]
    fd = numeric_grad(f, (x,))
    if not np.allclose(want, fd, rtol=1e-6, atol=1e-7):
        return "numpy differs from fd", f"max error {np.max(np.abs(want - fd)):.3g}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got = adjoint.grad(f, backend="numba")(x)
        except Exception as e:  # noqa: BLE001 - what the corpus run counts
            return "numba crash", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    if np.shape(got) != np.shape(want) or not np.allclose(got, want, rtol=1e-12,
                                                            atol=1e-13):
        return "numba differs", f"max error {np.max(np.abs(np.asarray(got) - want)):.3g}"
    fell = [str(w.message) for w in caught if "numba" in str(w.message)]
    if fell:
        return "fallback", fell[0].split(": ", 2)[-1][:200]
    return "ok", ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="print every program")
    args = parser.parse_args()
    outcomes: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seed, args.seed + args.n):
            text = program(seed)
            f = load(text, Path(tmp), f"shape_{seed}")
            x = argument(seed)
            outcome, detail = check(f, x)
            outcomes[outcome] += 1
            if outcome == "fallback":
                reasons[detail[:90]] += 1
            if outcome not in ("ok", "fallback") or args.show:
                print(f"--- seed {seed}: {outcome}: {detail}\n{text}", flush=True)
    print(dict(outcomes))
    for reason, count in reasons.most_common():
        print(f"{count:3d}  {reason}")


if __name__ == "__main__":
    main()
