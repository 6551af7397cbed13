"""Generated programs as expression trees with explicit labels (a test extra).

- `Tree`: a node of a generated expression; `tree_text`: its index-notation text
- `_bind`, `_scopes`: the scope rule decided on the tree, independently of einvjp
- `Emit`: a statement written as traced einvjp Python or as a reference over a
  namespace `L` (jax.numpy or torch) with explicit einsums, sums and broadcasts
"""

from __future__ import annotations

import re

import numpy as np
from hypothesis import strategies as st

# --- random programs: text, traced Python and an independent reference ---
#
# A generated program is an expression tree with explicit labels.  Its
# meaning is decided here, from the scope rule of the index-notation text
# (a dummy label is summed over the smallest product of two or more factors
# that holds all its occurrences in its top-level term, else over the term;
# reductions, det and logdet bind their labels; softmax, inv and solve keep
# theirs), and written out three ways: as index-notation text, as a traced
# Python function over einvjp.*, and as a reference over a namespace `L`
# (jax.numpy or torch) with explicit einsums, sums and broadcasts.

LABELS = "ijkbcm"
_FRESH = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
UNARY = ["exp", "tanh", "sigmoid", "softplus", "relu", "abs"]
POSITIVE_OF = ["log", "sqrt"]


def once_in(draw, n):
    """True about once in n draws.  (Hypothesis draws the lowest value of a
    range far more often than the others, so the rare branch is the highest.)"""
    return draw(st.integers(0, n - 1)) == n - 1


class Tree:
    """A node of a generated expression: `kind` and its fields."""

    def __init__(self, kind, **fields):
        self.kind = kind
        self.__dict__.update(fields)

    def children(self):
        k = self.kind
        if k == "prod":
            return [f for _, f in self.factors]
        if k == "sum":
            return [t for _, t in self.terms]
        if k in ("neg", "reduce", "norm", "mat"):
            return [self.arg]
        if k == "call":
            return list(self.args)
        if k == "pow":
            return [self.base] + ([self.exp] if isinstance(self.exp, Tree) else [])
        if k == "solve":
            return [self.a, self.b]
        return []

    def copy(self):
        n = Tree(self.kind, **{k: v for k, v in self.__dict__.items() if k != "kind"})
        if self.kind == "prod":
            n.factors = [(op, f.copy()) for op, f in self.factors]
        elif self.kind == "sum":
            n.terms = [(s, t.copy()) for s, t in self.terms]
        elif self.kind in ("neg", "reduce", "norm", "mat"):
            n.arg = self.arg.copy()
        elif self.kind == "call":
            n.args = [a.copy() for a in self.args]
        elif self.kind == "pow":
            n.base = self.base.copy()
            n.exp = self.exp.copy() if isinstance(self.exp, Tree) else self.exp
        elif self.kind == "solve":
            n.a, n.b = self.a.copy(), self.b.copy()
        return n


