"""PyTorch: the backend object (torch ops only — views where the lowering
allows one, no host synchronisation, no NumPy) and the autograd hook.

* `BACKEND`: the `TorchBackend`, its kernels those of `_torch_kernels`;

A GE of two or more operands runs as one `torch.autograd.Function`,
`GEFunction`:

  * backward is the role swap `ge.vjp(k)`, evaluated by `GEFunction` itself,
    so gradients are differentiable again (double backward, `hessian`);
  * only the operands autograd asks for (`ctx.needs_input_grad`) get one;
  * complex operands follow torch's convention: the gradient of operand k is
    the role swap applied to the cotangent and the *conjugated* other
    operands (for `y = a b`, `grad_a = g conj(b)`), as `torch.einsum` does;
  * the JVP uses linearity: the GE with the tangent in each slot, summed;
  * `generate_vmap_rule` lets `torch.func.vmap` batch it.

A one-operand GE (transpose, diagonal, sum, diagonal embedding, broadcast)
runs as plain torch ops, differentiated by torch itself, and so does the
broadcast ending a GE of several operands.

`differentiable(rule)` (`_torch_program`) turns a whole function of
tensors (an einvjp program) into one autograd Function.

torch.compile: `call(entry, ...)`, the way every public function of
tensors (`einvjp.einsum`, a contract expression, a program) runs, is under
torch.compile a `nonstrict_trace` call: Dynamo records one opaque call and
never reads einvjp's planning (opt_einsum, the caches, the code writer), and
AOTAutograd traces the function on fake tensors, so that Inductor sees and
fuses the torch operations of its forward and of its backward (the
autograd Functions' own, traced through).  Shapes are read as Python ints:
a new shape is a recompilation, under `dynamic=True` too.

dtypes: `torch.einsum` rejects operands of different dtypes; einvjp promotes
them first, by torch's own rule (`torch.result_type`: dimensioned tensors,
then 0-d tensors, a lower class mattering only when its category — bool <
integer < floating < complex — is higher; a Python number counts as a 0-d
tensor of torch's default dtype).  The cast is an ordinary autograd op, so
each gradient comes back in its operand's dtype.  A 0-d tensor on the CPU
goes to the other operands' device, as in torch's binary ops.

>>> import torch
>>> x = torch.arange(4.0).reshape(2, 2)
>>> diagonal(x, ((0, 1),))
tensor([0., 3.])
>>> diag_embed(torch.tensor([1.0, 2.0]), (2, 2), ((0, 1),))
tensor([[1., 0.],
        [0., 2.]])
"""

import torch
import torch.utils._pytree

from einvjp.backend import Backend, Entry, basic_index
from einvjp.backends._torch_kernels import kernels
from einvjp.backends._torch_program import differentiable
from einvjp.errors import BackendError
from einvjp.ge import GE
from einvjp.plan import plan_for


