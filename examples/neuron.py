"""A sigmoid neuron with squared loss: z = w*x + b, y = sigma(z), L = (y - t)^2 / 2.

The chain rule by hand gives
    dL/dy = y - t,   dL/dz = dL/dy * y * (1 - y),   dL/dw = dL/dz * x,   dL/db = dL/dz.
Run `adjoint emit examples/neuron.py:loss --wrt w,b` and compare.
"""
import numpy as np


def loss(w, x, b, t):
    z = w * x + b
    y = 1.0 / (1.0 + np.exp(-z))
    return 0.5 * (y - t) ** 2


if __name__ == "__main__":
    from _common import Checks, write_generated  # first: finds adjoint in a checkout
    import adjoint

    check = Checks()
    w, x, b, t = 0.5, 1.5, 0.1, 1.0
    path = write_generated(adjoint.source(loss, wrt=(0, 2), args=(w, x, b, t)),
                           "neuron_grad", "neuron.py")
    print(f"generated gradient: {path.relative_to(path.parents[2])}\n")
    dw, db = adjoint.grad(loss, wrt=(0, 2))(w, x, b, t)
    y = 1.0 / (1.0 + np.exp(-(w * x + b)))
    dz = (y - t) * y * (1.0 - y)
    print(f"adjoint: dL/dw = {dw:.6f}, dL/db = {db:.6f}")
    print(f"by hand: dL/dw = {dz * x:.6f}, dL/db = {dz:.6f}")
    check("adjoint's gradient == the chain rule by hand", np.allclose([dw, db], [dz * x, dz]))
    check.done()
