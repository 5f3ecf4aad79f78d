#!/usr/bin/env python
"""adjoint's benchmark suite.

    OPENBLAS_NUM_THREADS=1 python benchmarks/run.py            # full run, writes RESULTS.md
    OPENBLAS_NUM_THREADS=1 python benchmarks/run.py --quick    # < 1 min, writes RESULTS-quick.md

For each workload in workloads.py: the median time of f, of its hand-written
gradient, of adjoint's gradient, and of the installed peers (autograd, JAX without
jit, JAX with jit, tangent-ad), the contenders interleaved round-robin; every
gradient is checked against the hand-written one first, and one that disagrees is
reported as WRONG and never timed. Then the peak memory (tracemalloc) of adjoint's
gradient against the hand-written one, and adjoint's compile and disk-cache load
times. See README.md beside this file for the columns.
"""
from __future__ import annotations

import os

# One thread everywhere, before numpy (or jax) is imported: the machine is shared.
for _v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[_v] = "1"
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import adjoint  # noqa: E402
from workloads import WORKLOADS, Workload  # noqa: E402

PEERS = ("autograd", "jax", "jax-jit", "tangent")
COLUMNS = ("hand", "adjoint") + PEERS


# ------------------------------------------------------------------ settings

class Settings:
    def __init__(self, quick: bool):
        self.quick = quick
        self.rounds = 9 if quick else 31          # round-robin rounds (samples per contender)
        self.min_rounds = 3                       # a slow contender still gets this many
        self.budget_s = 0.6 if quick else 3.0     # timing budget per contender per workload
        self.min_sample_s = 5e-4 if quick else 1e-3  # a sample repeats a fast call up to this
        self.first_call_cap_s = 2.0 if quick else 20.0   # warm-up + check call of a peer
        self.call_cap_s = 1.0 if quick else 5.0   # one steady call longer than this: not timed
        self.jit_cap_s = 3.0 if quick else 60.0   # JAX trace + XLA compile longer: jit skipped


# ------------------------------------------------------------------ peers

def load_peers() -> tuple[dict, dict]:
    """The peers that import; and for each that does not, why."""
    mods, missing = {}, {}
    try:
        import autograd
        import peers_autograd
        mods["autograd"] = (autograd, peers_autograd)
    except Exception as e:  # noqa: BLE001
        missing["autograd"] = f"{type(e).__name__}: {e}"
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp  # noqa: F401
        import peers_jax
        mods["jax"] = (jax, peers_jax)
    except Exception as e:  # noqa: BLE001
        missing["jax"] = f"{type(e).__name__}: {e}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tangent
            import peers_tangent
        mods["tangent"] = (tangent, peers_tangent)
    except Exception as e:  # noqa: BLE001
        missing["tangent"] = f"{type(e).__name__}: {e}"
    return mods, missing


def version_of(name: str) -> str:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return "not installed"


# ------------------------------------------------------------------ helpers

class TooSlow(Exception):
    pass


def _alarm(signum, frame):
    raise TooSlow()


