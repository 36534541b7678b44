"""One metrics endpoint for the whole router (docs/operations.md "Metrics"), the status API.

Known traffic through ``--workers 2`` (connections land on either worker) must show up as
exact totals on the one endpoint, whichever worker answers the scrape: on ``metrics.port``
and on the WebSocket port's ``/metrics``.
"""
from __future__ import annotations

import asyncio
import json
import re

from clasp_fast.protocol import Publish, Set, Subscribe, encode_frame

from tests.integration.conftest import connect_hello, error_of, raw_frame, recv_msg, recv_until
from tests.support import free_port

BAD_FRAMES = [b"\x53\x01\x00\x03\x77\x00\x01",        # unknown message type 0x77
              raw_frame(b"\x77\x00\x01")]


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def total(s: dict, name: str, **labels) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set((k, str(v)) for k, v in labels.items())
    found = [v for (n, ls), v in s.items() if n == name and want <= ls]
    assert found, f"no {name}{labels} in the scrape"
    return sum(found)


async def test_known_traffic_through_two_workers_gives_exact_totals(router_process):
    mport = free_port()
    router = router_process("--metrics-port", str(mport), workers=2)
    subscribers = []
    for i in range(3):
        ws, _, _ = await connect_hello(router.url, name=f"sub{i}")
        await ws.send(encode_frame(Subscribe(1, "/k/**")))
        subscribers.append(ws)
    pub, _, _ = await connect_hello(router.url, name="pub")
    await asyncio.sleep(0.3)            # the subscriptions reach the owner
    for i in range(5):
        await pub.send(encode_frame(Set(f"/k/{i}", i)))
    for i in range(2):
        await pub.send(encode_frame(Publish("/k/event", i)))
    for bad in BAD_FRAMES:
        await pub.send(bad)
    for _ in BAD_FRAMES:
        assert error_of(await recv_msg(pub)).code == 400
    for ws in subscribers:
        got = []
        while len(got) < 7:
            msg = await recv_msg(ws)
            if isinstance(msg, (Set, Publish)):
                got.append(msg)
    for path_port, path in ((mport, "/metrics"), (router.port, "/metrics")):
        for _ in range(3):              # several scrapes: whichever worker answers, the same totals
            status, headers, body = await http_get(path_port, path)
            assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
            s = samples(body.decode())
            assert total(s, "clasp_workers_up") == 2
            assert total(s, "clasp_connections") == 4
            assert total(s, "clasp_connections_accepted_total") == 4
            assert total(s, "clasp_sessions") == 4
            assert total(s, "clasp_subscriptions") == 3
            assert total(s, "clasp_params") == 5
            assert total(s, "clasp_frames_received_total", type="HELLO") == 4
            assert total(s, "clasp_frames_received_total", type="SUBSCRIBE") == 3
            assert total(s, "clasp_frames_received_total", type="SET") == 5
            assert total(s, "clasp_frames_received_total", type="PUBLISH") == 2
            assert total(s, "clasp_frames_received_total", type="OTHER") == 2
            assert total(s, "clasp_messages_sent_total", type="WELCOME") == 4
            assert total(s, "clasp_messages_sent_total", type="SET") == 15
            assert total(s, "clasp_messages_sent_total", type="PUBLISH") == 6
            assert total(s, "clasp_messages_sent_total", type="ERROR") == 2
            assert total(s, "clasp_deliveries_total") == 21
            assert total(s, "clasp_dropped_total") == 0
            assert total(s, "clasp_errors_sent_total", code=400) == 2
            assert total(s, "clasp_handshake_seconds_count") == 4
            assert total(s, "clasp_handshake_seconds_bucket", le="+Inf") == 4
            assert total(s, "clasp_bus_records_total") > 0
            assert total(s, "clasp_bus_bytes_total") > total(s, "clasp_bus_records_total")
            assert total(s, "clasp_pending_requests") == 0
            assert ("clasp_delivery_latency_seconds_count", frozenset()) in s
    status, headers, body = await http_get(router.port, "/status")
    assert status == 200 and headers["content-type"] == "application/json"
    st = json.loads(body)
    assert st["workers"] == 2 and st["workers_up"] == 2
    assert st["totals"]["connections"] == 4 and st["totals"]["deliveries"] == 21
    assert st["totals"]["params"] == 5 and st["totals"]["errors_sent"] == 2
    assert sum(w["sessions"] for w in st["per_worker"]) == 4
    assert {a["address"] for a in st["top_addresses"]} == {f"/k/{i}" for i in range(5)}
    assert st["config"]["server.workers"] == 2
    status, _, body = await http_get(mport, "/status/sessions")
    rows = json.loads(body)["sessions"]
    assert sorted(r["name"] for r in rows) == ["pub", "sub0", "sub1", "sub2"]
    assert {r["name"]: r["subscriptions"] for r in rows}["sub1"] == 1
    assert all(r["ip"] == "127.0.0.1" and r["dropped"] == 0 for r in rows)
    for ws in subscribers + [pub]:
        await ws.close()


