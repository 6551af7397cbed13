"""Matrix inverse: Y = X⁻¹, from δ[i,j] = x[i,k] y[k,j].

By hand (docs/notation.md): ∂l/∂x[p,q] = -y[n,p] ∂l/∂y[n,j] y[q,j]
(∂l/∂X = -X⁻ᵀ ∂l/∂Y X⁻ᵀ)
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("y[i,j] = inv(x[i,j])")


def inputs(rng):
    a = rng.normal(size=(3, 3))
    return {"x": a @ a.T / 3 + np.eye(3)}


def reference(xp, x):
    return xp.linalg.inv(x)


def closed_form(dy, x):
    y = np.linalg.inv(x)
    return {"x": -y.T @ dy @ y.T}


def main():
    d = PROGRAM.derivative("x")
    print(d)
    assert str(d) == "∂l/∂x[p,q] = -y[a,p] ∂l/∂y[a,b] y[q,b]"
    rng = np.random.default_rng(0)
    args = inputs(rng)
    dy = rng.normal(size=(3, 3))
    np.testing.assert_allclose(PROGRAM.vjp(dy, **args)["x"], closed_form(dy, **args)["x"])


if __name__ == "__main__":
    main()
