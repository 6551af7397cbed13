"""The one lowering: a list of backend operations, built once.

* `Ops`: operations over registers (the inputs, then one register per
  operation, each with its shape); calling it runs them on a backend (the
  interpreter), and the code writer prints the same list;
* `unary_ops`, `binary_ops`: the Ops of a planned step of one or two operands;
* `align_ops`, `aligned`: an operand's axes laid out to broadcast against an
  order of labels (built, and run).

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
        self.shapes = [tuple(s) for s in shapes]
        self.product = None

    def __call__(self, B, *inputs):
        regs = list(inputs)
        for name, args, params in self.ops:
            regs.append(getattr(B, name)(*[regs[a] for a in args], *params))
        return regs[-1]

    def emit(self, name, args, params, shape) -> int:
        self.ops.append((name, tuple(args), tuple(params)))
        self.shapes.append(tuple(shape))
        return len(self.shapes) - 1

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
    """An operand with axes `term` (distinct labels, of `shape`) transposed
    and reshaped to broadcast against `order` (a superset of term), with one
    axis per label of `order` — or, when it goes into a sum that is
    broadcast to its full shape at the end (`summed`), without the leading
    size-1 axes."""
    ops = Ops(shape)
    ranked = tuple(sorted(range(len(term)), key=lambda a: order.index(term[a])))
    r = ops.transpose(0, None if ranked == tuple(range(len(term))) else ranked)
    if len(term) < len(order):
        present = set(term)
        target = tuple(int(lab.size) if lab in present else 1 for lab in order)
        (ops.broadcastable if summed else ops.reshape)(r, target)
    return ops


def aligned(B, x, term, order, summed=False):
    """`align_ops` run on x (a number stays as it is)."""
    if isinstance(x, _NUMBERS):
        return x
    return align_ops(term, order, tuple(int(lab.size) for lab in term), summed)(B, x)
