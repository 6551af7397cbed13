"""Matrix multiplication: Y = X A, y[i,j] = x[i,k] a[k,j].

By hand: ∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]   (∂l/∂X = ∂l/∂Y Aᵀ)
         ∂l/∂a[p,q] = ∂l/∂y[i,q] x[i,p]   (∂l/∂A = Xᵀ ∂l/∂Y)
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("y[i,j] = x[i,k] a[k,j]")


def inputs(rng):
    return {"x": rng.normal(size=(3, 4)), "a": rng.normal(size=(4, 2))}


def reference(xp, x, a):
    return x @ a


def closed_form(dy, x, a):
    return {"x": dy @ a.T, "a": x.T @ dy}


def main():
    for name, by_hand in [("x", "∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]"),
                          ("a", "∂l/∂a[p,q] = ∂l/∂y[i,q] x[i,p]")]:
        d = PROGRAM.derivative(name)
        print(d)
        assert str(d) == by_hand
    rng = np.random.default_rng(0)
    args = inputs(rng)
    dy = rng.normal(size=(3, 2))
    got, want = PROGRAM.vjp(dy, **args), closed_form(dy, **args)
    for name in want:
        np.testing.assert_allclose(got[name], want[name])


if __name__ == "__main__":
    main()
