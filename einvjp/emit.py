"""A program and its VJP as a standalone Python module: `Program.source`.

* `source(prog, library, values, name)`: the module's text, for NumPy,
  PyTorch or JAX, planned for the shapes in `values` (a shape, an example
  array, or a Python number per input).  It imports the array library only:
  the contraction order is decided, every einsum written out as the
  transposes, reshapes, matmuls and sums einvjp runs, and the helpers the
  code calls (a stable sigmoid, a diagonal view) copied into it.

What a module holds, for a program `name` with array inputs `x, w`:

* torch: `class Name(torch.autograd.Function)` — `forward` keeps what the
  backward reads (`ctx.save_for_backward`), `backward` is the derived VJP
  and computes only the gradients autograd asks for
  (`ctx.needs_input_grad`) — and `name(x, w)`, its `apply`;
* jax: `name(x, w)`, a `jax.custom_vjp` function (forward keeping the
  residuals, backward the VJP);
* numpy: `forward(x, w)` and `vjp(cotangent, x, w)`, the gradients in
  input order (a tuple cotangent for several outputs).

Python-number inputs (an `eps`) are written into the code as constants:
the functions take the array inputs only, in the program's input order.
The code is written for one set of shapes (the reshapes hold them) and
works for any floating-point dtype.

>>> import einvjp
>>> prog = einvjp.compile("y[i] = x[i,j] w[j]")
>>> text = source(prog, "numpy", {"x": (2, 3), "w": (3,)})
>>> print(text[text.index("def forward"):text.index("def vjp")].strip())
def forward(x, w):
    \"\"\"y, computed from x, w.\"\"\"
    # y[i] = x[i,j] w[j]
    y = (x @ w.reshape(3, 1)).reshape(2)
    return y
>>> namespace = {}
>>> exec(text, namespace)
>>> import numpy as np
>>> namespace["vjp"](np.ones(2), np.ones((2, 3)), np.arange(3.0))[1].tolist()
[2.0, 2.0, 2.0]
"""

from __future__ import annotations

import keyword
import textwrap

import numpy as np

from .backend import load
from .codegen import Straightline
from .emit_code import (Context, comment, constants, function_body, guarded,
                        residual_nodes)
from .emit_dialects import DIALECTS, RESERVED
from .emit_helpers import EmitError
from .formats import Text
from .ir import topo
from .printing import Derivative, program_statements, render_program

_NUMBER = (int, float, complex)


def _probe(B, value, rng):
    """An input's value for planning: a number stays, a shape becomes an
    array of positive random floats (a matrix function's operand is then
    invertible), an array is taken as it is."""
    if isinstance(value, bool) or isinstance(value, _NUMBER):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(d, int) for d in value):
        return B.asarray(rng.uniform(0.5, 1.5, tuple(value)))
    if hasattr(value, "shape"):
        return B.asarray(value)
    raise EmitError(f"give each input as a shape (a tuple of sizes), an example array "
                    f"or a Python number, not {value!r}")


def source(prog, library, values, name="program"):
    """The standalone module (see the module docstring)."""
    if library not in DIALECTS:
        raise EmitError(f"no source for {library!r}: choose one of {', '.join(DIALECTS)}")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise EmitError(f"{name!r} is not a Python name")
    B = load(library)
    rng = np.random.default_rng(0)
    values = prog._values((), values)
    probe = {n: _probe(B, v, rng) for n, v in values.items()}
    g = prog.graph(**probe)
    if g.constants:
        raise EmitError("the program closes over arrays; pass them as inputs to emit it")
    fixed = {g.inputs[n]: probe[n] for n in prog.input_names
             if n in g.inputs and isinstance(probe[n], _NUMBER)}
    context = Context(DIALECTS[library](), B, fixed)
    return getattr(_Module(context, g, name, prog, probe), library)()