async def test_sampled_latency_histogram_counts_one_frame_in_1024(router_process):
    router = router_process("--metrics-enabled")
    sub, _, _ = await connect_hello(router.url, name="sub")
    await sub.send(encode_frame(Subscribe(1, "/h/**")))
    pub, _, _ = await connect_hello(router.url, name="pub")
    await asyncio.sleep(0.1)
    n = 3 * 1024
    for i in range(n):
        await pub.send(encode_frame(Set("/h/x", i)))
    await recv_until(sub, lambda m: isinstance(m, Set) and m.value == n - 1, timeout=10)
    _, _, body = await http_get(router.port, "/metrics")
    s = samples(body.decode())
    count = total(s, "clasp_delivery_latency_seconds_count")
    assert 1 <= count <= 3, count          # frames 1024, 2048, 3072 (HELLO and SUBSCRIBE count too)
    assert total(s, "clasp_delivery_latency_seconds_bucket", le="+Inf") == count
    await sub.close()
    await pub.close()


async def test_pages_on_the_websocket_port_follow_the_settings(router_process):
    router = router_process("--no-ui")
    for path in ("/", "/metrics", "/status", "/anything"):
        status, _, body = await http_get(router.port, path)
        assert (status, body) == (200, b"ok\n"), path          # probes, as before
    status, _, body = await http_get(router.port, "/readyz")
    assert status == 200
    router = router_process()                                  # ui on (default), metrics off
    status, headers, body = await http_get(router.port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"@clasp-to/core" in body and b"http://" not in body and b"https://" not in body
    status, headers, body = await http_get(router.port, "/ui/vendor/clasp-core/index.mjs")
    assert status == 200 and b"class" in body
    status, headers, body = await http_get(router.port, "/", method="HEAD")
    assert status == 200 and body == b""
    status, _, _ = await http_get(router.port, "/ui/../../setup.py")
    assert status == 404
    status, _, body = await http_get(router.port, "/metrics")
    assert (status, body) == (200, b"ok\n")                    # metrics off: a probe
    status, _, body = await http_get(router.port, "/status")
    assert status == 200 and json.loads(body)["workers"] == 1
    status, _, body = await http_get(router.port, "/healthz")
    assert (status, body) == (200, b"ok\n")


async def test_status_summary_has_no_secrets(router_process):
    router = router_process()
    _, _, body = await http_get(router.port, "/status")
    keys = json.loads(body)["config"]
    assert not [k for k in keys if re.search("token|key|secret|password", k, re.I)]


async def test_drops_of_a_stalled_subscriber_are_counted_exactly(router_process):
    """Every SET either reaches the stalled subscriber or is dropped: the endpoint's drops,
    deliveries, the session's row and the ERROR 503 count agree with what it received."""
    from clasp_fast.protocol import Error, Get, Snapshot

    from tests.integration.conftest import RawWS

    n, pad = 20_000, "p" * 400          # 8.6 MB: more than the kernel buffers hold
    rp = router_process("--buffer-size", "100", "--metrics-enabled", workers=2)
    slow = await RawWS.open("127.0.0.1", rp.port, rcvbuf=4096)
    await slow.hello("slowpoke")
    slow.send_binary(encode_frame(Subscribe(1, "/flood/**")))
    slow.send_binary(encode_frame(Get("/flood/none")))
    assert error_of(await slow.recv_msg()).code == 404
    slow.writer.transport.pause_reading()
    pub, _, _ = await connect_hello(rp.url, "publisher")
    try:
        for i in range(n):
            await pub.send(encode_frame(Set("/flood/x", [i, pad])))
        await pub.send(encode_frame(Get("/flood/x")))
        snap = await recv_msg(pub, 20.0)
        assert isinstance(snap, Snapshot) and snap.params[0].revision == n
        await asyncio.sleep(0.5)            # the replica of the slow one's worker has them all
        slow.writer.transport.resume_reading()
        received = 0
        while True:
            try:
                msg = await slow.recv_msg(1.0)
            except asyncio.TimeoutError:
                break
            received += isinstance(msg, Set)
            assert isinstance(msg, (Set, Error)), msg
        assert 0 < received < n
        _, _, body = await http_get(rp.port, "/metrics")
        s = samples(body.decode())
        assert total(s, "clasp_dropped_total") == n - received
        assert total(s, "clasp_deliveries_total") == received
        assert total(s, "clasp_errors_sent_total", code=503) == 1
        _, _, body = await http_get(rp.port, "/status/sessions")
        rows = {r["name"]: r for r in json.loads(body)["sessions"]}
        assert rows["slowpoke"]["dropped"] == n - received and rows["publisher"]["dropped"] == 0
    finally:
        slow.close()
        await pub.close()
