"""The gradient of a dev loss with respect to a hyperparameter, two ways.

Ridge regression: the inner problem fits theta on training data for a given
regularisation strength lam,

    theta*(lam) = argmin_theta L_train(theta, lam) = ||X theta - y||^2 + lam ||theta||^2

and the outer objective is the loss on held-out data, L_dev(theta*(lam)). We
want dL_dev/dlam, to tune lam by gradient descent.

(a) Implicit function theorem. At the optimum grad_theta L_train(theta*, lam) = 0
    for every lam; differentiating that identity gives
        H dtheta*/dlam = -d/dlam grad_theta L_train,    H = Hessian of L_train in theta,
    so  dL_dev/dlam = -u . d/dlam grad_theta L_train(theta*, lam),  where H u = grad L_dev.
    No Hessian is ever formed: u comes from conjugate gradient, which only needs
    Hessian-vector products, `adjoint.hvp(train_loss, wrt=0)(theta, X, y, lam, v)`
    (forward mode over reverse mode). The mixed term is one more HVP: the Hessian
    of L_train in (theta, lam) times (u, 0) has u . d/dlam grad_theta L_train as its
    lam entry.
    The same two quantities also come from reverse mode applied twice by hand:
    adjoint emits the gradient of L_train as a module
    (examples/generated/hyperparameters_train_loss_grad.py); the script imports
    it, and differentiates the scalar <train_loss_grad(theta, lam), v> -- with
    respect to theta that is H v, with respect to lam the mixed term. Generated
    code is plain Python, so the compiler takes it as input again.

(b) Unrolled optimisation. Run K steps of gradient descent on L_train from
    theta = 0 (each step calls the emitted train_loss_grad), then evaluate L_dev,
    and differentiate the whole program with respect to lam. The loop is written
    `for t in adjoint.checkpointed(range(K), snapshots=10)`, so the gradient
    keeps 10 snapshots of theta instead of K and recomputes the rest (a
    binomial, "revolve", schedule). Unrolling differentiates the optimiser
    actually run, so it approaches (a) as K grows: the error shrinks
    geometrically, at the optimiser's own rate.

Both are checked against the closed form of ridge regression,
theta* = (X'X + lam I)^-1 X'y, dtheta*/dlam = -(X'X + lam I)^-1 theta*, and (a)
against `adjoint.implicit_grad`, which packages the same recipe.
"""
import importlib

import numpy as np

from _common import Checks, write_generated  # first: finds adjoint in a checkout
import adjoint

train_loss_grad = None  # the emitted gradient of train_loss; main() imports it


def train_loss(theta, X, y, lam):
    r = X @ theta - y
    return np.sum(r * r) + lam * np.sum(theta * theta)


def dev_loss(theta, Xd, yd):
    r = Xd @ theta - yd
    return np.sum(r * r)


def directional_gradient(theta, X, y, lam, v):
    """<grad_theta L_train(theta, lam), v>: its gradient is (H v, v . d/dlam grad_theta)."""
    return np.sum(train_loss_grad(theta, X, y, lam) * v)


def unrolled_dev_loss(lam, X, y, Xd, yd, eta, K):
    """L_dev after K steps of gradient descent on L_train, from theta = 0."""
    theta = np.zeros(X.shape[1])
    for t in adjoint.checkpointed(range(K), snapshots=10):
        theta = theta - eta * train_loss_grad(theta, X, y, lam)
    return dev_loss(theta, Xd, yd)


def conjugate_gradient(matvec, b, tol=1e-12, max_iter=100):
    """Solve A u = b for symmetric positive definite A, given only u -> A u."""
    u = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = r @ r
    for k in range(max_iter):
        if np.sqrt(rr) <= tol * np.linalg.norm(b):
            return u, k
        Ap = matvec(p)
        step = rr / (p @ Ap)
        u, r = u + step * p, r - step * Ap
        rr, rr_old = r @ r, rr
        p = r + (rr / rr_old) * p
    return u, max_iter


