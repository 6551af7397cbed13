"""Layer normalization, statement by statement:

    m[b]    = 1/H 1[h] x[b,h]
    mu[b,h] = x[b,h] - 1[h] m[b]
    v[b]    = 1/H 1[h] mu[b,h]^2
    s[b]    = sqrt(v[b] + eps)
    y[b,h]  = mu[b,h] / s[b] gamma[h] + 1[b] beta[h]

By hand (docs/notation.md):
    ∂l/∂gamma[q] = ∂l/∂y[b,q] mu[b,q] / s[b]
    ∂l/∂beta[q]  = ∂l/∂y[b,q] 1[b]
    ∂l/∂x[p,q]   = ∂l/∂y[p,q] gamma[q] / s[p]
                   - ∂l/∂y[p,h] gamma[h] / H (1[q] / s[p] + mu[p,h] mu[p,q] / s[p]^3)
einvjp derives the same, distributed (it too finds 1[h] mu[p,h] = 0).
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("""
    m[b]    = x[b,h] / H
    mu[b,h] = x[b,h] - m[b]
    v[b]    = mu[b,h]^2 / H
    s[b]    = sqrt(v[b] + eps)
    y[b,h]  = mu[b,h] / s[b] * gamma[h] + beta[h]
""")

EPS = 1e-5


def inputs(rng):
    return {"x": rng.normal(size=(4, 6)), "eps": EPS, "gamma": rng.normal(size=6),
            "beta": rng.normal(size=6)}


def reference(xp, x, eps, gamma, beta):
    m = x.mean(-1)[:, None]
    v = ((x - m) ** 2).mean(-1)[:, None]
    return (x - m) / xp.sqrt(v + eps) * gamma + beta


def closed_form(dy, x, eps, gamma, beta):
    """The gradients derived by hand, term by term."""
    H = x.shape[1]
    mu = x - x.mean(1, keepdims=True)
    s = np.sqrt((mu ** 2).mean(1, keepdims=True) + eps)
    dgamma = (dy * mu / s).sum(0)
    dbeta = dy.sum(0)
    t = (dy * gamma).sum(1, keepdims=True)          # ∂l/∂y[p,h] gamma[h]
    u = (dy * gamma * mu).sum(1, keepdims=True)     # ∂l/∂y[p,h] gamma[h] mu[p,h]
    dx = dy * gamma / s - (t / s + u * mu / s ** 3) / H
    return {"x": dx, "gamma": dgamma, "beta": dbeta}


def main():
    for name in ("gamma", "beta", "x"):
        print(PROGRAM.derivative(name))
    print(PROGRAM.derivative("x").latex())
    rng = np.random.default_rng(0)
    args = inputs(rng)
    dy = rng.normal(size=args["x"].shape)
    got, want = PROGRAM.vjp(dy, **args), closed_form(dy, **args)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12)


if __name__ == "__main__":
    main()
