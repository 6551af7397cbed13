"""The code writer: a graph run as straight-line Python written for it.

`Lowered` runs what `evaluate` would, as code: the nodes in
topological order, each lowered once to the backend calls it needs, with
every shape, permutation and coefficient known when the code is written —
the per-call work of the interpreter (aligning operands, planning, checking
what is a number) done once.  A contraction's steps are written out inline,
its coefficient multiplies its smallest operand or intermediate (not the
full result), no-op reshapes and transposes are dropped, and intermediates
are released after their last read.  Fewer passes over memory: a contraction
read once by an Add is written into it, a last step that is a product or a
matrix product folding into the sum (`B.add_product`, `B.add_matmul`: torch's
`addcmul`, `addmm`; composed of the backend's own ops where it has none), a
function times an array of its shape in one call where the library has one
(torch's `gelu_backward(g, x)` for g * gelu'(x)), and a pairwise product the
function would compute twice is computed once.  The code is specialised to
which inputs are Python numbers and to the inputs' dtypes (probed on the
first call, which the interpreter evaluates; under jax, whose first call may
be the trace jit compiles, that call then returns the written code's
result); a node without a lowering (a structured primitive, a constant
tensor) calls the interpreter from the code.  Each planned step and each
alignment is printed from its one list of backend operations (`einvjp.ops`).

>>> import numpy as np
>>> from einvjp.ir import Input, Expr
>>> from einvjp.ge import Index
>>> from einvjp import prims
>>> from einvjp.backend import backend_for
>>> i, j = Index("i", 2), Index("j", 3)
>>> x = Expr(Input("x", (2, 3)), (i, j))
>>> y = (prims.exp(x) * x).sum([j]) / 3
>>> B = backend_for([np.ones(1)])
>>> run = Lowered([y.node], [x.node], B)
>>> a = np.arange(6.0).reshape(2, 3)
>>> np.allclose(run([a])[0], (np.exp(a) * a).sum(1) / 3)
True
>>> print(run.source([a]))
def run(v0):
    v1 = f_exp(v0)
    v2 = multiply(v1, v0)
    del v1
    v3 = sum(v2, (1,))
    del v2
    v4 = scale(v3, 0.3333333333333333)
    del v3
    return (v4, )
"""

from __future__ import annotations

import itertools
import math

from .errors import ProgramError
from .execute import _NUMBERS, _inexact, _is_number, _like, _lowered, _numbers_like, _shape, \
    _tensor, evaluate_node
from .ir import Add, Const, Contract, Input, Map
from .ops import broadcast_shape, align_ops


def _order(outputs, given):
    """The nodes to compute, operands first, stopping at the `given` ones."""
    order, seen = [], set(given)
    stack = [(n, False) for n in reversed(outputs)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(getattr(node, "args", ())) if a not in seen)
    return order


def _literal(v):
    """Source text for a number that repr round-trips (else None): a Python
    int or float, not a subclass (NumPy's float64 repr is `np.float64(2.0)`)."""
    if type(v) not in (int, float):
        return None
    return repr(v) if math.isfinite(v) else None


class Lowered:
    """`outputs` as a function of the values of the `given` nodes, run as
    straight-line code: `Lowered(outputs, given, B)(values)` returns
    what `evaluate` would.  One function is written per signature of the
    values (which are Python numbers of which type, the arrays' dtypes).  `fixed` maps
    further nodes to numbers that every call shares (written into the code
    as constants)."""

    def __init__(self, outputs, given, B, fixed=None):
        self.outputs, self.given = list(outputs), list(given)
        self.fixed = dict(fixed or {})
        self.B = B
        self._code = {}  # signature -> (function, source)

    def __call__(self, values):
        sig = self._signature(values)
        found = self._code.get(sig)
        if found is not None:
            return found[0](*values)
        vals = dict(self.fixed)
        vals.update(zip(self.given, values))
        like = _like(values)
        # The last output first, as an autograd engine walks a graph back from
        # its end: for a VJP program, the last layer's gradients first.  The
        # order of allocations and frees changes glibc's heap trimming: for
        # an MLP block it took the page faults a call from ~2000 to ~480.
        order = _order(self.outputs[::-1], list(vals))
        for node in order:
            if isinstance(node, Input):
                raise ProgramError(f"no value for input {node.name!r}")
            vals[node] = evaluate_node(node, [vals[a] for a in getattr(node, "args", ())],
                                       self.B, like)
        found = self._code[sig] = _Writer(self, order, vals).write()
        if self.B.staged:
            # Under jax.jit this call is the trace, made once per signature:
            # the code written for it, not the interpreter's probe, is what
            # XLA compiles (the probe's ops are dead and dropped).
            return found[0](*values)
        return tuple(vals[o] for o in self.outputs)

    def source(self, values):
        """The code written for values like these, once a call has written it."""
        return self._code[self._signature(values)][1]

    @staticmethod
    def _signature(values):
        return tuple([v.__class__ if isinstance(v, _NUMBERS) else getattr(v, "dtype", None)
                      for v in values])


