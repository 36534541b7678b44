"""Shared pytest configuration: every asyncio test runs on uvloop, like the router."""
import uvloop


def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}
