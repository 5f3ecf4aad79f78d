"""Out-of-core gradients: the gradient adjoint generates for NumPy code, run lazily on a
dask array that does not fit in one worker's memory, on a 2-worker LocalCluster.

X (rows x cols, float64) is written once to a .npy file and read back memory-mapped,
chunk by chunk, inside the workers (the graph holds the file's path, never its data).
Each worker has a memory limit below the size of X. For logistic regression and a
one-hidden-layer MLP the script
  - differentiates the plain NumPy function with adjoint.grad on the dask arrays (a lazy
    graph: nothing is read yet), then computes it on the cluster;
  - checks that the gradient equals the NumPy gradient: on the first rows (the same
    function on a dask slice and on an in-memory NumPy slice) and, when X fits in this
    machine's memory, on all of it;
  - reports the peak resident memory of each worker (sampled every 50 ms) and the
    throughput (rows per second) against the NumPy run on the in-memory array;
and writes the table and the command to benchmarks/DASK.md.

    python benchmarks/dask_out_of_core.py                  # 800 MB of X, 400 MB workers
    python benchmarks/dask_out_of_core.py --rows 200000    # a quick run
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import adjoint  # noqa: E402


def logreg(w, b, X, y):
    z = X @ w + b
    return np.mean(np.logaddexp(0.0, z) - y * z)


def mlp(W1, W2, X, y):
    h = np.tanh(X @ W1)
    r = h @ W2 - y
    return 0.5 * np.mean(r * r)


def logreg_by_hand(w, b, X, y):
    """The gradient written by hand, for the same cluster: X^T (p - y) / n, mean(p - y)."""
    r = (1.0 / (1.0 + np.exp(-(X @ w + b))) - y) / X.shape[0]
    return r @ X, np.sum(r)


def mlp_by_hand(W1, W2, X, y):
    h = np.tanh(X @ W1)
    r = (h @ W2 - y) / X.shape[0]
    return X.T @ (np.outer(r, W2) * (1.0 - h * h)), r @ h


def write_data(folder: Path, rows: int, cols: int, block: int = 100_000) -> tuple[Path, Path]:
    """X and y as .npy files, written block by block (never all in memory)."""
    xpath, ypath = folder / "X.npy", folder / "y.npy"
    rng = np.random.default_rng(0)
    truth = rng.normal(size=cols) / np.sqrt(cols)
    X = np.lib.format.open_memmap(xpath, mode="w+", dtype=np.float64, shape=(rows, cols))
    y = np.lib.format.open_memmap(ypath, mode="w+", dtype=np.float64, shape=(rows,))
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        Xb = rng.normal(size=(stop - start, cols))
        X[start:stop] = Xb
        y[start:stop] = (rng.random(stop - start) < 1.0 / (1.0 + np.exp(-Xb @ truth))) * 1.0
    X.flush()
    y.flush()
    del X, y
    return xpath, ypath


def read_rows(path: str, start: int, stop: int) -> np.ndarray:
    """Rows start:stop of a .npy file, read in the worker through a memory map."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def lazy_rows(path: Path, chunk: int):
    """The .npy file as a dask array of `chunk` rows per block, each read by a task."""
    import dask
    import dask.array as da
    head = np.load(path, mmap_mode="r")
    shape, dtype = head.shape, head.dtype
    del head
    blocks = [da.from_delayed(dask.delayed(read_rows)(str(path), s, min(s + chunk, shape[0])),
                              shape=(min(s + chunk, shape[0]) - s,) + shape[1:], dtype=dtype)
              for s in range(0, shape[0], chunk)]
    return da.concatenate(blocks, axis=0)


