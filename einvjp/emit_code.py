"""Straight-line code printed as standalone source for one array library.

* the operations in the library's terms: `einvjp.emit_dialects`; every
  kernel and helper not written as an operator copied from the backend
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

from .codegen import Straightline, _Writer
from .emit_dialects import RESERVED, binary
from .emit_helpers import EmitError, Helpers
from .ir import Add, Const, Contract, Func, Input, Map, topo


class Context:
    """What the functions of one emitted module share."""

    def __init__(self, dialect, B, fixed):
        self.dialect, self.B, self.fixed = dialect, B, dict(fixed)
        self.helpers = Helpers(dialect.namespaces())
        self.statements = {}  # node -> its statement, printed above its line
        self.names = {}  # node -> variable name
        self.taken = set()

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
        if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
            value = value.item()  # a NumPy scalar: its Python number
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
    fit assigned to temporaries first (deleted after it), written as they
    were (parentheses kept)."""
    before, temps = [], []
    while len(line) > width:
        stmt = ast.parse(line).body[0]
        if not isinstance(stmt, ast.Assign):
            break
        parts = [n for n in ast.walk(stmt.value) if n is not stmt.value and
                 isinstance(n, (ast.Call, ast.BinOp)) and
                 n.end_col_offset - n.col_offset <= width - 12]
        if not parts:
            break
        part = max(parts, key=lambda n: n.end_col_offset - n.col_offset)
        name = fresh()
        raw = line.encode()  # ast's offsets count bytes
        start, end = (len(raw[:k].decode()) for k in (part.col_offset, part.end_col_offset))
        before.append(f"{name} = {line[start:end]}")
        temps.append(name)
        if line[start - 1:start] == "(" and line[end:end + 1] == ")" and \
                not (line[start - 2:start - 1].isalnum() or line[start - 2:start - 1]
                     in ("_", ")", "]")):  # parentheses around a name alone: dropped
            start, end = start - 1, end + 1
        line = line[:start] + name + line[end:]
    return before + [line] + ([f"del {', '.join(temps)}"] if temps else [])


def guarded(lines, results, flag):
    """`lines` in `if` blocks, each line under `flag(ks)` where ks are the
    positions of the `results` (variable names) that need it; a line every
    result needs is not guarded."""
    needs = {}
    for k, var in enumerate(results):
        if var is not None:
            needs.setdefault(var, set()).add(k)
    every = {k for k, var in enumerate(results) if var is not None}
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


def residual_nodes(fwd, grads):
    """The forward tensors other than the outputs that the backward reads."""
    forward = set(topo(fwd))
    reads = set(grads).union(*(getattr(n, "args", ()) for n in topo(grads) if n not in forward))
    return [n for n in topo(fwd) if n in reads and n not in set(fwd)
            and not isinstance(n, (Input, Const))]
