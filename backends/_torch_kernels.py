"""The PyTorch backend's kernels: torch ops only.

* `kernels()`: primitive name -> function on tensors.

>>> import torch
>>> kernels()["log_sigmoid"](torch.tensor([-800.0, 0.0]))
tensor([-8.0000e+02, -6.9315e-01])
"""

import math

import torch
import torch.nn.functional as F

from einvjp.errors import ProgramError


def kernels():
    """Primitive name -> kernel on tensors."""

    def as_float(mask, x, y=0.0):
        return mask.to(dtype_of(x, y))

    def dtype_of(*xs):
        ts = [x for x in xs if isinstance(x, torch.Tensor)]
        return ts[0].dtype if ts else torch.get_default_dtype()

    def dims(axes):
        return tuple(axes) if isinstance(axes, (tuple, list)) else (axes,)

    def inexact(x):  # an integer tensor's softmax is a float one
        return x if x.is_floating_point() or x.is_complex() else x.to(dtype_of(1.0))

    def logsumexp(x, axes, w=None):
        x = inexact(x)
        if w is None or 0 in [x.shape[d] for d in dims(axes)]:
            return torch.logsumexp(x, dim=dims(axes))  # -inf over no element
        w = torch.broadcast_to(torch.as_tensor(w, dtype=x.dtype), x.shape)
        xm = torch.where(w != 0, x, torch.tensor(-math.inf, dtype=x.dtype))
        m = torch.amax(xm, dim=dims(axes), keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        e = w * torch.exp(torch.clamp(x - m, max=cap(x)))
        return torch.squeeze(torch.log(torch.sum(e, dim=dims(axes), keepdim=True)) + m,
                             dim=dims(axes))

    def softmax(x, axes):
        x = inexact(x)
        if len(dims(axes)) == 1:
            return torch.softmax(x, dim=dims(axes)[0])
        return torch.exp(log_softmax(x, axes))

    def log_softmax(x, axes):  # shifted by the max first: exact where x ties, however large
        x = inexact(x)
        if len(dims(axes)) == 1:
            return torch.log_softmax(x, dim=dims(axes)[0])
        if 0 in [x.shape[d] for d in dims(axes)]:
            return x - torch.logsumexp(x, dim=dims(axes), keepdim=True)
        d = x - torch.amax(x, dim=dims(axes), keepdim=True)
        return d - torch.log(torch.sum(torch.exp(d), dim=dims(axes), keepdim=True))

    def where(c, a, b):
        c = torch.as_tensor(c)
        return torch.where(c != 0, a, b)

    def cap(x):
        return math.log(torch.finfo(x.dtype).max) - 1

    def power_by_number(x, p):
        if p == 2:
            return torch.square(x)
        if isinstance(p, int) and p < 0 and not (x.is_floating_point() or x.is_complex()):
            p = float(p)  # as x^-1 = 1/x does: an integer tensor gives floats
        return x ** p

    def power_by_tensor(x, y):
        try:
            return x ** y
        except RuntimeError as err:
            raise ProgramError("an integer tensor to a negative integer power: "
                               "make the base or the exponent a float tensor") from err

    def wexp(d, w):
        return w * torch.exp(torch.clamp(d, max=cap(d)))

    def tie(x, y):
        one = torch.ones((), dtype=dtype_of(x, y))
        return torch.where(x > y, one, torch.where(x == y, one / 2, one * 0))

    return dict(
        exp=torch.exp, log=torch.log, log1p=torch.log1p, expm1=torch.expm1, sqrt=torch.sqrt,
        sin=torch.sin, cos=torch.cos, tanh=torch.tanh, abs=torch.abs, sign=torch.sign,
        erf=torch.special.erf, reciprocal=torch.reciprocal, sigmoid=torch.sigmoid,
        softplus=F.softplus, relu=torch.relu, gelu=F.gelu,
        silu=lambda x: F.silu(inexact(x)), log_sigmoid=lambda x: F.logsigmoid(inexact(x)),
        logaddexp=lambda x, y: torch.logaddexp(torch.as_tensor(x), torch.as_tensor(y)),
        gelu_grad=lambda x: torch.ops.aten.gelu_backward(torch.ones_like(x), x),
        # g * gelu'(x) in one pass (lowered code writes it for that product)
        gelu_grad_times=torch.ops.aten.gelu_backward,
        maximum=lambda x, y: torch.maximum(torch.as_tensor(x), torch.as_tensor(y)),
        minimum=lambda x, y: torch.minimum(torch.as_tensor(x), torch.as_tensor(y)),
        where=where, pow=power_by_number, tpow=power_by_tensor, wexp=wexp,
        step=lambda x: as_float(x > 0, x), select=lambda c: as_float(torch.as_tensor(c) != 0, c),
        tie=tie,
        gt=lambda x, y: as_float(x > y, x, y), ge=lambda x, y: as_float(x >= y, x, y),
        lt=lambda x, y: as_float(x < y, x, y), le=lambda x, y: as_float(x <= y, x, y),
        eq=lambda x, y: as_float(x == y, x, y), ne=lambda x, y: as_float(x != y, x, y),
        logsumexp=logsumexp, softmax=softmax, log_softmax=log_softmax,
        max=lambda x, axes: torch.amax(x, dim=dims(axes)),
        min=lambda x, axes: torch.amin(x, dim=dims(axes)),
        inv=torch.linalg.inv, solve=torch.linalg.solve, det=torch.linalg.det,
        logdet=lambda x: torch.linalg.slogdet(x)[1],
    )