def tree_text(n, top=False):
    """Index-notation text of a node."""
    k = n.kind
    if k == "ref":
        return f"{n.name}[{','.join(n.labels)}]" if n.labels else n.name
    if k == "num":
        return n.text
    if k == "size":
        return n.label.upper()
    if k == "one":
        return f"1[{','.join(n.labels)}]"
    if k == "delta":
        return f"delta[{n.labels[0]},{n.labels[1]}]"
    if k == "prod":
        out = []
        for idx, (op, f) in enumerate(n.factors):
            s = tree_text(f)
            if f.kind in ("prod", "sum", "neg") or (f.kind == "num" and "/" in s):
                s = f"({s})"
            if idx == 0:
                out.append(s)
            else:  # `q (…)` would be a call of q
                sep = " * " if s.startswith("(") and re.search(r"[^\W\d]\w*$", out[-1]) \
                    else n.sep
                out.append((" / " if op == "/" else sep) + s)
        return "".join(out)
    if k == "sum":
        s = ""
        for idx, (sign, t) in enumerate(n.terms):
            body = tree_text(t)
            if t.kind in ("sum", "neg"):
                body = f"({body})"
            s += (("- " if sign < 0 else "") if idx == 0 else (" - " if sign < 0 else " + ")) + body
        return s
    if k == "neg":
        body = tree_text(n.arg)
        return "-" + (f"({body})" if n.arg.kind in ("sum", "prod", "neg") else body)
    if k == "call":
        return f"{n.fn}({', '.join(tree_text(a) for a in n.args)})"
    if k == "pow":
        b = tree_text(n.base)
        if n.base.kind in ("sum", "prod", "neg", "pow") or (n.base.kind == "num"):
            b = f"({b})"
        if isinstance(n.exp, Tree):
            e = tree_text(n.exp)
            if n.exp.kind not in ("ref", "call"):
                e = f"({e})"
        else:
            e = n.exp
        return f"{b}^{e}"
    if k == "reduce":
        labs = "".join(f", {l}" for l in n.labels) if n.named else ""
        return f"{n.fn}({tree_text(n.arg)}{labs})"
    if k == "norm":
        return f"{n.fn}({tree_text(n.arg)}, {n.label})"
    if k == "mat":
        labs = f", {n.pair[0]}, {n.pair[1]}" if n.named else ""
        return f"{n.fn}({tree_text(n.arg)}{labs})"
    if k == "solve":
        return f"solve({tree_text(n.a)}, {tree_text(n.b)})"
    raise AssertionError(k)


# scope analysis ------------------------------------------------------------

def _rename(n, ren):
    """Rename labels (in place) below n."""
    for attr in ("labels",):
        if hasattr(n, attr) and n.kind in ("ref", "one", "delta", "reduce"):
            n.labels = [ren.get(l, l) for l in n.labels]
    if n.kind == "norm":
        n.label = ren.get(n.label, n.label)
    if n.kind in ("mat", "solve"):
        n.pair = tuple(ren.get(l, l) for l in n.pair)
    for c in n.children():
        _rename(c, ren)


def _bind(n, sizes, fresh):
    """Give the labels a binder consumes fresh names (in place): reductions
    and det/logdet their labels, solve its row label."""
    for c in n.children():
        _bind(c, sizes, fresh)
    if n.kind == "reduce" or (n.kind == "mat" and n.fn in ("det", "logdet")) or \
            n.kind == "solve":
        bound = list(n.labels) if n.kind == "reduce" else \
            list(n.pair) if n.kind == "mat" else [n.pair[0]]
        ren = {}
        for l in bound:
            f = next(fresh)
            sizes[f] = sizes[l]
            ren[l] = f
        _rename(n, ren)


def _occurrences(n, path, occ, bound):
    path = path + [n]
    if n.kind in ("ref", "one", "delta"):
        for l in n.labels:
            occ.setdefault(l, []).append(path)
        return
    kept = []
    if n.kind == "reduce":
        bound.update(n.labels)
    elif n.kind == "mat":
        if n.fn == "inv":
            kept = list(n.pair)
        else:
            bound.update(n.pair)
    elif n.kind == "norm":
        kept = [n.label]
    elif n.kind == "solve":
        bound.add(n.pair[0])
        kept = [n.pair[1]]
    for l in kept:
        occ.setdefault(l, []).append(path)
    sub = {}
    for c in n.children():
        _occurrences(c, path, sub, bound)
    for l, ps in sub.items():
        if l not in kept:
            occ.setdefault(l, []).extend(ps)


def _scopes(term, free):
    """{id(node): [labels summed there]} and the bound labels of a term."""
    occ, bound = {}, set()
    _occurrences(term, [], occ, bound)
    where = {}
    for lab, paths in occ.items():
        if lab in free or lab in bound:
            continue
        common = paths[0]
        for p in paths[1:]:
            m = 0
            while m < len(common) and m < len(p) and common[m] is p[m]:
                m += 1
            common = common[:m]
        scope = term
        for node in reversed(common):
            if node.kind == "prod":
                scope = node
                break
        where.setdefault(id(scope), []).append(lab)
    return where, bound