class _Module:
    """The text of one module, function by function: `numpy()`, `torch()`,
    `jax()`."""

    def __init__(self, context, graph, name, prog, probe):
        self.context, self.graph, self.name = context, graph, name
        self.arrays = [n for n in prog.input_names if not isinstance(probe[n], _NUMBER)]
        self.probes = [probe[n] for n in self.arrays]
        self.inputs = [graph.inputs.get(n) for n in self.arrays]
        wrt = prog.wrt_names(probe)
        self.cts, self.fwd, grads = graph.gradients(wrt)
        self.grads = dict(zip(wrt, grads))
        context.statements = program_statements(self.fwd, graph.output_names)
        self.derivatives = [str(Derivative(graph, n, gn, self.fwd)) for n, gn in zip(wrt, grads)]
        self.text = render_program(Text(), self.fwd, graph.output_names)[0]
        self.planned = ", ".join(f"{n} {tuple(int(d) for d in p.shape)}"
                                 for n, p in zip(self.arrays, self.probes))
        self.numbers = [f"{n} = {probe[n]!r}" for n in prog.input_names if n not in self.arrays]
        camel = "".join(w[:1].upper() + w[1:] for w in name.split("_")) or "Program"
        self.camel = camel if camel != name and camel not in RESERVED else camel + "Function"
        context.taken.update({name, self.camel, "forward", "vjp", "backward"})
        # the arguments keep the program's names (one a module name would shadow changed)
        self.args = [context.name(node, n) if node is not None else context.fresh(n)
                     for n, node in zip(self.arrays, self.inputs)]
        self.params = ", ".join(self.args)

    # --- the pieces

    def given_values(self, nodes):
        probe = dict(zip(self.inputs, self.probes))
        return [probe[n] for n in nodes]

    def forward(self, residuals=()):
        """(lines, output variables, residual variables) of the forward."""
        given = [n for n in self.inputs if n is not None]
        lines, out, _ = function_body(self.context, list(self.fwd) + list(residuals), given,
                                      self.given_values(given))
        return lines, out[:len(self.fwd)], out[len(self.fwd):]

    def residuals(self):
        kept = residual_nodes(self.fwd, [g for g in self.grads.values() if g is not None])
        numbers = constants(topo(self.fwd, stop=self.context.fixed), self.context.fixed)
        return [n for n in kept if n not in numbers]

    def backward(self, residuals):
        """(lines, gradient variables or None, given nodes read): the VJP from
        the cotangents, the outputs and the `residuals` (or, without them,
        from the inputs alone)."""
        for n, node in zip(self.arrays, self.inputs):
            grad = self.grads.get(n)
            if grad is not None:
                self.context.name(grad, f"grad_{n}")
        inputs = [n for n in self.inputs if n is not None]
        extra = list(self.fwd) + list(residuals) if residuals is not None else []
        given = inputs + list(self.cts) + [n for n in extra if n not in inputs]
        present = [g for g in self.grads.values() if g is not None]
        probe = self._forward_probe(residuals)
        values = self.given_values(inputs) + [
            self.context.B.full(tuple(int(s) for s in c.shape), 1.0, self.probes[0])
            for c in self.cts] + [probe[n] for n in given[len(inputs) + len(self.cts):]]
        lines, out, read = function_body(self.context, present, given, values)
        var = dict(zip(present, out))
        results = [var.get(self.grads.get(n)) for n in self.arrays]
        return lines, results, read

    def _forward_probe(self, residuals):
        given = [n for n in self.inputs if n is not None]
        code = Straightline(list(self.fwd) + list(residuals or ()), given, self.context.B,
                            self.context.fixed)
        return code.probe(self.given_values(given))[1]

    def docstring(self, library, what):
        body = "\n".join("    " + line for line in self.text.splitlines())
        numbers = "" if not self.numbers else \
            f" {self.numbers[0]} is written into the code as a constant." \
            if len(self.numbers) == 1 else \
            f" {', '.join(self.numbers)} are written into the code as constants."
        planned = textwrap.fill(f"Planned for the shapes {self.planned} (any floating-point "
                                f"dtype).{numbers}", 79, break_on_hyphens=False)
        return (f'"""{self.name}: a program and its VJP, written by einvjp for {library}.\n\n'
                f"{body}\n\n{planned}\n\n{textwrap.fill(what, 79)}\n\"\"\"")

    def header(self, library, what):
        imports = [self.context.dialect.module] + [
            i for i in self.context.helpers.imports() if i != self.context.dialect.module]
        parts = [self.docstring(library, what), "\n".join(sorted(set(imports)))]
        if self.context.helpers.blocks:
            parts.append(self.context.helpers.definitions())
        return "\n\n".join(parts[:2]) + ("\n\n\n" + parts[2] if len(parts) > 2 else "")

    def outputs_doc(self):
        return ", ".join(self.graph.output_names)

    def derivative_comments(self, indent):
        return [indent + c for d in self.derivatives for line in d.splitlines()
                for c in comment(line)]

    # --- one library each

    def numpy(self):
        fwd, outs, _ = self.forward()
        lines, results, _ = self.backward(None)
        cts = [self.context.name(c) for c in self.cts]
        unpack = f"{cts[0]} = cotangent" if len(cts) == 1 else f"{', '.join(cts)} = cotangent"
        grads = [r if r is not None else f"np.zeros_like({a})"
                 for r, a in zip(results, self.args)]
        code = [
            f"def forward({self.params}):",
            f'    """{self.outputs_doc()}, computed from {self.params}."""',
            *_indent(fwd), f"    return {', '.join(outs)}", "", "",
            f"def vjp(cotangent, {self.params}):",
            f'    """The gradients of {self.params} (in that order), given the cotangent'
            f' of {self.outputs_doc()}."""',
            *self.derivative_comments("    "), f"    {unpack}",
            *_indent(lines), f"    return {_tuple(grads, always=True)}"]
        what = "forward(...) computes the program; vjp(cotangent, ...) its gradients."
        return self.header("numpy", what) + "\n\n\n" + "\n".join(code) + "\n"

    def with_residuals(self):
        """The forward keeping residuals and the backward reading them:
        (forward lines, outputs, backward lines, gradients, cotangents,
        what the backward reads of the forward)."""
        residuals = self.residuals()
        fwd, outs, _ = self.forward(residuals)
        lines, results, read = self.backward(residuals)
        cts = [self.context.name(c) for c in self.cts]
        return fwd, outs, lines, results, cts, [self.context.name(n) for n in read
                                                 if n not in self.cts]

    def torch(self):
        fwd, outs, lines, results, cts, saved = self.with_residuals()
        body = guarded(lines, results, lambda ks: " or ".join(
            f"ctx.needs_input_grad[{k}]" for k in ks))
        unset = [r for r in dict.fromkeys(results)  # computed only when asked for
                 if r is not None and any(line.startswith(f"    {r} = ") for line in body)]
        save = [f"        ctx.save_for_backward({', '.join(saved)})"] if saved else []
        load_saved = [f"        {', '.join(saved)}{',' if len(saved) == 1 else ''} = "
                      f"ctx.saved_tensors"] if saved else []
        code = [
            f"class {self.camel}(torch.autograd.Function):",
            f'    """{self.outputs_doc()} from {self.params}; backward: the VJP einvjp '
            f'derived."""', "",
            "    @staticmethod",
            f"    def forward(ctx, {self.params}):",
            *_indent(fwd, 8), *save,
            f"        return {', '.join(outs)}", "",
            "    @staticmethod",
            f"    def backward(ctx, {', '.join(cts)}):",
            *self.derivative_comments("        "), *load_saved,
            *([f"        {' = '.join(unset)} = None"] if unset else []),
            *_indent(body, 8), f"        return {_tuple([r or 'None' for r in results])}",
            "", "",
            f"def {self.name}({self.params}):",
            f'    """{self.outputs_doc()}, differentiable by torch autograd through '
            f'{self.camel}."""',
            f"    return {self.camel}.apply({self.params})"]
        what = (f"{self.name}(...) computes the program; {self.camel} is its "
                f"torch.autograd.Function.")
        return self.header("torch", what) + "\n\n\n" + "\n".join(code) + "\n"

    def jax(self):
        fwd, outs2, lines, results, cts, saved = self.with_residuals()
        missing = [a for r, a in zip(results, self.args) if r is None]
        saved += [a for a in missing if a not in saved]
        grads = [r if r is not None else f"jnp.zeros_like({a})"
                 for r, a in zip(results, self.args)]
        unpack = f"{cts[0]}" if len(cts) == 1 else "cotangents"
        n = self.name
        code = [
            "@jax.custom_vjp",
            f"def {n}({self.params}):",
            f'    """{self.outputs_doc()}, computed from {self.params}; its VJP is the '
            f'one einvjp derived."""',
            f"    return _{n}_fwd({self.params})[0]", "", "",
            f"def _{n}_fwd({self.params}):",
            *_indent(fwd), f"    return {outs2[0] if len(outs2) == 1 else _tuple(outs2, always=True)}, "
            f"{_tuple(saved, always=True)}", "",
            "",
            f"def _{n}_bwd(residuals, {unpack}):",
            *self.derivative_comments("    "),
            *([f"    {', '.join(cts)} = cotangents"] if len(cts) > 1 else []),
            *([f"    {', '.join(saved)}{',' if len(saved) == 1 else ''} = residuals"]
              if saved else []),
            *_indent(lines), f"    return {_tuple(grads, always=True)}", "", "",
            f"{n}.defvjp(_{n}_fwd, _{n}_bwd)"]
        self.context.helpers.need("import jax")
        what = f"{n}(...) computes the program, differentiable by jax.grad and jax.vjp."
        return self.header("jax", what) + "\n\n\n" + "\n".join(code) + "\n"


def _indent(lines, by=4):
    return [" " * by + line for line in lines]


def _tuple(items, always=False):
    """Source of a tuple of `items` (one item as it is, unless `always`)."""
    if len(items) == 1:
        return f"({items[0]},)" if always else items[0]
    return f"({', '.join(items)})" if always or not items else ", ".join(items)
