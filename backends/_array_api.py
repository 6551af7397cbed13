"""Kernels shared by the NumPy and JAX backends, written once against a
NumPy-like namespace `xp`.

* `kernels(xp, erf, linalg)`: primitive name -> function on `xp`'s arrays.

>>> import numpy as np
>>> k = kernels(np, None, np.linalg)
>>> k["sigmoid"](np.array([-1000.0, 0.0, 1000.0]))
array([0. , 0.5, 1. ])
"""

import math

from einvjp.errors import ProgramError
from einvjp.numbers import SCALARS, power

SQRT_2PI = math.sqrt(2 * math.pi)


def kernels(xp, erf, linalg):
    """Primitive name -> kernel, for a NumPy-like namespace `xp` (NumPy,
    jax.numpy), its `erf` and its `linalg`."""

    def as_float(mask, x, y=0.0):
        return xp.asarray(mask).astype(xp.result_type(x, y))

    def inexact(x):  # an integer tensor's softmax is a float one, as in NumPy and JAX
        x = xp.asarray(x)
        return x if xp.issubdtype(x.dtype, xp.inexact) else x.astype(xp.result_type(x, 1.0))

    def logsumexp(x, axes, w=None):
        """log Σ w·exp(x), shifted by the max over w's support; exponents
        are capped where w is zero, so that 0·exp stays 0 (and the
        derivative in w stays exp(x - lse), unless that overflows)."""
        x = inexact(x)
        xm = x if w is None else xp.where(w != 0, x, -xp.inf)
        m = xp.max(xm, axis=axes, keepdims=True, initial=-xp.inf)  # -inf over no element
        m = xp.where(xp.isfinite(m), m, 0)
        e = xp.exp(x - m) if w is None else w * xp.exp(xp.minimum(x - m, _cap(x)))
        return xp.squeeze(xp.log(xp.sum(e, axis=axes, keepdims=True)) + m, axis=axes)

    def _cap(x):
        return math.log(xp.finfo(xp.result_type(x, 1.0)).max) - 1

    def softmax(x, axes):
        x = inexact(x)
        e = xp.exp(x - xp.max(x, axis=axes, keepdims=True, initial=-xp.inf))
        return e / xp.sum(e, axis=axes, keepdims=True)

    def log_softmax(x, axes):
        x = inexact(x)
        m = xp.max(x, axis=axes, keepdims=True, initial=-xp.inf)
        return x - m - xp.log(xp.sum(xp.exp(x - m), axis=axes, keepdims=True))

    def sigmoid(x):  # e^-|x| / (1 + e^-|x|) below 0: 1e-18 at -41, not 0 (1 + tanh(x/2) was)
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))[()]

    def power_by_number(x, p):
        if isinstance(x, SCALARS):
            return power(x, p)
        if isinstance(p, int) and p < 0 and xp.issubdtype(xp.result_type(x), xp.integer):
            p = float(p)  # as x^-1 = 1/x does: an integer tensor gives floats
        return x ** p

    def power_by_tensor(x, y):
        if isinstance(x, SCALARS) and isinstance(y, SCALARS):
            return power(x, y)
        try:
            return x ** y
        except ValueError as err:
            raise ProgramError("an integer tensor to a negative integer power: "
                               "make the base or the exponent a float tensor") from err

    return dict(
        exp=xp.exp, log=xp.log, log1p=xp.log1p, expm1=xp.expm1, sqrt=xp.sqrt, sin=xp.sin,
        cos=xp.cos, tanh=xp.tanh, abs=xp.abs, sign=xp.sign, erf=erf,
        reciprocal=lambda x: power(x, -1) if isinstance(x, SCALARS) else 1 / x,
        sigmoid=sigmoid,
        silu=lambda x: x * sigmoid(x),
        log_sigmoid=lambda x: -xp.logaddexp(0, -x), logaddexp=xp.logaddexp,
        softplus=lambda x: xp.logaddexp(0, x),
        relu=lambda x: xp.maximum(x, 0),
        gelu=lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
        gelu_grad=lambda x: (0.5 * (1 + erf(x / math.sqrt(2)))
                             + x * xp.exp(-0.5 * x * x) / SQRT_2PI),
        maximum=xp.maximum, minimum=xp.minimum,
        where=lambda c, a, b: xp.where(c != 0, a, b),
        pow=power_by_number, tpow=power_by_tensor,
        wexp=lambda d, w: w * xp.exp(xp.minimum(d, _cap(d))),
        step=lambda x: as_float(x > 0, x), select=lambda c: as_float(c != 0, c),
        tie=lambda x, y: xp.where(x > y, 1.0, xp.where(x == y, 0.5, 0.0)).astype(
            xp.result_type(x, y, 1.0)),
        gt=lambda x, y: as_float(x > y, x, y), ge=lambda x, y: as_float(x >= y, x, y),
        lt=lambda x, y: as_float(x < y, x, y), le=lambda x, y: as_float(x <= y, x, y),
        eq=lambda x, y: as_float(x == y, x, y), ne=lambda x, y: as_float(x != y, x, y),
        logsumexp=logsumexp, softmax=softmax, log_softmax=log_softmax,
        max=lambda x, axes: xp.max(x, axis=axes), min=lambda x, axes: xp.min(x, axis=axes),
        inv=linalg.inv, solve=linalg.solve, det=linalg.det,
        logdet=lambda x: linalg.slogdet(x)[1],
    )
