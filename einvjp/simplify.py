"""Simplification of a graph, run to a fixed point by `simplify`.

- `cse`: merge nodes equal up to label renaming
- `fuse`: inline a Contract read once into its reader (one bigger GE to plan)
- `cancel`: drop terms that cancel (x - x, up to renaming and distribution)
- `factor`: take a factor every term of a sum shares out of the sum
- `simplify`: cse, fuse, `stabilize`, cancel (and factor), until nothing changes
"""

from __future__ import annotations

from .ge import Index
from .ir import (Add, Call, Const, Contract, contract, is_permutation, is_relabel,
                 is_zero, key, uses)
from .ir import add as add_node
from .rewrite import flatten, fuse_contract, rebuild, remake
from .stabilize import stabilize


def cse(outputs):
    """Merge nodes equal up to label renaming; re-normalise changed nodes."""
    table = {}

    def fn(node, new, old):
        if new != old:
            node = remake(node, new)
        k = key(node)
        found = table.get(k)
        if found is None:
            table[k] = found = node
        return found
    return rebuild(outputs, fn)


def fuse(outputs):
    """Fuse Contracts read once into the Contract reading them; fold
    relabelling Contracts into Add terms and Map/Func operands; flatten an
    Add read once into the Add reading it."""
    count = uses(outputs)
    roots = set(outputs)

    def once(old):
        """Read once, and not a tensor the program names (kept for printing)."""
        return count.get(old, 0) == 1 and old not in roots and old.name is None

    def inline(n, single):
        return n in single or is_relabel(n) or not n.args  # a constant or a delta

    def fn(node, new, old):
        if isinstance(node, Contract):
            single = {n for n, o in zip(new, old) if once(o)}
            if not any(isinstance(n, Contract) and inline(n, single) for n in new):
                return node if new == old else remake(node, new)
            return fuse_contract(list(zip(new, node.terms)), node.out, node.coeff,
                                 lambda n: inline(n, single))
        if isinstance(node, Add):
            terms, changed = [], new != old
            for n, o, t, c in zip(new, old, node.terms, node.coeffs):
                if is_relabel(n):
                    ren = dict(zip(n.out, t))
                    terms.append((n.args[0], tuple(ren[l] for l in n.terms[0]), c * n.coeff))
                    changed = True
                elif isinstance(n, Add) and once(o):
                    ren = dict(zip(n.out, t))
                    terms += [(a, tuple(ren[l] for l in tt), c * cc)
                              for a, tt, cc in zip(n.args, n.terms, n.coeffs)]
                    changed = True
                else:
                    terms.append((n, t, c))
            return add_node(terms, node.out) if changed else node
        if isinstance(node, Call):
            if not any(is_permutation(n) for n in new):
                return node if new == old else remake(node, new)
            args, terms = [], []
            for n, t in zip(new, node.terms):
                if is_permutation(n):
                    ren = dict(zip(n.out, t))
                    args.append(n.args[0])
                    terms.append(tuple(ren[l] for l in n.terms[0]))
                else:
                    args.append(n)
                    terms.append(t)
            return node.__class__(node.prim, args, terms, node.out, node.params)
        return node
    return rebuild(outputs, fn)


def _distribute(node, k):
    """node = Σ_j c_j · node with Add operand k replaced by its term j."""
    ops = list(node.operands())
    a, t = ops[k]
    ren = dict(zip(a.out, t))
    summed = [l for _, tt in ops for l in tt if l not in set(node.out)]
    return [flatten(contract(ops[:k] + [(b, tuple(ren[l] for l in bt))] + ops[k + 1:],
                              node.out, node.coeff * c, summed=summed))
            for b, bt, c in zip(a.args, a.terms, a.coeffs)]


def _broadcast_under_sum(node, k):
    """Operand k of a Contract is an Add with a term constant along a label
    the Contract sums (Σ_h (x[h] - 1[h] m)): the shape of a cancellation."""
    a, t = node.args[k], node.terms[k]
    if not isinstance(a, Add):
        return False
    summed = {pos for pos, lab in enumerate(t) if lab not in set(node.out)}
    return any(a.out[pos] not in set(at) for at in a.terms for pos in summed)


_MASK = (1 << 64) - 1  # leaf hashes add up modulo 2^64


class _Pairing:
    """Which nodes may hide a cancellation, memoised per node (linear in the
    graph): distributing a product over its Add operands can only make terms
    cancel when some Add reachable through the product's Contracts (and, once
    distributed, through its terms' Contracts) has two terms made of the same
    factors, or when a factor is a constant zero.  Terms of different
    factors never have equal keys, so a product reaching no such Add never
    vanishes, and `_vanishes` need not distribute it."""

    def __init__(self):
        self._leaves, self._reach = {}, {}

    def leaves(self, node):
        """A hash of the multiset of non-Contract factors `node` flattens to
        (equal factors, up to label renaming, hash equally)."""
        found = self._leaves.get(node)
        if found is None:
            if isinstance(node, Contract):
                found = sum(self.leaves(a) for a in node.args) & _MASK
            elif isinstance(node, Const):
                found = 0
            else:
                found = hash(key(node)) & _MASK
            self._leaves[node] = found
        return found

    def reach(self, node):
        """Whether flattening and distributing `node` may meet a pairable Add
        or a zero factor."""
        found = self._reach.get(node)
        if found is None:
            if is_zero(node):
                found = True
            elif isinstance(node, Contract):
                found = any(self.reach(a) for a in node.args)
            elif isinstance(node, Add):
                hashes = [self.leaves(a) for a in node.args]
                found = len(set(hashes)) < len(hashes) or any(self.reach(a) for a in node.args)
            else:
                found = False
            self._reach[node] = found
        return found



