"""Straight-line code printed as standalone source for one array library.

* `Dialect`: how one library writes the backend operations (`x.permute(1, 0)`,
  `a @ b`, `torch.addcmul(...)`) and the few kernels better written as
  operators; every other kernel and helper is copied from the backend
  (`einvjp.emit_helpers`);
* `Context`: what the functions of one module share — variable names (from
  the program: `mu`, `grad_x`), the helpers, the program's statements for
  comments, the constants;
* `function_body(context, outputs, given, values)`: (the lines, the
  variable of each output): the code writer's own text (`einvjp.codegen`),
  its operations rendered in the library's terms;
* `guarded(lines, results, flag)`: the lines wrapped in `if` blocks so that
  only the results asked for are computed.

>>> for line in guarded(["a = x * 2", "b = a + 1", "c = a - 1", "del a", "d = x + 1"],
...                       ["b", "c", "d"], lambda ks: " or ".join(f"need[{k}]" for k in ks)):
...     print(line)
if need[0] or need[1]:
    a = x * 2
if need[0]:
    b = a + 1
if need[1]:
    c = a - 1
if need[0] or need[1]:
    del a
if need[2]:
    d = x + 1
"""

from __future__ import annotations

import ast
import keyword
import textwrap

import numpy as np

from .codegen import Straightline, _Writer
from .emit_helpers import EmitError, Helpers
from .ir import Add, Const, Contract, Func, Input, Map, topo

_PRECEDENCE = {ast.Add: 2, ast.Sub: 2, ast.Mult: 3, ast.MatMult: 3, ast.Div: 3, ast.Pow: 5}


def operand(text, op, left=True):
    """`text` as an operand of the operator `op` ("+", "*", …), in
    parentheses where Python's precedence needs them."""
    mine = _PRECEDENCE[type(ast.parse(f"a {op} b", mode="eval").body.op)]
    node = ast.parse(text, mode="eval").body
    if isinstance(node, ast.BinOp):
        theirs = _PRECEDENCE[type(node.op)]
        fits = theirs > mine or theirs == mine and left and op != "**"
    elif isinstance(node, ast.UnaryOp):
        fits = mine < 4
    elif isinstance(node, ast.Constant):
        fits = not (isinstance(node.value, complex) or str(node.value).startswith("-"))
    else:
        fits = isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript))
    return text if fits else f"({text})"


def receiver(text):
    """`text` as the object of a method call (`x.sum(1)`)."""
    node = ast.parse(text, mode="eval").body
    return text if isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)) \
        else f"({text})"


def binary(a, op, b):
    return f"{operand(a, op)} {op} {operand(b, op, left=False)}"


def _dims(values):
    return ", ".join(str(v) for v in values)


def _axes(axes):
    return str(axes[0]) if len(axes) == 1 else repr(tuple(axes))


class Dialect:
    """How one library writes the operations of `einvjp.ops` (method style
    where NumPy, torch and jax.numpy agree).  `namespaces`: where its
    public functions are looked up; `templates`: kernels written as
    operators (the operands' and parameters' sources -> source)."""

    name = ""
    module = ""  # the library's import
    lib = ""  # its name in the source
    templates = {"reciprocal": lambda x: binary("1", "/", x),
                 "pow": lambda x, p: binary(x, "**", p), "tpow": lambda x, y: binary(x, "**", y)}

    def namespaces(self):
        raise NotImplementedError

    def op(self, name, a, params, helpers, B):
        """Source of operation `name` on sources `a` with `params`."""
        if name in ("multiply", "scale"):
            return binary(a[0], "*", a[1] if len(a) > 1 else repr(params[0]))
        if name == "matmul":
            return binary(a[0], "@", a[1])
        if name == "add":
            return binary(a[0], "+", a[1] if len(a) > 1 else repr(params[0]))
        if name == "subtract":
            return binary(a[0], "-", a[1])
        if name == "transpose":
            return f"{receiver(a[0])}.{self.permute}({_dims(params[0])})"
        if name == "reshape":
            shape = params[0]
            return f"{receiver(a[0])}.reshape({_dims(shape) if shape else '()'})"
        if name == "sum":
            return f"{receiver(a[0])}.sum({_axes(params[0])})" if params[0] else a[0]
        if name == "add_product":
            c = "" if a[3] == "1" else f"{operand(a[3], '*')} * "
            return f"{a[0]} + {c}{binary(a[1], '*', a[2])}"
        if name == "add_matmul":
            c = "" if a[3] == "1" else f"{operand(a[3], '*')} * "
            return f"{a[0]} + {c}{binary(a[1], '@', a[2])}"
        if name in ("diagonal", "diag_embed"):
            args = list(a) + [repr(p) for p in params]
            return f"{helpers.ref(getattr(B, name), name)}({', '.join(args)})"
        return self.other(name, a, params)

    def other(self, name, a, params):
        raise EmitError(f"no {self.name} source for the operation {name!r}")

    def local(self, name, a, params):
        """Source of an operation of `einvjp.ops.LOCAL` (not a kernel)."""
        like = a[-1] if len(a) > 1 or name == "ones" else "None"
        dtype = "" if like == "None" else f", dtype={operand(like, '*')}.dtype"
        if name == "ones":
            return f"{self.lib}.ones({params[0]!r}{dtype})"
        if name == "as_array":
            return f"{self.lib}.{self.asarray}({a[0]}{dtype})"
        raise EmitError(f"no {self.name} source for the operation {name!r}")


