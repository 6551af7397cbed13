"""Index-notation text (DESIGN §5): one statement a line, as the seed writes.

    m[b]    = x[b,h] / H
    mu[b,h] = x[b,h] - m[b]
    v[b]    = mu[b,h]^2 / H
    s[b]    = sqrt(v[b] + eps)
    y[b,h]  = mu[b,h] / s[b] * gamma[h] + beta[h]

Rules:
  * `+ - * / ^` (or `**`), parentheses, function calls; writing two factors
    side by side multiplies them (`s[i] t[i]`, `2 x[i]`).
  * A label on the right that is not on the left is summed over the smallest
    product that holds all its occurrences — a product of two or more
    factors (a parenthesised one, a denominator, a function's argument) or a
    whole additive term of the statement.  So `x[b,h] / H` sums h over the
    term, `exp(x[i]) / (1[j] exp(x[j]))` sums j in the denominator only, and
    `sqrt(x[i] x[i])` is a norm.  A single factor is never a scope:
    `exp(x[j])` is elementwise and j is summed outside it.
  * A term missing a label of the left broadcasts along it.
  * `delta[i,j]` (or `δ[i,j]`) and `1[i]` are the Kronecker delta and the
    one-tensor; neither is materialised (a delta renames, a one-tensor
    broadcasts or, summed, counts).
  * An unbound upper-case name that is an index's name upper-cased (`H` for
    h) is that index's size; other unbound names are inputs (tensors if
    indexed, scalars otherwise).
  * Reductions take the labels they reduce: `logsumexp(x[b,j], j)`,
    `max(x[b,j], j)`; without them they reduce every label of the argument
    not needed outside.  `softmax(x[b,j], j)` normalises over j (default: the
    argument's last label).  Matrix functions (`inv`, `det`, `logdet`,
    `solve(a, b)`) act on the argument's last two labels (rows, columns).
  * The last statement is the output unless `return a, b` names others.
  * `compile(text, sizes={"i": 2})` sizes a label that no tensor carries
    (`y[i] = 1[i] x`).

>>> prog = compile_text('''
...     y[i,j] = x[i,k] a[k,j]
... ''')
>>> prog.input_names
['x', 'a']
>>> print(prog.derivative("x"))
∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .equation import checked_sizes
from .errors import ProgramError
from .ge import Index
from .ir import (Dim, Expr, Input, add, axes, const, contract, materialize, product, total)
from . import prims
from .program import Graph, Program

# --- Tokens and syntax tree ---------------------------------------------------

_OPS = ["**", ">=", "<=", "==", "!=", "[", "]", "(", ")", ",", "=", "+", "-", "*", "/",
        "^", "<", ">", "·", "×", "−"]


@dataclass
class Tok:
    kind: str   # "name", "num", "op", "end"
    text: str
    col: int


def _tokens(line, where):
    toks, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch in " \t":
            i += 1
        elif ch == "#":
            break
        elif ch.isdigit() or (ch == "." and line[i + 1:i + 2].isdigit()):
            j = i
            while j < len(line) and (line[j].isdigit() or line[j] == "."):
                j += 1
            if j < len(line) and line[j] in "eE" and (line[j + 1:j + 2].isdigit() or (
                    line[j + 1:j + 2] in ("+", "-") and line[j + 2:j + 3].isdigit())):
                j += 2
                while j < len(line) and line[j].isdigit():
                    j += 1
            toks.append(Tok("num", line[i:j], i))
            i = j
        elif ch.isalpha() or ch == "_":
            j = i
            while j < len(line) and (line[j].isalnum() or line[j] == "_"):
                j += 1
            toks.append(Tok("name", line[i:j], i))
            i = j
        else:
            op = next((o for o in _OPS if line.startswith(o, i)), None)
            if op is None:
                raise where.error(f"unexpected character {ch!r}", i)
            toks.append(Tok("op", {"·": "*", "×": "*", "−": "-", "**": "^"}.get(op, op), i))
            i += len(op)
    toks.append(Tok("end", "", len(line.rstrip())))
    return toks


@dataclass
class Num:
    value: object
    col: int


@dataclass
class Name:
    name: str
    col: int


@dataclass
class Ref:
    name: str
    labels: list          # [(label, col)]
    col: int


@dataclass
class One:
    labels: list
    col: int


@dataclass
class Delta:
    labels: list
    col: int


@dataclass
class Call:
    name: str
    args: list
    col: int


@dataclass
class Neg:
    arg: object
    col: int


@dataclass
class Sum:
    terms: list           # [(sign, expr)]
    col: int


@dataclass
class Prod:
    factors: list         # [(op, expr)] with op "*" or "/"
    col: int


@dataclass
class Pow:
    base: object
    exp: object
    col: int


@dataclass
class Cmp:
    op: str
    a: object
    b: object
    col: int


@dataclass
class Statement:
    name: str
    labels: list          # [(label, col)]
    expr: object
    line: int
    text: str
    col: int = 0


@dataclass
class Where:
    """A line of the source, for errors with a caret."""
    line: int
    text: str

    def error(self, message, col):
        return ProgramError(f"line {self.line}, column {col + 1}: {message}",
                            equation=self.text, position=col)


class _Parser:
    def __init__(self, toks, where):
        self.toks, self.i, self.where = toks, 0, where

    @property
    def tok(self):
        return self.toks[self.i]

    def take(self, text=None, kind=None):
        t = self.tok
        if (text is not None and t.text != text) or (kind is not None and t.kind != kind):
            want = repr(text) if text else f"a {kind}"
            got = repr(t.text) if t.kind != "end" else "the end of the line"
            raise self.where.error(f"expected {want}, found {got}", t.col)
        self.i += 1
        return t

    def at(self, text):
        return self.tok.kind == "op" and self.tok.text == text

    def labels(self):
        self.take("[")
        labs = []
        if not self.at("]"):
            while True:
                t = self.take(kind="name")
                labs.append((t.text, t.col))
                if self.at("]"):
                    break
                self.take(",")
        self.take("]")
        return labs

    def expr(self):
        a = self.sum()
        if self.tok.kind == "op" and self.tok.text in ("<", ">", "<=", ">=", "==", "!="):
            op = self.take()
            a = Cmp(op.text, a, self.sum(), op.col)
        return a

    def sum(self):
        col = self.tok.col
        terms = [(1, self.term())]
        while self.at("+") or self.at("-"):
            sign = 1 if self.take().text == "+" else -1
            terms.append((sign, self.term()))
        return terms[0][1] if len(terms) == 1 else Sum(terms, col)

    def _starts_atom(self):
        t = self.tok
        return t.kind in ("name", "num") or (t.kind == "op" and t.text == "(")

    def term(self):
        col = self.tok.col
        factors = [("*", self.unary())]
        while True:
            if self.at("*") or self.at("/"):
                factors.append((self.take().text, self.unary()))
            elif self._starts_atom():
                factors.append(("*", self.unary()))
            else:
                break
        return factors[0][1] if len(factors) == 1 else Prod(factors, col)

    def unary(self):
        if self.at("-"):
            col = self.take().col
            return Neg(self.unary(), col)
        if self.at("+"):
            self.take()
            return self.unary()
        base = self.atom()
        if self.at("^"):
            col = self.take().col
            return Pow(base, self.unary(), col)
        return base

    def atom(self):
        t = self.tok
        if t.kind == "num":
            self.take()
            if self.at("[") and t.text == "1":
                return One(self.labels(), t.col)
            text = t.text
            value = Fraction(text) if all(c.isdigit() or c == "." for c in text) else float(text)
            return Num(value, t.col)
        if t.kind == "name":
            self.take()
            if self.at("["):
                labs = self.labels()
                if t.text in ("delta", "δ"):
                    if len(labs) != 2:
                        raise self.where.error("delta takes two labels", t.col)
                    return Delta(labs, t.col)
                return Ref(t.text, labs, t.col)
            if self.at("("):
                self.take("(")
                args = []
                if not self.at(")"):
                    while True:
                        args.append(self.expr())
                        if self.at(")"):
                            break
                        self.take(",")
                self.take(")")
                return Call(t.text, args, t.col)
            return Name(t.text, t.col)
        if self.at("("):
            self.take("(")
            e = self.expr()
            self.take(")")
            return e
        got = repr(t.text) if t.kind != "end" else "the end of the line"
        raise self.where.error(f"expected a value, found {got}", t.col)


def parse_program(text):
    """Statements and the returned names of a program's text."""
    statements, returns = [], None
    for n, line in enumerate(text.splitlines(), start=1):
        where = Where(n, line)
        toks = _tokens(line, where)
        if toks[0].kind == "end":
            continue
        if returns is not None:
            raise where.error("nothing may follow 'return'", toks[0].col)
        p = _Parser(toks, where)
        if toks[0].text == "return" and toks[0].kind == "name":
            p.take()
            returns = []
            while True:
                t = p.take(kind="name")
                returns.append((t.text, t.col, where))
                if p.tok.kind == "end":
                    break
                p.take(",")
            continue
        name = p.take(kind="name")
        labels = p.labels() if p.at("[") else []
        p.take("=")
        expr = p.expr()
        if p.tok.kind != "end":
            raise where.error(f"unexpected {p.tok.text!r}", p.tok.col)
        statements.append(Statement(name.text, labels, expr, n, line, name.col))
    if not statements:
        raise ProgramError("the program has no statement")
    return statements, returns