# the three renderings of one meaning ----------------------------------------

class Unfit(ValueError):
    """A drawn tree whose labels do not have the intended shape (redrawn)."""


class Emit:
    """Python source of a statement's meaning, as traced einvjp code
    (`traced=True`) or as the reference over `L`."""

    def __init__(self, sizes, traced, draw_bit):
        self.sizes, self.traced, self.bit = sizes, traced, draw_bit
        self.letters = {}
        self.fresh = (f"_{k}" for k in range(10**6))

    def letter(self, lab):
        if lab not in self.letters:
            pool = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
            self.letters[lab] = pool[len(self.letters)]
        return self.letters[lab]

    def sub(self, labs):
        return "".join(self.letter(l) for l in labs)

    def sizes_arg(self, labs):
        return "{" + ", ".join(f"{self.letter(l)!r}: {self.sizes[l]}" for l in labs) + "}"

    def align(self, code, src, dst):
        """code (labels src) as an array broadcastable against labels dst."""
        if not set(src) <= set(dst):
            raise Unfit(f"labels {src} do not fit in {dst}")
        if not src:
            return code
        perm = [l for l in dst if l in src]
        if perm != list(src):
            if self.traced:
                if len(src) == 2 and self.bit():
                    code = f"({code}).T"
                else:
                    code = f"einvjp.einsum('{self.sub(src)}->{self.sub(perm)}', {code})"
            else:
                code = f"L.einsum('{self.sub(src)}->{self.sub(perm)}', {code})"
        if perm == list(dst) or (self.traced and perm == list(dst[len(dst) - len(perm):])):
            return code
        if self.traced:
            missing = [l for l in dst if l not in src]
            return (f"einvjp.einsum('{self.sub(perm)}->{self.sub(dst)}', {code}, "
                    f"sizes={self.sizes_arg(missing)})")
        shape = tuple(self.sizes[l] if l in src else 1 for l in dst)
        return f"L.reshape({code}, {shape})"

    def full(self, code, src, dst):
        """code (labels src, a subset of dst) as an array of labels dst."""
        if set(src) == set(dst):
            return self.align(code, src, dst)
        if self.traced:
            perm = [l for l in dst if l in src]
            code = self.align(code, src, perm)
            missing = [l for l in dst if l not in src]
            return (f"einvjp.einsum('{self.sub(perm)}->{self.sub(dst)}', {code}, "
                    f"sizes={self.sizes_arg(missing)})")
        shape = tuple(self.sizes[l] for l in dst)
        return f"L.broadcast({self.align(code, src, dst)}, {shape})"

    def reduce_code(self, fn, code, labs, over):
        axes = tuple(labs.index(l) for l in over)
        ax = axes[0] if len(axes) == 1 else axes
        if not self.traced:
            return f"L.{fn}({code}, {axes})"
        if fn in ("sum", "mean", "max") and self.bit():
            return f"({code}).{fn}({ax})"
        return f"einvjp.{fn}({code}, axis={ax})"

    def scalar_sum(self, code, labs, over):
        if not over:
            return code, labs
        rest = [l for l in labs if l not in over]
        return self.reduce_code("sum", code, labs, over), rest

    # --- nodes ---

    def expr(self, n, scopes):
        k = n.kind
        L = "einvjp" if self.traced else "L"
        if k == "ref":
            labs = list(n.labels)
            if len(set(labs)) < len(labs):
                d = list(dict.fromkeys(labs))
                return f"{L}.einsum('{self.sub(labs)}->{self.sub(d)}', {n.name})", d
            return n.name, labs
        if k == "num":
            return repr(float(n.value)), []
        if k == "size":
            return str(self.sizes[n.label]), []
        if k == "prod":
            return self.prod(n, scopes)
        if k == "sum":
            parts = [(s, self.expr(t, scopes)) for s, t in n.terms]
            labs = list(dict.fromkeys(l for _, (_, ls) in parts for l in ls))
            code = ""
            for idx, (s, (c, ls)) in enumerate(parts):
                c = self.align(c, ls, labs)
                code += ("-" if s < 0 else "") if idx == 0 else (" - " if s < 0 else " + ")
                code += f"({c})"
            return f"({code})", labs
        if k == "neg":
            c, labs = self.expr(n.arg, scopes)
            return f"(-({c}))", labs
        if k == "call":
            parts = [self.expr(a, scopes) for a in n.args]
            labs = list(dict.fromkeys(l for _, ls in parts for l in ls))
            args = [self.align(c, ls, labs) for c, ls in parts]
            return f"{L}.{n.fn}({', '.join(args)})", labs
        if k == "pow":
            b, bl = self.expr(n.base, scopes)
            if isinstance(n.exp, Tree):
                e, el = self.expr(n.exp, scopes)
                labs = list(dict.fromkeys(bl + el))
                return f"(({self.align(b, bl, labs)}) ** ({self.align(e, el, labs)}))", labs
            return f"(({b}) ** {float(n.value)!r})", bl
        if k == "reduce":
            c, labs = self.expr(n.arg, scopes)
            out = [l for l in labs if l not in n.labels]
            if not n.labels:
                return c, labs
            return self.reduce_code(n.fn, c, labs, n.labels), out
        if k == "norm":
            c, labs = self.expr(n.arg, scopes)
            ax = labs.index(n.label)
            if self.traced:
                return f"einvjp.{n.fn}({c}, axis={ax})", labs
            return f"L.{n.fn}({c}, {ax})", labs
        if k == "mat":
            c, labs = self.expr(n.arg, scopes)
            r, col = n.pair
            if set(labs) != {r, col}:
                raise Unfit(f"{n.fn} of labels {labs}")
            c = self.align(c, labs, [r, col])
            return f"{L}.{n.fn}({c})", ([] if n.fn != "inv" else [r, col])
        if k == "solve":
            a, al = self.expr(n.a, scopes)
            b, bl = self.expr(n.b, scopes)
            r, col = n.pair
            if set(al) != {r, col} or r not in bl or col in bl:
                raise Unfit(f"solve of labels {al}, {bl}")
            rest = [l for l in bl if l != r]
            a = self.align(a, al, [r, col])
            b = self.align(b, bl, [r] + rest)
            if len(rest) > 1:  # a traced solve takes b as (rows,) or (rows, columns)
                raise Unfit(f"solve of b with labels {bl}")
            if self.traced:
                return f"{L}.solve({a}, {b})", [col] + rest
            # one right-hand side a column: b as (rows, the rest flattened), then back
            n_rest = int(np.prod([self.sizes[l] for l in rest]))
            shape = tuple(int(self.sizes[l]) for l in [col] + rest)
            solved = f"{L}.solve({a}, {L}.reshape({b}, ({int(self.sizes[r])}, {n_rest})))"
            return f"{L}.reshape({solved}, {shape})", [col] + rest
        raise AssertionError(k)

    def prod(self, n, scopes):
        summed = scopes.get(id(n), [])
        coeff, ops, labs_all, extra = 1.0, [], [], []
        for op, f in n.factors:
            if f.kind in ("num", "size"):
                v = float(f.value) if f.kind == "num" else float(self.sizes[f.label])
                coeff = coeff / v if op == "/" else coeff * v
                continue
            if f.kind in ("one", "delta"):
                extra.append(f)
                labs_all += f.labels
                continue
            c, ls = self.expr(f, scopes)
            ops.append((op, c, ls))
            labs_all += ls
        labs = list(dict.fromkeys(labs_all))
        out = [l for l in labs if l not in summed]
        if self.traced:
            return self.traced_prod(ops, extra, labs, out, summed, coeff)
        terms, args = [], []
        for op, c, ls in ops:
            terms.append(self.sub(ls))
            args.append(f"L.reciprocal({c})" if op == "/" else c)
        for f in extra:
            terms.append(self.sub(f.labels))
            args.append(f"L.ones({self.sizes[f.labels[0]]})" if f.kind == "one" and
                        len(f.labels) == 1 else f"L.eye({self.sizes[f.labels[0]]})")
        code = f"L.einsum('{','.join(terms)}->{self.sub(out)}', {', '.join(args)})"
        return f"({coeff!r} * {code})", out

    def traced_prod(self, ops, extra, labs, out, summed, coeff):
        # deltas merge labels; ones sum to their size or broadcast
        merge = {}
        for f in extra:
            if f.kind == "delta":
                a, b = f.labels
                merge[b] = merge.get(a, a)
        rep = {l: merge.get(l, l) for l in labs}
        carried = {rep[l] for _, _, ls in ops for l in ls}
        for f in extra:
            if f.kind == "one":
                for l in f.labels:
                    if l in summed and rep[l] not in carried and rep[l] == l:
                        coeff *= self.sizes[l]
        if not extra and not summed and len(ops) >= 2 and self.bit():
            code = ""
            for idx, (op, c, ls) in enumerate(ops):
                a = self.align(c, ls, out)
                code += (f"({a})" if idx == 0 and op == "*" else
                         f"(1 / ({a}))" if idx == 0 else f" {op} ({a})")
            return (f"({code})" if coeff == 1.0 else f"({coeff!r} * {code})"), out
        if not extra and len(ops) == 1 and ops[0][0] == "*":
            c, ls = ops[0][1], ops[0][2]
            code, rest = c, ls
            if summed:
                if len(summed) == 1 and self.sizes[summed[0]] and \
                        coeff * self.sizes[summed[0]] == 1.0 and self.bit():
                    return self.reduce_code("mean", c, ls, summed), [l for l in ls if l not in summed]
                code, rest = self.scalar_sum(c, ls, summed)
            code = self.align(code, rest, out)
            return (f"({code})" if coeff == 1.0 else f"({coeff!r} * {code})"), out
        terms, args = [], []
        for op, c, ls in ops:
            terms.append("".join(self.letter(rep[l]) for l in ls))
            args.append(f"(1 / ({c}))" if op == "/" else c)
        outsub = "".join(self.letter(rep[l]) for l in out)
        nocarry = [rep[l] for l in out if rep[l] not in carried]
        sz = f", sizes={self.sizes_arg(list(dict.fromkeys(nocarry)))}" if nocarry else ""
        code = f"einvjp.einsum('{','.join(terms)}->{outsub}', {', '.join(args)}{sz})"
        return (f"({code})" if coeff == 1.0 else f"({coeff!r} * {code})"), out

    def statement(self, st):
        parts = []
        self.letters = {}
        for sign, t in st.terms:
            t = t.copy()
            _bind(t, self.sizes, self.fresh)
            scopes, _ = _scopes(t, set(st.labels))
            c, labs = self.expr(t, scopes)
            if t.kind != "prod":
                c, labs = self.scalar_sum(c, labs, [l for l in labs if l in
                                                    scopes.get(id(t), [])])
            parts.append((sign, c, labs))
        union = list(dict.fromkeys(l for _, _, ls in parts for l in ls))
        code = ""
        for idx, (s, c, ls) in enumerate(parts):
            c = self.align(c, ls, [l for l in st.labels if l in union])
            code += ("-" if s < 0 else "") if idx == 0 else (" - " if s < 0 else " + ")
            code += f"({c})"
        self.union = union
        return self.full(code, [l for l in st.labels if l in union], list(st.labels))
