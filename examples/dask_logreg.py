"""Logistic regression on a chunked dask array: the gradient that adjoint generates
for a plain NumPy function runs, unchanged, on data split into chunks across workers.

    L(w, b) = mean_i [ log(1 + exp(z_i)) - y_i z_i ],   z = X w + b

By hand, with p = sigma(z) = 1 / (1 + exp(-z)):
    dL/dw = X^T (p - y) / n,    dL/db = mean(p - y).

The generated code calls `np.exp`, `@`, `np.sum` ...; handed dask arrays, NumPy passes
each call on to dask (NEP 18), so the gradient comes back as a lazy dask array: a task
graph, computed only when asked (here on a 2-worker `LocalCluster`; on a real cluster,
give `Client` its address). What would compute a lazy value behind the user's back (an
`if` on it, `float()` of it) is refused at its line instead.
"""
import numpy as np


def loss(w, b, X, y):
    z = X @ w + b
    return np.mean(np.logaddexp(0.0, z) - y * z)


if __name__ == "__main__":
    import sys

    from _common import Checks, write_generated  # first: finds adjoint in a checkout
    import adjoint
    try:
        import dask.array as da
        from distributed import Client, LocalCluster
    except ImportError:
        sys.exit("this example needs dask: pip install 'adjoint[dask]'")

    check = Checks()
    rng = np.random.default_rng(0)
    n, d = 20_000, 20
    X_np = rng.normal(size=(n, d))
    y_np = (rng.random(n) < 1.0 / (1.0 + np.exp(-X_np @ np.linspace(-1.0, 1.0, d)))) * 1.0
    X = da.from_array(X_np, chunks=(2_500, d))  # 8 chunks of rows
    y = da.from_array(y_np, chunks=2_500)
    w, b = np.zeros(d), 0.0

    path = write_generated(adjoint.source(loss, wrt=(0, 1), args=(w, b, X, y)),
                           "dask_logreg_grad", "dask_logreg.py")
    print(f"generated gradient: {path.relative_to(path.parents[2])}\n")

    grad = adjoint.grad(loss, wrt=(0, 1))
    gw, gb = grad(w, b, X, y)
    print(f"the gradient before compute: {gw!r}")
    check("the gradient of dask arrays is a lazy dask array",
          isinstance(gw, da.Array) and isinstance(gb, da.Array))

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        gw_c, gb_c = client.compute([gw, gb], sync=True)
        p = 1.0 / (1.0 + np.exp(-(X_np @ w + b)))
        check("on the cluster it is the formula X^T (p - y) / n, mean(p - y)",
              np.allclose(gw_c, X_np.T @ (p - y_np) / n, rtol=1e-12) and
              np.isclose(gb_c, np.mean(p - y_np), rtol=1e-12))
        want = grad(w, b, X_np, y_np)
        check("and the NumPy gradient of the same data",
              np.allclose(gw_c, want[0], rtol=1e-12) and np.isclose(gb_c, want[1], rtol=1e-12))

        # gradient descent: each step builds a graph, and the cluster computes it
        first = float(loss(w, b, X_np, y_np))
        for _ in range(10):
            gw, gb = client.compute(grad(w, b, X, y), sync=True)
            w, b = w - 2.0 * gw, b - 2.0 * float(gb)
        last = float(loss(w, b, X_np, y_np))
        print(f"\nloss after 10 steps on the cluster: {first:.4f} -> {last:.4f}")
        check("10 steps of gradient descent on the cluster lower the loss", last < 0.9 * first)

    def branchy(w, b, X, y):
        z = X @ w + b
        if np.mean(z) > 0.0:  # a decision on a lazy value: dask would compute it here
            z = -z
        return np.mean(z * z)

    try:
        adjoint.grad(branchy)(w, b, X, y)
        refused = None
    except adjoint.UnsupportedError as e:
        refused = e
        print(f"\n{e}")
    check("an `if` on a lazy value is refused at its line, with a hint",
          refused is not None and refused.loc.line > 0 and "compute" in refused.hint)
    check.done()
