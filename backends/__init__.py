"""One small module per array library, installed as `einvjp.backends`.

Each module is the table of operations the lowering (`einvjp.plan`) needs,
plus that library's autodiff hook.  They are imported lazily, on first use.
"""
