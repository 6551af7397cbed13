"""How each array library writes the operations of a lowered program, for
emitted source (`einvjp.emit`).

* `Dialect` (`DIALECTS[name]`): each operation of `einvjp.ops` as source in
  the library's terms — method calls where NumPy, torch and jax.numpy agree
  (`x.reshape(4, 1)`, `x.sum(1)`), operators (`a @ b`, `x * 0.5`), the
  library's fused calls (`torch.addcmul`) — and the kernels written as
  operators (`1 / x`, `x ** 2`); where its functions are looked up;
* `operand`, `receiver`, `binary`: parentheses where Python needs them.

>>> binary("a + b", "*", "c"), binary("a * b", "-", "c - d"), binary("a * b", "@", "c")
('(a + b) * c', 'a * b - (c - d)', '(a * b) @ c')
>>> TorchDialect().op("add_product", ["acc", "a", "b", "1"], (), None, None)
'torch.addcmul(acc, a, b)'
"""

from __future__ import annotations

import ast
import importlib

from .emit_helpers import EmitError

_PRECEDENCE = {ast.Add: 2, ast.Sub: 2, ast.Mult: 3, ast.MatMult: 3, ast.Div: 3, ast.Pow: 5}


def operand(text, op, left=True):
    """`text` as an operand of the operator `op` ("+", "*", …), in
    parentheses where Python's precedence needs them."""
    kind = type(ast.parse(f"a {op} b", mode="eval").body.op)
    mine = _PRECEDENCE[kind]
    node = ast.parse(text, mode="eval").body
    if isinstance(node, ast.BinOp):
        theirs = _PRECEDENCE[type(node.op)]
        mixed = ast.MatMult in (kind, type(node.op)) and kind is not type(node.op)
        fits = theirs > mine or theirs == mine and left and op != "**" and not mixed
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

    spaces = ()  # (source text, module, the import binding it)

    def namespaces(self):
        """Where the library's public functions are looked up (imported now)."""
        return [(text, importlib.import_module(module), statement)
                for text, module, statement in self.spaces]

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
        if name == "swap_last":
            return self.swap.format(receiver(a[0]))
        if name == "broadcast_to":
            return self.broadcast(a[0], params[0])
        raise EmitError(f"no {self.name} source for the operation {name!r}")

    def like(self, x):
        """The keywords making an array like `x`."""
        return f", dtype={x}.dtype"

    def broadcast(self, x, shape):
        return f"{self.lib}.broadcast_to({x}, {shape!r})"

    def local(self, name, a, params):
        """Source of an operation of `einvjp.ops.LOCAL` (not a kernel)."""
        like = a[-1] if len(a) > 1 or name == "ones" else "None"
        dtype = "" if like == "None" else self.like(receiver(like))
        if name == "ones":  # (shape[, value])
            value = params[1] if len(params) > 1 else 1
            if value == 1:
                return f"{self.lib}.ones({params[0]!r}{dtype})"
            number = repr(value) if value == value and abs(value) != float("inf") \
                else f'float("{value}")'
            return f"{self.lib}.full({params[0]!r}, {number}{dtype})"
        if name == "as_array":
            return f"{self.lib}.{self.asarray}({a[0]}{dtype})"
        raise EmitError(f"no {self.name} source for the operation {name!r}")


class NumpyDialect(Dialect):
    name, module, lib, permute, asarray = "numpy", "import numpy as np", "np", "transpose", \
        "asarray"
    swap = "{}.swapaxes(-1, -2)"

    spaces = (("np", "numpy", module), ("np.linalg", "numpy.linalg", module),
              ("np.lib.stride_tricks", "numpy.lib.stride_tricks", module))



class JaxDialect(NumpyDialect):
    name, module, lib = "jax", "import jax.numpy as jnp", "jnp"

    spaces = (("jnp", "jax.numpy", module), ("jnp.linalg", "jax.numpy.linalg", module),
              ("jax.scipy.special", "jax.scipy.special", "import jax.scipy.special"),
              ("jax.nn", "jax.nn", "import jax"), ("jax.lax", "jax.lax", "import jax"))


class TorchDialect(Dialect):
    name, module, lib, permute, asarray = "torch", "import torch", "torch", "permute", \
        "as_tensor"
    swap = "{}.mT"

    spaces = (("torch", "torch", module), ("torch.special", "torch.special", module),
              ("torch.linalg", "torch.linalg", module),
              ("F", "torch.nn.functional", "import torch.nn.functional as F"))

    def namespaces(self):
        aten = importlib.import_module("torch").ops.aten  # its ops are attributes, made on demand
        return super().namespaces() + [("torch.ops.aten", aten, self.module)]

    def op(self, name, a, params, helpers, B):
        if name in ("add_product", "add_matmul"):  # torch's fused calls: addcmul, addmm
            c = "" if a[3] == "1" else f", {'value' if name == 'add_product' else 'alpha'}={a[3]}"
            call = "addcmul" if name == "add_product" else "addmm"
            return f"torch.{call}({a[0]}, {a[1]}, {a[2]}{c})"
        return super().op(name, a, params, helpers, B)

    def broadcast(self, x, shape):
        return f"{receiver(x)}.expand({_dims(shape) or '()'})"

    def like(self, x):
        return f", dtype={x}.dtype, device={x}.device"


DIALECTS = {"numpy": NumpyDialect, "torch": TorchDialect, "jax": JaxDialect}

RESERVED = {"np", "jnp", "jax", "torch", "F", "math", "ctx", "self", "residuals",
             "cotangents", "needs"}
