"""Random traced programs (fixed seeds): values against NumPy, VJPs against
central differences, Hessians against differences of the gradient."""

import random

import numpy as np
import pytest

import einvjp

from test_program import check_vjp


class _NumPy:
    """The reference: the same calls as einvjp's, on NumPy."""
    tanh, exp, sin, sqrt, maximum, einsum = (np.tanh, np.exp, np.sin, np.sqrt, np.maximum,
                                             staticmethod(np.einsum))

    @staticmethod
    def softmax(x, axis):
        e = np.exp(x - x.max(axis, keepdims=True))
        return e / e.sum(axis, keepdims=True)

    @staticmethod
    def logsumexp(x, axis, keepdims=False):
        m = x.max(axis, keepdims=True)
        return np.log(np.exp(x - m).sum(axis, keepdims=True)) + m


def expression(r, depth):
    """A random function (library, operands) -> array of shape (2, 3)."""
    if depth == 0:
        return r.choice([lambda L, v: v["a"], lambda L, v: v["b"] + 0.5 * v["a"],
                         lambda L, v: v["c"] * v["a"], lambda L, v: v["a"] - v["c"]])
    f, g = expression(r, depth - 1), expression(r, depth - 1)
    return r.choice([
        lambda L, v: f(L, v) + g(L, v),
        lambda L, v: f(L, v) * g(L, v),
        lambda L, v: f(L, v) / (1.5 + g(L, v) ** 2),
        lambda L, v: L.tanh(f(L, v)),
        lambda L, v: L.exp(f(L, v) * 0.3),
        lambda L, v: L.sin(f(L, v)) - g(L, v),
        lambda L, v: f(L, v) - f(L, v).mean(axis=1, keepdims=True),
        lambda L, v: L.softmax(f(L, v), axis=0),
        lambda L, v: L.logsumexp(f(L, v), axis=1, keepdims=True) * g(L, v),
        lambda L, v: L.einsum("ij,kj->ik", f(L, v), g(L, v)) @ f(L, v),
        lambda L, v: L.maximum(f(L, v), g(L, v)) + L.sqrt(1 + f(L, v) ** 2),
        lambda L, v: (f(L, v) * v["b"]).sum(0) * g(L, v),
    ])


def _case(seed, depth):
    r = random.Random(seed)
    f = expression(r, depth)
    rng = np.random.default_rng(seed)
    values = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=3), "c": rng.normal(size=(2, 1))}
    return f, values, rng


@pytest.mark.parametrize("seed", range(30))
def test_random_program(seed):
    f, values, rng = _case(seed, 1 + seed % 3)
    prog = einvjp.compile(lambda a, b, c: f(einvjp, {"a": a, "b": b, "c": c}))
    np.testing.assert_allclose(prog(**values), f(_NumPy, values), rtol=1e-9, atol=1e-10)
    check_vjp(prog, values, rng, tol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_random_hessian(seed):
    f, values, rng = _case(100 + seed, 1 + seed % 2)
    w = rng.normal(size=(2, 3))
    prog = einvjp.compile(lambda a, b, c: (f(einvjp, {"a": a, "b": b, "c": c}) * w).sum())
    hess = prog.hessian("a", **values)
    x, eps = values["a"], 1e-6
    for idx in np.ndindex(*x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        gp = prog.vjp(1.0, **dict(values, a=x + d))["a"]
        gm = prog.vjp(1.0, **dict(values, a=x - d))["a"]
        np.testing.assert_allclose(hess[(Ellipsis,) + idx], (gp - gm) / (2 * eps),
                                   rtol=1e-4, atol=1e-5)