class _Writer:
    """Writes one `Lowered` function; `probe` holds a value of every node
    (from the interpreter), which says what is a number."""

    OPS = ("transpose", "reshape", "matmul", "multiply", "add", "subtract", "sum",
           "swap_last", "scale", "broadcast_to", "diagonal", "diag_embed", "add_product",
           "add_matmul")

    def __init__(self, lowered, order, probe, counts=None):
        self.lowered, self.order, self.probe = lowered, order, probe
        self.counts = counts or {}  # source of a pairwise product -> how often written
        self.seen, self.hoisted = {}, {}
        self.times = {}  # source of f(x) -> (source of f_times, x): g * f(x) in one call
        self.parts = {}  # a contraction ending in a product -> (op, a, b)
        self.inline = set()  # the nodes written into their (one) reader (see lines_for)
        self.B = lowered.B
        self.env = {op: getattr(self.B, op) for op in self.OPS}
        self.params = [f"v{k}" for k in range(len(lowered.given))]
        self.var = {}
        for name, node in zip(self.params, lowered.given):  # a node given twice: its first
            self.var.setdefault(node, name)
        self.var.update((node, self.const(v)) for node, v in lowered.fixed.items())
        self.names = itertools.count(len(lowered.given))
        arrays = [n for n in lowered.given if not _is_number(probe[n])]
        self.like_node = arrays[0] if arrays else None  # see `_numbers_like`
        self.like = self.var[arrays[0]] if arrays else "None"
        self.lines = []

    def known(self, node):
        """The number a node always has (a constant, a fixed input), else None."""
        if isinstance(node, Const) or node in self.lowered.fixed:
            return self.probe[node]
        return None

    def scalar(self, value, node):
        """Source for the number `value` in an op producing `node`'s array:
        the backend's constant for it (`B.scalar`: torch's 0-d tensor, which
        its ops take faster than a Python number), else the number."""
        if not self.B.scalar_constants:
            return self.const(value)
        name = f"c{len(self.env)}"
        self.env[name] = self.B.scalar(value, self.probe[node])
        return name

    def number(self, node):
        return _is_number(self.probe[node])

    def const(self, value):
        text = _literal(value)
        if text is None:
            text = f"c{len(self.env)}"
            self.env[text] = value
        return text

    def write(self):
        """Writes the function twice: the first time counts the pairwise
        products written more than once (across nodes), which the second
        computes once into a temporary."""
        first = _Writer(self.lowered, self.order, self.probe)
        first.lines_for()
        second = _Writer(self.lowered, self.order, self.probe, first.seen)
        source = second.lines_for()
        exec(source, second.env)  # noqa: S102 - code written from the graph, no user text
        return second.env["run"], source

    def lines_for(self):
        """The source of the function.  A contraction read once, by an Add,
        is written into the Add (which may fold its last product into an
        `add_product`); a function the library multiplies in the same pass
        (torch's gelu_backward for g * gelu'(x)), read once by a contraction,
        is written into it; a variable is deleted after the statement that
        reads it last."""
        kept = set(self.lowered.outputs) | set(self.lowered.given) | set(self.lowered.fixed) | {
            n for n in self.order if isinstance(n, Const)}
        readers = {}
        for node in self.order:
            for a in getattr(node, "args", ()):
                readers.setdefault(a, []).append(node)
        # Written into their one reader: a contraction read by an Add, and a
        # function the library multiplies by an array in the same pass
        # (the kernel `gelu_grad_times`) read by a contraction.
        self.inline = inline = {
            n for n in self.order if n not in kept and len(readers.get(n, ())) == 1 and (
                isinstance(n, Contract) and isinstance(readers[n][0], Add)
                or isinstance(n, Map) and f"{n.prim.name}_times" in self.B.kernels
                and isinstance(readers[n][0], Contract))}
        position = {}
        for k, node in reversed(list(enumerate(self.order))):
            position[node] = position[readers[node][0]] if node in inline else k
        dead = {}
        for node, rs in readers.items():
            if node not in kept and node not in inline and node in position:
                dead.setdefault(max(position[r] for r in rs), []).append(node)
        for k, node in enumerate(self.order):
            if isinstance(node, Const):  # written where it is read
                literal = _literal(self.probe[node])
                if literal is None:  # inf, nan: a name bound to the number
                    literal = f"n{len(self.env)}"
                    self.env[literal] = self.probe[node]
                self.var[node] = literal
                continue
            if node in inline:
                self.var[node] = self.expression(node)
                continue
            self.var[node] = f"v{next(self.names)}"
            self.lines.append(f"{self.var[node]} = {self.expression(node)}")
            if dead.get(k):
                self.lines.append(f"del {', '.join(self.var[n] for n in dead[k])}")
        params = ", ".join(self.params)
        results = "".join(f"{self.var[o]}, " for o in self.lowered.outputs)
        return "\n    ".join([f"def run({params}):"] + self.lines + [f"return ({results})"])

    def shared(self, text):
        """A pairwise product's source, or the temporary holding it when the
        function writes it more than once."""
        self.seen[text] = self.seen.get(text, 0) + 1
        if self.counts.get(text, 0) < 2:
            return text
        name = self.hoisted.get(text)
        if name is None:
            name = self.hoisted[text] = f"t{len(self.hoisted)}"
            self.lines.append(f"{name} = {text}")
        return name

    # --- one node

    def expression(self, node):
        args = getattr(node, "args", ())
        if not self.number(node):
            if isinstance(node, Contract) and not all(self.number(a) for a in args) \
                    and self.uniform(node):
                return self.contraction(node)
            if isinstance(node, Add) and not all(self.number(a) for a in args):
                return self.addition(node)
            if isinstance(node, Map) and (not self.B.numbers_as_arrays or all(
                    not self.number(a) or self.known(a) is not None for a in args)):
                return self.elementwise(node)
        return self.interpreted(node)

    def uniform(self, node):
        """Every array operand has the dtype of the result: the written
        contraction does no promotion (torch's matmul refuses mixed dtypes;
        the interpreter's `B.apply` promotes)."""
        dtype = getattr(self.probe[node], "dtype", None)
        return all(getattr(self.probe[a], "dtype", None) == dtype
                   for a in node.args if not self.number(a))

    def interpreted(self, node):
        """The interpreter's `evaluate_node`, called from the code."""
        name = f"n{len(self.env)}"
        B = self.B
        self.env[name] = lambda like, *args: evaluate_node(node, list(args), B, like)
        return f"{name}({', '.join([self.like] + [self.var[a] for a in node.args])})"

    def operand(self, node):
        """(source, shape) of an operand (shape None for a number)."""
        return self.var[node], (None if self.number(node) else _shape(node))

    def aligned(self, node, term, order, summed=False):
        """(source, shape) of an operand laid out by `align_ops` (shape None
        for a number)."""
        x, shape = self.operand(node)
        if shape is None:
            return x, None
        ops = align_ops(term, order, shape, summed)
        return self.printed(ops, [x], node)[0], ops.shapes[-1]

    def printed(self, ops, sources, node):
        """(source of the result of `ops` on the `sources`, the fold of its
        pairwise product into a sum — ("add_product" or "add_matmul", a, b) —
        when the result is that product as it is, else None)."""
        regs, fold = list(sources), None
        for r, (name, args, params) in enumerate(ops.ops, ops.n_in):
            xs = [regs[a] for a in args]
            fused = [(self.times[x], y) for x, y in ((xs[0], xs[-1]), (xs[-1], xs[0]))
                     if x in self.times] if name == "multiply" and r == ops.product else []
            if fused and ops.shapes[args[0]] == ops.shapes[args[1]]:  # g * f(x) as f_times(g, x)
                (times, x), g = fused[0]
                text = f"{times}({g}, {x})"
            elif name == "scale":
                text = f"scale({xs[0]}, {self.scalar(params[0], node)})"
            else:
                text = f"{name}({', '.join(xs + [repr(p) for p in params])})"
            if r == ops.product:
                shared = self.shared(text)
                if shared == text and name == "multiply" and text.startswith("multiply("):
                    fold = ("add_product", xs[0], xs[1])
                elif shared == text and name == "matmul" and len(ops.shapes[r]) == 2:
                    fold = ("add_matmul", xs[0], xs[1])
                text = shared
            regs.append(text)
        return regs[-1], (fold if ops.product == len(regs) - 1 else None)

    def contraction(self, node):
        numbers = tuple(self.number(a) for a in node.args)
        plan, _, scale = _lowered(node, numbers)
        varying = []
        for a, n in zip(node.args, numbers):
            if n and self.known(a) is not None:
                scale = scale * self.known(a)
            elif n:
                varying.append(self.var[a])
        factors = varying + [self.const(scale)] if scale != 1 or varying else []
        if not varying and (scale != 1 or any(numbers)):  # as the interpreter
            factors = [self.scalar(scale, node)]
        slots = [self.operand(a) for a, n in zip(node.args, numbers) if not n]
        # The coefficient multiplies the smallest tensor the plan handles.
        sizes = [math.prod(s) for _, s in slots] + [
            math.prod(int(lab.size) for lab in step.ge.out) for step in plan.steps]
        target = sizes.index(min(sizes)) if factors else -1
        factor = " * ".join(factors)

        def scaled(k, x):
            return f"scale({x}, {factor})" if k == target else x
        slots = [(scaled(k, x), s) for k, (x, s) in enumerate(slots)]
        product = None
        for step in plan.steps:
            x, product = self.printed(step.ops, [slots[i][0] for i in step.ins], node)
            slots.append((scaled(len(slots), x), step.ops.shapes[-1]))
        if product is not None and target != len(slots) - 1:
            self.parts[node] = product
        return slots[-1][0]

    def addition(self, node):
        out = list(node.out)
        terms, number, numbers = [], 0, False
        fusable = _inexact(self.probe[node]) and all(
            self.number(a) or self.probe[a].dtype == self.probe[node].dtype for a in node.args)
        for a, t, c in zip(node.args, node.terms, node.coeffs):
            if self.known(a) is not None:  # constants add up while writing
                number, numbers = number + c.number() * self.known(a), True
                continue
            x, shape = self.aligned(a, list(t), out, summed=True)
            # A product read as it is: folded into the sum (`add_product`).
            product = self.parts.get(a) if fusable and a in self.inline and x == self.var[a] \
                else None
            if product is not None and product[0] == "add_matmul" and len(out) != 2:
                product = None  # addmm adds to a matrix only
            terms.append((x, shape, c.number(), product))
        # An array read with coefficient 1 first: the others add or subtract.
        terms.sort(key=lambda item: (item[1] is None, item[3] is not None, item[2] != 1))
        acc, shape, c, _ = terms[0]
        if c != 1:
            acc = f"scale({acc}, {self.scalar(c, node)})"
        for x, s, c, product in terms[1:]:
            if s is None:  # a number that varies
                acc = f"add({acc}, {x if c == 1 else f'{self.const(c)} * {x}'})"
            elif product is not None:  # add_product or add_matmul
                acc = f"{product[0]}({acc}, {product[1]}, {product[2]}, {self.const(c)})"
            elif c == 1:
                acc = f"add({acc}, {x})"
            elif c == -1:
                acc = f"subtract({acc}, {x})"
            else:
                acc = f"add({acc}, scale({x}, {self.scalar(c, node)}))"
            shape = broadcast_shape(shape, s or ())
        if numbers:  # even a 0 (as the interpreter: it may promote, and -0.0 + 0 is 0)
            acc = f"add({acc}, {self.scalar(number, node)})"
        if shape != _shape(node):
            acc = f"broadcast_to({acc}, {_shape(node)!r})"
        return acc

    def elementwise(self, node):
        out = list(node.out)
        args = [self.aligned(a, list(t), out)[0] for a, t in zip(node.args, node.terms)]
        if self.B.numbers_as_arrays:  # as the interpreter passes them
            like = _numbers_like([self.probe[a] for a in node.args], self.probe.get(self.like_node))
            for k, a in enumerate(node.args):
                if self.known(a) is not None:
                    args[k] = f"c{len(self.env)}"
                    self.env[args[k]] = _tensor(self.B, self.known(a), like)
        name = f"f_{node.prim.name}"
        self.env[name] = self.B.kernels[node.prim.name]
        if node.params:
            params = f"p{len(self.env)}"
            self.env[params] = tuple(node.params)
            args.append(f"*{params}")
        text = f"{name}({', '.join(args)})"
        if node in self.inline and len(args) == 1:  # see `lines_for`
            self.env[f"{name}_times"] = self.B.kernels[f"{node.prim.name}_times"]
            self.times[text] = (f"{name}_times", args[0])
        return text
