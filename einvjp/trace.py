"""Traced Python programs.

- `TracedProgram`: a Python function traced once per input signature into the
  IR the text frontend builds.  Inside it: `einvjp.einsum`, the einvjp
  functions, `+ - * / ** @`, the comparisons (1.0 where true, 0.0 where false)
  with NumPy broadcasting, `.sum/.mean/.max/.min(axis)`, `.T`, `.transpose`;
  an array closed over is a constant.  Control flow on traced values, NumPy or
  torch functions and indexing are errors naming the einvjp function to use.

>>> import numpy as np, einvjp
>>> @einvjp.compile
... def loss(x, w):
...     return (einvjp.tanh(einvjp.einsum("bi,io->bo", x, w)) ** 2).sum()
>>> x, w = np.ones((2, 3)), np.full((3, 4), 0.1)
>>> float(loss(x, w))  # doctest: +ELLIPSIS
0.6...
>>> sorted(loss.vjp(1.0, x, w))
['w', 'x']
"""

from __future__ import annotations

import inspect

from .errors import ProgramError
from .graph import Graph
from .ir import Input
from .program import Program
from .tracer import Tracer, as_tracer, tracing


class TracedProgram(Program):
    """A Python function traced once per input signature into the IR."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", "program")
        self.__doc__ = fn.__doc__
        params = inspect.signature(fn).parameters.values()
        self.input_names = [p.name for p in params
                            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self._graphs = {}

    def __repr__(self):
        return f"<einvjp traced program {self.__name__}({', '.join(self.input_names)})>"


    def _symbolic_graph(self):
        if not self._graphs:
            raise ProgramError("call the program (or give inputs) before printing a "
                               "derivative: a traced program has shapes only once traced")
        return self._last

    def _bind(self, sig):
        inputs = {n: Input(n, () if s is None else s) for n, s in sig}
        with tracing(inputs) as ctx:
            out = self.fn(*[Tracer.of(inputs[n]) for n in self.input_names])
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            # In the context: a returned array (closed over) is a constant of it.
            nodes = [as_tracer(o).node() for o in outs]
        base = "y"  # apart from the inputs' names (loss(x, y) returns no `y`)
        while any(n == base or (n.startswith(base) and n[len(base):].isdigit())
                  for n in self.input_names):
            base += "_"
        names = [base] if len(outs) == 1 else [f"{base}{k}" for k in range(len(outs))]
        for node, name in zip(nodes, names):
            if node.name is None and not isinstance(node, Input):
                node.name = name
        g = Graph({**inputs, **{c.name: c for c in ctx.constants}}, nodes, names)
        g.constants = dict(ctx.constants)
        return g