def capped(fn, cap_s: float):
    """fn() and its duration; TooSlow if it runs past cap_s (checked by SIGALRM, so a
    long C call overruns until it returns)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, cap_s)
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return out, time.perf_counter() - t0


def as_tuple(g, n: int) -> tuple:
    if n == 1:
        return (np.asarray(g),)
    return tuple(np.asarray(x) for x in g)


def check(got: tuple, ref: tuple) -> tuple[bool, float]:
    """Agreement with the hand-written gradient: rtol 1e-6, atol 1e-9 of the largest entry."""
    if len(got) != len(ref):
        return False, float("inf")
    worst = 0.0
    ok = True
    for a, b in zip(got, ref):
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        if a.shape != b.shape and a.size == b.size:
            a = a.reshape(b.shape)
        if a.shape != b.shape:
            return False, float("inf")
        scale = float(np.max(np.abs(b))) if b.size else 1.0
        err = float(np.max(np.abs(a - b))) if b.size else 0.0
        worst = max(worst, err / max(scale, 1e-300))
        ok = ok and bool(np.allclose(a, b, rtol=1e-6, atol=1e-9 * scale + 1e-300))
    return ok, worst


def fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "-"
    for unit, k in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if b >= k:
            return f"{b / k:.3g} {unit}"
    return f"{b:.0f} B"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.3g}" if r < 100 else f"{r:.0f}"


# ------------------------------------------------------------------ contenders

class Contender:
    """A zero-argument callable under test, and what became of it."""

    def __init__(self, name: str):
        self.name = name
        self.call = None
        self.status = "ok"      # ok | WRONG | error | skipped | n/a
        self.note = ""
        self.err = None         # relative error against the hand-written gradient
        self.number = 1         # calls per sample
        self.est = None         # estimated seconds per call
        self.samples: list[float] = []      # wall time per call (perf_counter)
        self.cpu_samples: list[float] = []  # CPU time of this process per call (process_time)
        self.compile_s = None   # time to a first gradient, minus one steady call

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else None

    @property
    def cpu_median(self):
        return statistics.median(self.cpu_samples) if self.cpu_samples else None


def prepare(c: Contender, make, ref, n, s: Settings, cap_first: float | None = None,
            check_result=True):
    """make() -> callable; first call (capped), check against ref, estimate the cost."""
    try:
        c.call = make()
    except TooSlow:
        c.status, c.note = "skipped", "setup too slow"
        return
    except Exception as e:  # noqa: BLE001
        c.status, c.note = "error", f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        return
    cap = cap_first or s.first_call_cap_s
    try:
        out, t_first = capped(c.call, cap)
    except TooSlow:
        c.status, c.note = "skipped", f"first call > {cap:.0f} s (interrupted)"
        return
    except Exception as e:  # noqa: BLE001
        c.status, c.note = "error", f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        return
    if check_result:
        try:
            ok, err = check(as_tuple(out, n), ref)
        except Exception as e:  # noqa: BLE001
            ok, err = False, float("inf")
            c.note = f"result not comparable: {type(e).__name__}"
        c.err = err
        if not ok:
            c.status = "WRONG"
            c.note = c.note or f"max error {err:.3g} x largest entry"
            return
    try:
        _, t2 = capped(c.call, s.call_cap_s)
    except TooSlow:
        c.status, c.note = "skipped", (f"one call > {s.call_cap_s:.0f} s "
                                       f"(first call {t_first:.1f} s)")
        return
    c.est = t2
    c.number = max(1, int(s.min_sample_s / max(t2, 1e-9)))


def run_rounds(cs: list[Contender], s: Settings) -> None:
    """Round-robin: every round samples every active contender once, in a shuffled order
    (a rotation would give each contender the same predecessor every round, and with it
    the same caches and allocator state); a contender whose budget is spent drops out
    (after min_rounds)."""
    active = [c for c in cs if c.status == "ok"]
    spent = {c.name: 0.0 for c in active}
    shuffle = random.Random(0).shuffle
    for r in range(s.rounds):
        order = list(active)
        shuffle(order)
        for c in order:
            if len(c.samples) >= s.min_rounds and spent[c.name] >= s.budget_s:
                continue
            fn, n = c.call, c.number
            p0 = time.process_time()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            dt = time.perf_counter() - t0
            dp = time.process_time() - p0
            c.samples.append(dt / n)
            c.cpu_samples.append(dp / n)
            spent[c.name] += dt


# ------------------------------------------------------------------ JAX jit, compiled in a child first

def jit_args(w: Workload, args):
    import jax.numpy as jnp
    static = tuple(i for i, a in enumerate(args) if isinstance(a, int) and not isinstance(a, bool))
    dyn = tuple(jnp.asarray(a) if isinstance(a, np.ndarray) else a
                for i, a in enumerate(args) if i not in static)
    return static, dyn


def jit_build(jax, mod, w: Workload, args):
    """(lowered, compile) of jax.jit(jax.grad(f)) on args."""
    import jax.numpy as jnp
    static, _ = jit_args(w, args)
    argn = w.wrt if len(w.wrt) > 1 else w.wrt[0]
    g = jax.jit(jax.grad(getattr(mod, w.f.__name__), argn), static_argnums=static)
    a = tuple(jnp.asarray(x) if isinstance(x, np.ndarray) else x for x in args)
    t0 = time.perf_counter()
    lowered = g.lower(*a)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return compiled, t1 - t0, t2 - t1


def jax_cache(folder: str) -> None:
    import jax
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def jit_child(key: str, quick: bool, cache: str) -> None:
    """In a child process: trace and compile one workload's jitted gradient into the
    persistent cache; print `ready` once imported, then the times as JSON."""
    import jax
    jax.config.update("jax_enable_x64", True)
    jax_cache(cache)
    import peers_jax
    w = next(w for w in WORKLOADS if w.key == key)
    args = w.make_args(quick)
    print("ready", flush=True)
    _, lower_s, compile_s = jit_build(jax, peers_jax, w, args)
    print(json.dumps({"lower_s": lower_s, "compile_s": compile_s}), flush=True)


def jit_probe(w: Workload, s: Settings, cache: str) -> tuple[dict | None, str]:
    """Compile in a child, stopped once trace + compile pass the cap (the clock starts
    when the child has imported JAX)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--jit-child", w.key, "--jax-cache", cache]
    if s.quick:
        cmd.append("--quick")
    err = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        first = proc.stdout.readline()
        if first.strip() != "ready":
            proc.wait(timeout=60)
            err.seek(0)
            last = ([ln for ln in err.read().strip().splitlines() if ln.strip()] or ["?"])[-1]
            return None, f"error: {last[:160]}"
        try:
            proc.wait(timeout=s.jit_cap_s + 1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, f"trace + compile > {s.jit_cap_s:.0f} s (child stopped at the cap)"
        rest = proc.stdout.read().strip().splitlines()
        if proc.returncode != 0 or not rest:
            err.seek(0)
            last = ([ln for ln in err.read().strip().splitlines() if ln.strip()] or ["?"])[-1]
            return None, f"error: {last[:160]}"
        info = json.loads(rest[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    total = info["lower_s"] + info["compile_s"]
    if total > s.jit_cap_s:
        return info, f"trace + compile {total:.0f} s > {s.jit_cap_s:.0f} s cap"
    return info, ""


# ------------------------------------------------------------------ one workload

def bench_workload(w: Workload, s: Settings, peers: dict, cache: str, jcache: str, log) -> dict:
    args = w.make_args(s.quick)
    n = len(w.wrt)
    wrt = w.wrt if n > 1 else w.wrt[0]
    ref = as_tuple(w.hand(*args), n)
    cs: dict[str, Contender] = {}

    def add(name, make, check_result=True, cap_first=None):
        c = Contender(name)
        cs[name] = c
        t0 = time.perf_counter()
        prepare(c, make, ref, n, s, cap_first=cap_first, check_result=check_result)
        log(f"  {name:9s} {c.status:7s} {fmt_time(c.est):>10s}  prepared in {time.perf_counter() - t0:.1f} s"
            f"{'  ' + c.note if c.note else ''}")
        return c

    f, hand = w.f, w.hand
    add("f", lambda: (lambda: f(*args)), check_result=False)
    add("hand", lambda: (lambda: hand(*args)))

    # adjoint: compile once (first call, fresh cache folder), then time calls
    holder = {}

    def make_adjoint():
        t0 = time.perf_counter()
        g = adjoint.grad(f, wrt, cache_dir=cache)
        g(*args)
        holder["first"] = time.perf_counter() - t0
        holder["g"] = g
        return lambda: g(*args)

    cs_first = {}
    add("adjoint", make_adjoint)
    if "first" in holder:
        cs_first["adjoint"] = holder["first"]

    if "autograd" in peers:
        autograd, mod = peers["autograd"]
        pf = getattr(mod, f.__name__)
        add("autograd", lambda: (lambda g=autograd.grad(pf, wrt): g(*args)))

    if "jax" in peers:
        jax, mod = peers["jax"]
        import jax.numpy as jnp
        ja = tuple(jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args)
        pf = getattr(mod, f.__name__)

        def make_jax():
            g = jax.grad(pf, wrt)
            return lambda: jax.block_until_ready(g(*ja))

        add("jax", make_jax)

        # jit: trace + compile in a child first (capped), then here from the persistent cache
        info, why = jit_probe(w, s, jcache)
        c = Contender("jax-jit")
        if info is not None:
            c.compile_s = info["lower_s"] + info["compile_s"]
            c.trace_s = info["lower_s"]
        if why:
            c.status, c.note = ("error" if why.startswith("error") else "skipped"), why
            cs["jax-jit"] = c
            log(f"  jax-jit   {c.status:7s} {why}")
        else:
            _, dyn = jit_args(w, args)

            def make_jit():
                compiled, _, _ = jit_build(jax, mod, w, args)
                return lambda: jax.block_until_ready(compiled(*dyn))

            c2 = add("jax-jit", make_jit)
            c2.compile_s, c2.trace_s = c.compile_s, c.trace_s
    if "tangent" in peers:
        tangent, mod = peers["tangent"]
        pf = getattr(mod, f.__name__)
        th = {}

        def make_tangent():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                g = tangent.grad(pf, wrt=w.wrt, verbose=0)
                g(*args)
                th["first"] = time.perf_counter() - t0
            return lambda: g(*args)

        add("tangent", make_tangent)
        if "first" in th:
            cs_first["tangent"] = th["first"]

    t0 = time.perf_counter()
    run_rounds(list(cs.values()), s)
    log(f"  timed in {time.perf_counter() - t0:.1f} s")
    for name, first in cs_first.items():  # time to a first gradient, less one (median) call
        if cs[name].median is not None:
            cs[name].compile_s = max(first - cs[name].median, 0.0)
    mem = memory(w, args, holder.get("g"))
    return {"w": w, "cs": cs, "mem": mem, "args": args}


def memory(w: Workload, args, g) -> dict:
    """Peak traced allocation during one call of f, the hand-written gradient, adjoint's."""
    out = {}
    fns = {"f": lambda: w.f(*args), "hand": lambda: w.hand(*args)}
    if g is not None:
        fns["adjoint"] = lambda: g(*args)
    tracemalloc.start()
    try:
        for name, fn in fns.items():
            gc.collect()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            r = fn()
            out[name] = tracemalloc.get_traced_memory()[1] - base
            del r
    finally:
        tracemalloc.stop()
    return out


# ------------------------------------------------------------------ compile time

def compile_bench(log) -> dict:
    """Compile the ~50-line model's gradient in a fresh process on an empty cache folder,
    then load it from that folder in a second fresh process."""
    folder = tempfile.mkdtemp(prefix="adjoint-bench-compile-")
    script = str(HERE / "compile_model.py")
    res = {}
    try:
        for label in ("first", "second"):
            p = subprocess.run([sys.executable, script, "--cache-dir", folder],
                               capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                res[label] = {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
            else:
                res[label] = json.loads(p.stdout.strip().splitlines()[-1])
            log(f"  {label} process: {res[label]}")
        files = sorted(Path(folder).glob("*.py"))
        res["module_lines"] = len(files[0].read_text().splitlines()) if files else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    import inspect
    import compile_model
    res["model_lines"] = len(inspect.getsource(compile_model.model).splitlines())
    return res


# ------------------------------------------------------------------ report

def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--",
                                "adjoint"], capture_output=True, text=True).stdout.strip()
        commit = commit + (" + uncommitted changes in adjoint/" if dirty else "")
    except OSError:
        commit = "unknown"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "adjoint": f"{adjoint.__version__} (git {commit})",
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "threads": "OPENBLAS/MKL/OMP_NUM_THREADS=1, XLA_FLAGS=" + os.environ.get("XLA_FLAGS", ""),
    }


def med(c: Contender | None, metric: str):
    """The median of one call: `wall` (perf_counter) or `cpu` (process_time)."""
    if c is None:
        return None
    return c.median if metric == "wall" else c.cpu_median


def cell(c: Contender | None, base: float | None, metric: str = "wall") -> str:
    if c is None:
        return "n/a"
    if c.status == "WRONG":
        return "WRONG"
    m = med(c, metric)
    if c.status != "ok" or m is None or not base:
        return c.status
    return fmt_ratio(m / base)


TARGETS = """\
- T(adjoint)/T(hand) <= 1.2
- T(adjoint)/T(f) <= 3 (vectorised), <= 4 (loops)
- adjoint faster than autograd and JAX without jit everywhere
- adjoint faster than tangent-ad on the loop workloads
- peak memory of adjoint's gradient <= 1.5 x the hand-written one's"""


def targets(results: list) -> list[str]:
    """Each target missed, judged on wall and on CPU-time medians: a miss on either
    is listed, with both numbers and which measure missed."""
    misses = []

    def both(fn):
        vals = {m: fn(m) for m in ("wall", "cpu")}
        return vals

    for r in results:
        w, cs, mem = r["w"], r["cs"], r["mem"]
        a, h, f = cs.get("adjoint"), cs.get("hand"), cs.get("f")
        if a is None or a.median is None:
            misses.append(f"{w.key}: adjoint not timed ({a.status if a else 'missing'}: "
                          f"{a.note if a else ''})")
            continue
        lim = 3 if w.kind == "vec" else 4
        checks = [("T(adjoint)/T(hand)", 1.2, lambda m: med(a, m) / med(h, m)),
                  ("T(adjoint)/T(f)", lim, lambda m: med(a, m) / med(f, m))]
        for p in ("autograd", "jax") + (("tangent",) if w.kind == "loop" else ()):
            c = cs.get(p)
            if c is not None and c.median is not None:
                checks.append((f"T(adjoint)/T({p})", 1.0,
                               lambda m, c=c: med(a, m) / med(c, m)))
        for label, limit, fn in checks:
            v = both(fn)
            bad = [m for m in v if v[m] > limit]
            if bad:
                which = "both" if len(bad) == 2 else f"{bad[0]} only"
                misses.append(f"{w.key}: {label} = {v['wall']:.2f} wall, {v['cpu']:.2f} cpu "
                              f"> {limit:g} ({which})")
        if mem.get("adjoint") is not None and mem.get("hand"):
            m = mem["adjoint"] / mem["hand"]
            if m > 1.5:
                misses.append(f"{w.key}: peak memory adjoint/hand = {m:.2f} > 1.5 "
                              f"({fmt_bytes(mem['adjoint'])} vs {fmt_bytes(mem['hand'])})")
    return misses


def ratio_table(results, s: Settings, metric: str) -> list[str]:
    L = []
    head = "| workload | size | T(f) | hand | adjoint | autograd | jax | jax-jit | tangent | adjoint/hand |"
    L.append(head)
    L.append("|" + "---|" * (head.count("|") - 1))
    for r in results:
        w, cs = r["w"], r["cs"]
        f = med(cs["f"], metric)
        a, h = med(cs["adjoint"], metric), med(cs["hand"], metric)
        row = [f"{w.key} ({w.kind})", w.size(s.quick), fmt_time(f)]
        row += [cell(cs.get(k), f, metric) for k in COLUMNS]
        row.append(fmt_ratio(a / h) if a and h else cell(cs.get("adjoint"), None))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    return L


def render(results, comp, info, missing, s: Settings, command: str, elapsed: float) -> str:
    L = []
    L.append("# adjoint benchmark results\n")
    L.append(f"Produced by: `{command}`" + (" (quick mode: fewer repetitions, smaller sizes)" if s.quick else "") + "\n")
    L.append("| machine | |\n|---|---|")
    L.append(f"| CPU | {info['cpu']} ({info['cores']} cores visible) |")
    L.append(f"| Python | {info['python']} |")
    L.append(f"| NumPy | {info['numpy']} |")
    L.append(f"| adjoint | {info['adjoint']} |")
    for p, dist in (("autograd", "autograd"), ("jax", "jax"), ("tangent", "tangent-ad")):
        v = version_of(dist)
        L.append(f"| {dist} | {v if p not in missing else 'unavailable: ' + missing[p][:120]} |")
    L.append(f"| date | {info['date']} |")
    L.append(f"| load average (1, 5, 15 min) at start | {info['load']} |")
    L.append(f"| load average at end | {' '.join(f'{x:.2f}' for x in os.getloadavg())} |")
    L.append(f"| threads | {info['threads']} |")
    L.append(f"| total run time | {elapsed:.0f} s |")
    L.append("")
    L.append(f"Medians of {s.rounds} round-robin rounds (a contender whose {s.budget_s:g} s budget is "
             f"spent stops after {s.min_rounds}); a sample repeats a fast call to reach "
             f"{s.min_sample_s * 1e3:g} ms. Every gradient was checked against the hand-written one "
             "(rtol 1e-6, atol 1e-9 x largest entry) before timing.\n")

    L.append("## Time relative to f: T(x) / T(f), wall-clock medians (perf_counter)\n")
    L += ratio_table(results, s, "wall")
    L.append("## The same, CPU-time medians (process_time)\n")
    L.append("The same samples measured by this process's CPU time: time the process spent "
             "waiting for a core (the machine is shared) does not count. When the load average "
             "exceeds the core count, these are the steadier numbers.\n")
    L += ratio_table(results, s, "cpu")
    L.append("## Median times (wall clock)\n")
    head = "| workload | f | hand | adjoint | autograd | jax | jax-jit | tangent |"
    L.append(head)
    L.append("|" + "---|" * (head.count("|") - 1))
    for r in results:
        cs = r["cs"]
        row = [r["w"].key] + [fmt_time(cs[k].median) if k in cs and cs[k].median else
                              (cs[k].status if k in cs else "n/a") for k in ("f",) + COLUMNS]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("## Compile time per workload\n")
    L.append("adjoint: `adjoint.grad(f)` plus its first call on an empty cache folder, less one "
             "steady call. tangent-ad: the first call of `tangent.grad(f)`, less one steady call. "
             "jax-jit: `jax.jit(jax.grad(f)).lower(...)` (trace) + `.compile()`, measured in a "
             "child process (capped), then loaded here from JAX's persistent cache.\n")
    L.append("| workload | adjoint | tangent | jax-jit trace + compile |")
    L.append("|---|---|---|---|")
    for r in results:
        cs = r["cs"]
        jj = cs.get("jax-jit")
        jt = "n/a"
        if jj is not None and jj.compile_s is not None:
            jt = f"{jj.compile_s:.2f} s (trace {jj.trace_s:.2f} s)"
            if jj.status != "ok":
                jt += f", {jj.status}"
        elif jj is not None:
            jt = jj.status
        ta = cs.get("tangent")
        L.append(f"| {r['w'].key} | {fmt_time(cs['adjoint'].compile_s)} | "
                 f"{fmt_time(ta.compile_s) if ta is not None and ta.compile_s is not None else (ta.status if ta else 'n/a')} | {jt} |")
    L.append("")
    L.append("## Peak memory of one call (tracemalloc)\n")
    L.append("| workload | f | hand | adjoint | adjoint/hand |")
    L.append("|---|---|---|---|---|")
    for r in results:
        m = r["mem"]
        ratio = m["adjoint"] / m["hand"] if m.get("adjoint") is not None and m.get("hand") else None
        L.append(f"| {r['w'].key} | {fmt_bytes(m.get('f'))} | {fmt_bytes(m.get('hand'))} | "
                 f"{fmt_bytes(m.get('adjoint'))} | {fmt_ratio(ratio)} |")
    L.append("")
    L.append("## Compile and load of a ~50-line function\n")
    L.append(f"`benchmarks/compile_model.py:model` ({comp.get('model_lines')} lines; its gradient "
             f"module is {comp.get('module_lines')} lines). Each process is fresh: it imports "
             "adjoint, calls `adjoint.grad(model, wrt, cache_dir=D)` and calls the gradient. "
             "The first finds D empty and compiles; the second finds the module in D and imports it.\n")
    L.append("| process | import adjoint | adjoint.grad() | first call | steady call | first gradient, less one steady call | compiled here? |")
    L.append("|---|---|---|---|---|---|---|")
    for label in ("first", "second"):
        d = comp.get(label, {})
        if "error" in d:
            L.append(f"| {label} | error: {d['error']} | | | | | |")
            continue
        L.append(f"| {label} (cache {'empty' if label == 'first' else 'filled'}) | "
                 f"{fmt_time(d.get('import_s'))} | {fmt_time(d.get('grad_s'))} | "
                 f"{fmt_time(d.get('first_call_s'))} | {fmt_time(d.get('steady_call_s'))} | "
                 f"**{fmt_time(d.get('first_gradient_s'))}** | {'yes' if d.get('generated') else 'no'} |")
    L.append("")
    L.append("## Notes\n")
    notes = []
    for r in results:
        for c in r["cs"].values():
            if c.note:
                notes.append(f"- {r['w'].key} / {c.name}: {c.status}: {c.note}")
    for p, why in missing.items():
        notes.append(f"- {p}: not installed or fails to import ({why[:200]}); its columns say n/a")
    notes.append("- Peer versions of f are in peers_autograd.py, peers_jax.py, peers_tangent.py: the "
                 "same code with the peer's numpy; `math.sin` becomes the peer's `sin` in sin_loop "
                 "(autograd and JAX trace through their own sin only; tangent-ad has no adjoint "
                 "for math.sin). JAX loops are plain Python loops: tracing unrolls them.")
    notes.append("- JAX is timed on jax arrays made beforehand, with `block_until_ready`; the "
                 "jitted gradient is the AOT-compiled executable (int arguments static).")
    L += notes
    L.append("")
    L.append("## Targets missed\n")
    L.append(TARGETS + "\n")
    misses = targets(results)
    L += [f"- MISS {m}" for m in misses] or ["- none"]
    L.append("")
    return "\n".join(L)


def print_table(results, s: Settings) -> None:
    for metric, title in (("wall", "wall-clock"), ("cpu", "CPU-time")):
        head = ["workload", "T(f)"] + list(COLUMNS) + ["adj/hand"]
        rows = []
        for r in results:
            cs = r["cs"]
            f = med(cs["f"], metric)
            a, h = med(cs["adjoint"], metric), med(cs["hand"], metric)
            rows.append([r["w"].key, fmt_time(f)] + [cell(cs.get(k), f, metric) for k in COLUMNS]
                        + [fmt_ratio(a / h) if a and h else "-"])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        print(f"\nT(x)/T(f), {title} medians" + (" [quick]" if s.quick else ""))
        for row in [head] + rows:
            print("  ".join(str(x).rjust(wd) for x, wd in zip(row, widths)))


# ------------------------------------------------------------------ main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes (< 1 min)")
    p.add_argument("--only", default="", help="comma-separated workload keys")
    p.add_argument("--no-peers", action="store_true", help="time f, hand and adjoint only")
    p.add_argument("--out", default=None, help="results file (default RESULTS.md, "
                   "RESULTS-quick.md with --quick)")
    p.add_argument("--dump-source", default=None, metavar="DIR",
                   help="also write adjoint's generated gradient of each workload into DIR")
    p.add_argument("--jit-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--jax-cache", default=None, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.jit_child:
        jit_child(ns.jit_child, ns.quick, ns.jax_cache)
        return 0

    start = time.perf_counter()
    s = Settings(ns.quick)
    command = " ".join(["OPENBLAS_NUM_THREADS=1", "python", "benchmarks/run.py"] + (argv if argv is not None else sys.argv[1:]))
    out = Path(ns.out) if ns.out else HERE / ("RESULTS-quick.md" if s.quick else "RESULTS.md")

    def log(msg):
        print(msg, flush=True)

    info = machine_info()
    log(f"{info['cpu']}, python {info['python']}, numpy {info['numpy']}, load {info['load']}")
    peers, missing = ({}, {p: "--no-peers" for p in ("autograd", "jax", "tangent")}) \
        if ns.no_peers else load_peers()
    for k, why in missing.items():
        log(f"peer {k} unavailable: {why}")
    # what the imports left behind (JAX's is large) moves out of the collector's way, so a
    # full collection during a timed call costs what it would in a process without peers
    gc.collect()
    gc.freeze()
    only = {k for k in ns.only.split(",") if k}
    chosen = [w for w in WORKLOADS if not only or w.key in only]
    cache = tempfile.mkdtemp(prefix="adjoint-bench-cache-")
    os.environ["ADJOINT_CACHE_DIR"] = cache  # adjoint.source() too: never the user's cache
    jcache = tempfile.mkdtemp(prefix="adjoint-bench-jax-")
    if "jax" in peers:
        jax_cache(jcache)
    results = []
    try:
        for w in chosen:
            log(f"{w.key}: {w.title}, {w.size(s.quick)}")
            results.append(bench_workload(w, s, peers, cache, jcache, log))
            if ns.dump_source:
                Path(ns.dump_source).mkdir(parents=True, exist_ok=True)
                wrt = w.wrt if len(w.wrt) > 1 else w.wrt[0]
                (Path(ns.dump_source) / f"{w.key}_grad.py").write_text(
                    adjoint.source(w.f, wrt, args=results[-1]["args"]))
        log("compile time (~50-line function):")
        comp = compile_bench(log)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(jcache, ignore_errors=True)
    elapsed = time.perf_counter() - start
    text = render(results, comp, info, missing, s, command, elapsed)
    out.write_text(text)
    print_table(results, s)
    print()
    for line in text.split("## Targets missed", 1)[1].splitlines()[1:]:
        if line.startswith("- MISS"):
            print(line)
    print(f"\nwrote {out} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
