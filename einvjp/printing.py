"""Printing programs and derivatives in index notation and LaTeX.

- `render_program`: a program's statements (and the sizes no tensor carries), read
  back by `compile`; `program_statements`: each statement by its node
- `Derivative`: a derived VJP printed as a program
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from .errors import ProgramError
from .formats import Latex, Text
from .ir import (Add, Coef, Const, Contract, Input, Map, distinct, is_map, is_relabel, topo,
                 uses)

_FREE_LETTERS = "pqrstuvwmnoabcdefgz"
_DUMMY_LETTERS = "hijklmnoabcdefgrstuvwxyz"


class Derivative:
    """A derived VJP, printable as a program: `str()` in index notation
    (∂l/∂x[p,q] = … with p, q, … for the free indices) and `.latex()`.
    Forward tensors appear by their names; a backward tensor read more than
    once gets its own statement."""

    def __init__(self, graph, name, node, forward):
        self.graph, self.name, self.node = graph, name, node
        self.forward = set(topo(list(forward)))
        # forward tensors by the names their printed program gives them (an
        # output by its output name, a name clashing with an input's changed)
        _, names, _, self.forward_taken = _program_names(list(forward), graph.output_names)
        self.forward_names = {n: v for n, v in names.items() if n.name or n in forward}

    def __str__(self):
        return self._render(Text())[0]

    @property
    def sizes(self):
        """The sizes of the labels that no tensor carries in their statement
        (`∂l/∂x[p] = ∂l/∂y 1[p]`), for `compile(..., sizes=d.sizes)`."""
        return self._render(Text())[1]

    def __repr__(self):
        return f"Derivative(∂l/∂{self.name})"

    def latex(self):
        return " \\\\\n".join(self._render(Latex())[0].split("\n"))

    def _render(self, fmt):
        x = self.graph.inputs[self.name]
        known = set(self.graph.inputs) | {n.name for n in self.forward if n.name} | \
            self.forward_taken
        reserved = known | {n.lower() for n in known if n.isupper()}
        free = [c for c in _FREE_LETTERS if c not in reserved]
        if self.node is None:
            letters = free[:x.ndim]
            return (f"{fmt.grad(self.name, letters)} = 0",
                    {c: int(s) for c, s in zip(letters, x.shape)})
        count = {}
        for n in topo([self.node]):
            for a in getattr(n, "args", ()):
                count[a] = count.get(a, 0) + 1
        stmts = [n for n in topo([self.node]) if n is self.node or (
            count.get(n, 0) > 1 and n not in self.forward and isinstance(n, (Contract, Add))
            and not is_relabel(n))]
        names, taken = dict(self.forward_names), set()
        for k, n in enumerate(stmts):
            if n is self.node:
                names[n] = ("grad", self.name)
            elif n.grad_of and ("grad", n.grad_of) not in taken:
                names[n] = ("grad", n.grad_of)
            else:  # a temporary: named apart from the forward program's names
                name = f"g{k}"
                while name in known:
                    name += "_"
                names[n] = ("leaf", name)
            taken.add(names[n])
        lines, sizes = [], {}
        for n in stmts:
            kind, nm = names[n]
            letters = free[:n.ndim] if n.ndim <= len(free) else \
                [f"p{k}" for k in range(n.ndim)]
            letters, text = _statement(fmt, names, self.forward, n, letters, reserved, sizes)
            lhs = fmt.grad(nm, letters) if kind == "grad" else fmt.leaf(nm, letters)
            lines.append(f"{lhs} = {text}")
        return "\n".join(lines), sizes


def _program_names(outputs, output_names):
    """(statements, {node: ("leaf", name)}, outputs that are an input or a
    constant, names taken) of a printed program: an output by its output
    name, a named node by its name, a node used twice as t{k}; a name an
    input (or an earlier statement) has gets an underscore."""
    count = uses(outputs)
    roots = dict(zip(outputs, output_names))
    nodes = topo(outputs)
    stmts = [n for n in nodes if not isinstance(n, (Input, Const)) and (
        n in roots or n.name or (count.get(n, 0) > 1 and not is_relabel(n)))]
    taken = {n.name for n in nodes if isinstance(n, Input)}
    names = {}
    for k, n in enumerate(stmts):
        name = roots.get(n) or n.name or f"t{k}"
        while name in taken:
            name = f"{name}_"
        taken.add(name)
        names[n] = ("leaf", name)
    plain = [o for o in outputs if isinstance(o, (Input, Const))]  # y = x, y = 2
    for o in plain:
        name = roots[o]
        while name in taken:
            name = f"{name}_"
        taken.add(name)
    return stmts, names, plain, taken


def render_program(fmt, outputs, output_names):
    """The statements of a program: text that `compile` reads back to the
    same function (dummy letters unique in each top-level term, a summed
    label kept to its product by a one-tensor where the scope rule needs it,
    named sizes only where their label is in the statement)."""
    stmts, names, plain, taken = _program_names(outputs, output_names)
    roots = dict(zip(outputs, output_names))
    reserved = taken | {n.lower() for n in taken if n.isupper()}
    special = taken & {"delta", "δ"}
    if special:
        raise ProgramError(f"an input named {special.pop()!r} cannot be printed in index "
                           f"notation, where delta[i,j] is the Kronecker delta; rename it")
    lines, sizes, printed = [], {}, {}
    for n in stmts + plain:
        letters = [l.name for l in n.out] if not isinstance(n, (Input, Const)) else []
        if len(letters) != n.ndim or len(set(letters)) < len(letters) or not all(
                len(c) == 1 and c.isalpha() and c not in reserved for c in letters):
            letters = [c for c in _FREE_LETTERS if c not in reserved][:n.ndim]
        letters, text = _statement(fmt, names, set(), n, letters, reserved, sizes)
        name = names[n][1] if n in names else roots[n]
        lines.append(f"{fmt.leaf(name, letters)} = {text}")
        printed[n] = name
    order = stmts + plain
    if len(outputs) > 1 or (order and order[-1] is not outputs[0]):
        lines.append("return " + ", ".join(printed[o] for o in outputs))
    return "\n".join(lines), sizes


def program_statements(outputs, output_names):
    """{node: its statement} of the program `render_program` prints."""
    stmts, _, plain, _ = _program_names(outputs, output_names)
    lines = render_program(Text(), outputs, output_names)[0].split("\n")
    return dict(zip(stmts + plain, lines))


def _statement(fmt, names, forward, node, letters, reserved=(), sizes=None):
    """(letters, right-hand side) of `node[letters] = …`: a named size (H)
    only where a label of its letter and size is in the statement, else its
    value; a label no tensor carries there gets its size into `sizes`, one
    size a letter across the program (a clashing letter is changed)."""
    sizes = {} if sizes is None else sizes
    numeric, avoid = set(), set()
    while True:
        r = _Renderer(fmt, names, forward, node, letters, set(reserved) | avoid, numeric)
        text = r.expr(node, letters, top=True)[0]
        wrong = {name for name, size in r.dims.items() if r.sizes.get(name.lower()) != size}
        loose = {c: s for c, s in r.sizes.items() if c not in r.carried}
        clash = {c for c, s in loose.items() if sizes.get(c, s) != s}
        if clash:
            avoid |= clash
            spare = (c for c in _FREE_LETTERS + _DUMMY_LETTERS
                     if c not in reserved and c not in avoid and c not in letters)
            letters = [next(spare) if c in clash else c for c in letters]
        elif wrong:
            numeric |= wrong
        else:
            sizes.update(loose)
            return letters, text


_MATRIX = ("inv", "det", "logdet", "solve")


class _Renderer:
    def __init__(self, fmt, names, forward, top, letters, reserved=(), numeric=()):
        self.fmt, self.names, self.forward, self.top = fmt, names, forward, top
        self.used = set(letters)
        self.sizes = dict(zip(letters, (int(s) for s in top.shape)))  # one size a letter
        self.reserved, self.numeric = set(reserved), set(numeric)
        self.dims = {}  # named sizes printed: name -> size
        self.carried = set()  # letters some printed tensor carries
        self.stack = []  # the products being printed (ids), outermost first
        self.occ = []  # (letter, stack) of each label printed
        self.lone = set()  # ids pushed for what printed as a single factor
        self.ids = itertools.count()

    def letter(self, lab):
        size = int(lab.size)

        def free(c):
            return c not in self.used and c not in self.reserved and \
                self.sizes.get(c, size) == size
        found = next((c for c in [lab.name] + list(_DUMMY_LETTERS)
                      if len(c) == 1 and c.isalpha() and free(c)), None)
        k = 0
        while found is None:
            found = f"{lab.name.rstrip('0123456789') or 'i'}{k}"
            found, k = (found if free(found) else None), k + 1
        self.used.add(found)
        self.sizes[found] = size
        return found

    def _seen(self, letters):
        self.occ += [(c, tuple(self.stack)) for c in letters]

    def _enclosed(self, letter, mark, depth):
        """Whether every occurrence of `letter` printed since `mark` lies in
        one product below the current `depth`."""
        inner = [tuple(p for p in stack[depth:] if p not in self.lone)
                 for c, stack in self.occ[mark:] if c == letter]
        return bool(inner) and all(s and s[0] == inner[0][0] for s in inner)

    def coef(self, c):
        """A coefficient with the sizes that cannot be named folded in."""
        if any(name in self.numeric for (name, _), _ in c.dims):
            num = c.num
            for (name, size), p in c.dims:
                if name in self.numeric:
                    num = num * (Fraction(size) ** p if isinstance(num, Fraction) else size ** p)
            c = Coef(num, tuple(d for d in c.dims if d[0][0] not in self.numeric))
        for (name, size), _ in c.dims:
            self.dims[name] = size
        return c

    def leaf_name(self, node):
        if node in self.names and node is not self.top:
            return self.names[node]
        if isinstance(node, Input) or (node in self.forward and node.name):
            return ("leaf", node.name)
        return None

    def expr(self, node, letters, top=False):
        """(text, precedence): 3 atom, 2 product, 1 sum; letters name its axes.
        `top`: the node is the statement's right-hand side.  A label of the
        node that its text does not show (a broadcast that printing folded
        away) is kept by a one-tensor, except at the top, where the
        statement broadcasts along its left-hand labels."""
        mark, depth = len(self.occ), len(self.stack)
        text, prec = self._expr(node, letters, top)
        seen = {c for c, _ in self.occ[mark:]}
        missing = [c for c in dict.fromkeys(letters) if c not in seen]
        if not missing or top:  # a statement broadcasts its terms along its labels
            return text, prec
        pid = next(self.ids)  # a product around what was printed
        self.occ[mark:] = [(c, s[:depth] + (pid,) + s[depth:]) for c, s in self.occ[mark:]]
        self.stack.append(pid)
        self._seen(missing)
        self.stack.pop()
        body = text if prec >= 2 else self.fmt.paren(text)
        return self.fmt.product([body, self.fmt.one(",".join(missing))]), 2

    def _expr(self, node, letters, top):
        fmt = self.fmt
        named = self.leaf_name(node)
        if named is not None:
            kind, nm = named
            self._seen(letters)
            self.carried.update(letters)
            return (fmt.grad(nm, letters) if kind == "grad" else fmt.leaf(nm, letters)), 3
        if isinstance(node, Const):
            neg, mag = self.coef(node.value).sign_and_magnitude()
            return self.coef(node.value).text(), (1 if neg else 3)
        if isinstance(node, Contract):
            return self.contraction(node, letters, top=top)
        if not isinstance(node, (Add, Map)) and len(set(letters)) < len(letters):
            return self.diagonal(node, letters)
        if isinstance(node, Add):
            ren = dict(zip(node.out, letters))
            parts, used = [], set(self.used)
            for a, t, c in zip(node.args, node.terms, node.coeffs):
                if top:
                    self.used = set(used)  # dummy letters are local to a top-level term
                neg, text = self.term(a, [ren[l] for l in t], c, top)
                parts.append(("-" if neg else "+", text))
            s = " ".join(f"{sign} {text}" for sign, text in parts)
            s = s[2:] if s.startswith("+ ") else "-" + s[1:] if s.startswith("- ") else s
            return s, 1
        ren, bound = dict(zip(node.out, letters)), set()
        for t in node.terms:
            for lab in t:
                if lab not in ren:  # reduced by a structured primitive: its own letter
                    ren[lab] = self.letter(lab)
                    bound.add(ren[lab])
        product = isinstance(node, Map) and node.prim.name in ("wexp", "reciprocal")
        if product:
            self.stack.append(pid := next(self.ids))
        mark = len(self.occ)
        args = [self.expr(a, [ren[l] for l in t]) for a, t in zip(node.args, node.terms)]
        if product:
            self.stack.pop()
        self.used -= bound
        self.occ[mark:] = [o for o in self.occ[mark:] if o[0] not in bound]
        name = node.prim.name
        if isinstance(node, Map):
            if name in ("pow", "tpow"):  # `^` groups to the right: (w^3)^2 keeps its parentheses
                p = node.params[0] if name == "pow" else None
                (b, pb), (e, pe) = args[0], args[1] if p is None else (
                    str(int(p) if float(p).is_integer() else p), 3)
                if pb < 3 or is_map(node.args[0], "pow") or is_map(node.args[0], "tpow"):
                    b = fmt.paren(b)
                return fmt.power(b, e if pe == 3 else fmt.paren(e)), 3
            if name == "wexp":  # w·exp(d), zero where w is
                (d, _), (w, pw) = args
                return fmt.product([w if pw >= 2 else fmt.paren(w), fmt.call("exp", [d])]), 2
            if name == "reciprocal":  # 1 / (a b): a product divides as one
                return fmt.fraction([], (), [args[0][0] if args[0][1] >= 3 else
                                         fmt.paren(args[0][0])]), 2
            return fmt.call(name, [a for a, _ in args]), 3
        extra = []
        if name in ("logsumexp", "max", "min", "softmax", "log_softmax"):
            extra = [ren[l] for l in node.params[0]]
        elif name in _MATRIX:
            pair = [ren[l] for l in node.params[0]]
            first = node.args[0]
            if self.leaf_name(first) is None or [ren[l] for l in node.terms[0][-2:]] != pair:
                extra = pair  # the pair named unless it is the last two labels of a leaf
        return fmt.call(name, [a for a, _ in args] + extra), 3

    def diagonal(self, node, letters):
        """A structured primitive's result seen on a diagonal (two of its axes
        given one letter): printed with a letter per axis and a delta joining
        them, `delta[i,j] softmax(x[i,j], j)`, since `softmax(x[i,i], i)`
        would act on the diagonal of its argument instead."""
        distinct_letters, deltas, joined = [], [], []
        for lab, c in zip(node.out, letters):
            if c in distinct_letters:
                d = self.letter(lab)
                deltas.append(self.fmt.delta(c, d))
                joined += [c, d]
                c = d
            distinct_letters.append(c)
        self.stack.append(next(self.ids))
        text, prec = self._expr(node, distinct_letters, False)
        self._seen(joined)
        self.stack.pop()
        return self.fmt.product(deltas + [text if prec >= 2 else self.fmt.paren(text)]), 2

    def term(self, node, letters, coeff, top=False):
        """(negative?, text) of coeff · node[letters] as a term of a sum."""
        if isinstance(node, Const):
            c = self.coef(coeff * node.value)
            return c.sign_and_magnitude()[0], c.sign_and_magnitude()[1].text()
        neg, mag = self.coef(coeff).sign_and_magnitude()
        if isinstance(node, Contract) and self.leaf_name(node) is None:
            text, _ = self.contraction(node, letters, mag, top=top)
            if text.startswith("-"):
                return (not neg), text[1:].lstrip()
            return neg, text
        self.stack.append(pid := next(self.ids))
        text, prec = self.expr(node, letters)
        self.stack.pop()
        if mag.is_one:  # a sum as a term: parenthesised when subtracted
            self.lone.add(pid)
            return neg, text if prec >= 2 or (prec == 1 and not neg) else self.fmt.paren(text)
        num, den = mag.parts()
        body = text if prec >= 2 else self.fmt.paren(text)
        return neg, (self.fmt.fraction([num, body] if num else [body], den.split()) if den
                     else self.fmt.product([num, body]))

    def contraction(self, node, letters, extra=None, top=False):
        fmt = self.fmt
        coeff = self.coef(node.coeff * extra if extra is not None else node.coeff)
        ren, deltas, here = {}, [], []  # here: the letters printed at this level
        for lab, letter in zip(node.out, letters):
            if lab in ren:
                deltas.append(fmt.delta(ren[lab], letter))
                here += [ren[lab], letter]
            else:
                ren[lab] = letter
        carried = {l for t in node.terms for l in t} | {l for l in node.out
                                                         if list(node.out).count(l) > 1}
        ones = [fmt.one(ren[l]) for l in distinct(node.out) if l not in carried]
        here += [ren[l] for l in distinct(node.out) if l not in carried]
        summed = {}
        for t in node.terms:
            for lab in t:
                if lab not in ren:
                    ren[lab] = summed[lab] = self.letter(lab)
        num, den, over, under = [], [], set(), set()
        self.stack.append(pid := next(self.ids))
        depth, mark = len(self.stack), len(self.occ)
        for a, t in zip(node.args, node.terms):
            ls = [ren[l] for l in t]
            if is_map(a, "reciprocal") and self.leaf_name(a) is None:
                inner = dict(zip(a.out, ls))
                text, prec = self.expr(a.args[0], [inner[l] for l in a.terms[0]])
                den.append(text if prec >= 3 else fmt.paren(text))
                under.update(ls)
            else:
                text, prec = self.expr(a, ls)
                num.append(text if prec >= 3 else fmt.paren(text))
                over.update(ls)
        num, den = _powers(num, fmt), _powers(den, fmt)
        neg, mag = coeff.sign_and_magnitude()
        cnum, cden = mag.parts()
        head = ([cnum] if cnum else [])
        dens = cden.split()  # "2 J": two factors of the denominator
        if not (under - over) & set(summed.values()):
            dens, den = dens + den, []  # one group: it sums no label of its own
        # A summed label is summed over the smallest product holding all its
        # occurrences: one whose occurrences all lie in one product inside a
        # factor (or in a lone factor, below the top) is held here by a
        # one-tensor.
        keep = [s for s in summed.values() if self._enclosed(s, mark, depth)]
        if not keep and summed and not top and \
                len(head) + len(num) + len(deltas) + len(ones) + len(dens) + len(den) < 2:
            keep = [next(iter(summed.values()))]
        if keep:
            ones.insert(0, fmt.one(",".join(keep)))
        self._seen(here + keep)
        self.stack.pop()
        factors = head + num + deltas + ones
        if len(factors) + len(dens) + len(den) < 2:
            self.lone.add(pid)
        text = fmt.fraction(factors, dens, den) if dens or den else \
            (fmt.product(factors) or "1")
        return ("-" + text if neg else text), (1 if neg else 2)


def _powers(factors, fmt):
    out, counts = [], {}
    for f in factors:
        counts[f] = counts.get(f, 0) + 1
    for f in dict.fromkeys(factors):
        out.append(f if counts[f] == 1 else fmt.power(f, counts[f]))
    return out
