"""A two-layer network with a squared loss:

    Layer 1: u = W1 x + b1        u[i] = w1[i,j] x[j] + b1[i]
    Layer 2: y = W2 u + b2        y[k] = w2[k,i] u[i] + b2[k]
    L = (y - y_true)^2            L = (y[k] - t[k])^2   (summed over k)

Chain rule by hand: ∂L/∂y = 2 (y - t); ∂L/∂W2 = ∂L/∂y ⊗ u; ∂L/∂b2 = ∂L/∂y;
∂L/∂u = W2ᵀ ∂L/∂y; ∂L/∂W1 = ∂L/∂u ⊗ x; ∂L/∂b1 = ∂L/∂u.
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("""
    u[i] = w1[i,j] x[j] + b1[i]
    y[k] = w2[k,i] u[i] + b2[k]
    L = (y[k] - t[k])^2
""")


def inputs(rng):
    return {"w1": rng.normal(size=(4, 3)), "x": rng.normal(size=3), "b1": rng.normal(size=4),
            "w2": rng.normal(size=(2, 4)), "b2": rng.normal(size=2), "t": rng.normal(size=2)}


def reference(xp, w1, x, b1, w2, b2, t):
    y = w2 @ (w1 @ x + b1) + b2
    return ((y - t) ** 2).sum()


def closed_form(dl, w1, x, b1, w2, b2, t):
    u = w1 @ x + b1
    y = w2 @ u + b2
    dy = dl * 2 * (y - t)
    du = w2.T @ dy
    return {"w2": np.outer(dy, u), "b2": dy, "w1": np.outer(du, x), "b1": du,
            "x": w1.T @ du, "t": -dy}


def main():
    for name in ("w2", "w1"):
        print(PROGRAM.derivative(name))
    rng = np.random.default_rng(0)
    args = inputs(rng)
    got, want = PROGRAM.vjp(1.0, **args), closed_form(1.0, **args)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12)


if __name__ == "__main__":
    main()
