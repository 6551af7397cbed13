"""Backend operations over registers: the one list a step or a node lowers to.

* `Ops`: operations over registers (the inputs, then one register per
  operation, each with its shape, None for a Python number); calling it runs
  them on a backend (the interpreter), and the code writer prints the same
  list;
* `unary_ops`, `binary_ops`: the Ops of a planned step of one or two operands;
* `align_ops`, `aligned`: an operand's axes laid out to broadcast against an
  order of labels (built, and run);
* `LOCAL`: the operations that are not a backend method (Python number
  arithmetic, a kernel, a planned GE, a number made an array).

No operation that does nothing is emitted (a reshape to the same shape, an
identity transpose), nor a reshape that only prepends size-1 axes to an
operand of a broadcasting multiply.

>>> from einvjp.ge import Index
>>> i, j = Index("i", 2), Index("j", 3)
>>> align_ops([j, i], [i, j], (3, 2)).ops
[('transpose', (0,), ((1, 0),))]
"""

from __future__ import annotations

_NUMBERS = (int, float, complex)


def permutation(have, want):
    """Axis permutation taking labels `have` to the order `want` (None: identity)."""
    perm = tuple(have.index(lab) for lab in want)
    return None if perm == tuple(range(len(perm))) else perm


class Ops:
    """Straight-line backend operations: `ops[k] = (name, argument registers,
    parameters)` writes register `n_in + k`; the last register is the result.
    `product` is the register of a two-operand step's pairwise product
    (multiply, matmul, or the sum of a multiply), which the code writer may
    share or fold into a sum."""
    __slots__ = ("n_in", "ops", "shapes", "product")

    def __init__(self, *shapes):
        self.n_in = len(shapes)
        self.ops = []
        self.shapes = [None if s is None else tuple(s) for s in shapes]
        self.product = None

    def __call__(self, B, *inputs):
        regs = list(inputs)
        for name, args, params in self.ops:
            local = LOCAL.get(name)
            xs = [regs[a] for a in args]
            regs.append(local(B, *xs, *params) if local else getattr(B, name)(*xs, *params))
        return regs[-1]

    def emit(self, name, args, params, shape) -> int:
        """Append an operation; `shape` None: its result is a Python number."""
        self.ops.append((name, tuple(args), tuple(params)))
        self.shapes.append(None if shape is None else tuple(shape))
        return len(self.shapes) - 1

    def align(self, r, term, order, summed=False):
        """Register r, with axes `term` (distinct labels), transposed and
        reshaped to broadcast against `order` (a superset of term), with one
        axis per label of `order` — or, when it goes into a sum that is
        broadcast to its full shape at the end (`summed`), without the
        leading size-1 axes.  A number stays as it is."""
        if self.shapes[r] is None:
            return r
        ranked = tuple(sorted(range(len(term)), key=lambda a: order.index(term[a])))
        r = self.transpose(r, None if ranked == tuple(range(len(term))) else ranked)
        if len(term) < len(order):
            present = set(term)
            target = tuple(int(lab.size) if lab in present else 1 for lab in order)
            r = (self.broadcastable if summed else self.reshape)(r, target)
        return r

    def transpose(self, r, perm):
        if perm is None:
            return r
        return self.emit("transpose", (r,), (perm,), tuple(self.shapes[r][p] for p in perm))

    def reshape(self, r, shape):
        shape = tuple(shape)
        return r if self.shapes[r] == shape else self.emit("reshape", (r,), (shape,), shape)

    def broadcastable(self, r, shape):
        """r reshaped to broadcast as `shape`: no reshape when that only
        prepends size-1 axes (broadcasting does it)."""
        have, shape = self.shapes[r], tuple(shape)
        lead = len(shape) - len(have)
        if lead >= 0 and shape[lead:] == have and not any(s != 1 for s in shape[:lead]):
            return r
        return self.emit("reshape", (r,), (shape,), shape)

    def swap_last(self, r):
        s = self.shapes[r]
        return self.emit("swap_last", (r,), (), s[:-2] + (s[-1], s[-2]))