# --- Label occurrences -----------------------------------------------------------


def _children(e):
    if isinstance(e, Sum):
        return [t for _, t in e.terms]
    if isinstance(e, Prod):
        return [f for _, f in e.factors]
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Neg):
        return [e.arg]
    if isinstance(e, Pow):
        return [e.base, e.exp]
    if isinstance(e, Cmp):
        return [e.a, e.b]
    return []


def occurrences(e, out=None):
    """Label names in order of first appearance, with repeats (a list)."""
    out = [] if out is None else out
    if isinstance(e, (Ref, One, Delta)):
        out += [lab for lab, _ in e.labels]
    for c in _children(e):
        occurrences(c, out)
    return out


def labels_of(e):
    return list(dict.fromkeys(occurrences(e)))


# --- Binding: text + input shapes -> graph ------------------------------------------

_PLACEHOLDER = 4  # the size every label gets when a program is printed without inputs


class TextProgram(Program):
    """A program written in index notation (see the module docstring)."""

    def __init__(self, text, sizes=None):
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
            for e in _walk(st.expr):
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
        for c in _children(e):
            self._find_inputs(st, c, defined)

    def __repr__(self):
        return f"TextProgram(inputs={self.input_names}, outputs={self.returns})"

    def __str__(self):
        lines = [st.text.strip() for st in self.statements]
        if self.returns != [self.statements[-1].name]:
            lines.append("return " + ", ".join(self.returns))
        return "\n".join(lines)

    def _graph_for(self, values):
        sig = tuple((n, None if isinstance(values[n], (int, float, complex))
                     else tuple(int(d) for d in values[n].shape)) for n in self.input_names)
        g = self._graphs.get(sig)
        if g is None:
            g = self._graphs[sig] = _Binder(self, dict(sig)).graph()
        return g

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
        for c in _children(e):
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
        deltas = [e for e in _walk(st.expr) if isinstance(e, Delta)]
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
        for e in _walk(st.expr):
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
        keep = {lab for lab, _ in st.labels}
        terms = st.expr.terms if isinstance(st.expr, Sum) else [(1, st.expr)]
        built = [(self.scope(t, keep, {}, top=True), sign) for sign, t in terms]
        if not any(ren for (_, ren), _ in built):
            return materialize(total(*[(e, s) for (e, _), s in built], out=None), lhs) \
                if len(built) > 1 else materialize(_times(built[0][0][0], built[0][1]), lhs)
        out = axes(Input("", [l.size for l in lhs]), [l.name for l in lhs])
        nodes = [(materialize(e, [ren.get(l, l) for l in lhs]), out, s) for (e, ren), s in built]
        return add(nodes, out)

    # building ----------------------------------------------------------------

    def label(self, name, alias):
        return self.index[alias.get(name, name)]

    def scope(self, e, keep, alias, top=False):
        """Build a product scope (or a top-level term): sum the labels not in
        `keep`.  Returns (Expr, renames of left labels made by deltas)."""
        factors = e.factors if isinstance(e, Prod) else [("*", e)]
        renames = {}
        alias = dict(alias)
        for _, f in factors:
            if isinstance(f, Delta):
                (a, ca), (b, cb) = f.labels
                a, b = alias.get(a, a), alias.get(b, b)
                if a == b:
                    continue
                if b in keep and a not in keep:
                    a, b = b, a
                if b in keep:
                    if not top:
                        raise self.error("a delta between two free labels may only appear "
                                         "in a top-level term", f.col)
                    renames[self.index[b]] = self.index[a]
                for k, v in list(alias.items()):
                    if v == b:
                        alias[k] = a
                alias[b] = a
        occ = [[alias.get(l, l) for l in labels_of(f)] for _, f in factors]
        exprs, coeff, ones = [], 1, []
        for k, (op, f) in enumerate(factors):
            if isinstance(f, Delta):
                continue
            if isinstance(f, One):
                ones += [alias.get(l, l) for l, _ in f.labels]
                continue
            others = {l for j, o in enumerate(occ) if j != k for l in o}
            x = self.build(f, keep | others, alias)
            if op == "/":
                if x.constant is not None:
                    coeff = x.constant.inverse() * coeff
                    continue
                x = prims.reciprocal(x)
            exprs.append(x)
        present = list(dict.fromkeys([l for x in exprs for l in x.labels] +
                                     [self.index[n] for n in ones]))
        keep_idx = {self.index[alias.get(n, n)] for n in keep}
        out = [l for l in present if l in keep_idx]
        return product(*exprs, out=out, coeff=coeff,
                       summed=[self.index[n] for n in ones]), renames

    def build(self, e, keep, alias):
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
            raise self.error("delta must be a factor of a product", e.col)
        if isinstance(e, Neg):
            return -self.build(e.arg, keep, alias)
        if isinstance(e, Sum):
            return total(*[(self.build_term(t, keep, alias), s) for s, t in e.terms])
        if isinstance(e, Prod):
            return self.build_term(e, keep, alias)
        if isinstance(e, Pow):
            base = self.build(e.base, keep, alias)
            p = self.constant(e.exp)
            if p is None:
                p = self.build(e.exp, keep | set(labels_of(e.base)), alias)
            return prims.pow(base, p)
        if isinstance(e, Cmp):
            fn = {">": prims.gt, ">=": prims.ge, "<": prims.lt, "<=": prims.le,
                  "==": prims.eq, "!=": prims.ne}[e.op]
            a = self.build(e.a, keep | set(labels_of(e.b)), alias)
            return fn(a, self.build(e.b, keep | set(labels_of(e.a)), alias))
        if isinstance(e, Call):
            return self.call(e, keep, alias)
        raise self.error(f"cannot build {e!r}", getattr(e, "col", 0))  # pragma: no cover

    def build_term(self, e, keep, alias):
        if isinstance(e, Prod):
            x, renames = self.scope(e, keep, alias)
            return x
        return self.build(e, keep, alias)

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

    def call(self, e, keep, alias):
        fn = prims.FUNCTIONS.get(e.name)
        if fn is None:
            raise self.error(f"unknown function {e.name!r}", e.col)
        args = list(e.args)
        label_args = []
        while args and isinstance(args[-1], Name) and args[-1].name in self.prog.label_names \
                and fn.kind != "elementwise":
            label_args.insert(0, args.pop())
        nargs = 2 if fn.kind == "solve" else (fn.nargs if fn.kind == "elementwise" else 1)
        if len(args) != nargs:
            raise self.error(f"{e.name}() takes {nargs} argument(s)"
                             f"{' and labels' if fn.kind != 'elementwise' else ''}, "
                             f"{len(args)} given", e.col)
        arg_labels = labels_of(args[0])
        for lab in label_args:
            if lab.name not in arg_labels:
                raise self.error(f"label {lab.name!r} is not a label of {e.name}'s argument",
                                 lab.col)
        names = [alias.get(l.name, l.name) for l in label_args]
        if fn.kind == "elementwise":
            built = []
            for k, a in enumerate(args):
                others = {l for j, b in enumerate(args) if j != k for l in labels_of(b)}
                built.append(self.build(a, keep | others, alias))
            return fn(*built)
        if fn.kind == "reduce":
            over = names or [alias.get(l, l) for l in arg_labels if l not in keep]
            x = self.build(args[0], keep | set(over), alias)
            return fn.build(x, over=[self.index[n] for n in over])
        if fn.kind == "normalize":
            over = names or [alias.get(arg_labels[-1], arg_labels[-1])] if arg_labels else []
            x = self.build(args[0], keep | set(over), alias)
            return fn.build(x, over=[self.index[n] for n in over] or None)
        once = {l for l in arg_labels if occurrences(args[0]).count(l) == 1}
        a = self.build(args[0], keep | once | set(names), alias)
        pair = [self.index[n] for n in names] if names else None
        if pair is None and len(a.labels) >= 2:
            order = [self.index[alias.get(l, l)] for l in arg_labels]
            present = [l for l in order if l in set(a.labels)]
            pair = present[-2:]
        if fn.kind == "solve":
            b = self.build(args[1], keep | set(arg_labels), alias)
            return fn.build(a, b, pair=pair)
        return fn.build(a, pair=pair)


def _walk(e):
    yield e
    for c in _children(e):
        yield from _walk(c)


def _times(e, sign):
    return e if sign == 1 else -e


def compile_text(text, **options):
    return TextProgram(text, **options)
