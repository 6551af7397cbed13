"""A linear layer, y = x Wᵀ + b: y[n,o] = x[n,i] w[o,i] + b[o].

Closed forms: ∂l/∂x = ∂l/∂y W, ∂l/∂W = ∂l/∂yᵀ x, ∂l/∂b = Σ_n ∂l/∂y.
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("y[n,o] = x[n,i] w[o,i] + b[o]")


def inputs(rng):
    return {"x": rng.normal(size=(5, 3)), "w": rng.normal(size=(2, 3)), "b": rng.normal(size=2)}


def reference(xp, x, w, b):
    return x @ w.T + b


def closed_form(dy, x, w, b):
    return {"x": dy @ w, "w": dy.T @ x, "b": dy.sum(0)}


def main():
    for name in ("x", "w", "b"):
        print(PROGRAM.derivative(name))
    rng = np.random.default_rng(0)
    args = inputs(rng)
    dy = rng.normal(size=(5, 2))
    got, want = PROGRAM.vjp(dy, **args), closed_form(dy, **args)
    for name in want:
        np.testing.assert_allclose(got[name], want[name])


if __name__ == "__main__":
    main()
