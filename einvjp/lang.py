"""Index-notation text as a program (the language: docs/language.md).

- `TextProgram`: the statements of a text, bound to input shapes on each call
- `_Binder`: statements + shapes -> a `Graph` (labels, sizes, scopes, calls)

>>> import einvjp
>>> prog = einvjp.compile('''
...     y[i,j] = x[i,k] a[k,j]
... ''')
>>> prog.input_names
['x', 'a']
>>> print(prog.derivative("x"))
∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]
"""

from __future__ import annotations

from .coef import Dim
from .equation import checked_sizes
from .errors import ProgramError
from .ge import Index
from .graph import Graph
from .ir import Expr, Input, add, axes, const, contract, materialize, product, total
from .program import Program
from .scopes import Scopes
from .syntax import (Call, Cmp, Delta, Name, Neg, Num, One, Pow, Prod, Ref, Sum, Where,
                     call_args, children, occurrences, parse_program, walk)
from . import prims


_PLACEHOLDER = 4  # the size every label gets when a program is printed without inputs


class TextProgram(Program):
    """A program written in index notation (see the module docstring)."""

    def __init__(self, text, sizes=None):
        super().__init__()
        self.text = text
        self.sizes = checked_sizes(sizes)  # label -> size, for labels no tensor carries
        self.statements, returns = parse_program(text)
        self.label_names = set()
        for st in self.statements:
            self.label_names.update(lab for lab, _ in st.labels)
            self.label_names.update(occurrences(st.expr))
        defined = {}
        self.input_names = []
        for st in self.statements:
            self._find_inputs(st, st.expr, defined)
            if st.name in defined:
                raise Where(st.line, st.text).error(
                    f"{st.name!r} is assigned twice (first on line {defined[st.name].line})",
                    st.col)
            defined[st.name] = st
        for st in self.statements:
            if st.name in self.input_names:
                raise Where(st.line, st.text).error(
                    f"{st.name!r} is used before it is assigned", st.col)
        self.defined = defined
        for st in self.statements:
            for e in walk(st.expr):
                if isinstance(e, Call) and e.name not in prims.FUNCTIONS:
                    raise Where(st.line, st.text).error(f"unknown function {e.name!r}", e.col)
        if returns is None:
            self.returns = [self.statements[-1].name]
        else:
            for name, col, where in returns:
                if name not in defined:
                    raise where.error(f"undefined name {name!r} in return", col)
            self.returns = [name for name, _, _ in returns]
        self._graphs = {}

    def is_size(self, name):
        return name.isupper() and name.lower() in self.label_names

    def _find_inputs(self, st, e, defined):
        if isinstance(e, (Ref, Name)) and e.name not in defined and not (
                isinstance(e, Name) and (self.is_size(e.name) or e.name in self.label_names)):
            if e.name not in self.input_names:
                self.input_names.append(e.name)
        for c in children(e):
            self._find_inputs(st, c, defined)

    def __repr__(self):
        return f"TextProgram(inputs={self.input_names}, outputs={self.returns})"

    def __str__(self):
        lines = [st.text.strip() for st in self.statements]
        if self.returns != [self.statements[-1].name]:
            lines.append("return " + ", ".join(self.returns))
        return "\n".join(lines)

    def _bind(self, sig):
        return _Binder(self, dict(sig)).graph()

    def _symbolic_graph(self):
        g = self._graphs.get("symbolic")
        if g is None:
            g = self._graphs["symbolic"] = _Binder(self, None).graph()
        return g