class PeakMemory:
    """The largest resident set size of each worker, sampled while the block runs."""

    def __init__(self, client, every: float = 0.05) -> None:
        self.client, self.every = client, every
        self.peak: dict[str, int] = {}

    def _sample(self) -> None:
        import psutil
        while not self._stop.is_set():
            try:
                now = self.client.run(lambda: psutil.Process().memory_info().rss)
            except Exception:  # a worker restarting: the next sample sees it
                now = {}
            for worker, rss in now.items():
                self.peak[worker] = max(self.peak.get(worker, 0), rss)
            self._stop.wait(self.every)

    def __enter__(self):
        self.peak = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    ap.add_argument("--memory-limit", default="400MB", help="per worker")
    ap.add_argument("--check-rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--folder", default=None, help="where X.npy is written (default: a "
                    "temporary folder, removed afterwards)")
    ap.add_argument("--out", default=str(HERE / "DASK.md"))
    args = ap.parse_args()

    import psutil
    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster

    size = args.rows * args.cols * 8
    limit = parse_bytes(args.memory_limit)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="adjoint-dask-"))
    folder.mkdir(parents=True, exist_ok=True)
    free_disk = shutil.disk_usage(folder).free
    if free_disk < 2 * size:
        print(f"not enough disk in {folder}: {mb(free_disk)} free, X needs {mb(size)}")
        return 2
    # the NumPy reference on all rows needs X in this process's memory, with room to spare
    numpy_all = psutil.virtual_memory().available > 4 * size
    print(f"X: {args.rows:,} x {args.cols} float64 = {mb(size)} on disk in {folder}; "
          f"2 workers with {mb(limit)} each")
    if limit >= size:
        print("note: the worker limit is not below the data size; this is no out-of-core run")

    t = time.perf_counter()
    xpath, ypath = write_data(folder, args.rows, args.cols)
    print(f"wrote X and y in {time.perf_counter() - t:.1f} s")

    rng = np.random.default_rng(1)
    models = {
        "logistic regression": (logreg, logreg_by_hand,
                                (rng.normal(size=args.cols) * 0.1, 0.05), (0, 1)),
        f"MLP ({args.cols}-{args.hidden}-1, tanh)":
            (mlp, mlp_by_hand, (rng.normal(size=(args.cols, args.hidden)) / np.sqrt(args.cols),
                                rng.normal(size=args.hidden) / np.sqrt(args.hidden)), (0, 1)),
    }
    rows = []
    ok = True
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           memory_limit=limit, dashboard_address=None)
    client = Client(cluster)
    try:
        X, y = lazy_rows(xpath, args.chunk_rows), lazy_rows(ypath, args.chunk_rows)
        m = args.check_rows
        X_head = np.array(np.load(xpath, mmap_mode="r")[:m])
        y_head = np.array(np.load(ypath, mmap_mode="r")[:m])
        X_all = np.load(xpath) if numpy_all else None
        y_all = np.load(ypath)
        def best(make):
            """The least time of --repeat computes on the cluster (X read each time)."""
            seconds = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                out = client.compute(make(), sync=True, optimize_graph=False)
                seconds = min(seconds, time.perf_counter() - t)
            return out, seconds

        for name, (f, by_hand, params, wrt) in models.items():
            grad = adjoint.grad(f, wrt=wrt)
            # the same function on the first rows, as dask and as NumPy
            lazy_head = client.compute(grad(*params, X[:m], y[:m]), sync=True)
            want_head = grad(*params, X_head, y_head)
            same_head = all(np.allclose(a, b, rtol=1e-12, atol=1e-15)
                            for a, b in zip(lazy_head, want_head))
            t = time.perf_counter()
            lazy = grad(*params, X, y)  # a graph: nothing read yet
            build = time.perf_counter() - t
            with PeakMemory(client) as memory:  # X is read from disk on every run
                got, seconds = best(lambda: lazy)
            hand, hand_seconds = best(lambda: by_hand(*params, X, y))
            _, f_seconds = best(lambda: f(*params, X, y))
            same_hand = all(np.allclose(a, b, rtol=1e-10, atol=1e-14) for a, b in zip(got, hand))
            peak = max(memory.peak.values()) if memory.peak else 0
            if X_all is not None:
                grad(*params, X_all, y_all)  # compiled: time the run, not the compiler
                numpy_seconds = float("inf")
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    want = grad(*params, X_all, y_all)
                    numpy_seconds = min(numpy_seconds, time.perf_counter() - t)
                same_all = all(np.allclose(a, b, rtol=1e-10, atol=1e-14)
                               for a, b in zip(got, want))
            else:
                numpy_seconds, same_all = float("nan"), None
            under = peak < limit
            ok = ok and same_head and same_all is not False and under and same_hand
            rows.append((name, args.rows / seconds, args.rows / numpy_seconds, seconds,
                         numpy_seconds, build, peak, under, same_head, same_all,
                         hand_seconds, f_seconds))
            print(f"{name}: dask {seconds:.2f} s ({args.rows / seconds:,.0f} rows/s), "
                  f"NumPy in memory {numpy_seconds:.2f} s; compiled and graph built in "
                  f"{build * 1e3:.0f} ms; "
                  f"peak worker {mb(peak)} of {mb(limit)}; equal to NumPy on the first "
                  f"{m:,} rows: {same_head}; on all rows: {same_all}; by hand on dask "
                  f"{hand_seconds:.2f} s (equal: {same_hand}), the function alone "
                  f"{f_seconds:.2f} s")
            for worker, rss in sorted(memory.peak.items()):
                print(f"    {worker}: peak {mb(rss)}")
    finally:
        client.close()
        cluster.close()
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)

    command = "python benchmarks/dask_out_of_core.py " + " ".join(sys.argv[1:])
    write_report(Path(args.out), command.strip(), args, size, limit, rows)
    print(f"wrote {args.out}")
    return 0 if ok else 1


