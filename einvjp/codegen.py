"""The code writer: a graph run as straight-line Python written for it.

* `Straightline(outputs, given, B)(values)`: what `evaluate` returns, from
  code written once per signature of the values (which are Python numbers
  of which type, the dtypes), probed on its first call by the interpreter
  (under jax, whose first call may be jit's trace, that call returns the
  code's result);
* each node prints its one list of operations (`einvjp.lowering`), with
  every shape, permutation and known number written in; a node without
  one (a structured primitive, a number) calls the interpreter.

What printing adds to the list (transformations, not a second lowering):

* a contraction's plan written out step by step, its coefficient on the
  smallest tensor it handles;
* a contraction read once by an Add written into it, its last product
  folded into the sum (`add_product`, `add_matmul`: torch's `addcmul`,
  `addmm`);
* g * f(x) in one call where the library has one (`f_times`: torch's
  `gelu_backward`); a pairwise product written twice computed once;
* intermediates released after their last read.

>>> import numpy as np
>>> from einvjp.ir import Input, Expr
>>> from einvjp.ge import Index
>>> from einvjp import prims
>>> from einvjp.backend import backend_for
>>> i, j = Index("i", 2), Index("j", 3)
>>> x = Expr(Input("x", (2, 3)), (i, j))
>>> y = (prims.exp(x) * x).sum([j]) / 3
>>> B = backend_for([np.ones(1)])
>>> run = Straightline([y.node], [x.node], B)
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

import math
from functools import partial

from .errors import ProgramError
from .execute import _NUMBERS, _inexact, _is_number, _like, evaluate_node
from .ir import Add, Const, Contract, Input, Map, topo
from .lowering import lower
from .ops import LOCAL


def _literal(v):
    """Source text for a number that repr round-trips (else None): a Python
    int or float, not a subclass (NumPy's float64 repr is `np.float64(2.0)`)."""
    if type(v) not in (int, float):
        return None
    return repr(v) if math.isfinite(v) else None


class Straightline:
    """`outputs` as a function of the values of the `given` nodes, run as
    straight-line code: `Straightline(outputs, given, B)(values)` returns
    what `evaluate` would.  One function is written per signature of the
    values (which are Python numbers of which type, the arrays' dtypes,
    whether a graph capture is tracing the call: `Backend.tracing`).  `fixed` maps
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
        order, vals = self.probe(values)
        found = self._code[sig] = _Writer(self, order, vals).write()
        if self.B.staged or sig[0]:
            # Under jax.jit (torch.compile) this call is the trace, made once per
            # signature: the code written for it, not the interpreter's probe, is
            # what XLA (Inductor) compiles (the probe's ops are dead and dropped).
            return found[0](*values)
        return tuple(vals[o] for o in self.outputs)

    def probe(self, values):
        """(the nodes to write, operands first; every node's value at these
        values, from the interpreter)."""
        vals = dict(self.fixed)
        vals.update(zip(self.given, values))
        like = _like(values)
        # The last output first, as an autograd engine walks a graph back from
        # its end: for a VJP program, the last layer's gradients first.  The
        # order of allocations and frees changes glibc's heap trimming: for
        # an MLP block it took the page faults a call from ~2000 to ~480.
        order = topo(self.outputs[::-1], stop=vals)
        for node in order:
            if isinstance(node, Input):
                raise ProgramError(f"no value for input {node.name!r}")
            vals[node] = evaluate_node(node, [vals[a] for a in getattr(node, "args", ())],
                                       self.B, like)
        return order, vals

    def function(self, values):
        """The function written for values like these (their signature),
        written now if it is not yet: called as `function(*values)`, it
        skips `__call__`'s signature lookup."""
        if self._signature(values) not in self._code:
            self(values)
        return self._code[self._signature(values)][0]

    def source(self, values):
        """The code written for values like these, once a call has written it."""
        return self._code[self._signature(values)][1]

    def _signature(self, values):
        return tuple([self.B.tracing()] + [
            v.__class__ if isinstance(v, _NUMBERS) else getattr(v, "dtype", None)
            for v in values])


class _Writer:
    """Writes one `Straightline` function; `probe` holds a value of every node
    (from the interpreter), which says what is a number."""

    OPS = ("transpose", "reshape", "matmul", "multiply", "add", "subtract", "sum",
           "swap_last", "scale", "broadcast_to", "diagonal", "diag_embed", "add_product",
           "add_matmul")

    def __init__(self, code, order, probe, counts=None):
        self.code, self.order, self.probe = code, order, probe
        self.counts = counts or {}  # source of a pairwise product -> how often written
        self._counts = {}  # prefix of a variable's name -> the names given so far
        self.seen, self.hoisted = {}, {}
        self.times = {}  # source of f(x) -> (source of f_times, x): g * f(x) in one call
        self.parts = {}  # a contraction ending in a product -> (op, a, b)
        self.inline = set()  # the nodes written into their (one) reader (see lines_for)
        self.B = code.B
        self.env = {op: getattr(self.B, op) for op in self.OPS}
        self.params = [self.fresh("v", node) for node in code.given]
        self.var = {}
        for name, node in zip(self.params, code.given):  # a node given twice: its first
            self.var.setdefault(node, name)
        self.var.update((node, self.const(v)) for node, v in code.fixed.items())
        arrays = [n for n in code.given if not _is_number(probe[n])]
        self.like_node = arrays[0] if arrays else None  # see `_numbers_like`
        self.like = self.var[arrays[0]] if arrays else "None"
        self.lines = []

    def fresh(self, prefix, node=None):
        """A new variable's name (`node`: the node it holds, if any)."""
        k = self._counts.get(prefix, 0)
        self._counts[prefix] = k + 1
        return f"{prefix}{k}"

    def in_place(self, node):
        """Whether a node's value is written where it is read."""
        return isinstance(node, Const)

    def known(self, node):
        """The number a node always has (a constant, a fixed input), else None."""
        if isinstance(node, Const) or node in self.code.fixed:
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
        second, source = self.written()
        exec(source, second.env)  # noqa: S102 - code written from the graph, no user text
        return second.env["run"], source

    def written(self):
        """(the writer of the second pass, the function's source)."""
        first = type(self)(self.code, self.order, self.probe)
        first.lines_for()
        second = type(self)(self.code, self.order, self.probe, first.seen)
        return second, second.lines_for()

    def lines_for(self):
        """The source of the function.  A contraction read once, by an Add,
        is written into the Add (which may fold its last product into an
        `add_product`); a function the library multiplies in the same pass
        (torch's gelu_backward for g * gelu'(x)), read once by a contraction,
        is written into it; a variable is deleted after the statement that
        reads it last."""
        kept = set(self.code.outputs) | set(self.code.given) | set(self.code.fixed) | {
            n for n in self.order if self.in_place(n)}
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
            if self.in_place(node):  # a constant: written where it is read
                self.var[node] = self.const(self.probe[node])
                continue
            if node in inline:
                self.var[node] = self.expression(node)
                continue
            self.var[node] = self.fresh("v", node)
            self.lines.append(f"{self.var[node]} = {self.expression(node)}")
            if dead.get(k):
                self.lines.append(f"del {', '.join(self.var[n] for n in dead[k])}")
        params = ", ".join(self.params)
        results = "".join(f"{self.var[o]}, " for o in self.code.outputs)
        return "\n    ".join([f"def run({params}):"] + self.lines + [f"return ({results})"])

    def shared(self, text):
        """A pairwise product's source, or the temporary holding it when the
        function writes it more than once."""
        self.seen[text] = self.seen.get(text, 0) + 1
        if self.counts.get(text, 0) < 2:
            return text
        name = self.hoisted.get(text)
        if name is None:
            name = self.hoisted[text] = self.fresh("t")
            self.lines.append(f"{name} = {text}")
        return name

    # --- one node

    def expression(self, node):
        args = getattr(node, "args", ())
        if self.number(node) or not isinstance(node, (Contract, Add, Map)) or \
                not isinstance(node, Map) and all(self.number(a) for a in args):
            return self.interpreted(node)
        return self.lowered(node)

    def lowered(self, node):
        """A Contract, Add or Map node's one list of operations, printed."""
        args = node.args
        numbers = tuple(self.number(a) for a in args)
        known = tuple(self.known(a) for a in args)
        late = ()
        if isinstance(node, Add):  # products folded into the sum go last (see `printed`)
            late = {k for k, a in enumerate(args) if self.folded(node, a) is not None}
        ops = lower(node, self.B, numbers, known, late)
        inputs = [self.var[a] for a in args] + [self.like]
        values = [self.probe[a] for a in args] + [self.probe.get(self.like_node)]
        text, product = self.printed(ops, inputs, node, values)
        if isinstance(node, Contract) and product is not None:
            self.parts[node] = product
        return text

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

    def bind(self, value, prefix="c"):
        """A name for `value` in the code's namespace."""
        name = f"{prefix}{len(self.env)}"
        self.env[name] = value
        return name

    def printed(self, ops, sources, node, values=None):
        """(source of the result of `ops` on the `sources`, the fold of its
        pairwise product into a sum — ("add_product" or "add_matmul", a, b) —
        when the result is that product as it is, else None).  `values`:
        the inputs' values in the probe, where a number made an array is
        made while writing."""
        regs, fold, skip = list(sources), None, False
        for r, (name, args, params) in enumerate(ops.ops, ops.n_in):
            xs = [regs[a] for a in args]
            if skip:  # a coefficient the contraction before it applied
                text, skip = regs[-1], False
                fold = (r, fold[1]) if fold else None
            elif name == "contract":
                scale = ops.ops[r - ops.n_in + 1] if r + 1 < len(ops.shapes) else None
                scale = scale if scale and scale[0] == "scale" and scale[1][0] == r else None
                factor = None
                if scale is not None:
                    factor = regs[scale[1][1]] if len(scale[1]) > 1 else \
                        self.scalar(scale[2][0], node)
                text, product = self.contraction(node, params[0], args, xs, ops, factor)
                fold, skip = (r, product) if product else None, scale is not None
            elif name == "kernel":
                text = self.kernel(node, xs, *params)
            elif name == "times":
                text = f"({' * '.join([self.const(params[0])] + xs)})"
            elif name == "plus":
                text = f"({' + '.join(xs + [self.const(p) for p in params])})"
            elif name == "as_array" and values is not None and len(args) == 2 and \
                    args[0] < ops.n_in - 1 and self.known(node.args[args[0]]) is not None:
                text = self.constant_array(values[args[0]], values[args[1]], xs[1], params)
            elif name in LOCAL and name != "add_scaled":
                text = self.local(name, xs, params)
            elif name == "add_scaled":
                text = self.accumulate(node, ops, args, xs, params[0])
            elif name in ("scale", "add") and params:
                text = self.call(name, [xs[0], self.scalar(params[0], node)])
            else:
                text = self.call(name, xs, params)
            if r == ops.product:
                text, fold = self.step_product(ops, r, name, xs, text)
            regs.append(text)
        if fold is not None and fold[0] == len(regs) - 1:
            return regs[-1], fold[1]
        return regs[-1], None

    def call(self, name, args, params=()):
        """The source of the backend operation `name` on the sources `args`
        with the parameters `params` (values)."""
        return f"{name}({', '.join(list(args) + [repr(p) for p in params])})"

    def local(self, name, args, params):
        """The source of an operation of `LOCAL` (not a backend method)."""
        return f"{self.bind(partial(LOCAL[name], self.B), name)}" \
               f"({', '.join(list(args) + [repr(p) for p in params])})"

    def constant_array(self, value, like, like_source, params):
        """A number made an array once, while writing (`as_array`)."""
        return self.bind(LOCAL["as_array"](self.B, value, like, *params))

    def step_product(self, ops, r, name, xs, text):
        """A plan step's pairwise product: g * f(x) as f_times(g, x), shared
        when written more than once, and its fold into a sum."""
        fused = [(self.times[x], y) for x, y in ((xs[0], xs[-1]), (xs[-1], xs[0]))
                 if x in self.times] if name == "multiply" else []
        args = ops.ops[r - ops.n_in][1]
        plain = True
        if fused and ops.shapes[args[0]] == ops.shapes[args[1]]:  # g * f(x) as f_times(g, x)
            (times, x), g = fused[0]
            text, plain = f"{times}({g}, {x})", False
        shared, fold = self.shared(text), None
        if shared == text and name == "multiply" and plain:
            fold = (r, ("add_product", xs[0], xs[1]))
        elif shared == text and name == "matmul" and len(ops.shapes[r]) == 2:
            fold = (r, ("add_matmul", xs[0], xs[1]))
        return shared, fold

    def contraction(self, node, plan, args, sources, ops, factor):
        """A planned GE written out step by step, `factor` (source, or None)
        multiplying the smallest tensor the plan handles (not the full
        result); a plan over operands of other dtypes than the result's
        through `B.apply`, which promotes."""
        if not self.uniform(node):
            text = f"{self.bind(partial(LOCAL['contract'], self.B), 'contract')}(" \
                   f"{', '.join(sources)}, {self.bind(plan, 'p')})"
            return (self.call("scale", [text, factor]) if factor else text), None
        slots = [(x, ops.shapes[a]) for x, a in zip(sources, args)]
        sizes = [math.prod(s) for _, s in slots] + [
            math.prod(int(lab.size) for lab in step.ge.out) for step in plan.steps]
        target = sizes.index(min(sizes)) if factor else -1

        def scaled(k, x):
            return self.call("scale", [x, factor]) if k == target else x
        slots = [(scaled(k, x), s) for k, (x, s) in enumerate(slots)]
        product = None
        for step in plan.steps:
            x, product = self.printed(step.ops, [slots[i][0] for i in step.ins], node)
            slots.append((scaled(len(slots), x), step.ops.shapes[-1]))
        return slots[-1][0], (product if target != len(slots) - 1 else None)

    def accumulate(self, node, ops, args, xs, c):
        """acc + c x; a product read as it is (a contraction written into
        this Add) folded into the sum: `add_product`, `add_matmul`."""
        acc, x = xs
        product = self.folded(node, node.args[args[1]]) if args[1] < ops.n_in - 1 else None
        if product is not None:
            return self.call(product[0], [acc, product[1], product[2], self.const(c)])
        if c == 1:
            return self.call("add", [acc, x])
        if c == -1:
            return self.call("subtract", [acc, x])
        return self.call("add", [acc, self.call("scale", [x, self.scalar(c, node)])])

    def folded(self, node, a):
        """The product that operand `a` of the Add `node` is, as it is (a
        contraction written into the Add), when the sum can take it in:
        ("add_product" or "add_matmul", a, b); else None."""
        product = self.parts.get(a) if a in self.inline else None
        if product is None or product[0] == "add_matmul" and len(node.out) != 2:
            return None  # addmm adds to a matrix only
        fusable = _inexact(self.probe[node]) and all(
            self.number(b) or self.probe[b].dtype == self.probe[node].dtype for b in node.args)
        return product if fusable else None

    def kernel(self, node, xs, name, params):
        """A primitive's kernel; a function the library multiplies in the
        same pass, written into its one reader (see `lines_for`), noted."""
        fn = f"f_{name}"
        self.env[fn] = self.B.kernels[name]
        args = list(xs)
        if params:
            args.append(f"*{self.bind(tuple(params), 'p')}")
        text = f"{fn}({', '.join(args)})"
        if node in self.inline and len(args) == 1:  # see `lines_for`
            self.env[f"{fn}_times"] = self.B.kernels[f"{name}_times"]
            self.times[text] = (f"{fn}_times", args[0])
        return text