class NumpyDialect(Dialect):
    name, module, lib, permute, asarray = "numpy", "import numpy as np", "np", "transpose", \
        "asarray"

    def namespaces(self):
        return [("np", np, self.module), ("np.linalg", np.linalg, self.module),
                ("np.lib.stride_tricks", np.lib.stride_tricks, self.module)]

    def other(self, name, a, params):
        if name == "swap_last":
            return f"{receiver(a[0])}.swapaxes(-1, -2)"
        if name == "broadcast_to":
            return f"{self.lib}.broadcast_to({a[0]}, {params[0]!r})"
        return super().other(name, a, params)


class JaxDialect(NumpyDialect):
    name, module, lib = "jax", "import jax.numpy as jnp", "jnp"

    def namespaces(self):
        import jax  # noqa: PLC0415
        import jax.numpy as jnp  # noqa: PLC0415
        import jax.scipy.special  # noqa: PLC0415
        return [("jnp", jnp, self.module), ("jnp.linalg", jnp.linalg, self.module),
                ("jax.scipy.special", jax.scipy.special, "import jax.scipy.special"),
                ("jax.nn", jax.nn, "import jax"), ("jax.lax", jax.lax, "import jax")]


class TorchDialect(Dialect):
    name, module, lib, permute, asarray = "torch", "import torch", "torch", "permute", \
        "as_tensor"

    def namespaces(self):
        import torch  # noqa: PLC0415
        import torch.nn.functional as F  # noqa: PLC0415, N812
        return [("torch", torch, self.module), ("torch.special", torch.special, self.module),
                ("torch.linalg", torch.linalg, self.module),
                ("F", F, "import torch.nn.functional as F"),
                ("torch.ops.aten", torch.ops.aten, self.module)]

    def op(self, name, a, params, helpers, B):
        if name in ("add_product", "add_matmul"):  # torch's fused calls: addcmul, addmm
            c = "" if a[3] == "1" else f", {'value' if name == 'add_product' else 'alpha'}={a[3]}"
            call = "addcmul" if name == "add_product" else "addmm"
            return f"torch.{call}({a[0]}, {a[1]}, {a[2]}{c})"
        return super().op(name, a, params, helpers, B)

    def other(self, name, a, params):
        if name == "swap_last":
            return f"{receiver(a[0])}.mT"
        if name == "broadcast_to":
            return f"{receiver(a[0])}.expand({_dims(params[0]) or '()'})"
        return super().other(name, a, params)


DIALECTS = {"numpy": NumpyDialect, "torch": TorchDialect, "jax": JaxDialect}

RESERVED = {"np", "jnp", "jax", "torch", "F", "math", "ctx", "self", "residuals",
             "cotangents", "needs"}


class Context:
    """What the functions of one emitted module share."""

    def __init__(self, dialect, B, fixed, statements=None):
        self.dialect, self.B, self.fixed = dialect, B, dict(fixed)
        self.helpers = Helpers(dialect.namespaces())
        self.statements = statements or {}  # node -> its statement, printed above its line
        self.names = {}  # node -> variable name
        self.taken = set()
        self.count = 0

    def name(self, node, wish=None):
        """The variable holding `node` in every function of the module."""
        found = self.names.get(node)
        if found is None:
            found = self.names[node] = self.fresh(wish or _wish(node))
        return found

    def fresh(self, base=None):
        """A name no variable has: `base` (else a temporary's, t1, t2, …)."""
        usable = base and base.isidentifier() and not keyword.iskeyword(base) and \
            not base.startswith("_")
        name, k = (base, 1) if usable else ("t1", 1)
        while name in self.taken or name in RESERVED:
            k += 1
            name = f"{base}_{k}" if usable else f"t{k}"
        self.taken.add(name)
        return name


