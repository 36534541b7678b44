"""Generated from clasp_fast/settings/table.py by `python -m clasp_fast.settings.generate`."""
from typing import Optional

ROUTER_SETTINGS: list

class RouterConfig:
    max_frame_size: int
    buffer_size: int
    slow_consumer_timeout: float
    max_pending_output: int
    output_budget: int
    name: str
    max_subscriptions_per_session: int
    max_messages_per_second: int
    owner_queue_messages: int
    owner_queue_bytes: int
    owner_queue_session_messages: int
    owner_queue_session_bytes: int
    overflow_notice_interval: float
    param_ttl: float
    expiry_sweep_interval: float
    gesture_interval_ms: float
    def __init__(
        self,
        *,
        max_frame_size: int = ...,
        buffer_size: int = ...,
        slow_consumer_timeout: float = ...,
        max_pending_output: int = ...,
        output_budget: int = ...,
        name: str = ...,
        max_subscriptions_per_session: int = ...,
        max_messages_per_second: int = ...,
        owner_queue_messages: int = ...,
        owner_queue_bytes: int = ...,
        owner_queue_session_messages: int = ...,
        owner_queue_session_bytes: int = ...,
        overflow_notice_interval: float = ...,
        param_ttl: float = ...,
        expiry_sweep_interval: float = ...,
        gesture_interval_ms: float = ...,
    ) -> None: ...

class Config:
    port: int
    host: str
    workers: int
    max_connections: int
    max_connections_per_ip: int
    max_frame_size: int
    tls_enabled: bool
    tls_cert: Optional[str]
    tls_key: Optional[str]
    tls_ca: Optional[str]
    tls_client_auth: str
    ping_interval: float
    pong_timeout: float
    compression: bool
    buffer_size: int
    unsent_limit: int
    slow_consumer_timeout: float
    max_pending_output: int
    output_budget: int
    allowed_origins: list[str]
    trusted_proxies: list[str]
    proxy_protocol: bool
    handshake_timeout: float
    read_buffer_size: int
    name: str
    hello_timeout: float
    max_subscriptions_per_session: int
    max_messages_per_second: int
    owner_queue_messages: int
    owner_queue_bytes: int
    owner_queue_session_messages: int
    owner_queue_session_bytes: int
    overflow_notice_interval: float
    param_ttl: float
    expiry_sweep_interval: float
    persistence: bool
    state_file: str
    commit_interval_ms: float
    lazy_commit_ms: float
    compact_wal_bytes: int
    gesture_interval_ms: float
    cluster_nats: Optional[str]
    cluster_node: Optional[str]
    cluster_bucket: str
    cluster_queue_size: int
    cluster_node_timeout: float
    cluster_write_behind_ms: float
    security_mode: str
    auth_tokens: Optional[str]
    max_failed_hellos: int
    failed_hello_window: float
    failed_hello_block: float
    ui: bool
    metrics_port: int
    metrics_enabled: bool
    log_level: str
    log_format: str
    def __init__(
        self,
        *,
        port: int = ...,
        host: str = ...,
        workers: int = ...,
        max_connections: int = ...,
        max_connections_per_ip: int = ...,
        max_frame_size: int = ...,
        tls_enabled: bool = ...,
        tls_cert: Optional[str] = ...,
        tls_key: Optional[str] = ...,
        tls_ca: Optional[str] = ...,
        tls_client_auth: str = ...,
        ping_interval: float = ...,
        pong_timeout: float = ...,
        compression: bool = ...,
        buffer_size: int = ...,
        unsent_limit: int = ...,
        slow_consumer_timeout: float = ...,
        max_pending_output: int = ...,
        output_budget: int = ...,
        allowed_origins: list[str] = ...,
        trusted_proxies: list[str] = ...,
        proxy_protocol: bool = ...,
        handshake_timeout: float = ...,
        read_buffer_size: int = ...,
        name: str = ...,
        hello_timeout: float = ...,
        max_subscriptions_per_session: int = ...,
        max_messages_per_second: int = ...,
        owner_queue_messages: int = ...,
        owner_queue_bytes: int = ...,
        owner_queue_session_messages: int = ...,
        owner_queue_session_bytes: int = ...,
        overflow_notice_interval: float = ...,
        param_ttl: float = ...,
        expiry_sweep_interval: float = ...,
        persistence: bool = ...,
        state_file: str = ...,
        commit_interval_ms: float = ...,
        lazy_commit_ms: float = ...,
        compact_wal_bytes: int = ...,
        gesture_interval_ms: float = ...,
        cluster_nats: Optional[str] = ...,
        cluster_node: Optional[str] = ...,
        cluster_bucket: str = ...,
        cluster_queue_size: int = ...,
        cluster_node_timeout: float = ...,
        cluster_write_behind_ms: float = ...,
        security_mode: str = ...,
        auth_tokens: Optional[str] = ...,
        max_failed_hellos: int = ...,
        failed_hello_window: float = ...,
        failed_hello_block: float = ...,
        ui: bool = ...,
        metrics_port: int = ...,
        metrics_enabled: bool = ...,
        log_level: str = ...,
        log_format: str = ...,
    ) -> None: ...
    def router_config(self) -> RouterConfig: ...
    def validate(self) -> Config: ...
