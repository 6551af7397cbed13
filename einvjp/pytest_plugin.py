"""The pytest plugin: a fixture `einvjp_check` that runs
`einvjp.testing.check_backward`, and the option `--einvjp-examples N` (25 by
default) that sets how many cases each call draws.

    def test_my_layer(einvjp_check):
        einvjp_check(MyFunction.apply, "bij,jk->bik")

pytest loads it by itself once einvjp is installed.  The fixture needs the
`test` extra (hypothesis); without it, pytest runs as before and a test that
asks for the fixture fails, saying what to install.
"""

from __future__ import annotations

import pytest

try:
    from .testing import check_backward
except ModuleNotFoundError as err:  # the test extra is not installed
    if not (err.name or "").startswith("hypothesis"):
        raise
    check_backward = None

EXAMPLES = 25


def pytest_addoption(parser):
    parser.getgroup("einvjp").addoption(
        "--einvjp-examples", type=int, default=EXAMPLES, metavar="N",
        help=f"cases each einvjp_check call draws (default {EXAMPLES})")


@pytest.fixture
def einvjp_check(request):
    """`einvjp_check(fn, spec, shapes=None, **options)`: `check_backward`
    with `examples` from `--einvjp-examples` (an `examples=` given to the
    call wins)."""
    if check_backward is None:
        pytest.fail("einvjp_check needs hypothesis: pip install 'einvjp[test]'", pytrace=False)
    examples = request.config.getoption("einvjp_examples")

    def check(fn, spec, shapes=None, **options):
        __tracebackhide__ = True
        options.setdefault("examples", examples)
        check_backward(fn, spec, shapes, **options)
    return check
