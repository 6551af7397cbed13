"""A matrix-product-state (MPS) classifier over 64 sites as one einsum of
129 operands: its cost table, its gradient under a memory limit, and a
contract expression with the cores as constants.

    python examples/mps.py
"""

import numpy as np
import opt_einsum

import einvjp

SITES, BOND, PHYS, BATCH, CLASSES = 64, 16, 2, 32, 10


def mps_equation(sites):
    """'b' + one physical label per site + one bond label between sites: the
    inputs x_i[b, p_i], the cores A_i[l_i, p_i, l_i+1] (the middle one also
    carries the class label c), the output [b, c]."""
    sym = opt_einsum.get_symbol
    b, c = sym(0), sym(1)
    inputs, cores = [], []
    for i in range(sites):
        p, left, right = sym(2 + 2 * i), sym(3 + 2 * i), sym(3 + 2 * (i + 1))
        inputs.append(b + p)
        core = (left if i else "") + p + (right if i < sites - 1 else "")
        cores.append(core + (c if i == sites // 2 else ""))
    return ",".join(inputs + cores) + "->" + b + c


def shapes(sites=SITES):
    cores = []
    for i in range(sites):
        core = ((BOND,) if i else ()) + (PHYS,) + ((BOND,) if i < sites - 1 else ())
        cores.append(core + ((CLASSES,) if i == sites // 2 else ()))
    return [(BATCH, PHYS)] * sites + cores


def operands(seed=0, sites=SITES):
    rng = np.random.default_rng(seed)
    xs = [rng.random((BATCH, PHYS)) for _ in range(sites)]
    cores = [rng.standard_normal(s) / np.sqrt(BOND) * 1.2 for s in shapes(sites)[sites:]]
    return xs + cores


def main():
    eq, ops = mps_equation(SITES), operands()
    plan = einvjp.plan(eq, [x.shape for x in ops])
    print(f"{len(ops)} operands; the first and last steps of the plan:")
    lines = repr(plan).splitlines()
    print("\n".join(lines[:5] + ["   ..."] + lines[-4:]))

    logits = einvjp.einsum(eq, *ops)
    ct = np.ones_like(logits)
    grads = einvjp.vjp(eq, ops, ct)
    limit = plan.cost.vjp.peak // 2
    limited = einvjp.vjp(eq, ops, ct, memory_limit=limit)
    worst = max(np.abs(a - b).max() / np.abs(a).max() for a, b in zip(grads, limited))
    small = einvjp.plan(eq, [x.shape for x in ops], memory_limit=limit)
    print(f"\nwith memory_limit={limit} bytes: {small.describe()}")
    print(small.cost)
    print(f"largest relative difference from the unlimited gradients: {worst:.1e}")

    # The cores as constants: contracted once with each other as far as the
    # path allows; each call takes the inputs only.
    sites = list(range(SITES, 2 * SITES))
    expr = einvjp.contract_expression(eq, *[ops[k] if k in sites else ops[k].shape
                                            for k in range(len(ops))], constants=sites)
    same = np.allclose(expr(*ops[:SITES]), logits)
    print(f"\ncontract_expression with the {SITES} cores as constants agrees: {same}")
    return grads, limited


if __name__ == "__main__":
    main()