def main():
    global train_loss_grad
    check = Checks()
    rng = np.random.default_rng(0)
    n, nd, d = 40, 30, 8
    true_theta = rng.normal(size=d)
    X, Xd = rng.normal(size=(n, d)), rng.normal(size=(nd, d))
    y = X @ true_theta + 0.5 * rng.normal(size=n)
    yd = Xd @ true_theta + 0.5 * rng.normal(size=nd)
    lam = 3.0

    # emit the gradient of the training loss, and import it as a plain module
    path = write_generated(adjoint.source(train_loss, args=(np.zeros(d), X, y, lam)),
                           "hyperparameters_train_loss_grad", "hyperparameters.py")
    train_loss_grad = importlib.import_module(f"generated.{path.stem}").train_loss_grad
    print(f"emitted and imported: {path.relative_to(path.parents[2])}")

    # ---- closed form
    A = X.T @ X + lam * np.eye(d)
    theta_star = np.linalg.solve(A, X.T @ y)
    g_dev = adjoint.grad(dev_loss)(theta_star, Xd, yd)
    closed_form = g_dev @ -np.linalg.solve(A, theta_star)

    # ---- (a) implicit function theorem, CG on Hessian-vector products
    hvp = adjoint.hvp(train_loss, wrt=0)
    joint_hvp = adjoint.hvp(train_loss, wrt=(0, 3))  # in (theta, lam)

    u, iterations = conjugate_gradient(lambda v: hvp(theta_star, X, y, lam, v), g_dev)
    _, mixed = joint_hvp(theta_star, X, y, lam, (u, 0.0))  # u . d/dlam grad_theta L_train
    ift = -mixed
    print(f"\nclosed form        dL_dev/dlam = {closed_form:.12f}")
    print(f"implicit function  dL_dev/dlam = {ift:.12f}   (CG: {iterations} iterations)")
    check("adjoint.hvp == 2 (X'X + lam I) v",
          np.allclose(hvp(theta_star, X, y, lam, g_dev), 2 * A @ g_dev, rtol=1e-12))
    check(f"CG converged in at most d = {d} iterations", iterations <= d)
    check("implicit function theorem == closed form", np.isclose(ift, closed_form, rtol=1e-9),
          f"relative difference {abs(ift - closed_form) / abs(closed_form):.1e}")

    # the same H u and mixed term by differentiating the emitted gradient module again
    Hu, mixed_again = adjoint.grad(directional_gradient, wrt=(0, 3))(theta_star, X, y, lam, u)
    check("reverse over the emitted gradient: same H u and mixed term as adjoint.hvp",
          np.allclose(Hu, hvp(theta_star, X, y, lam, u), rtol=1e-12)
          and np.isclose(mixed_again, mixed, rtol=1e-12))
    packaged = adjoint.implicit_grad(train_loss, dev_loss, wrt=3)(theta_star, X, y, lam,
                                                                  outer_args=(Xd, yd))
    check("adjoint.implicit_grad agrees", np.isclose(packaged, ift, rtol=1e-8))

    # ---- (b) differentiate the unrolled optimiser
    eta = 1.0 / (2 * np.linalg.eigvalsh(A)[-1])  # step 1/L for the L-smooth L_train
    unrolled = adjoint.grad(unrolled_dev_loss)
    print("\nunrolled gradient descent: its gradient approaches the implicit one")
    errors = []
    for K in (10, 30, 100, 300):
        g = unrolled(lam, X, y, Xd, yd, eta, K)
        errors.append(abs(g - ift))
        print(f"    K = {K:3d}: dL_dev/dlam = {g:.12f}   |difference| = {errors[-1]:.1e}")
    check("the unrolled gradient converges to the implicit one as K grows",
          all(b < a or b < 1e-12 for a, b in zip(errors, errors[1:])))
    check("K = 300 steps: unrolled == implicit function theorem (rtol 1e-6, unrolling error)",
          np.isclose(g, ift, rtol=1e-6))
    K = 30
    h = 1e-6
    fd = (unrolled_dev_loss(lam + h, X, y, Xd, yd, eta, K)
          - unrolled_dev_loss(lam - h, X, y, Xd, yd, eta, K)) / (2 * h)
    check("K = 30: gradient through the checkpointed loop == finite differences",
          np.isclose(unrolled(lam, X, y, Xd, yd, eta, K), fd, rtol=1e-6))
    check.done()


if __name__ == "__main__":
    main()