def unary_ops(op) -> Ops:
    """The operations of a `plan.Unary` layout."""
    ops = Ops(op.in_shape)
    r = 0
    if op.groups is not None:
        r = ops.emit("diagonal", (r,), (op.groups,),
                     tuple(ops.shapes[r][g[0]] for g in op.groups))
    if op.sum_axes:
        r = ops.emit("sum", (r,), (op.sum_axes,),
                     tuple(s for a, s in enumerate(ops.shapes[r]) if a not in op.sum_axes))
    if op.squeeze is not None:
        r = ops.reshape(r, op.squeeze)
    r = ops.transpose(r, op.perm)
    if op.expand_shape is not None:
        r = ops.reshape(r, op.expand_shape)
        r = ops.emit("broadcast_to", (r,), (op.broadcast_shape,), op.broadcast_shape)
    if op.embed is not None:
        r = ops.emit("diag_embed", (r,), (op.out_shape, op.embed), op.out_shape)
    if op.coeff != 1:
        ops.emit("scale", (r,), (op.coeff,), ops.shapes[r])
    return ops


def binary_ops(op) -> Ops:
    """The operations of a `plan.Binary` layout."""
    ops = Ops(op.in_shapes[0], op.in_shapes[1])
    a, b = ops.transpose(0, op.perm_a), ops.transpose(1, op.perm_b)
    if op.mode == "dot":
        ab = ops.emit("multiply", (a, b), (), ops.shapes[a])
        c = ops.product = ops.emit("sum", (ab,), (op.sum_axes,), op.shape_c)
    elif op.mode == "mul":
        a, b = ops.broadcastable(a, op.shape_a), ops.broadcastable(b, op.shape_b)
        c = ops.product = ops.emit("multiply", (a, b), (),
                                   broadcast_shape(ops.shapes[a], ops.shapes[b]))
    else:
        a, b = ops.reshape(a, op.shape_a), ops.reshape(b, op.shape_b)
        # (b^T a^T) = c^T when flipped; a swap of a swap is no swap.
        (left, swap_l), (right, swap_r) = ((b, not op.swap_b), (a, not op.swap_a)) if op.flip \
            else ((a, op.swap_a), (b, op.swap_b))
        left = ops.swap_last(left) if swap_l else left
        right = ops.swap_last(right) if swap_r else right
        sl, sr = ops.shapes[left], ops.shapes[right]
        c = ops.product = ops.emit("matmul", (left, right), (), sl[:-2] + (sl[-2], sr[-1]))
    c = ops.reshape(c, op.shape_c)
    ops.transpose(c, op.perm_c)
    return ops


def broadcast_shape(*shapes):
    rank = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return tuple(max(sizes) for sizes in zip(*padded))


def align_ops(term, order, shape, summed=False) -> Ops:
    """The Ops of `Ops.align` on one operand of `shape`."""
    ops = Ops(shape)
    ops.align(0, term, order, summed)
    return ops


def aligned(B, x, term, order, summed=False):
    """`align_ops` run on x (a number stays as it is)."""
    if isinstance(x, _NUMBERS):
        return x
    return align_ops(term, order, tuple(int(lab.size) for lab in term), summed)(B, x)


# --- Operations that are not a backend method ------------------------------
# Each takes the backend first, then its argument registers, then its parameters.


def _times(B, *xs):
    """Python numbers multiplied, the constant (last) first."""
    r = xs[-1]
    for x in xs[:-1]:
        r = r * x
    return r


def _plus(B, a, b):
    return a + b


def _add_scaled(B, acc, x, c):
    """acc + c x: an add, a subtract for c = -1."""
    if c == 1:
        return B.add(acc, x)
    if c == -1:
        return B.subtract(acc, x)
    return B.add(acc, B.scale(x, c))


def _as_array(B, value, like=None, floating=False):
    """A Python number as an array: in `like`'s dtype (with `floating`,
    only when that is real floating point), else the library's default."""
    if like is not None and floating and "float" not in str(getattr(like, "dtype", "")):
        like = None
    x = B.asarray(value)
    return B.cast_like(x, like) if like is not None else x


def _kernel(B, *xs):
    """A primitive's kernel: its operands, then (its name, its parameters)."""
    return B.kernels[xs[-2]](*xs[:-2], *xs[-1])


def _contract(B, *xs):
    """A planned GE (the last parameter) through the backend's `apply`."""
    return B.apply(xs[-1], list(xs[:-1]))


def _ones(B, like, shape, value=1):
    return B.full(shape, value, like)


LOCAL = {"times": _times, "plus": _plus, "add_scaled": _add_scaled, "as_array": _as_array,
         "kernel": _kernel, "contract": _contract, "ones": _ones}
