"""A gradient of vector-Jacobian products: nested VJPs are JVPs.

Take a function h(x, theta) in R^k of parameters theta in R^m, and an objective
built from its vector-Jacobian products,

    F(phi) = sum_i  f . vjp(lam_i(phi), h(x_i, .), theta)
           = sum_i  f^T (dh_i/dtheta)^T lam_i(phi),        lam_i(phi) = tanh(C_i phi)

(f in R^m is fixed). We want dF/dphi. Written out, the chain rule seems to need
the k x m Jacobian dh_i/dtheta, or k JVPs -- a cost that grows with k. It does
not: the map lam -> vjp(lam, h, theta) is linear in lam with matrix
(dh/dtheta)^T, so its own VJP with cotangent f is (dh/dtheta) f -- a JVP:

    vjp(f, lam -> vjp(lam, h, theta), lam) = jvp(h, theta, f)

and dF/dphi = sum_i vjp(jvp(h_i, theta, f), lam_i, phi): one JVP and one VJP per
term, a constant factor times the cost of F.

adjoint gets there by differentiating twice. First it emits the VJP of h as
code: the gradient of pairing(theta, lam) = <h(x, theta), lam> with respect to
theta (examples/generated/nested_vjp_pairing_grad.py). `objective` below calls
that emitted function, and reverse mode is applied to `objective` -- reverse
over reverse, i.e. a nested VJP -- giving examples/generated/nested_vjp_objective
_grad.py, whose backward sweep contains the JVP of h without anyone writing it.

(Why through an emitted module? Inside a function being differentiated, adjoint
reads source: a call of the pullback that `adjoint.vjp` returns, or of an
`adjoint.grad(...)` object, is not code it can lower. The emitted module is.)

Checks: the nested VJP against finite differences; the identity above against
adjoint's forward mode (a JVP); and dF/dphi against the recipe "one JVP, then
one VJP per term".
"""
import importlib

import numpy as np

from _common import Checks, write_generated  # first: finds adjoint in a checkout
import adjoint

pairing_grad = None  # the emitted VJP of h; main() imports it


def h(x, theta, B):
    return np.tanh(B @ theta) * x


def pairing(theta, lam, x, B):
    """<h(x, theta), lam>: its gradient in theta is vjp(lam, h, theta)."""
    return np.sum(h(x, theta, B) * lam)


def lam_of(phi, C):
    return np.tanh(C @ phi)


def objective(phi, theta, f, xs, B, Cs):
    total = 0.0
    for i in range(xs.shape[0]):
        lam = lam_of(phi, Cs[i])
        total = total + np.sum(f * pairing_grad(theta, lam, xs[i], B))
    return total


def vjp_of_h_in_theta(lam, theta, x, B):
    """lam -> vjp(lam, h, theta), as a function of lam (linear)."""
    return pairing_grad(theta, lam, x, B)


def main():
    global pairing_grad
    check = Checks()
    rng = np.random.default_rng(0)
    n, k, m, p = 5, 6, 4, 3  # terms, dim of h, dim of theta, dim of phi
    xs, theta, B = rng.normal(size=(n, k)), rng.normal(size=m), rng.normal(size=(k, m))
    f, phi, Cs = rng.normal(size=m), rng.normal(size=p), rng.normal(size=(n, k, p))

    path = write_generated(adjoint.source(pairing, args=(theta, xs[0], xs[0], B)),
                           "nested_vjp_pairing_grad", "nested_vjp.py")
    pairing_grad = importlib.import_module(f"generated.{path.stem}").pairing_grad
    args = (phi, theta, f, xs, B, Cs)
    write_generated(adjoint.source(objective, args=args), "nested_vjp_objective_grad",
                    "nested_vjp.py")
    print(f"emitted: {path.relative_to(path.parents[2])} and nested_vjp_objective_grad.py\n")

    # the inner VJP really is one: the emitted code against the Jacobian by differences
    eps = 1e-6
    J = np.stack([(h(xs[0], theta + eps * e, B) - h(xs[0], theta - eps * e, B)) / (2 * eps)
                  for e in np.eye(m)], axis=1)  # (k, m), for checking only
    lam0 = lam_of(phi, Cs[0])
    check("emitted pairing_grad(theta, lam) == (dh/dtheta)^T lam",
          np.allclose(pairing_grad(theta, lam0, xs[0], B), J.T @ lam0, rtol=1e-6, atol=1e-9))

    # the nested-VJP identity: vjp(f, lam -> vjp(lam, h, theta)) == jvp(h, theta, f)
    jvp = adjoint.jvp  # forward mode
    _, pullback = adjoint.vjp(vjp_of_h_in_theta, lam0, theta, xs[0], B, wrt=0)
    nested = pullback(f)
    _, h_dot = jvp(h, wrt=1)(xs[0], theta, B, f)
    check("vjp(f, lam -> vjp(lam, h, theta)) == jvp(h, theta, f)",
          np.allclose(nested, h_dot, rtol=1e-12, atol=1e-14),
          f"max difference {np.max(np.abs(nested - h_dot)):.1e}")

    # dF/dphi by reverse over reverse
    dF = adjoint.grad(objective)(*args)
    fd = np.array([(objective(phi + eps * e, *args[1:]) - objective(phi - eps * e, *args[1:]))
                   / (2 * eps) for e in np.eye(p)])
    check("dF/dphi (reverse over reverse) == finite differences",
          np.allclose(dF, fd, rtol=1e-6, atol=1e-9), f"max difference {np.max(abs(dF - fd)):.1e}")

    # ... and by the recipe: z_i = jvp(h_i, theta, f), then dF/dphi = sum_i vjp(z_i, lam_i, phi)
    recipe = np.zeros(p)
    for i in range(n):
        _, z = jvp(h, wrt=1)(xs[i], theta, B, f)
        _, lam_pullback = adjoint.vjp(lam_of, phi, Cs[i], wrt=0)
        recipe += lam_pullback(z)
    check("dF/dphi == sum_i vjp(jvp(h_i, theta, f), lam_i, phi)",
          np.allclose(dF, recipe, rtol=1e-12, atol=1e-14),
          f"max difference {np.max(np.abs(dF - recipe)):.1e}")
    check.done()


if __name__ == "__main__":
    main()
