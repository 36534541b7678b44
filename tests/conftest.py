"""Shared pytest configuration and fixtures.

Every asyncio test runs on uvloop, like the router.  ``router_process`` and
``shared_router`` start clasp-fast as a real separate process (tests/support.py).
"""
import os

import pytest
import uvloop

# Every clasp-fast a test starts keeps its state in memory unless the test asks for a state
# file (``--persistence --state-file``): no test writes ./clasp-state.db in the repo, and no
# router restores what an earlier test left there.
os.environ["CLASP_FAST_PERSISTENCE"] = "false"

from tests.support import router_factory


def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def router_process():
    """A factory: ``router_process(*cli_args, workers=1)`` starts a clasp-fast process;
    each is stopped with SIGTERM at teardown and must exit 0."""
    with router_factory() as start:
        yield start


@pytest.fixture(scope="module")
def shared_router():
    """One clasp-fast process shared by a whole test module."""
    with router_factory() as start:
        yield start()
