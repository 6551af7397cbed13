"""Checking generated programs against jax and torch (a test extra).

- `check_program`: a `RandomProgram`'s values, gradients and printed forms
  against jax.vjp and torch autograd of its reference
- `program_reference`: the reference's value and gradients in jax float64
"""

from __future__ import annotations

import re

import numpy as np

import einvjp

class _JaxOps:
    """The reference namespace over jax.numpy."""

    def __init__(self):
        import jax
        import jax.numpy as jnp
        from jax.scipy.special import logsumexp
        self.jnp, self.nn, self.lse = jnp, jax.nn, logsumexp
        for name in ("exp", "log", "sqrt", "tanh", "abs", "maximum", "einsum", "reshape"):
            setattr(self, name, getattr(jnp, name))
        self.sigmoid, self.softplus, self.relu = jax.nn.sigmoid, jax.nn.softplus, jax.nn.relu
        self.inv, self.det, self.solve = jnp.linalg.inv, jnp.linalg.det, jnp.linalg.solve

    def logdet(self, x):
        return self.jnp.linalg.slogdet(x)[1]

    def reciprocal(self, x):
        return 1 / x

    def ones(self, n):
        return self.jnp.ones(n, dtype=self.jnp.float64)

    def eye(self, n):
        return self.jnp.eye(n, dtype=self.jnp.float64)

    def broadcast(self, x, shape):
        return self.jnp.broadcast_to(x, shape)

    def sum(self, x, axes):
        return self.jnp.sum(x, axis=axes)

    def mean(self, x, axes):
        return self.jnp.mean(x, axis=axes)

    def max(self, x, axes):
        return self.jnp.max(x, axis=axes)

    def logsumexp(self, x, axes):
        return self.lse(x, axis=axes)

    def softmax(self, x, axis):
        return self.nn.softmax(x, axis=axis)

    def log_softmax(self, x, axis):
        return self.nn.log_softmax(x, axis=axis)


class _TorchOps:
    """The reference namespace over torch."""

    def __init__(self):
        import torch
        self.torch, self.F = torch, torch.nn.functional
        for name in ("exp", "log", "sqrt", "tanh", "abs", "maximum", "einsum", "sigmoid",
                     "relu"):
            setattr(self, name, getattr(torch, name))
        self.softplus = self.F.softplus
        self.inv, self.det, self.solve = torch.linalg.inv, torch.linalg.det, torch.linalg.solve

    def logdet(self, x):
        return self.torch.linalg.slogdet(x)[1]

    def reciprocal(self, x):
        return 1 / x

    def ones(self, n):
        return self.torch.ones(n, dtype=self.torch.float64)

    def eye(self, n):
        return self.torch.eye(n, dtype=self.torch.float64)

    def broadcast(self, x, shape):
        return self.torch.broadcast_to(self.torch.as_tensor(x), shape)

    def reshape(self, x, shape):
        return self.torch.reshape(self.torch.as_tensor(x), shape)

    def sum(self, x, axes):
        return self.torch.sum(x, dim=axes)

    def mean(self, x, axes):
        return self.torch.mean(x, dim=axes)

    def max(self, x, axes):
        return self.torch.amax(x, dim=axes)

    def logsumexp(self, x, axes):
        # m + log Σ exp(x - m), m held constant (as jax.nn.logsumexp): its
        # gradient is exact where large values tie; torch.logsumexp's
        # backward, exp(x - out), loses |x|·eps there
        m = self.torch.amax(x, dim=axes, keepdim=True).detach()
        m = self.torch.where(self.torch.isfinite(m), m, self.torch.zeros_like(m))
        return self.torch.squeeze(
            self.torch.log(self.torch.sum(self.torch.exp(x - m), dim=axes, keepdim=True)) + m,
            dim=axes)

    def softmax(self, x, axis):
        return self.torch.softmax(x, dim=axis)

    def log_softmax(self, x, axis):
        return self.torch.log_softmax(x, dim=axis)


def _close(got, want, what, rtol=1e-6):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = float(np.max(np.abs(want), initial=0.0))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-9 * (1 + scale), err_msg=what)


def program_reference(rp, values, cotangent_seed=0):
    """(value, cotangent, {name: gradient}) of the reference in jax float64,
    or None where it is not finite (outside the domain)."""
    import jax
    import jax.numpy as jnp
    f = rp.reference()
    names = [n for n, _, _, number in rp.inputs if not number]
    with jax.enable_x64(True):
        L = _JaxOps()
        fixed = {n: jnp.asarray(values[n]) for n, _, _, number in rp.inputs if number}

        def fn(*arrays):
            return f(L, **dict(zip(names, arrays)), **fixed)

        try:
            y, pullback = jax.vjp(fn, *[jnp.asarray(values[n]) for n in names])
        except IndexError:  # jax's det rule on a 0×0 matrix
            if any(0 in shape for _, shape, _, _ in rp.inputs):
                return None
            raise
        y = np.asarray(y)
        if not np.all(np.isfinite(y)):
            return None
        ct = np.random.default_rng(cotangent_seed).normal(size=y.shape)
        grads = pullback(jnp.asarray(ct))
        grads = {n: np.asarray(g) for n, g in zip(names, grads)}
    if not all(np.all(np.isfinite(g)) for g in grads.values()):
        return None
    return y, ct, grads


