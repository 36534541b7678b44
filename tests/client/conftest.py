"""Fixtures for the client tests: clasp-fast runs as a separate process (``router_process``
from tests/conftest.py); the real clients of the interop tests come from tests/interop."""
import pytest

from clasp_fast import Clasp
from tests.interop.conftest import js_clients, node_env, py_clients  # noqa: F401 (fixtures)


@pytest.fixture
async def clients():
    """Factory: ``await clients(url, **kw)`` connects a ``Clasp``; all are closed at teardown."""
    made = []

    async def make(url, **kw):
        c = await Clasp.connect(url, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()
