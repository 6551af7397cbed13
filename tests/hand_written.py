"""Hand-written torch autograd.Functions, right and wrong, that the
check_backward tests and the pytest plugin's tests check (imported as a plain
module, as `corpus` is).  Each wrong one is a bug of a kind people write."""

import torch


class HandWritten(torch.autograd.Function):
    """A Function whose backward is `grads(*inputs, cotangent)`."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @classmethod
    def backward(cls, ctx, g):
        return cls.grads(*ctx.saved_tensors, g)


class BatchedMatmul(HandWritten):
    """bij,jk->bik."""

    @staticmethod
    def forward(x, w):
        return x @ w

    @staticmethod
    def grads(x, w, g):
        return g @ w.T, torch.einsum("bij,bik->jk", x, g)


class TransposedGradient(BatchedMatmul):
    @staticmethod
    def grads(x, w, g):
        return g @ w.T, torch.einsum("bij,bik->kj", x, g)


class TransposedReshaped(BatchedMatmul):
    """The transposed gradient reshaped to fit (a reshape taken for a transpose)."""

    @staticmethod
    def grads(x, w, g):
        return g @ w.T, torch.einsum("bij,bik->kj", x, g).reshape(w.shape)


class Halved(BatchedMatmul):
    @staticmethod
    def grads(x, w, g):
        return g @ w.T, torch.einsum("bij,bik->jk", x, g) / 2


class DetachedBackward(BatchedMatmul):
    """Right once, but w is detached in x's gradient: a wrong double backward."""

    @staticmethod
    def grads(x, w, g):
        return g @ w.detach().T, torch.einsum("bij,bik->jk", x, g)


class NoGraphBackward(BatchedMatmul):
    """w's gradient computed outside autograd's view."""

    @staticmethod
    def grads(x, w, g):
        with torch.no_grad():
            gw = torch.einsum("bij,bik->jk", x, g)
        return g @ w.T, gw


class OnceDifferentiable(BatchedMatmul):
    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        return BatchedMatmul.grads(*ctx.saved_tensors, g)


class Trace(HandWritten):
    """ii-> (the trace)."""

    @staticmethod
    def forward(x):
        return x.diagonal().sum()

    @staticmethod
    def grads(x, g):
        return g * torch.eye(len(x), dtype=g.dtype)


class TraceOnes(Trace):
    @staticmethod
    def grads(x, g):
        return g * torch.ones_like(x)


class TraceOfSquare(HandWritten):
    """tr(X X) = x[i,j] x[j,i]; its gradient is 2 Xᵀ."""

    @staticmethod
    def forward(x):
        return torch.einsum("ij,ji->", x, x)

    @staticmethod
    def grads(x, g):
        return 2 * g * x.T


class TraceOfSquareNoTwo(TraceOfSquare):
    @staticmethod
    def grads(x, g):
        return g * x.T


class ScaleColumns(HandWritten):
    """ij,j->ij.  The backward finds the axis w scales by its size: right
    unless the two labels have equal sizes."""

    @staticmethod
    def forward(x, w):
        return x * w

    @staticmethod
    def grads(x, w, g):
        axis = x.shape.index(w.shape[0])
        return g * w, (g * x).sum(dim=1 - axis)


class Multiply(HandWritten):
    """ij,ij->ij with NumPy broadcasting; the backward sums a gradient back
    over the dimensions an operand broadcast."""

    @staticmethod
    def forward(x, y):
        return x * y

    @classmethod
    def grads(cls, x, y, g):
        return cls.reduce(g * y, x.shape), cls.reduce(g * x, y.shape)

    @staticmethod
    def reduce(grad, shape):
        for d, n in enumerate(shape):
            if n == 1 and grad.shape[d] != 1:
                grad = grad.sum(d, keepdim=True)
        return grad


class MultiplyFirstOnly(Multiply):
    """Keeps the first entry where it should sum: wrong only at size 1
    broadcast against a larger size."""

    @staticmethod
    def reduce(grad, shape):
        for d, n in enumerate(shape):
            if n == 1 and grad.shape[d] != 1:
                grad = grad.narrow(d, 0, 1)
        return grad
