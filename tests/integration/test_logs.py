"""Logs an operator can live with (docs/operations.md "Logs").

``--workers 8``: start, traffic with bad frames of every kind a client can send, a clean
stop; at the default level no ERROR line, no traceback, no bus chatter.  And the JSON
format: one object a line.
"""
from __future__ import annotations

import asyncio
import json
import struct

from clasp_fast.protocol import Hello, Set, encode_frame
from tests.integration.conftest import connect_hello, raw_frame, recv_msg, ws_connect
from tests.integration.test_metrics import http_get, samples, total
from tests.support import RouterProcess
from tests.ws_framing import client_frame, upgrade_request


def frame_by_hand(first: int, payload: bytes, masked: bool = True) -> bytes:
    """A small frame with any first byte (FIN, RSV bits, opcode), masked or not."""
    if not masked:
        return bytes([first, len(payload)]) + payload
    key = b"\x01\x02\x03\x04"
    return bytes([first, 0x80 | len(payload)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def raw_upgrade(port: int):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    req, _ = upgrade_request("127.0.0.1", port)
    w.write(req)
    await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    return r, w


async def bad_traffic(router: RouterProcess, rounds: int) -> None:
    for _ in range(rounds):
        # bad CLASP frames on a live session: ERROR 400, the session goes on
        ws, _, _ = await connect_hello(router.url, name="bad")
        for frame in (b"\x54\x01\x00\x01\x41", b"\x53\x01", raw_frame(b"\x77\x00\x01"),
                      raw_frame(encode_frame(Set("/x", 1.5))[4:-3]), b"\x53\x01\x00\x00",
                      raw_frame(b"\x21\x00", declared=300)):
            await ws.send(frame)
        await ws.send("text, not binary")
        await ws.close()
        # a bad first frame: ERROR 400 and close 1008
        ws = await ws_connect(router.url)
        await ws.send(b"\x53\x01\x00\x01\x41")
        try:
            await asyncio.wait_for(ws.wait_closed(), 3)
        except asyncio.TimeoutError:
            pass
        # oversize WebSocket message: close 1009
        ws = await ws_connect(router.url)
        await ws.send(encode_frame(Hello(name="big")))
        await recv_msg(ws)
        try:
            await ws.send(b"\x53" * 70_000)
            await asyncio.wait_for(ws.wait_closed(), 3)
        except Exception:
            pass
        # protocol errors at the WebSocket level: RSV bits, bad close code, unmasked frame,
        # continuation without a start, garbage after the upgrade
        for data in (frame_by_hand(0x80 | 0x40 | 0x2, b"\x53"),
                     client_frame(0x8, struct.pack(">H", 1005)),
                     frame_by_hand(0x82, b"\x53\x01\x00\x01\x41", masked=False),
                     client_frame(0x0, b"abc"),
                     b"\xff" * 64):
            r, w = await raw_upgrade(router.port)
            w.write(data)
            try:
                await asyncio.wait_for(r.read(), 3)
            except (asyncio.TimeoutError, ConnectionError):
                pass
            w.close()
        # bad HTTP: garbage head, POST, a half request then a reset
        for data in (b"NONSENSE\r\n\r\n", b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"):
            r, w = await asyncio.open_connection("127.0.0.1", router.port)
            w.write(data)
            await asyncio.wait_for(r.read(), 3)
            w.close()


async def test_eight_workers_bad_traffic_and_clean_stop_log_no_error_and_no_bus_chatter():
    router = RouterProcess("--log-level", "info", "--metrics-enabled", workers=8).start(timeout=60)
    try:
        await bad_traffic(router, rounds=3)
        _, _, body = await http_get(router.port, "/metrics")
        s = samples(body.decode())
        assert total(s, "clasp_websocket_errors_total", code=1009) == 3        # oversize
        assert total(s, "clasp_websocket_errors_total", code=1002) >= 3        # protocol errors
        assert total(s, "clasp_errors_sent_total", code=400) >= 3 * 7          # bad CLASP frames
    finally:
        assert router.stop() == 0
    log = router.log()
    lines = log.splitlines()
    assert not [line for line in lines if " ERROR " in line or "Traceback" in line], log
    assert not [line for line in lines if "bus" in line], log
    assert not [line for line in lines if " WARNING " in line], log
    # what is left: the start line, and one line per process at the stop
    assert len(lines) <= 2 + 9, log


async def test_json_log_format_is_one_object_a_line():
    router = RouterProcess("--log-format", "json", workers=2).start(timeout=60)
    try:
        ws, _, _ = await connect_hello(router.url)
        await ws.close()
    finally:
        assert router.stop() == 0
    lines = [line for line in router.log().splitlines() if not line.startswith("clasp-fast listening")]
    assert lines, router.log()
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert {r.get("worker") for r in records} >= {0, 1}
    assert any(r["logger"] == "clasp_fast.supervisor" for r in records)


async def test_refusals_near_the_file_descriptor_limit_are_counted_and_logged_once():
    """A router with a small ``ulimit -n`` refuses connections past it with 503 (libuv
    would otherwise accept and drop them silently), counts them, and warns once."""
    import resource
    import subprocess
    import sys

    from tests.support import REPO, free_port

    port = free_port()

    def small_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))

    proc = subprocess.Popen([sys.executable, "-m", "clasp_fast", "--host", "127.0.0.1", "--port",
                             str(port), "--metrics-enabled", "--max-connections", "0",
                             "--max-connections-per-ip", "0", "--no-persistence"], cwd=REPO, preexec_fn=small_limit,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "listening on" in await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        conns = []
        for _ in range(90):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            conns.append(w)
        await asyncio.sleep(0.3)
        for w in conns:
            w.close()
        await asyncio.sleep(0.3)
        _, _, body = await http_get(port, "/metrics")
        refused = total(samples(body.decode()), "clasp_connections_refused_total", reason="fd_limit")
        assert refused > 0
    finally:
        proc.terminate()
        out = await asyncio.to_thread(proc.communicate, timeout=10)
    warnings = [line for line in out[0].splitlines() if "file descriptor" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "ulimit -n" in warnings[0], out[0]