def _vanishes(node, depth, memo, pairing):
    """Whether a Contract is identically zero because distributing it over
    an Add operand of that shape makes every term cancel."""
    if is_zero(node):
        return True
    if not isinstance(node, Contract) or depth <= 0 or not pairing.reach(node):
        return False
    k0 = key(node)
    if k0 in memo:
        return memo[k0]
    memo[k0] = False
    for k in range(len(node.args)):
        if not _broadcast_under_sum(node, k):
            continue
        acc = {}  # key -> (sum of the coefficients, the largest of them)
        for term in _distribute(node, k):
            if _vanishes(term, depth - 1, memo, pairing):
                continue
            if isinstance(term, Contract):
                kk, c = key(Contract(term.args, term.terms, term.out, 1)), term.coeff.value()
            else:
                kk, c = key(term), 1
            total_c, largest = acc.get(kk, (0, 0))
            acc[kk] = total_c + c, max(largest, abs(c))
        # Equal terms cancel when their coefficients add up to 0: exactly, or
        # to rounding for floating-point ones (never a small coefficient alone).
        if all(abs(v) <= 1e-12 * largest for v, largest in acc.values()):
            memo[k0] = True
            break
    return memo[k0]


def cancel(outputs, depth=3, seen=None):
    """Distribute a Contract over an Add operand when some of the resulting
    terms vanish (see `_vanishes`), keeping the others: the step
    1[h] mu[p,h] = 0 of the layer norm's gradient (docs/notation.md).  Such
    a sum is 0 for finite values (with an inf or nan among them, evaluating
    it would give nan); a tensor minus itself, by contrast, is kept as
    written (see `einvjp.ir.add`).  `seen` (a set shared by the rounds of
    `simplify`) holds the nodes already found to have nothing to cancel."""
    memo, pairing = {}, _Pairing()
    seen = set() if seen is None else seen

    def fn(node, new, old):
        if new != old:
            node = remake(node, new)
        if node in seen or not isinstance(node, Contract) or len(set(node.out)) != len(node.out):
            return node
        for k, a in enumerate(node.args):
            if isinstance(a, Add):
                if not (pairing.reach(a) or any(pairing.reach(b) for i, b in
                                                enumerate(node.args) if i != k)):
                    continue  # no term of the distribution can vanish
                terms = _distribute(node, k)
                keep = [t for t in terms if not _vanishes(t, depth, memo, pairing)]
                if len(keep) < len(terms):
                    return add_node([(t, node.out, 1) for t in keep], node.out)
        seen.add(node)
        return node
    return rebuild(outputs, fn)


def _product(node, term):
    """(coefficient, [(factor, labels)]) of node[term] as a product over the
    reader's labels; a label it sums gets a fresh Index of its own."""
    if not isinstance(node, Contract) or len(set(node.out)) != len(node.out):
        return 1, [(node, tuple(term))]
    ren = dict(zip(node.out, term))
    for t in node.terms:
        for lab in t:
            if lab not in ren:
                ren[lab] = Index(lab.name, lab.size)
    return node.coeff, [(a, tuple(ren[l] for l in t)) for a, t in node.operands()]


def _size(labels):
    n = 1
    for lab in labels:
        n *= int(lab.size)
    return n


def _match(f, fs, out, ren):
    """The factor of `fs` equal to f = (node, labels) up to a renaming of
    summed labels consistent with `ren` (this term's summed label -> the
    first term's), or None; `ren` is extended by the match."""
    node, labs = f
    taken = set(ren.values())
    for g in fs:
        if g[0] is not node:
            continue
        new = {}
        for a, b in zip(labs, g[1]):  # a: the first term's label, b: this one's
            if a in out or b in out:
                ok = a is b
            else:
                ok = ren.get(b, new.get(b, a)) is a and (b in ren or b in new or a not in taken)
                new[b] = a
            if not ok:
                break
        else:
            ren.update(new)
            return g
    return None


