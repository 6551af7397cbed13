"""PyTorch's autograd hook for a whole einvjp program: one
`torch.autograd.Function` whose backward evaluates the derived VJP program
and whose jvp evaluates its transpose, both with torch ops, so both are
differentiable again.

* `differentiable(rule)`: the function of tensors autograd and torch.func
  differentiate through `rule`;
* `ProgramFunction`: the Function for calls outside torch.func transforms;
* `_TransformableProgramFunction`: the same with `setup_context`, for calls
  under them.
"""

import torch


class _TransformableProgramFunction(torch.autograd.Function):
    """`_TransformableProgramFunction.apply(rule, *arrays)`, for a rule as
    described at `differentiable`: the outputs, then the residuals
    (non-differentiable outputs, so that they can be saved).  Backward
    evaluates `rule.vjp` and jvp `rule.jvp` with torch ops and GEs, both
    recorded by autograd and so differentiable again (double backward,
    `torch.func.hessian`);
    `generate_vmap_rule` batches all three."""
    generate_vmap_rule = True

    @staticmethod
    def forward(rule, *arrays):
        outs, residuals = rule.forward(*arrays)
        # A residual is an output of its own (`detach`), never an alias of a
        # differentiable one.
        return tuple(_own(y, arrays) for y in outs) + tuple(r.detach() for r in residuals)

    @staticmethod
    def setup_context(ctx, inputs, outputs):
        rule, *arrays = inputs
        ctx.rule, ctx.n = rule, len(arrays)
        ctx.set_materialize_grads(False)  # absent (co)tangents arrive as None
        ctx.mark_non_differentiable(*outputs[rule.n_outputs:])
        # The same list twice: vmap's generated rule keeps one record of
        # batch dims for both (see `einvjp.backends.torch.GEFunction.setup_context`).
        ctx.save_for_backward(*arrays, *outputs)
        ctx.save_for_forward(*arrays, *outputs)

    @staticmethod
    def backward(ctx, *cotangents):
        # `vjp` transposes (JAX's convention); torch's gradient is its
        # conjugate at the conjugated cotangent (for y = a b, g conj(b)).
        wanted = ctx.needs_input_grad[1:]
        cotangents = cotangents[:ctx.rule.n_outputs]
        if all(c is None for c in cotangents):
            return (None,) * (1 + len(wanted))
        saved = ctx.saved_tensors
        # The saved outputs and residuals serve a backward that is not
        # recorded; a recorded one recomputes them from the inputs, so that
        # they connect to them.
        residuals = None if torch.is_grad_enabled() else saved[ctx.n:]
        grads = ctx.rule.vjp(saved[:ctx.n], tuple(map(_conj, cotangents)), wanted, residuals)
        return (None,) + tuple(_conj(g) if w else None for g, w in zip(grads, wanted))

    @staticmethod
    def jvp(ctx, _rule_tangent, *tangents):
        saved = ctx.saved_tensors
        residuals = len(saved) - ctx.n - ctx.rule.n_outputs
        return ctx.rule.jvp(saved[:ctx.n], tangents) + (None,) * residuals


class ProgramFunction(torch.autograd.Function):
    """`_TransformableProgramFunction` without `setup_context`, for calls
    outside torch.func transforms: `Function.apply` then skips binding the
    arguments to `forward`'s signature (`inspect.signature`, tens of
    microseconds a call), and the residuals, intermediates that are neither
    inputs nor outputs, are saved without being returned as outputs (a
    backward that is recorded recomputes them).  Under a transform torch
    refuses it, and `differentiable` falls back to the other."""

    @staticmethod
    def forward(ctx, rule, *arrays):
        outs, residuals = rule.forward(*arrays)
        outs = tuple(_own(y, arrays) for y in outs)
        ctx.rule, ctx.n = rule, len(arrays)
        ctx.set_materialize_grads(False)  # absent (co)tangents arrive as None
        ctx.save_for_backward(*arrays, *outs, *residuals)
        ctx.save_for_forward(*arrays, *outs)
        return outs

    backward = _TransformableProgramFunction.backward  # saved: arrays, outputs, residuals

    @staticmethod
    def jvp(ctx, _rule_tangent, *tangents):
        return ctx.rule.jvp(ctx.saved_tensors[:ctx.n], tangents)


def _conj(x):
    return torch.conj_physical(x) if x is not None and x.is_complex() else x


def _own(y, inputs):
    """An output autograd can give a forward gradient: not an input itself,
    and not a zero-copy broadcast (a tangent laid out otherwise is copied
    into the output's strides, which overlap)."""
    if any(s == 0 and n > 1 for s, n in zip(y.stride(), y.shape)):
        return y.contiguous()
    return y.clone() if any(y is x for x in inputs) else y


def differentiable(rule):
    """A function of tensors that torch autograd and torch.func
    differentiate through `rule` (an einvjp program's
    `einvjp.graph.Autodiff`):

      * `rule.forward(*arrays)` -> (outputs, residuals), tuples of tensors;
      * `rule.vjp(arrays, cotangents, wanted, residuals)` -> one gradient per
        array (None where `wanted` is false), `residuals` being the outputs
        and then forward's residuals, or None (recompute them);
      * `rule.jvp(arrays, tangents)` -> one tangent per output;
      * `rule.n_outputs`; a None (co)tangent stands for zero.

    Both derivatives run on torch ops again, so they differentiate to any
    order."""
    n = rule.n_outputs

    def call(*arrays):
        try:
            return ProgramFunction.apply(rule, *arrays)[:n]
        except RuntimeError as err:  # under torch.func: the setup_context form
            if "setup_context" not in str(err):
                raise
        return _TransformableProgramFunction.apply(rule, *arrays)[:n]
    return call