def write_report(path: Path, command: str, args, size: int, limit: int, rows) -> None:
    import dask
    lines = [
        "# Gradients out of core on a dask cluster",
        "",
        "The NumPy functions below are differentiated by `adjoint.grad` as they are; called",
        "on dask arrays, the generated gradient is a lazy dask array, computed here on a",
        "`LocalCluster` of 2 worker processes (1 thread each) whose memory limit is below",
        "the size of X. X is a `.npy` file read through a memory map, one chunk per task.",
        "",
        "```python",
        "def logreg(w, b, X, y):",
        "    z = X @ w + b",
        "    return np.mean(np.logaddexp(0.0, z) - y * z)",
        "",
        "def mlp(W1, W2, X, y):",
        "    h = np.tanh(X @ W1)",
        "    r = h @ W2 - y",
        "    return 0.5 * np.mean(r * r)",
        "```",
        "",
        f"Command: `{command}`",
        "",
        f"X: {args.rows:,} rows x {args.cols} columns, float64, {mb(size)}; chunks of "
        f"{args.chunk_rows:,} rows ({mb(args.chunk_rows * args.cols * 8)}); worker memory "
        f"limit {mb(limit)}. Machine: {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, NumPy {np.__version__}, dask {dask.__version__}.",
        "",
        f"Times are the best of {args.repeat} runs; the machine is shared, so they vary "
        "from run to run.",
        "",
        "| model | dask, 2 workers (rows/s) | NumPy in memory (rows/s) | dask s | NumPy s "
        "| peak worker RSS | under the limit | = NumPy, first rows | = NumPy, all rows |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for (name, rate, numpy_rate, seconds, numpy_seconds, build, peak, under, head,
         every, _, _) in rows:
        lines.append(f"| {name} | {rate:,.0f} | {numpy_rate:,.0f} | {seconds:.2f} | "
                     f"{numpy_seconds:.2f} | {mb(peak)} | {'yes' if under else 'NO'} | "
                     f"{'yes' if head else 'NO'} (rtol 1e-12) | "
                     f"{'not run' if every is None else 'yes' if every else 'NO'} "
                     f"(rtol 1e-10) |")
    lines += [
        "",
        "On the same cluster and data, against the gradient written by hand with dask "
        "and the",
        "function alone (the gradient costs a small multiple of the function, as it "
        "should):",
        "",
        "| model | adjoint's gradient s | by hand s | function alone s | gradient / function |",
        "|---|---:|---:|---:|---:|",
    ]
    for (name, _, _, seconds, _, _, _, _, _, _, hand_seconds, f_seconds) in rows:
        lines.append(f"| {name} | {seconds:.2f} | {hand_seconds:.2f} | {f_seconds:.2f} | "
                     f"{seconds / f_seconds:.1f} |")
    lines += [
        "",
        f"\"First rows\": the same gradient function on the first {args.check_rows:,} rows,",
        "as a dask slice and as an in-memory NumPy array. \"All rows\": the dask gradient",
        "against the NumPy gradient on X loaded whole into this process (run only when it",
        "fits with room to spare); the sums run in another order, hence the looser rtol.",
        "Peak worker RSS is each worker process's resident memory, sampled every 50 ms",
        "during the compute (the largest of the two is shown). The NumPy run does all of",
        "it in one process with X in memory: the dask run pays for reading X from disk",
        "(page cache), moving chunks' partial sums between processes and scheduling.",
        "Graphs are computed with optimize_graph=False: with dask's optimisation, the",
        "fused tasks of two graphs of the same data reused key names with other contents",
        "(distributed warns about it: dask/dask#9888). adjoint's logistic gradient does",
        "more elementwise work than the one by hand: logaddexp's derivative is the",
        "overflow-safe sigmoid exp(min(z, 0)) / (1 + exp(-|z|)).",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
