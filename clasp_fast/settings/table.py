"""The settings table: every setting of clasp-fast, once.

Flags, environment variables, the config-file keys, validation and its messages, the
config objects (``Config``, ``RouterConfig``), docs/configuration.md and
examples/clasp.yaml are all generated from ``SETTINGS`` and ``RULES``.  To add a
setting, add a row here (and run ``python -m clasp_fast.settings.generate``).

Rows are in the order the docs and ``--print-config`` show them; rows of one YAML
section are kept together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .kinds import Boolean, Choice, Integer, IpNetwork, ListOf, Nullable, Number, Text
from .setting import Setting

MAX_WORKERS = 64          # the core's link table size (router.pxd MAX_WORKERS)

SETTINGS: list[Setting] = [
    # --- server: the listening socket and connection limits -------------------------------
    Setting("port", "server.port", Integer(0, 65535), 7330,
            "TCP port for WebSocket clients and HTTP probes (0 = any free port, one worker only)"),
    Setting("host", "server.bind", Text("an IP address or host name of this machine", "ADDR"), "0.0.0.0",
            "address to listen on (0.0.0.0 = every IPv4 interface, :: = every IPv6 interface)",
            aliases=("bind",)),
    Setting("workers", "server.workers", Integer(1, MAX_WORKERS), 1,
            "worker processes sharing the port (SO_REUSEPORT); worker 0 owns the state"),
    Setting("max_connections", "server.max_connections", Integer(0, zero="unlimited"), 10000,
            "connections in total, all workers together"),
    Setting("max_connections_per_ip", "server.max_connections_per_ip", Integer(0, zero="unlimited"),
            100, "connections per client IP (behind a proxy, see trusted_proxies)"),
    Setting("max_frame_size", "server.max_frame_size", Integer(1, 65536, "bytes"), 65536,
            "largest CLASP payload (WebSocket messages up to this + 12 bytes); "
            "also accepted as server.websocket.max_frame_size (both places must agree)",
            layer="router", also_at=("server.websocket.max_frame_size",)),
    # --- server.tls -------------------------------------------------------------------------
    Setting("tls_enabled", "server.tls.enabled", Boolean(), False,
            "serve wss:// on the port (true when cert and key are set, unless set false)"),
    Setting("tls_cert", "server.tls.cert", Nullable(Text("a file path", "FILE")), None,
            "certificate chain file (PEM)"),
    Setting("tls_key", "server.tls.key", Nullable(Text("a file path", "FILE")), None,
            "private key file (PEM)"),
    Setting("tls_ca", "server.tls.ca", Nullable(Text("a file path", "FILE")), None,
            "CA certificates (PEM) that client certificates are checked against"),
    Setting("tls_client_auth", "server.tls.client_auth", Choice(("none", "optional", "required")),
            "none", "ask clients for a certificate (optional) or insist on one (required)"),
    # --- server.websocket -------------------------------------------------------------------
    Setting("ping_interval", "server.websocket.ping_interval", Number(0, unit="seconds", zero="never"),
            30.0, "seconds of silence before the router pings a client"),
    Setting("pong_timeout", "server.websocket.pong_timeout", Number(above=0, unit="seconds"), 10.0,
            "seconds a client has to answer a ping"),
    Setting("compression", "server.websocket.compression", Boolean(), False,
            "permessage-deflate (RFC 7692) for clients that offer it: messages of 128 bytes or "
            "more are compressed, once per broadcast (docs/deploy.md, Compression)"),
    Setting("buffer_size", "server.websocket.buffer_size", Integer(1, unit="bytes"), 16384,
            "bytes of routed output a connection may have queued beyond what its socket "
            "accepted; beyond it SETs wait (the latest per address) and events are dropped (503)",
            layer="router"),
    Setting("unsent_limit", "server.websocket.unsent_limit",
            Integer(0, unit="bytes", zero="the kernel's and uvloop's defaults"), 16384,
            "bytes of a connection's output, not yet sent, that may wait below the router: in "
            "the kernel (TCP_NOTSENT_LOWAT) and again in its transport; the rest waits in the "
            "router (buffer_size, SETs conflate). 0: the kernel grows it to MiBs per connection"),
    Setting("slow_consumer_timeout", "server.websocket.slow_consumer_timeout",
            Number(0, unit="seconds", zero="never"), 30.0,
            "seconds a connection may stay unable to drain (SETs conflated, events dropped) "
            "before it is closed 1008 \"slow consumer\"", layer="router"),
    Setting("max_pending_output", "server.websocket.max_pending_output", Integer(65536, unit="bytes"),
            4194304,
            "bytes of direct replies and conflated SETs one connection may have waiting to be "
            "written; beyond it the connection is closed 1008 \"slow consumer\"", layer="router"),
    Setting("output_budget", "server.output_budget", Integer(0, unit="bytes", zero="unlimited"),
            268435456,
            "bytes of queued output for all connections of one process; beyond it the "
            "connection adding to it, if over buffer_size, is closed 1008 \"slow consumer\"",
            layer="router"),
    Setting("allowed_origins", "server.websocket.allowed_origins", ListOf(Text("an origin", "ORIGIN"), "origins (scheme://host[:port])"), [],
            "Origin header values allowed to open a WebSocket; empty = any (others get 403; "
            "native clients, which send no Origin, always pass)"),
    # --- server: proxies, handshake, memory --------------------------------------------------
    Setting("trusted_proxies", "server.trusted_proxies", ListOf(IpNetwork(), "IP addresses or CIDR networks"), [],
            "proxies whose X-Forwarded-For (and PROXY protocol header) gives the client IP"),
    Setting("proxy_protocol", "server.proxy_protocol", Boolean(), False,
            "read a PROXY protocol v1/v2 header from trusted proxies (HAProxy send-proxy-v2)"),
    Setting("handshake_timeout", "server.handshake_timeout", Number(above=0, unit="seconds"), 5.0,
            "seconds a TCP connection has to complete the HTTP upgrade"),
    Setting("read_buffer_size", "server.read_buffer_size", Integer(2048, unit="bytes"), 2048,
            "initial read buffer per connection (memory per idle connection; grows on demand)"),
    # --- router: the CLASP router itself ----------------------------------------------------
    Setting("name", "router.name", Text("a router name", "NAME"), "clasp-fast",
            "router name sent to clients in WELCOME", layer="router"),
    Setting("hello_timeout", "router.hello_timeout", Number(above=0, unit="seconds"), 10.0,
            "seconds a new connection has to send HELLO"),
    # --- limits: per session --------------------------------------------------------------
    Setting("max_subscriptions_per_session", "limits.max_subscriptions_per_session", Integer(1), 1000,
            "SUBSCRIBE ids per session; beyond it ERROR 429", layer="router"),
    Setting("max_messages_per_second", "limits.max_messages_per_second", Integer(0, zero="unlimited"),
            0, "frames per second per session; beyond it ERROR 429 and the frame is dropped",
            layer="router"),
    Setting("owner_queue_messages", "limits.owner_queue.messages", Integer(1), 100000,
            "writes (SET, PUBLISH, BUNDLE) a worker holds for the state owner while it restarts; "
            "beyond it ERROR 503", layer="router"),
    Setting("owner_queue_bytes", "limits.owner_queue.bytes", Integer(65536, unit="bytes"), 67108864,
            "bytes of writes a worker holds for the state owner while it restarts; beyond it "
            "ERROR 503", layer="router"),
    Setting("owner_queue_session_messages", "limits.owner_queue.session_messages", Integer(1), 10000,
            "writes one session may have held for the restarting state owner; beyond it ERROR 503",
            layer="router"),
    Setting("owner_queue_session_bytes", "limits.owner_queue.session_bytes", Integer(65536, unit="bytes"),
            8388608, "bytes of writes one session may have held for the restarting state owner; "
            "beyond it ERROR 503", layer="router"),
    Setting("overflow_notice_interval", "limits.overflow_notice_interval",
            Number(above=0, unit="seconds"), 10.0,
            "seconds between two ERROR 503 (messages dropped) notices to one session", layer="router"),
    # --- state: params ---------------------------------------------------------------------
    Setting("param_ttl", "state.param_ttl", Number(0, unit="seconds", zero="forever"), 3600.0,
            "seconds a param lives after its last write unless a SET gives a TTL", layer="router"),
    Setting("expiry_sweep_interval", "state.expiry_sweep_interval", Number(above=0, unit="seconds"),
            5.0, "seconds between sweeps that remove expired params", layer="router"),
    # --- persistence: the state journal (docs/persistence.md) ------------------------------
    Setting("persistence", "persistence.enabled", Boolean(), True,
            "keep params in the state file across restarts (--no-persistence: state lives "
            "in memory only)"),
    Setting("state_file", "persistence.path", Text("a file path", "FILE"), "clasp-state.db",
            "SQLite file the owner journals every accepted SET to (relative to the working "
            "directory); one clasp-fast per file"),
    Setting("commit_interval_ms", "persistence.commit_interval_ms",
            Number(0, 1000, unit="ms", zero="commit as soon as the writer is free"), 2.0,
            "the journal writer gathers SETs for at most this long into one transaction "
            "(group commit); QoS-commit ACKs wait for it"),
    Setting("lazy_commit_ms", "persistence.lazy_commit_ms",
            Number(0, 10000, unit="ms", zero="as soon as the writer is free"), 50.0,
            "while no QoS-commit ACK waits, the writer gathers SETs this long into one "
            "transaction (SETs of one address share a row); a QoS fire/confirm SET is on "
            "disk within about this long"),
    Setting("compact_wal_bytes", "persistence.compact_wal_bytes", Integer(65536, unit="bytes"),
            16 * 1024 * 1024,
            "when the write-ahead log passes this size it is folded into the file and "
            "truncated (the file itself holds one row per live param)"),
    # --- gestures -----------------------------------------------------------------------------
    Setting("gesture_interval_ms", "gestures.interval_ms", Number(0, unit="ms", zero="no throttle"),
            16.0, "at most one gesture move per this many ms per (session, address, gesture id)",
            layer="router"),
    # --- cluster: several nodes acting as one router through NATS (docs/cluster.md) -----------
    Setting("cluster_nats", "cluster.nats_url", Nullable(Text("a NATS URL (nats://host:port)", "URL")), None,
            "NATS server(s) that join this node to a cluster of clasp-fast nodes (comma-separated "
            "URLs); unset = a standalone router, NATS not used"),
    Setting("cluster_node", "cluster.node", Nullable(Text("a node name", "NAME")), None,
            "this node's name in the cluster (unset = <hostname>-<port>); unique per node"),
    Setting("cluster_bucket", "cluster.bucket", Text("a JetStream key-value bucket name", "NAME"),
            "clasp-state", "the JetStream key-value bucket that holds the params of the cluster"),
    Setting("cluster_queue_size", "cluster.queue_size", Integer(1, unit="bytes"), 4194304,
            "bytes of cross-node traffic a node queues while NATS is unreachable; beyond it a "
            "writer gets ERROR 503"),
    Setting("cluster_node_timeout", "cluster.node_timeout", Number(above=0, unit="seconds"), 10.0,
            "a node not heard on NATS for this long is taken as dead: the other nodes free the "
            "locks its sessions held (each node announces itself every node_timeout / 5 s)"),
    Setting("cluster_write_behind_ms", "cluster.write_behind_ms", Number(0, unit="ms", zero="no wait"),
            50.0, "a fast SET's state is written to the bucket this long after it went out (the "
            "SETs of the param meanwhile join that one write): shorter narrows the moment in which "
            "nodes can disagree (docs/cluster.md), longer writes the bucket less"),
    # --- security: who may connect and what each client may touch --------------------------
    Setting("security_mode", "security.mode", Choice(("open", "token")), "open",
            "open: anyone who reaches the port may do anything; token: HELLO must carry a token "
            "from security.tokens_file and each action is checked against its scopes "
            "(token when tokens_file is given, unless set open)"),
    Setting("auth_tokens", "security.tokens_file", Nullable(Text("a file path", "FILE")), None,
            "tokens file (one token per line: name, SHA-256 hash, scopes, optional expiry; "
            "make lines with `clasp-fast token new`); re-read on SIGHUP"),
    Setting("max_failed_hellos", "security.max_failed_hellos", Integer(0, zero="never refuse"), 10,
            "failed HELLOs (bad token) from one client IP within failed_hello_window before that "
            "IP is refused"),
    Setting("failed_hello_window", "security.failed_hello_window", Number(above=0, unit="seconds"),
            60.0, "seconds over which failed HELLOs from one client IP are counted"),
    Setting("failed_hello_block", "security.failed_hello_block", Number(above=0, unit="seconds"),
            300.0, "seconds a client IP with too many failed HELLOs is refused (HTTP 429)"),
    # --- metrics, logging -------------------------------------------------------------------
    Setting("ui", "server.ui", Boolean(), True,
            "serve the web inspector at GET / and the status API (GET /status, /status/sessions) "
            "on the WebSocket port"),
    Setting("metrics_port", "metrics.port", Integer(0, 65535, zero="off"), 0,
            "port for Prometheus metrics and the status API (GET /metrics, /status), the "
            "figures of all workers"),
    Setting("metrics_enabled", "metrics.enabled", Boolean(), False,
            "serve GET /metrics on the WebSocket port too (on by itself when metrics.port is set)"),
    Setting("log_level", "logging.level", Choice(("debug", "info", "warning", "error")), "info",
            "what the router logs to stderr"),
    Setting("log_format", "logging.format", Choice(("text", "json")), "text",
            "text lines, or one JSON object a line"),
]

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Rule:
    """A check across settings: ``holds(values)`` must be true, else ``message``."""
    names: tuple[str, ...]
    holds: Callable[[dict], bool]
    message: str


RULES: list[Rule] = [
    Rule(("tls_enabled", "tls_cert", "tls_key"),
         lambda v: not v["tls_enabled"] or (v["tls_cert"] is not None and v["tls_key"] is not None),
         "server.tls.enabled is true but server.tls.cert or server.tls.key is not set; "
         "give both (--tls-cert, --tls-key)"),
    Rule(("tls_client_auth", "tls_ca"),
         lambda v: v["tls_client_auth"] == "none" or v["tls_ca"] is not None,
         "server.tls.client_auth needs server.tls.ca (--tls-ca), the CA client certificates "
         "are checked against"),
    Rule(("proxy_protocol", "trusted_proxies"),
         lambda v: not v["proxy_protocol"] or bool(v["trusted_proxies"]),
         "server.proxy_protocol is true but server.trusted_proxies is empty: name the proxies "
         "that send the PROXY header (--trusted-proxies)"),
    Rule(("port", "workers"),
         lambda v: v["port"] != 0 or v["workers"] == 1,
         "server.port 0 (any free port) cannot be used with server.workers > 1: the workers "
         "must share one port; pick a port (--port)"),
    Rule(("cluster_nats", "workers"),
         lambda v: v["cluster_nats"] is None or 2 <= v["workers"] < MAX_WORKERS,
         "cluster.nats_url needs server.workers from 2 to %d: worker 0 is the node's NATS client "
         "and state owner, its link to NATS takes the last worker slot; use --workers 2 or more"
         % (MAX_WORKERS - 1)),
    Rule(("metrics_port", "workers"),
         lambda v: v["metrics_port"] == 0 or v["metrics_port"] + v["workers"] - 1 <= 65535,
         "metrics.port + server.workers - 1 must be a TCP port (worker i serves metrics on "
         "port + i); pick a lower --metrics-port"),
    Rule(("security_mode", "auth_tokens"),
         lambda v: (v["security_mode"] == "token") == (v["auth_tokens"] is not None),
         "security.mode token needs security.tokens_file (--auth-tokens FILE), and a tokens file "
         "is only read in token mode; give both, or neither for open mode"),
    Rule(("metrics_port", "port"),
         lambda v: v["metrics_port"] == 0 or v["metrics_port"] != v["port"],
         "metrics.port is the WebSocket port (server.port): pick another --metrics-port, or "
         "leave it 0 and set metrics.enabled (--metrics-enabled) to serve /metrics on the "
         "WebSocket port"),
]


def broken_rule(values: dict) -> "Rule | None":
    """The first rule ``values`` ({flat name: value}) break, or None."""
    return next((rule for rule in RULES if not rule.holds(values)), None)
