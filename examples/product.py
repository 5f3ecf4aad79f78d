"""The gradient of a product: reverse mode finds the O(n) prefix/suffix algorithm.

    f(x) = prod_i g(x_i),   g = tanh

By the product rule, df/dx_i = g'(x_i) * prod_{j != i} g(x_j): a "leave-one-out"
product for every i. Computed from scratch for each i that is O(n^2) work.
Dividing the whole product by g(x_i) is O(n) but breaks as soon as some g(x_i)
is zero. The dynamic program keeps both O(n) and exactness:

    alpha_i = g(x_1) ... g(x_{i-1})          prefix products (forward)
    beta_i  = g(x_{i+1}) ... g(x_n)          suffix products (backward)
    df/dx_i = alpha_i * g'(x_i) * beta_i

Nobody has to invent it: write the product as a loop, and its adjoint is that
algorithm. The generated code (examples/generated/product_grad.py) keeps the
running product `p` on the tape in the forward sweep -- those are the alphas --
and the reversed loop carries `p_bar`, which is multiplied by one factor per
step on the way back: p_bar is the suffix product beta. The gradient line reads

    x_bar[i] += p * p_bar * (1.0 - _t2 * _t2)      # alpha_i * beta_i * g'(x_i)

No division anywhere, so zeros are handled exactly: with one zero factor only
its own gradient survives, with two every gradient is zero.

This script checks the gradient against the exact leave-one-out products (with
and without zeros) and checks that it is linear time: 4 times n takes about 4 times
the time of the gradient (an O(n^2) algorithm would take 16 times).
"""
import gc
import re
import time

import numpy as np


def product(x):
    p = 1.0
    for i in range(len(x)):
        p = p * np.tanh(x[i])
    return p


def leave_one_out(x):
    """The gradient by the definition: O(n^2), exact, no division."""
    g, dg = np.tanh(x), 1.0 - np.tanh(x) ** 2
    return np.array([dg[i] * np.prod(np.delete(g, i)) for i in range(len(x))])


def best_times(fns_args, repeat=9):
    """The shortest wall time of each (fn, args), measured interleaved and with the
    garbage collector off, as timeit does: a busy machine only ever adds time, so the
    best of several runs is the steadiest measure of the work itself."""
    times = [[] for _ in fns_args]
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for k, (fn, args) in enumerate(fns_args):
                start = time.perf_counter()
                fn(*args)
                times[k].append(time.perf_counter() - start)
    finally:
        if gc_was_on:
            gc.enable()
    return [min(t) for t in times]


def main():
    from _common import Checks, write_generated  # first: finds adjoint in a checkout
    import adjoint

    check = Checks()
    rng = np.random.default_rng(0)
    grad = adjoint.grad(product)

    x = rng.uniform(0.5, 1.5, size=8)
    path = write_generated(adjoint.source(product, args=(x,)), "product_grad", "product.py")
    print(f"generated gradient: {path.relative_to(path.parents[2])}\n")
    source = path.read_text()
    forward, _, backward = source.partition("# --- backward ---")
    check("the forward sweep tapes the prefix product p",
          re.search(r"_tape\w*\.append\(.*\bp\b", forward))
    check("the backward sweep carries the suffix product: p_bar times one factor per step",
          re.search(r"\bp_bar\w* = p_bar\w* \* ", backward))
    check("one loop forward, one loop backward, no division: O(n) and zero-safe",
          len(re.findall(r"^\s*for ", source, re.M)) == 2 and " / " not in backward)
    check("no zeros: gradient == leave-one-out products",
          np.allclose(grad(x), leave_one_out(x), rtol=1e-12, atol=0))
    one_zero = x.copy()
    one_zero[3] = 0.0
    g1 = grad(one_zero)
    check("one zero: only its own gradient survives, and it is exact",
          np.allclose(g1, leave_one_out(one_zero), rtol=1e-12, atol=0)
          and np.count_nonzero(g1) == 1 and g1[3] != 0.0, f"gradient {np.round(g1, 4)}")
    two_zeros = one_zero.copy()
    two_zeros[6] = 0.0
    check("two zeros: every gradient is zero", np.all(grad(two_zeros) == 0.0))

    # linear time: the same compiled gradient on n and 4n elements (compile first); 4n, not
    # 2n, keeps linear (4) and quadratic (16) apart on a busy machine
    n = 10000
    small, large = rng.uniform(0.9, 1.1, size=n), rng.uniform(0.9, 1.1, size=4 * n)
    grad(small), grad(large)
    t_small, t_large, t_f = best_times([(grad, (small,)), (grad, (large,)),
                                          (product, (large,))])
    ratio = t_large / t_small
    check("4n elements take about 4 times n's gradient time (ratio < 8; O(n^2) gives 16)",
          ratio < 8.0, f"n={n}: {t_small * 1e3:.1f} ms, 4n: {t_large * 1e3:.1f} ms, "
                       f"ratio {ratio:.2f}")
    print(f"       cheap gradient principle: gradient / function time at 4n = "
          f"{t_large / t_f:.1f}x")
    check.done()


if __name__ == "__main__":
    main()