def _factored(node):
    """An Add whose terms all multiply one factor, a · u + b · u · v =
    u (a + b v), as that product (the Add itself when its terms share no
    factor).  Labels the terms sum may be shared, the sums renamed alike:
    Σ_n a[n] X[n,p] + Σ_n b[n] X[n,p] = Σ_n X[n,p] (a[n] + b[n]).  For a
    Hessian, Σ (c1 X[n,p] + c2 X[n,p]) X[n,q] becomes X[n,p] (c1 + c2)
    X[n,q]: the sum is one label smaller and the contraction one GEMM."""
    out = set(node.out)
    products = [_product(a, t) for a, t in zip(node.args, node.terms)]
    first = products[0][1]
    rens = [{} for _ in products]
    rests = [list(fs) for _, fs in products]
    common = []
    for f in first:
        trial = [dict(r) for r in rens]
        found = [_match(f, rest, out, ren) for rest, ren in zip(rests[1:], trial[1:])]
        if all(g is not None for g in found):
            common.append(f)
            rests[0].remove(f)
            for rest, g in zip(rests[1:], found):
                rest.remove(g)
            rens = [{}] + trial[1:]
    if not common:
        return node
    bound = {l for _, t in common for l in t if l not in out}
    terms = []
    for (c, _), rest, ren, coeff in zip(products, rests, rens, node.coeffs):
        terms.append((coeff * c, [(a, tuple(ren.get(l, l) for l in t)) for a, t in rest]))
    carried = {l for _, fs in terms for _, t in fs for l in t}
    shared = {l for _, t in common for l in t}
    inner = tuple(l for l in node.out if l in carried or l not in shared) + tuple(
        l for l in dict.fromkeys(l for _, t in common for l in t) if l in bound)
    if _size(inner) > max([_size(node.out)] + [_size(t) for _, t in common]):
        return node  # a sum bigger than the terms and the factor: A[p,j] + A[j,p], not x[j] (…)
    inside = set(inner)
    parts = [(contract(fs, inner, c, summed=[l for _, t in fs for l in t if l not in inside]),
              inner, 1) for c, fs in terms]
    return contract(common + [(add_node(parts, inner), inner)], node.out)


def factor(outputs):
    """Take the factors every term of an Add shares out of it (`_factored`);
    a transposed (or scaled) Add read once becomes an Add of transposed
    terms, (A + Aᵀ)ᵀ = Aᵀ + A."""
    count = uses(outputs)

    def fn(node, new, old):
        if new != old:
            node = remake(node, new)
        if is_relabel(node) and isinstance(node.args[0], Add) and \
                count.get(old[0], 0) == 1 and node.args[0].name is None:
            a = node.args[0]
            ren = dict(zip(a.out, node.terms[0]))
            node = add_node([(n, tuple(ren[l] for l in t), c * node.coeff)
                             for n, t, c in zip(a.args, a.terms, a.coeffs)], node.out)
        if isinstance(node, Add) and len(set(node.out)) == len(node.out):
            return _factored(node)
        if isinstance(node, Contract) and node.coeff.sign_and_magnitude()[0]:
            return _sign_inside(node, count, old)
        return node
    return rebuild(outputs, fn)


def _sign_inside(node, count, old):
    """-a (-b + c) as a (b - c): a negative product's sum operand read once,
    led by a negative term, takes the sign (for printing)."""
    for k, a in enumerate(node.args):
        if isinstance(a, Add) and a.name is None and count.get(old[k] if k < len(old)
                                                                else None, 0) == 1 \
                and _negative(a.coeffs[0], a.args[0]):
            flipped = Add(a.args, a.terms, a.out, [-c for c in a.coeffs])
            args = list(node.args)
            args[k] = flipped
            return Contract(args, node.terms, node.out, -node.coeff)
    return node


def _negative(c, term):
    c = c * term.coeff if isinstance(term, Contract) else c
    return c.sign_and_magnitude()[0]


def in_order(outputs):
    """The Contract terms of an Add, read once, written in the order of its
    `out`, so that no term is transposed to be added (for a Hessian of n⁴
    entries, a strided pass over each)."""
    count = uses(outputs)

    def fn(node, new, old):
        if new != old:
            node = remake(node, new)
        return _in_order(node, count) if isinstance(node, Add) else node
    return rebuild(outputs, fn)


def _in_order(node, count):
    position = {l: k for k, l in enumerate(node.out)}
    args, changed = list(node.args), False
    terms = list(node.terms)
    for k, (a, t) in enumerate(zip(node.args, node.terms)):
        order = sorted(range(len(t)), key=lambda i: position[t[i]])
        if isinstance(a, Contract) and count.get(a, 0) == 1 and a.name is None and \
                order != list(range(len(t))) and len(set(t)) == len(t):
            args[k] = Contract(a.args, a.terms, tuple(a.out[i] for i in order), a.coeff)
            terms[k] = tuple(t[i] for i in order)
            changed = True
    return Add(args, terms, node.out, node.coeffs) if changed else node


def simplify(outputs, stable=True, rounds=12, factored=False):
    """Run the passes until nothing changes (at most `rounds` times);
    `factored`: factor sums too (see `factor`)."""
    outputs, seen = list(outputs), set()
    for _ in range(rounds):
        new = cse(outputs)
        new = fuse(new)
        if stable:
            new = stabilize(new)
        new = cse(cancel(new, seen=seen))
        if factored:
            new = cse(in_order(factor(new)))
        if all(a is b for a, b in zip(new, outputs)):
            break
        outputs = new
    return outputs
