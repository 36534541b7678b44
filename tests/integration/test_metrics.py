"""Metrics on their own port (docs/protocol.md, Transport): GET /metrics in Prometheus text."""
import asyncio
import re
import socket

from clasp_fast.client import ClaspClient
from clasp_fast.protocol import Set
from tests.support import free_port


async def _scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


def _value(text: str, name: str) -> float:
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert m, f"{name} not in metrics:\n{text}"
    return float(m.group(1))


async def test_metrics_count_connections_params_and_deliveries(router_process):
    mport = free_port()
    router = router_process("--metrics-port", str(mport))
    async with await ClaspClient.connect(router.url) as a, \
            await ClaspClient.connect(router.url, record=True) as b:
        await b.subscribe("/m/**")
        for i in range(3):
            await a.set(f"/m/{i}", i)
        for _ in range(3):
            await b.next(Set)
        status, text = await _scrape(mport)
        assert status == 200
        assert _value(text, "clasp_connections") == 2
        assert _value(text, "clasp_sessions") == 2
        assert _value(text, "clasp_params") == 3
        assert _value(text, "clasp_subscriptions") == 1
        assert _value(text, "clasp_deliveries_total") == 3
        assert _value(text, "clasp_dropped_total") == 0
        assert "# TYPE clasp_frames_received_total counter" in text
    status, _ = await _scrape(mport, "/other")
    assert status == 404


async def test_each_worker_serves_its_own_metrics(router_process):
    mport = free_port()
    while True:                     # two consecutive free ports
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", mport + 1))
                break
            except OSError:
                mport = free_port()
    router_process("--metrics-port", str(mport), workers=2)
    totals = 0
    for i in range(2):
        status, text = await _scrape(mport + i)
        assert status == 200 and f'worker="{i}"' in text
        totals += _value(text, "clasp_connections")
    assert totals == 0
