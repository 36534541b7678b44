"""Shared pytest configuration and fixtures.

Every asyncio test runs on uvloop, like the router.  ``router_process`` and
``shared_router`` start clasp-fast as a real separate process (tests/support.py).
"""
import pytest
import uvloop

from tests.support import RouterProcess


def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def router_process():
    """A factory: ``router_process(*cli_args, workers=1)`` starts a clasp-fast process;
    each is stopped with SIGTERM at teardown and must exit 0."""
    started = []

    def start(*args, **kw):
        rp = RouterProcess(*args, **kw).start()
        started.append(rp)
        return rp

    yield start
    for rp in started:
        code = rp.stop()
        assert code == 0, f"clasp-fast exited with {code} on SIGTERM:\n{rp.log()}"


@pytest.fixture(scope="module")
def shared_router():
    """One clasp-fast process shared by a whole test module (interop tests)."""
    rp = RouterProcess().start()
    yield rp
    code = rp.stop()
    assert code == 0, f"clasp-fast exited with {code} on SIGTERM:\n{rp.log()}"