class _Binder:
    """Elaborates the statements at given input shapes (None: placeholder
    sizes, for printing) into a Graph."""

    def __init__(self, prog, shapes):
        self.prog, self.shapes = prog, shapes
        self.inputs, self.tensors, self.sizes = {}, {}, {}

    def graph(self):
        for st in self.prog.statements:
            self.where = Where(st.line, st.text)
            node = self.statement(st)
            if node.name is None and not isinstance(node, Input):
                node.name = st.name
            self.tensors[st.name] = node
        outputs = [self.tensors[n] for n in self.prog.returns]
        return Graph(self.inputs, outputs, self.prog.returns)

    def error(self, message, col):
        return self.where.error(message, col)

    # sizes ----------------------------------------------------------------

    def _tensor(self, name, labels, col):
        """The node a reference names, and its shape."""
        if name in self.tensors:
            node = self.tensors[name]
            if len(labels) != node.ndim:
                raise self.error(f"{name!r} has {node.ndim} label(s), not {len(labels)}", col)
            return node
        if name in self.prog.defined:
            raise self.error(f"undefined name {name!r}: it is assigned on line "
                             f"{self.prog.defined[name].line}, after this use", col)
        node = self.inputs.get(name)
        if node is None:
            if self.shapes is None:
                shape = tuple(Dim(_PLACEHOLDER, lab.upper()) for lab, _ in labels)
            else:
                shape = self.shapes[name]
                if shape is None:
                    if labels:
                        raise self.error(f"{name!r} is indexed but a scalar was given", col)
                    shape = ()
            node = self.inputs[name] = Input(name, shape)
        if len(labels) != node.ndim:
            raise self.error(f"input {name!r} has {node.ndim} dimension(s) "
                             f"{tuple(int(s) for s in node.shape)} but is indexed with "
                             f"{len(labels)} label(s)", col)
        return node

    def _sizes(self, e, env):
        if isinstance(e, Ref):
            node = self._tensor(e.name, e.labels, e.col)
            for (lab, col), size in zip(e.labels, node.shape):
                self._bind(lab, int(size), col, env, e.name)
        elif isinstance(e, Name) and not self.prog.is_size(e.name) \
                and e.name not in self.prog.label_names:
            node = self._tensor(e.name, [], e.col)
        for c in children(e):
            self._sizes(c, env)

    def _bind(self, lab, size, col, env, what):
        if lab in env and env[lab][0] != size:
            raise self.error(f"label {lab!r} has size {size} here ({what}) but "
                             f"{env[lab][0]} earlier in the statement ({env[lab][1]})", col)
        env.setdefault(lab, (size, what))
        self.sizes.setdefault(lab, size)

    def statement(self, st):
        env = {}
        self._sizes(st.expr, env)
        deltas = [e for e in walk(st.expr) if isinstance(e, Delta)]
        for _ in deltas:  # a delta gives each of its labels the other's size
            for e in deltas:
                (a, _ca), (b, _cb) = e.labels
                if a in env and b not in env:
                    env[b] = (env[a][0], f"delta[{a},{b}]")
                elif b in env and a not in env:
                    env[a] = (env[b][0], f"delta[{a},{b}]")
        for lab in list(self.prog.sizes):
            if lab not in env and (lab in occurrences(st.expr) or
                                   lab in [name for name, _ in st.labels]):
                env[lab] = (int(self.prog.sizes[lab]), "sizes=")
        for e in walk(st.expr):
            if isinstance(e, (One, Delta)):
                for lab, col in e.labels:
                    if lab not in env:
                        if lab in self.sizes:
                            env[lab] = (self.sizes[lab], "earlier statements")
                        else:
                            raise self.error(f"label {lab!r} has no size: no tensor in the "
                                             f"statement carries it", col)
            if isinstance(e, Delta):
                (a, ca), (b, cb) = e.labels
                if env[a][0] != env[b][0]:
                    raise self.error(f"delta[{a},{b}] joins sizes {env[a][0]} and "
                                     f"{env[b][0]}", e.col)
        for lab, col in st.labels:
            if lab not in env:
                raise self.error(f"label {lab!r} on the left is carried by no term on the "
                                 f"right, so it cannot be broadcast (its size is unknown)", col)
        if len({lab for lab, _ in st.labels}) != len(st.labels):
            raise self.error("a label repeats on the left; write the diagonal with delta",
                             st.labels[0][1])
        self.index = {lab: Index(lab, Dim(size, lab.upper())) for lab, (size, _) in env.items()}
        lhs = [self.index[lab] for lab, _ in st.labels]
        free = {lab for lab, _ in st.labels}
        terms = st.expr.terms if isinstance(st.expr, Sum) and not st.expr.paren \
            else [(1, st.expr)]
        built = []
        for sign, t in terms:
            self.scopes = Scopes(self, t, free)
            built.append((self.term(t), sign))
        if not any(ren for (_, ren), _ in built):
            return materialize(total(*[(e, s) for (e, _), s in built], out=None), lhs) \
                if len(built) > 1 else materialize(_times(built[0][0][0], built[0][1]), lhs)
        out = axes(Input("", [l.size for l in lhs]), [l.name for l in lhs])
        nodes = [(materialize(e, [ren.get(l, l) for l in lhs]), out, s) for (e, ren), s in built]
        return add(nodes, out)

    # building ----------------------------------------------------------------

    def label(self, name, alias):
        return self.index[alias.get(name, name)]

    def term(self, t):
        """A top-level term, its dummy labels summed: (Expr, renames of left
        labels made by deltas)."""
        if isinstance(t, Prod):
            return self.scope(t, {}, top=True)
        x = self.build(t, {})
        summed = {self.index[n] for n in self.scopes.summed.get(id(t), ())}
        return product(x, out=[l for l in x.labels if l not in summed]), {}

    def scope(self, e, alias, top=False):
        """A product: its factors multiplied, the labels whose scope it is
        summed.  Returns (Expr, renames of left labels made by deltas)."""
        here = set(self.scopes.summed.get(id(e), ()))
        renames, kept = {}, []
        alias = dict(alias)
        for _, f in e.factors:
            if isinstance(f, Delta):
                (a, ca), (b, cb) = f.labels
                a, b = alias.get(a, a), alias.get(b, b)
                if a == b:
                    continue
                if b not in here and a in here:
                    a, b = b, a
                if b not in here:
                    if not (top and a in self.scopes.free and b in self.scopes.free):
                        kept.append(f)  # both labels live on outside: an identity factor
                        continue
                    renames[self.index[b]] = self.index[a]
                for k, v in list(alias.items()):
                    if v == b:
                        alias[k] = a
                alias[b] = a
        exprs, coeff, ones = [], 1, []
        for op, f in e.factors:
            if isinstance(f, Delta) and not any(f is k for k in kept):
                continue
            if isinstance(f, One):
                ones += [alias.get(l, l) for l, _ in f.labels]
                continue
            x = self.build(f, alias)
            if op == "/":
                if x.constant is not None:
                    coeff = x.constant.inverse() * coeff
                    continue
                x = prims.reciprocal(x)
            exprs.append(x)
        present = list(dict.fromkeys([l for x in exprs for l in x.labels] +
                                     [self.index[n] for n in ones]))
        summed = {self.index[alias.get(n, n)] for n in here if alias.get(n, n) in here}
        out = [l for l in present if l not in summed]
        return product(*exprs, out=out, coeff=coeff,
                       summed=[self.index[n] for n in ones]), renames

    def build(self, e, alias):
        if isinstance(e, Num):
            return const(e.value)
        if isinstance(e, Name):
            if e.name in self.tensors:
                return Expr(self.tensors[e.name], ())
            if self.prog.is_size(e.name):
                lab = e.name.lower()
                size = self.index[lab].size if lab in self.index else Dim(self.sizes[lab],
                                                                          e.name)
                return const(size)
            if e.name in self.prog.label_names:
                raise self.error(f"label {e.name!r} used as a value", e.col)
            return Expr(self._tensor(e.name, [], e.col), ())
        if isinstance(e, Ref):
            node = self._tensor(e.name, e.labels, e.col)
            labs = [self.label(lab, alias) for lab, _ in e.labels]
            if len(set(labs)) < len(labs):
                d = list(dict.fromkeys(labs))
                return Expr(contract([(node, labs)], d), d)
            return Expr(node, labs)
        if isinstance(e, One):
            labs = list(dict.fromkeys(self.label(lab, alias) for lab, _ in e.labels))
            return product(out=labs)
        if isinstance(e, Delta):
            # Not a factor of a product: nothing to rename, so the identity
            # (a diagonal embedding of 1, never an array of its own).
            a, b = (self.label(lab, alias) for lab, _ in e.labels)
            if a is b:
                return product(out=[a])
            d = Index(a.name, a.size)
            return Expr(contract([], [d, d]), [a, b])
        if isinstance(e, Neg):
            return -self.build(e.arg, alias)
        if isinstance(e, Sum):
            return total(*[(self.build(t, alias), s) for s, t in e.terms])
        if isinstance(e, Prod):
            return self.scope(e, alias)[0]
        if isinstance(e, Pow):
            base = self.build(e.base, alias)
            p = self.constant(e.exp)
            if p is None:
                p = self.build(e.exp, alias)
            return prims.pow(base, p)
        if isinstance(e, Cmp):
            fn = {">": prims.gt, ">=": prims.ge, "<": prims.lt, "<=": prims.le,
                  "==": prims.eq, "!=": prims.ne}[e.op]
            return fn(self.build(e.a, alias), self.build(e.b, alias))
        if isinstance(e, Call):
            return self.call(e, alias)
        raise self.error(f"cannot build {e!r}", getattr(e, "col", 0))  # pragma: no cover

    def constant(self, e):
        """The value of a constant exponent, or None."""
        if isinstance(e, Num):
            return e.value
        if isinstance(e, Neg):
            v = self.constant(e.arg)
            return None if v is None else -v
        if isinstance(e, Name) and self.prog.is_size(e.name):
            return self.sizes.get(e.name.lower())
        return None

    def call(self, e, alias):
        try:
            return self._call(e, alias)
        except ProgramError as err:
            if err.equation is not None:
                raise
            raise self.error(err.message, e.col) from err

    def _call(self, e, alias):
        fn = prims.FUNCTIONS[e.name]
        args, label_args = call_args(e, fn, self.prog.label_names)
        nargs = 2 if fn.kind == "solve" else (fn.nargs if fn.kind == "elementwise" else 1)
        if fn.name == "logsumexp" and len(args) == 2:  # weighted: log Σ w exp(x)
            nargs = 2
        if len(args) != nargs:
            raise self.error(f"{e.name}() takes {nargs} argument(s)"
                             f"{' and labels' if fn.kind != 'elementwise' else ''}, "
                             f"{len(args)} given", e.col)
        if fn.kind == "elementwise":
            return fn(*[self.build(a, alias) for a in args])
        # The call's own labels (those it binds or keeps) are never renamed
        # inside it, nor is a label renamed into one of them: a delta outside
        # the call renames the call's result instead (a diagonal where two of
        # its labels become one).
        own = set(self.scopes.labels.get(id(e), ()))
        inside = {k: v for k, v in alias.items() if k not in own and v not in own}
        after = {self.index[k]: self.index[v] for k, v in alias.items()
                 if k not in inside and k not in self.scopes.binds.get(id(e), ())}
        idx = [self.index[n] for n in self.scopes.labels.get(id(e), ())]
        built = [self.build(a, inside) for a in args]
        return _renamed(self._structured(e, fn, idx, built), after)

    def _structured(self, e, fn, idx, built):
        if fn.kind == "reduce":
            return fn.build(*built[:1], over=idx, **({"weight": built[1]} if built[1:] else {}))
        if fn.kind == "normalize":
            if not idx:
                raise self.error(f"{e.name}() needs a label to normalise over; its argument "
                                 f"has none", e.col)
            return fn.build(built[0], over=idx)
        if len(idx) != 2 or idx[0].size != idx[1].size:
            have = ", ".join(f"{l.name} ({int(l.size)})" for l in idx) or "none"
            raise self.error(f"{e.name}() acts on two labels of equal size (rows, columns); "
                             f"it found {have} (name them after the argument, as in "
                             f"{e.name}(a[i,j] b[j,k], i, k))", e.col)
        if fn.kind == "solve":
            if idx[0] not in built[1].labels:
                raise self.error(f"solve(a, b): b must carry the row label {idx[0].name!r} "
                                 f"of a (a's labels are rows {idx[0].name!r}, columns "
                                 f"{idx[1].name!r})", e.args[1].col if hasattr(
                                     e.args[1], "col") else e.col)
            return fn.build(built[0], built[1], pair=idx)
        return fn.build(built[0], pair=idx)


def _renamed(x, renames):
    """`x` with its labels renamed; the diagonal where two become one."""
    labs = [renames.get(lab, lab) for lab in x.labels]
    if len(set(labs)) == len(labs):
        return Expr(x.node, labs)
    d = list(dict.fromkeys(labs))
    return Expr(contract([(x.node, labs)], d), d)


def _times(e, sign):
    return e if sign == 1 else -e
