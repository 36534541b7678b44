"""The settings table: every row reaches its attribute from a flag, a variable and the file,
the config objects keep the names code reads, and bad values are refused with their key."""
from __future__ import annotations

import pytest
import yaml

from clasp_fast.config import Config
from clasp_fast.router.config import RouterConfig
from clasp_fast.settings import BY_NAME, SETTINGS, ConfigError
from clasp_fast.settings.kinds import Boolean, Choice, Integer, IpNetwork, ListOf, Nullable, Number, Text
from clasp_fast.settings.loader import load

# values other settings need for a row's sample value to pass the rules across settings
COMPANIONS = {"tls_enabled": {"tls_cert": "c.pem", "tls_key": "k.pem"},
              "tls_client_auth": {"tls_ca": "ca.pem"},
              "proxy_protocol": {"trusted_proxies": "127.0.0.1"},
              "cluster_nats": {"workers": 2},
              "security_mode": {"auth_tokens": "tokens.txt"}}


def sample(row):
    """A value the row accepts that is not its default."""
    kind = row.kind
    if isinstance(kind, Integer):
        return row.default + 1 if kind.max is None or row.default < kind.max else row.default - 1
    if isinstance(kind, Number):
        return row.default + 1.5
    if isinstance(kind, Boolean):
        return not row.default
    if isinstance(kind, Choice):
        return next(o for o in kind.options if o != row.default)
    if isinstance(kind, Nullable):
        return "some/file.pem"
    if isinstance(kind, ListOf):
        return ["10.0.0.0/8", "::1"] if isinstance(kind.item, IpNetwork) else ["https://a.example", "b"]
    assert isinstance(kind, Text)
    return "127.0.0.1" if row.name == "host" else "sample-name"


def as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def companions(row) -> dict:
    return {n: as_text(v) for n, v in COMPANIONS.get(row.name, {}).items()}


def env_of(values: dict) -> dict:
    return {BY_NAME[n].env: v for n, v in values.items()}


@pytest.mark.parametrize("row", SETTINGS, ids=lambda r: r.name)
def test_every_setting_is_set_by_its_flag(row, tmp_path):
    value = sample(row)
    if isinstance(value, bool):
        argv = [row.flag if value else "--no-" + row.flag[2:]]
    else:
        argv = [row.flag, as_text(value)]
    loaded = load(argv, environ=env_of(companions(row)), cwd=str(tmp_path))
    assert getattr(loaded.config, row.name) == value
    assert loaded.sources[row.name] == f"flag:{row.flag}"


@pytest.mark.parametrize("row", SETTINGS, ids=lambda r: r.name)
def test_every_setting_is_set_by_its_variable(row, tmp_path):
    value = sample(row)
    loaded = load([], environ=env_of({**companions(row), row.name: as_text(value)}), cwd=str(tmp_path))
    assert getattr(loaded.config, row.name) == value
    assert loaded.sources[row.name] == f"env:{row.env}"


@pytest.mark.parametrize("row", SETTINGS, ids=lambda r: r.name)
def test_every_setting_is_set_at_its_key_path_in_the_file(row, tmp_path):
    value = sample(row)
    doc: dict = {}
    node = doc
    *parents, leaf = row.key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    path = tmp_path / "clasp.yaml"
    path.write_text(yaml.safe_dump(doc))
    loaded = load([], environ=env_of(companions(row)), cwd=str(tmp_path))
    assert getattr(loaded.config, row.name) == value
    assert loaded.sources[row.name] == f"file:{path}"


def test_defaults_pass_their_own_checks_and_names_are_unique():
    config = Config()
    assert all(getattr(config, r.name) == r.default for r in SETTINGS)
    for attr in ("name", "flags", "envs", "keys"):
        seen = [x for r in SETTINGS for x in (getattr(r, attr) if attr != "name" else [r.name])]
        assert len(seen) == len(set(seen)), attr


def test_the_config_objects_keep_the_names_code_reads():
    config = Config(host="127.0.0.1", port=0, name="x", max_frame_size=1000)
    assert (config.host, config.port, config.workers, config.trusted_proxies) == ("127.0.0.1", 0, 1, [])
    core = config.router_config()
    assert isinstance(core, RouterConfig)
    assert (core.name, core.max_frame_size, core.buffer_size) == ("x", 1000, 16384)
    assert RouterConfig(name="t", max_frame_size=100, expiry_sweep_interval=1).expiry_sweep_interval == 1.0
    assert not hasattr(core, "host")          # the core sees only its own settings