def asarray(x):
    """A tensor; a Python float or complex in double precision (torch's
    default dtype would round it to float32 before a cast to the program's
    dtype could keep it)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (float, complex)):
        return torch.as_tensor(x, dtype=torch.float64 if isinstance(x, float) else
                               torch.complex128)
    return torch.as_tensor(x)


def transpose(x, perm):
    return x.permute(perm)


def broadcast_to(x, shape):
    return x.expand(shape)


def sum(x, axes):
    return torch.sum(x, dim=axes)


def swap_last(x):
    return x.transpose(-1, -2)


def scale(x, c):
    return torch.mul(x, c if isinstance(c, (int, float, complex, torch.Tensor)) else float(c))


def add_product(acc, a, b, c):
    """acc + c a b, in one pass."""
    return torch.addcmul(acc, a, b, value=c)


def matmul(a, b):
    """a @ b; under torch.compile a product with a vector (a has one row
    or b one column) as a multiply and a sum, which Inductor fuses with the
    operations around it (a matrix product is a call of its own)."""
    if torch.compiler.is_compiling() and (a.shape[-2] == 1 or b.shape[-1] == 1):
        return torch.sum(a.unsqueeze(-1) * b.unsqueeze(-3), -2)
    return torch.matmul(a, b)


def add_matmul(acc, a, b, c):
    """acc + c a @ b for matrices a and b, in one call (what F.linear does)."""
    if torch.compiler.is_compiling() and (a.shape[-2] == 1 or b.shape[-1] == 1):
        return torch.add(acc, matmul(a, b), alpha=c)
    return torch.addmm(acc, a, b, alpha=c)


def scalar(value, like):
    """A number as the 0-d tensor an op with `like` reads it as (torch's
    binary ops take a 0-d tensor faster than a Python number); on the CPU,
    which any device accepts for a 0-d operand.  For a half-precision result
    the number itself: torch applies a Python number in float32, a 0-d tensor
    would round it to half first.  Under torch.compile the number too: the
    traced tensors are fake, a real constant must not meet them, and Inductor
    writes a number into its kernels."""
    dtype = torch.result_type(like, value)
    return value if dtype.itemsize < 4 or dtype == torch.complex32 or \
        torch.compiler.is_compiling() else torch.tensor(value, dtype=dtype)


def diagonal(x, groups):
    """A view: the axes in each group collapse to one (a diagonal), one axis
    per group in group order.  Built from `torch.diagonal`, which vmap and
    torch.compile both know (an `as_strided` view would trouble vmap)."""
    owner = [None] * x.dim()
    for n, group in enumerate(groups):
        for a in group:
            owner[a] = n
    for n, group in enumerate(groups):
        for _ in group[1:]:
            p = owner.index(n)
            q = owner.index(n, p + 1)
            x = torch.diagonal(x, 0, p, q)  # the diagonal becomes the last axis
            del owner[q], owner[p]
            owner.append(n)
    perm = [owner.index(n) for n in range(len(groups))]
    return x if perm == sorted(perm) else x.permute(perm)


def diag_embed(x, shape, groups):
    """Zeros of `shape` with `x` written into the diagonal view `groups`
    (no identity or delta tensor is built)."""
    out = x.new_zeros(shape)
    diagonal(out, groups).copy_(x)
    return out


def copy(x):
    """A copy of a result that would share memory with another one."""
    return x.clone() if isinstance(x, torch.Tensor) else x


def shares_memory(x, y):
    """Do x and y view the same memory?  Traced tensors (torch.compile's)
    have no data pointer: there, do they view the same storage?"""
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.numel() > 0):
        return False
    if torch.compiler.is_compiling():
        return torch._C._is_alias_of(x, y)
    return x.untyped_storage().data_ptr() == y.untyped_storage().data_ptr()


def cast_like(g, x):
    """A gradient in the dtype of its primal (the real part for a real one)."""
    if g.dtype == x.dtype:
        return g
    if g.is_complex() and not x.is_complex():
        g = g.real
    return g.to(x.dtype)


def conj(x):
    return x.conj()


class GEFunction(torch.autograd.Function):
    """`GEFunction.apply(plan, *operands)`: the plan's GE, differentiable to
    any order by the role swap (backward) and linearity (jvp)."""
    generate_vmap_rule = True

    @staticmethod
    def forward(plan, *operands):
        return plan(BACKEND, list(operands))

    @staticmethod
    def setup_context(ctx, inputs, output):
        plan, *operands = inputs
        ctx.plan = plan
        ctx.set_materialize_grads(False)  # absent tangents arrive as None
        # Operand j is needed by the gradient of every other operand.  Under
        # vmap's generated rule (a ctx that is not a FunctionCtx) torch keeps
        # one record of batch dims for both saved lists, the last one saved:
        # the lists must then be the same.
        wanted = ctx.needs_input_grad[1:]
        keep_all = not isinstance(ctx, torch.autograd.function.FunctionCtx)
        ctx.save_for_backward(*(x if keep_all or any(w for k, w in enumerate(wanted) if k != j)
                                else None for j, x in enumerate(operands)))
        ctx.save_for_forward(*operands)

    @staticmethod
    def backward(ctx, cotangent):
        if cotangent is None:
            return (None,) * (1 + ctx.plan.n)
        operands = ctx.saved_tensors
        grads = [None]
        for k, wanted in enumerate(ctx.needs_input_grad[1:]):
            if not wanted:
                grads.append(None)
                continue
            others = [x.conj() for j, x in enumerate(operands) if j != k]
            grads.append(_run(_swap_plan(ctx.plan, k), [cotangent] + others))
        return tuple(grads)

    @staticmethod
    def jvp(ctx, _plan_tangent, *tangents):
        operands = ctx.saved_tensors
        out = None
        for k, tangent in enumerate(tangents):
            if tangent is None:
                continue
            term = GEFunction.apply(ctx.plan, *operands[:k], tangent, *operands[k + 1:])
            out = term if out is None else out + term
        return out


def _run(plan, tensors):
    """The plan as an autograd.Function, except:

    * a one-operand GE runs as plain torch ops (views, sums, a write into a
      diagonal view), which torch differentiates itself by the same rule:
      such a GE may return a view of its operand, and autograd then demands a
      JVP returning the same view of the tangent, which a Function cannot
      give under batched forward mode (vmap of jvp);
    * a GE of several operands that ends in a broadcast runs the broadcast
      that way too, after the Function (see `_split`);
    * with grad mode off (a Function's forward, a backward not recorded),
      there is no tape to write: plain torch ops, which forward mode and
      vmap see through anyway."""
    if plan.n == 1 or not torch.is_grad_enabled():
        return plan(BACKEND, tensors)
    if len(plan.steps) > 1:
        # Step by step, so that autograd's tape keeps the intermediates and
        # the backward is the role swap of each pairwise step (the backward
        # of a whole many-operand GE would recontract it once per operand).
        slots = list(tensors)
        for step in plan.steps:
            slots.append(_run(_step_plan(step), [slots[i] for i in step.ins]))
        return slots[-1]
    split = _split(plan)
    if split is not None:
        inner, broadcast = split
        return broadcast(BACKEND, [_run(inner, tensors)])
    return GEFunction.apply(plan, *tensors)


_SWAP_PLANS = {}  # (plan, k) -> the plan of its role swap


def _swap_plan(plan, k):
    found = _SWAP_PLANS.get((plan, k))
    if found is None:
        found = _SWAP_PLANS[(plan, k)] = plan_for(plan.ge.vjp(k), _optimize(plan))
    return found


_STEP_PLANS = {}  # step -> the plan of its own GE


def _step_plan(step):
    found = _STEP_PLANS.get(step)
    if found is None:
        found = _STEP_PLANS[step] = plan_for(step.ge, step.optimize)
    return found


_SPLIT = {}  # plan -> _split(plan)


def _split(plan):
    """A GE with output labels no operand carries, as (the GE without them,
    the broadcast): the Function returns no zero-stride view, to which
    autograd could not copy a forward gradient laid out otherwise (under
    torch.func); the broadcast is a plain torch `expand`."""
    if plan in _SPLIT:
        return _SPLIT[plan]
    ge = plan.ge
    carried = {lab for term in ge.terms for lab in term}
    split = None
    if not all(lab in carried for lab in ge.out):
        kept = [lab for lab in dict.fromkeys(ge.out) if lab in carried]
        optimize = _optimize(plan)
        split = (plan_for(GE(ge.terms, kept, ge.coeff), optimize),
                 plan_for(GE((kept,), ge.out), optimize))
    _SPLIT[plan] = split
    return split


def _optimize(plan):
    """The path option the plan was made with (every step records it)."""
    return plan.steps[0].optimize


def apply(plan, arrays):
    """The autograd hook `einvjp.einsum` calls: promote, then run the Function."""
    dtype, device = _common(arrays)
    arrays = [x.to(device=device, dtype=dtype) for x in arrays]
    if getattr(plan, "sliced", None) is not None:  # run slice by slice (a memory limit)
        if torch.is_grad_enabled() and any(x.requires_grad for x in arrays):
            return _Sliced.apply(plan, *arrays)
        return plan(BACKEND, arrays)
    return _run(plan, arrays)


class _Sliced(torch.autograd.Function):
    """A GE run slice by slice; its backward is the sliced VJP, which
    recomputes each slice instead of keeping the forward's intermediates."""

    @staticmethod
    def forward(ctx, plan, *operands):
        ctx.plan = plan
        ctx.save_for_backward(*operands)
        return plan(BACKEND, list(operands))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, cotangent):
        wanted = [k for k, w in enumerate(ctx.needs_input_grad[1:]) if w]
        operands = [x.conj() for x in ctx.saved_tensors]
        grads = ctx.plan.vjp(BACKEND, operands, cotangent, wanted)
        return (None,) + tuple(grads)


def _common(arrays):
    """The result dtype (torch's promotion rule, see the module docstring) and
    the device of the operands."""
    dims = [x for x in arrays if x.dim()]
    zeros = [x for x in arrays if not x.dim()]
    devices = {x.device for x in dims}
    if len(devices) > 1:
        detail = "; ".join(f"operand {k} is on {x.device}"
                           for k, x in enumerate(arrays) if x.dim())
        raise BackendError(f"operands are on different devices: {detail}")
    device = next(iter(devices)) if dims else arrays[0].device
    for k, x in enumerate(arrays):
        if not x.dim() and x.device != device and x.device.type != "cpu":
            raise BackendError(f"operand {k} is a 0-d tensor on {x.device}, "
                               f"the other operands are on {device}")
    dtype = None
    for group in (zeros, dims):
        if group:
            lower, dtype = dtype, _promote(x.dtype for x in group)
            if lower is not None:
                dtype = _combine(dtype, lower)
    return dtype, device


def _promote(dtypes):
    dtypes = iter(dtypes)
    out = next(dtypes)
    for dt in dtypes:
        out = torch.promote_types(out, dt)
    return out


_COMPLEX = {torch.float16: torch.complex32, torch.bfloat16: torch.complex64,
            torch.float32: torch.complex64, torch.float64: torch.complex128}


def _combine(higher, lower):
    """torch's `combine_categories`: a lower-priority dtype matters only when
    its category is higher."""
    if higher.is_complex:
        return higher
    if lower.is_complex:
        return _COMPLEX.get(higher, lower)
    if higher.is_floating_point:
        return higher
    if higher == torch.bool or lower.is_floating_point:
        return torch.promote_types(higher, lower)
    return higher


torch.utils._pytree.register_constant(Entry)  # passed to `_nonstrict` as is


@torch._dynamo.nonstrict_trace
def _nonstrict(entry, nones, *args, **kwargs):
    out = entry.fn(*_with_nones(args, nones), **kwargs)
    if not isinstance(out, tuple):
        return out, -1
    return _without_nones(out)


def call(entry, *args, **kwargs):
    """The entry's function; under torch.compile, an opaque call for Dynamo
    that AOTAutograd traces (see the module docstring).  No None passes
    that call, either way: the positions of None arguments (and of None
    results, in a tuple) pass instead, and a keyword argument that is None
    is left out (its default is None)."""
    if torch.compiler.is_compiling():
        args, nones = _without_nones(args)
        out, nones = _nonstrict(entry, nones, *args,
                                **{k: v for k, v in kwargs.items() if v is not None})
        return out if nones == -1 else _with_nones(out, nones)
    return entry.fn(*args, **kwargs)


def _without_nones(values):
    """(the values that are not None, the positions of those that are)."""
    return (tuple(v for v in values if v is not None),
            tuple(k for k, v in enumerate(values) if v is None))


def _with_nones(values, positions):
    values = list(values)
    for k in positions:
        values.insert(k, None)
    return tuple(values)


class TorchBackend(Backend):
    name = "torch"
    numbers_vary = True  # a program's Python numbers that vary become arguments of its code
    scalar_constants = True
    autodiff = True
    kernels = kernels()

    reshape = staticmethod(torch.reshape)
    matmul = staticmethod(matmul)
    multiply = staticmethod(torch.mul)
    add = staticmethod(torch.add)
    subtract = staticmethod(torch.sub)
    zeros_like = staticmethod(torch.zeros_like)
    asarray = staticmethod(asarray)
    transpose = staticmethod(transpose)
    broadcast_to = staticmethod(broadcast_to)
    sum = staticmethod(sum)
    swap_last = staticmethod(swap_last)
    scale = staticmethod(scale)
    add_product = staticmethod(add_product)
    add_matmul = staticmethod(add_matmul)
    scalar = staticmethod(scalar)
    diagonal = staticmethod(diagonal)
    diag_embed = staticmethod(diag_embed)
    copy = staticmethod(copy)
    shares_memory = staticmethod(shares_memory)
    cast_like = staticmethod(cast_like)
    conj = staticmethod(conj)

    @staticmethod
    def owner(x):
        """The storage a tensor views."""
        if not isinstance(x, torch.Tensor):
            return id(x)
        # Traced tensors have no data pointer: one owner, every pair then compared.
        return 0 if torch.compiler.is_compiling() else x.untyped_storage().data_ptr()
    apply = staticmethod(apply)
    call = staticmethod(call)
    tracing = staticmethod(torch.compiler.is_compiling)
    differentiable = staticmethod(differentiable)

    @staticmethod
    def full(shape, value, like):
        dtype = like.dtype if isinstance(like, torch.Tensor) else torch.get_default_dtype()
        return torch.full(shape, value, dtype=dtype)

    @staticmethod
    def index(x, positions):
        return x[basic_index(positions, x.dim())] if positions else x

    @staticmethod
    def add_at(acc, positions, x):
        """acc with x added at fixed positions of some axes, in place."""
        acc[basic_index(positions, acc.dim())] += x
        return acc


BACKEND = TorchBackend()