def _wish(node):
    """A variable name for a node: its program name; for a function of one
    named tensor, the function and the name (`inv_s` for 1 / s)."""
    if isinstance(node, Input) and node.name.startswith("∂l/∂"):
        return "grad_" + node.name[4:]
    if not node.name and isinstance(node, Map) and len(node.args) == 1 and node.args[0].name:
        return f"{_SHORT.get(node.prim.name, node.prim.name)}_{node.args[0].name}"
    return node.name


_SHORT = {"reciprocal": "inv"}


def constants(order, fixed):
    """The nodes whose value does not depend on the program's arrays."""
    out = set(fixed)
    for node in order:
        if isinstance(node, Const) or not isinstance(node, Input) and \
                all(a in out for a in getattr(node, "args", ())):
            out.add(node)
    return out


class _Src:
    """A value of the structured primitives' layout code: its source."""
    __slots__ = ("text", "shape")

    def __init__(self, text, shape=None):
        self.text, self.shape = text, shape


class _SrcBackend:
    """The backend a structured primitive's layout (`Structured.run`) is run
    on to print it: each operation returns its source."""

    def __init__(self, writer):
        self.writer = writer

    def __getattr__(self, name):
        def run(x, *params):
            shape = None
            if name == "transpose" and x.shape is not None:
                shape = tuple(x.shape[p] for p in params[0])
            elif name in ("reshape", "broadcast_to"):
                shape = tuple(params[0])
            return _Src(self.writer.call(name, [x.text], params), shape)
        return run


class SourceWriter(_Writer):
    """The code writer, writing source for `Context`'s library: the same
    text, its operations in the library's terms, constants in place."""

    def __init__(self, code, order, probe, counts=None):
        self.context = code.context
        super().__init__(code, order, probe, counts)
        self.constants = constants(order, code.fixed)

    def fresh(self, prefix, node=None):
        return self.context.name(node) if node is not None else self.context.fresh()

    def in_place(self, node):
        return self.known(node) is not None

    def known(self, node):
        if node in self.constants and self.number(node):
            return self.probe[node]
        return None

    def const(self, value):
        if hasattr(value, "item") and not hasattr(value, "shape") or \
                getattr(value, "shape", None) == () and type(value).__module__ == "numpy":
            value = value.item()  # a NumPy scalar
        return self.context.helpers.ref(value, "c")

    def scalar(self, value, node):
        return self.const(value)

    def bind(self, value, prefix="c"):
        return self.context.helpers.ref(value, prefix)

    def expression(self, node):
        if isinstance(node, Func):
            return self.structured(node)
        if not isinstance(node, (Contract, Add, Map)):
            raise EmitError(f"cannot write {node!r} as source")
        if isinstance(node, Contract) and not self.uniform(node):
            raise EmitError("a contraction over operands of different dtypes cannot be "
                            "emitted: give the inputs one floating-point dtype")
        return self.lowered(node)

    def call(self, name, args, params=()):
        return self.context.dialect.op(name, list(args), tuple(params), self.context.helpers,
                                       self.B)

    def local(self, name, args, params):
        return self.context.dialect.local(name, list(args), tuple(params))

    def constant_array(self, value, like, like_source, params):
        return self.local("as_array", [self.const(value), like_source], params)

    def kernel(self, node, xs, name, params):
        args = list(xs) + [self.const(p) if not isinstance(p, tuple) else repr(p)
                           for p in params]
        template = self.context.dialect.templates.get(name)
        if template is not None:
            return template(*args)
        helpers = self.context.helpers
        text = f"{helpers.ref(self.B.kernels[name], name)}({', '.join(args)})"
        if node in self.inline and len(args) == 1:  # g * f(x) in one call (see codegen)
            self.times[text] = (helpers.ref(self.B.kernels[f"{name}_times"],
                                            f"{name}_times"), args[0])
        return text

    def structured(self, node):
        """A structured primitive: its layout run on sources."""
        helpers = self.context.helpers
        fn = helpers.ref(self.B.kernels[node.prim.name], node.prim.name)

        def text(v):
            return v.text if isinstance(v, _Src) else repr(v) if isinstance(v, tuple) \
                else self.const(v)

        def kernel(*xs):
            return _Src(f"{fn}({', '.join(text(x) for x in xs)})")
        args = [_Src(self.var[a], tuple(int(s) for s in a.shape)) if not self.number(a)
                else self.const(self.probe[a]) for a in node.args]
        return text(node.prim.run(kernel, _SrcBackend(self), node, args))


class _Code(Straightline):
    """A `Straightline` whose writer writes for a `Context`."""

    def __init__(self, outputs, given, context):
        super().__init__(outputs, given, context.B, context.fixed)
        self.context = context