def test_list_defaults_are_not_shared_between_configs():
    a, b = Config(), Config()
    a.trusted_proxies.append("10.0.0.1")
    assert b.trusted_proxies == [] and BY_NAME["trusted_proxies"].default == []


def test_a_core_setting_out_of_range_names_key_flag_and_variable():
    with pytest.raises(ConfigError) as err:
        RouterConfig(max_frame_size=0)
    msg = str(err.value)
    assert "server.max_frame_size = 0" in msg and "--max-frame-size" in msg
    assert "CLASP_FAST_MAX_FRAME_SIZE" in msg and "from 1 to 65536" in msg


@pytest.mark.parametrize("argv, env, words", [
    (["--port", "70000"], {}, ["flag --port", "server.port = '70000'", "from 0 to 65535"]),
    (["--buffer-size", "lots"], {}, ["--buffer-size", "is not an integer"]),
    ([], {"CLASP_FAST_PING_INTERVAL": "-1"}, ["env CLASP_FAST_PING_INTERVAL", "out of range"]),
    ([], {"CLASP_FAST_COMPRESSION": "maybe"}, ["env CLASP_FAST_COMPRESSION", "true or false"]),
    (["--trusted-proxies", "10.0.0.0/8,not-an-ip"], {}, ["server.trusted_proxies", "'not-an-ip'"]),
    (["--log-level", "loud"], {}, ["logging.level", "one of debug, info, warning, error"]),
    (["--tls-enabled"], {}, ["server.tls.enabled is true", "--tls-cert", "from flag:--tls-enabled"]),
    (["--tls-client-auth", "required"], {}, ["server.tls.client_auth needs server.tls.ca"]),
    (["--port", "0", "--workers", "2"], {}, ["server.port 0", "server.workers"]),
    (["--metrics-port", "7330", "--port", "7330"], {}, ["metrics.port", "server.port"]),
])
def test_bad_flags_and_variables_are_refused_naming_them(argv, env, words, tmp_path):
    with pytest.raises(ConfigError) as err:
        load(argv, environ=env, cwd=str(tmp_path))
    for word in words:
        assert word in str(err.value), str(err.value)


def test_precedence_is_default_file_variable_flag(tmp_path):
    (tmp_path / "clasp.yaml").write_text(
        "server:\n  port: 1001\n  max_connections: 5\n  websocket: {ping_interval: 7}\n")
    env = {"CLASP_FAST_PORT": "1002", "CLASP_FAST_PING_INTERVAL": "8"}
    loaded = load(["--port", "1003"], environ=env, cwd=str(tmp_path))
    c, src = loaded.config, loaded.sources
    assert (c.port, c.ping_interval, c.max_connections, c.pong_timeout) == (1003, 8.0, 5, 10.0)
    assert src["port"] == "flag:--port" and src["ping_interval"] == "env:CLASP_FAST_PING_INTERVAL"
    assert src["max_connections"].startswith("file:") and src["pong_timeout"] == "default"


def test_bind_alias_sets_host_and_cert_and_key_imply_tls(tmp_path):
    loaded = load(["--bind", "127.0.0.2", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
                  environ={}, cwd=str(tmp_path))
    assert loaded.config.host == "127.0.0.2" and loaded.config.tls_enabled
    off = load(["--tls-cert", "c.pem", "--tls-key", "k.pem", "--no-tls-enabled"], environ={},
               cwd=str(tmp_path))
    assert not off.config.tls_enabled


def test_config_validate_applies_the_rules_across_settings():
    assert Config(tls_enabled=False).validate().port == 7330
    with pytest.raises(ConfigError, match="server.tls.enabled is true"):
        Config(tls_enabled=True).validate()
    with pytest.raises(ConfigError, match="trusted_proxies is empty"):
        Config(proxy_protocol=True).validate()
    # the PROXY header comes before the TLS handshake (tests/integration/test_tls.py)
    assert Config(proxy_protocol=True, trusted_proxies=["127.0.0.1"], tls_enabled=True,
                  tls_cert="c.pem", tls_key="k.pem").validate().proxy_protocol
    with pytest.raises(ConfigError, match="cluster.nats_url needs server.workers from 2 to 63"):
        Config(cluster_nats="nats://127.0.0.1:4222").validate()
    assert Config(cluster_nats="nats://127.0.0.1:4222", workers=2).validate().cluster_bucket == "clasp-state"