def _torch_reference(rp, values, ct):
    import torch
    f = rp.reference()
    L = _TorchOps()
    args = {n: torch.tensor(values[n], dtype=torch.float64, requires_grad=not number)
            for n, _, _, number in rp.inputs}
    y = f(L, **args)
    wrt = [n for n, _, _, number in rp.inputs if not number]
    gs = torch.autograd.grad(y, [args[n] for n in wrt], torch.as_tensor(ct),
                             allow_unused=True) if wrt and y.requires_grad else [None] * len(wrt)
    return y.detach().numpy(), {n: np.zeros(np.shape(values[n])) if g is None else g.numpy()
                                for n, g in zip(wrt, gs)}


def _derivative_text(prog, name, values):
    """The printed forward program and the printed derivative with respect to
    `name`, as one program returning it (∂l/∂v written d_v)."""
    graph, derivative = prog.graph(**values), prog.derivative(name, **values)
    d = re.sub(r"∂l/∂(\w+)(\[[^\]]*\])?(?=\s*\()", r"d_\1\2 *",
               str(derivative)).replace("∂l/∂", "d_")
    return f"{graph}\n{d}\nreturn d_{name}", {**graph.sizes, **derivative.sizes}


def _close_either(got, want, other, what):
    """`got` against torch autograd's `want`; where the two float64 references
    differ from each other (torch's rounding noise on a gradient that is 0,
    e.g. through Σ softmax = 1, at a cotangent of 1e24), agreeing with jax's
    `other` instead is agreeing with an independent oracle."""
    try:
        _close(got, want, what)
    except AssertionError:
        if other is None:
            raise
        _close(got, other, what + " (against jax's reference too)")


def check_program(rp, seed=0, torch=True, printing=True):
    """Check a `RandomProgram` at inputs drawn with `seed`: the text and the
    traced program's values and every input's gradient on NumPy against
    jax.vjp of the reference (float64), on torch against torch autograd of
    the reference (or, where the two references differ, against jax's),
    and the printed forward program (and a printed
    derivative), compiled again, against the same numbers.  Returns None
    when the reference is not finite at these inputs, else a list of
    (check, message) failures (empty when all agree)."""
    values = rp.values(seed)
    ref = program_reference(rp, values, seed + 1)
    if ref is None:
        return None
    y_ref, ct, g_ref = ref
    failures = []

    def attempt(check, fn):
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - every failure is reported
            msg = "".join(f"{type(err).__name__}: {err}".splitlines(True)[:12])
            failures.append((check, msg))

    progs = {}

    def build(kind):
        progs[kind] = rp.compile() if kind == "text" else \
            einvjp.compile(rp.traced())

    for kind in ("text", "traced"):
        attempt(f"{kind}: compile", lambda: build(kind))
        prog = progs.get(kind)
        if prog is None:
            continue
        vals = {n: values[n] for n in prog.input_names}

        def forward():
            _close(prog(**vals), y_ref, "value")

        def gradients():
            g = prog.vjp(ct, **vals)
            for n, want in g_ref.items():
                if n in vals:
                    _close(g[n], want, f"gradient of {n}")

        attempt(f"{kind}: numpy value", forward)
        attempt(f"{kind}: numpy gradients", gradients)
        if torch:
            def on_torch():
                import torch as T
                wrt = [n for n in vals if not isinstance(vals[n], float)]
                if not wrt:  # numbers only: no tensor to run on torch
                    return
                tv = {n: T.tensor(v, dtype=T.float64, requires_grad=True)
                      if not isinstance(v, float) else v for n, v in vals.items()}
                y = prog(**tv)
                y_t, g_t = _torch_reference(rp, values, ct)
                _close_either(y.detach().numpy(), y_t, y_ref, "torch value")
                if y.requires_grad:
                    gs = T.autograd.grad(y, [tv[n] for n in wrt], T.as_tensor(ct),
                                         allow_unused=True)
                else:
                    gs = [None] * len(wrt)
                for n, g in zip(wrt, gs):
                    _close_either(np.zeros(np.shape(vals[n])) if g is None else g.numpy(),
                                  g_t[n], g_ref.get(n), f"torch gradient of {n}")
            attempt(f"{kind}: torch", on_torch)
        if printing:
            def reprint():
                graph = prog.graph(**vals)
                text = str(graph)
                again = einvjp.compile(text, sizes=graph.sizes)
                _close(again(**{n: vals[n] for n in again.input_names}), y_ref,
                       f"printed program\n{text}\n")

            def rederive():
                name = next((n for n in g_ref if n in vals), None)
                if name is None:
                    return
                text, sizes = _derivative_text(prog, name, vals)
                again = einvjp.compile(text, sizes=sizes)
                feed = dict(vals, d_y=ct)
                _close(again(**{n: feed[n] for n in again.input_names}), g_ref[name],
                       f"printed derivative\n{text}\n")
            attempt(f"{kind}: printed program", reprint)
            attempt(f"{kind}: printed derivative", rederive)
    return failures