def function_body(context, outputs, given, values):
    """(lines, the variable of each output, the given nodes read) of
    `outputs` from the `given` nodes, probed at `values`."""
    code = _Code(outputs, given, context)
    order, probe = code.probe(values)
    writer, _ = SourceWriter(code, order, probe).written()
    read = {a for n in order for a in getattr(n, "args", ())} | set(outputs)
    results = [writer.var[o] if writer.var[o].isidentifier() else  # a number: an array
               context.dialect.local("as_array", [writer.var[o], writer.like], ())
               for o in outputs]
    used = {n.id for line in writer.lines + results for n in ast.walk(ast.parse(line))
            if isinstance(n, ast.Name)}
    if writer.like in used:  # `like` (whose dtype constants take) is read too
        read.add(writer.like_node)
    holds = {v: n for n, v in writer.var.items()}
    lines = []
    for line in writer.lines:
        node = holds.get(line.split(" = ")[0])
        if node in context.statements:
            lines += comment(context.statements[node])
        lines += split(line, context.fresh)
    return lines, results, [n for n in given if n in read]


def comment(text, width=88):
    """`text` as comment lines."""
    return textwrap.wrap(text, width, initial_indent="# ", subsequent_indent="#     ",
                         break_on_hyphens=False, break_long_words=False)


def split(line, fresh, width=88):
    """An assignment longer than `width` as several: its largest parts that
    fit assigned to temporaries first (deleted after it)."""
    stmt = ast.parse(line).body[0]
    if len(line) <= width or not isinstance(stmt, ast.Assign):
        return [line]
    before, temps = [], []
    while len(ast.unparse(stmt)) > width:
        parts = [n for n in ast.walk(stmt.value) if n is not stmt.value and
                 isinstance(n, (ast.Call, ast.BinOp)) and len(ast.unparse(n)) <= width - 12]
        if not parts:
            break
        part = max(parts, key=lambda n: len(ast.unparse(n)))
        name = fresh()
        before.append(f"{name} = {ast.unparse(part)}")
        temps.append(name)
        stmt = _Replace(part, name).visit(stmt)
    return before + [ast.unparse(stmt)] + ([f"del {', '.join(temps)}"] if temps else [])


class _Replace(ast.NodeTransformer):
    def __init__(self, node, name):
        self.node, self.name = node, name

    def visit(self, node):
        if node is self.node:
            return ast.copy_location(ast.Name(self.name, ast.Load()), node)
        return super().visit(node)


def guarded(lines, results, flag):
    """`lines` in `if` blocks, each line under `flag(ks)` where ks are the
    positions of the `results` (variable names) that need it; a line every
    result needs is not guarded."""
    needs = {}
    for k, var in enumerate(results):
        if var is not None:
            needs.setdefault(var, set()).add(k)
    every = set(range(len(results)))
    stmts = [None if line.startswith("#") else ast.parse(line).body[0] for line in lines]
    for stmt in reversed(stmts):  # what each variable is needed for
        if isinstance(stmt, ast.Assign):
            need = needs.get(stmt.targets[0].id, set())
            for n in ast.walk(stmt.value):
                if isinstance(n, ast.Name):
                    needs.setdefault(n.id, set()).update(need)
    steps = []
    for line, stmt in zip(lines, stmts):
        if stmt is None:
            steps.append((line, None))
        elif isinstance(stmt, ast.Delete):
            steps += [(f"del {t.id}", frozenset(needs.get(t.id, ()))) for t in stmt.targets]
        else:
            steps.append((line, frozenset(needs.get(stmt.targets[0].id, ()))))
    merged = []
    for line, need in steps:  # consecutive deletions under one guard: one `del`
        if merged and line.startswith("del ") and merged[-1][0].startswith("del ") and \
                merged[-1][1] == need:
            line = f"{merged.pop()[0]}, {line[4:]}"
        merged.append((line, need))
    steps = merged
    out, current = [], None
    for k, (line, need) in enumerate(steps):
        if need is None:  # a comment goes with the line after it
            need = next((n for _, n in steps[k:] if n is not None), frozenset(every))
        if need >= every or not need:
            current = None
            out.append(line)
            continue
        if need != current:
            out.append(f"if {flag(sorted(need))}:")
            current = need
        out.append("    " + line)
    return out


def forward_nodes(fwd, grads):
    """(the forward's nodes, the residuals: the forward tensors other than
    the outputs that the backward reads)."""
    forward = set(topo(fwd))
    reads = set(grads).union(*(getattr(n, "args", ()) for n in topo(grads) if n not in forward))
    return forward, [n for n in topo(fwd) if n in reads and n not in set(fwd)
                     and not isinstance(n, (Input, Const))]
