"""Configuration from ZooKeeper's own zoo.cfg format and Java system properties.

As in QuorumPeerConfig, a zoo.cfg key that is not a core setting becomes the system
property `zookeeper.<key>`; `-Dkey=value` arguments set system properties directly.
Unknown settings get a warning; invalid values raise ConfigError (exit code 2 in the CLI).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field

from ..logs import get_logger

from . import jaas
from .quorum_auth import QuorumAuth
from .sasl import SaslSettings
from .settings_table import REFUSED, UNUSED, short_name

log = get_logger("zkpy.config")


class ConfigError(ValueError):
    pass


ALL_INTERFACES = "0.0.0.0"


ALL_4LW = ("ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "envi", "mntr", "wchs", "wchc", "wchp",
           "dump", "isro", "dirs", "gtmk", "stmk", "hash")


@dataclass
class ServerSpec:
    sid: int
    host: str
    peer_port: int
    election_port: int
    role: str = "participant"
    client_host: str | None = None
    client_port: int | None = None


@dataclass
class SslConfig:
    """The client port's `ssl.*` settings (zoo.cfg `ssl.x` is the property `zookeeper.ssl.x`);
    server/tls.py reads the stores and builds the SSL context from them."""

    keystore_location: str | None = None
    keystore_password: str | None = None
    keystore_type: str | None = None  # JKS, PKCS12, PEM; None: from the file name, as ZooKeeper
    truststore_location: str | None = None
    truststore_password: str | None = None
    truststore_type: str | None = None
    client_auth: str = "need"  # none, want, need (ZooKeeper's default: need)
    hostname_verification: bool = True  # ssl.quorum.hostnameVerification: a dialled peer's certificate names its host
    protocol: str = "TLSv1.2"  # ZooKeeper 3.8's default; enabled alone unless enabledProtocols says more
    enabled_protocols: tuple[str, ...] = ()
    ciphersuites: tuple[str, ...] = ()
    auth_provider: str = "x509"
    x509_super_user: str | None = None
    handshake_timeout_ms: int = 10000  # zkpy.ssl.handshakeTimeoutMs (Netty's SslHandler: 10 s)


@dataclass
class Config:
    tick_time: int = 3000
    init_limit: int = 10
    sync_limit: int = 5
    data_dir: str | None = None
    data_log_dir: str | None = None
    client_port: int | None = 2181  # None: no plaintext port (a zoo.cfg with secureClientPort only)
    client_port_address: str = "127.0.0.1"  # config-less `zkpy serve`; a zoo.cfg without the key: all (load)
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None  # None: clientPortAddress
    ssl: SslConfig = field(default_factory=SslConfig)
    ssl_quorum: bool = False  # sslQuorum: peer links are mutual TLS with the ssl.quorum.* stores
    quorum_ssl: SslConfig = field(default_factory=SslConfig)
    max_client_cnxns: int = 60
    max_cnxns: int = 0  # all clients together (ZooKeeper's maxCnxns); 0: no limit
    min_session_timeout: int = -1
    max_session_timeout: int = -1
    global_outstanding_limit: int = 1000
    four_letter_words: frozenset[str] = frozenset({"srvr"})
    extended_types: bool = False
    super_digest: str | None = None
    jute_max_buffer: int = 0xFFFFF
    container_check_interval_ms: int = 60000
    container_max_per_minute: int = 10000
    snap_count: int = 100000
    force_sync: bool = True
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval: int = 0
    wire_trace: int = 0  # entries of the client wire trace ring (zkpy.wireTrace); 0: no trace
    quorum_listen_on_all_ips: bool = False  # peer listener on 0.0.0.0, not this member's server-line host

    @property
    def purge_retain(self) -> int | None:
        """Snapshots autopurge keeps after each new one, or None when autopurge is off."""
        return self.autopurge_snap_retain_count if self.autopurge_purge_interval > 0 else None
    read_only_mode: bool = False
    admin_enable_server: bool = False
    admin_server_port: int = 8080
    admin_server_address: str = "127.0.0.1"
    admin_command_url: str = "/commands"
    # metricsProvider.*: Prometheus metrics are served only when the class names ZooKeeper's provider.
    metrics_provider_class: str | None = None
    metrics_http_host: str = "127.0.0.1"
    metrics_http_port: int = 7000
    servers: dict[int, ServerSpec] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    # SASL and authentication (the security block below): None without a JAAS `Server` section.
    sasl: SaslSettings | None = None
    auth_providers: frozenset[str] = frozenset()  # schemes of authProvider.N beyond ip and digest
    enforce_auth_schemes: frozenset[str] = frozenset()  # enforce.auth.schemes when enforcement is on
    quorum_auth: QuorumAuth | None = None  # quorum.auth.enableSasl=true: peer links authenticate

    @property
    def sasl_required(self) -> bool:
        """sessionRequireClientSASLAuth, or enforce.auth with the sasl scheme (AuthenticationHelper)."""
        return "sasl" in self.enforce_auth_schemes

    @property
    def min_timeout(self) -> int:
        return self.min_session_timeout if self.min_session_timeout > 0 else 2 * self.tick_time

    @property
    def max_timeout(self) -> int:
        return self.max_session_timeout if self.max_session_timeout > 0 else 20 * self.tick_time

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["four_letter_words"] = sorted(self.four_letter_words)
        d["sasl"] = None if self.sasl is None else {"users": sorted(self.sasl.users),
                                                     "super_users": sorted(self.sasl.super_users)}
        qa = self.quorum_auth  # no passwords
        d["quorum_auth"] = None if qa is None else {"learner_user": qa.learner_user, "server_require": qa.server_require,
                                                    "server_users": sorted(u for u, _ in qa.server_users)}
        d["properties"] = {k: ("****" if "password" in k.lower() else v) for k, v in self.properties.items()}
        return d


def _int(key: str, value: str, lo: int | None = None) -> int:
    try:
        v = int(value.strip())
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an integer") from None
    if lo is not None and v < lo:
        raise ConfigError(f"{key}: {v} is below the minimum {lo}")
    return v


def _bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0"):
        return False
    raise ConfigError(f"{key}: {value!r} is not a boolean")


def _whitelist(value: str) -> frozenset[str]:
    words = {w.strip() for w in value.split(",") if w.strip()}
    if "*" in words:
        return frozenset(ALL_4LW)
    unknown = words - set(ALL_4LW)
    for w in sorted(unknown):
        log.warning("unknown four-letter word in whitelist", word=w)
    return frozenset(words & set(ALL_4LW))


_SERVER_RE = re.compile(r"^server\.(\d+)$")

# Core zoo.cfg keys handled by name; anything else becomes the property zookeeper.<key>.
# zoo.cfg keys that are not properties and that zkpy handles elsewhere (TLS: its own block; peerType:
# the role of the server.N line).  Every other key becomes the property zookeeper.<key>.
_IGNORED_KEYS = frozenset({
    "peerType",
})
# Properties read elsewhere: the TLS block reads zookeeper.ssl.* (and the peer links' ssl.quorum.*),
# the admin and metrics endpoints theirs.
_KNOWN_PROPERTY_PREFIXES = ("zookeeper.metricsProvider", "zookeeper.admin.")
# Properties read below, or by the harnesses' logging (log4j's), or by the security block.
_KNOWN_PROPERTIES = frozenset({
    "zookeeper.DigestAuthenticationProvider.superDigest", "zookeeper.extendedTypesEnabled", "jute.maxbuffer",
    "zookeeper.jute.maxbuffer", "znode.container.checkIntervalMs", "znode.container.maxPerMinute",
    "zookeeper.4lw.commands.whitelist", "readonlymode.enabled", "zookeeper.readonlymode.enabled",
    "zookeeper.globalOutstandingLimit", "zookeeper.snapCount", "zookeeper.forceSync",
    "zookeeper.admin.enableServer", "zookeeper.maxCnxns", "java.net.preferIPv4Stack",
    "zookeeper.log.dir", "zookeeper.root.logger", "zookeeper.log.file",
    "zookeeper.admin.serverPort", "zookeeper.admin.serverAddress",
    # Client-side settings (ZKClientConfig), and port unification's detection timeout: nothing to do here.
    "zookeeper.ssl.hostnameVerification", "zookeeper.ssl.handshakeDetectionTimeoutMillis",
})


def _parse_server(sid: int, value: str) -> ServerSpec:
    """server.N=host:peerPort:electionPort[:participant|observer][;[clientHost:]clientPort]"""
    quorum, _, client = value.partition(";")
    parts = quorum.strip().split(":")
    if len(parts) < 3:
        raise ConfigError(f"server.{sid}: expected host:peerPort:electionPort, got {value!r}")
    role = "participant"
    if len(parts) >= 4:
        role = parts[3].strip()
        if role not in ("participant", "observer"):
            raise ConfigError(f"server.{sid}: role must be participant or observer, got {role!r}")
    spec = ServerSpec(sid, parts[0].strip(), _int(f"server.{sid}", parts[1], 1), _int(f"server.{sid}", parts[2], 1), role)
    if client.strip():
        host, sep, port = client.strip().rpartition(":")
        spec.client_port = _int(f"server.{sid} client port", port, 1)
        spec.client_host = host if sep else None
    return spec


def load(path: str | None, overrides: dict[str, str] | None = None) -> Config:
    """Read zoo.cfg at `path` (or defaults when None) plus `-D` system properties."""
    cfg = Config(source=path)
    props: dict[str, str] = {}
    entries: list[tuple[str, str]] = []
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path} is not a text file (byte {e.start} is not UTF-8): "
                              "give the path of a zoo.cfg") from None
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in "#!":
                continue
            m = re.match(r"^([^=:\s]+)\s*[=:]\s*(.*)$", line)
            if m is None:
                raise ConfigError(f"{path}:{lineno}: cannot parse {raw!r}")
            entries.append((lineno, m.group(1), m.group(2).strip()))
    set_keys = {k for _, k, _ in entries}
    if "secureClientPort" in set_keys and "clientPort" not in set_keys:
        cfg.client_port = None  # as ZooKeeper: TLS only
    if path is not None and "clientPortAddress" not in set_keys:
        cfg.client_port_address = ALL_INTERFACES  # as ZooKeeper: a zoo.cfg without it serves on every interface
    for lineno, key, value in entries:
        try:
            _apply_cfg_key(cfg, key, value, props)
        except ConfigError as e:
            raise ConfigError(f"{path}:{lineno}: {e}") from None
    props.update(overrides or {})
    _apply_properties(cfg, props, set_keys)
    _apply_security(cfg, props)
    _check_server_addresses(cfg)
    cfg.properties = props
    if cfg.min_timeout > cfg.max_timeout:
        raise ConfigError(f"minSessionTimeout {cfg.min_timeout} must not be larger than maxSessionTimeout {cfg.max_timeout}")
    if cfg.data_log_dir is None:
        cfg.data_log_dir = cfg.data_dir
    return cfg


def _apply_cfg_key(cfg: Config, key: str, value: str, props: dict[str, str]) -> None:
    m = _SERVER_RE.match(key)
    if m:
        sid = int(m.group(1))
        if sid in cfg.servers:
            raise ConfigError(f"server.{sid} is given twice: keep one line per server")
        cfg.servers[sid] = _parse_server(sid, value)
        return
    _refuse_unusable_server_line(key)
    if key == "tickTime":
        cfg.tick_time = _int(key, value, 1)
    elif key == "initLimit":
        cfg.init_limit = _int(key, value, 1)
    elif key == "syncLimit":
        cfg.sync_limit = _int(key, value, 1)
    elif key == "dataDir":
        cfg.data_dir = value
    elif key == "dataLogDir":
        cfg.data_log_dir = value
    elif key == "clientPort":
        cfg.client_port = _int(key, value, 0)
        if cfg.client_port > 65535:
            raise ConfigError(f"clientPort: {value} is not a port")
    elif key == "clientPortAddress":
        cfg.client_port_address = value
    elif key == "secureClientPort":
        cfg.secure_client_port = _int(key, value, 0)
        if cfg.secure_client_port > 65535:
            raise ConfigError(f"secureClientPort: {value} is not a port")
    elif key == "secureClientPortAddress":
        cfg.secure_client_port_address = value
    elif key == "quorumListenOnAllIPs":
        cfg.quorum_listen_on_all_ips = _bool(key, value)
    elif key == "maxClientCnxns":
        cfg.max_client_cnxns = _int(key, value, 0)
    elif key == "maxCnxns":
        cfg.max_cnxns = _int(key, value, 0)
    elif key == "minSessionTimeout":
        cfg.min_session_timeout = _int(key, value)
    elif key == "maxSessionTimeout":
        cfg.max_session_timeout = _int(key, value)
    elif key == "globalOutstandingLimit":
        cfg.global_outstanding_limit = _int(key, value, 1)
    elif key == "4lw.commands.whitelist":
        cfg.four_letter_words = _whitelist(value)
    elif key == "snapCount":
        cfg.snap_count = _int(key, value, 2)
    elif key == "forceSync":
        cfg.force_sync = _bool(key, value)
    elif key == "autopurge.snapRetainCount":
        cfg.autopurge_snap_retain_count = max(3, _int(key, value, 0))
    elif key == "autopurge.purgeInterval":
        cfg.autopurge_purge_interval = _int(key, value, 0)
    elif key == "readonlymode.enabled":
        cfg.read_only_mode = _bool(key, value)
    elif key == "admin.enableServer":
        cfg.admin_enable_server = _bool(key, value)
    elif key == "admin.serverPort":
        cfg.admin_server_port = _int(key, value, 0)
    elif key == "admin.serverAddress":
        cfg.admin_server_address = value
    elif key == "admin.commandURL":
        cfg.admin_command_url = "/" + value.strip().strip("/")
    elif key.startswith("metricsProvider."):
        _apply_metrics_key(cfg, key, value)
    elif key in _IGNORED_KEYS:
        pass
    else:
        # QuorumPeerConfig turns any other key into the system property zookeeper.<key>.
        props["zookeeper." + key] = value
        if "zookeeper." + key not in _KNOWN_PROPERTIES and not key.startswith("ssl") and not _security_setting(key):
            log.warning("unknown setting in zoo.cfg, kept as a system property", key=key, property="zookeeper." + key)


PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
DEFAULT_METRICS_PROVIDER = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"


def _apply_metrics_key(cfg: Config, key: str, value: str) -> None:
    """metricsProvider.className/httpHost/httpPort; ZooKeeper's other provider keys (exportJvmInfo,
    numWorkerThreads, ...) tune its Java exporter and have no meaning here."""
    if key == "metricsProvider.className":
        if value not in (PROMETHEUS_PROVIDER, DEFAULT_METRICS_PROVIDER):
            raise ConfigError(f"{key}: {value!r} is not a provider zkpy has: use {PROMETHEUS_PROVIDER}")
        cfg.metrics_provider_class = value
    elif key == "metricsProvider.httpHost":
        cfg.metrics_http_host = value
    elif key == "metricsProvider.httpPort":
        cfg.metrics_http_port = _int(key, value, 0)
    else:
        log.warning("metricsProvider setting has no effect in zkpy", key=key)


def _apply_properties(cfg: Config, props: dict[str, str], cfg_keys: set[str]) -> None:
    for key, value in props.items():
        if key == "zookeeper.DigestAuthenticationProvider.superDigest":
            if len(value.split(":")) != 2:
                raise ConfigError(f"{key}: expected user:base64digest")
            cfg.super_digest = value
        elif key == "zookeeper.extendedTypesEnabled":
            cfg.extended_types = _bool(key, value)
        elif key in ("jute.maxbuffer", "zookeeper.jute.maxbuffer"):
            cfg.jute_max_buffer = _int(key, value, 1024)
        elif key == "znode.container.checkIntervalMs":
            cfg.container_check_interval_ms = _int(key, value, 1)
        elif key == "znode.container.maxPerMinute":
            cfg.container_max_per_minute = _int(key, value, 1)
        elif key == "zookeeper.4lw.commands.whitelist" and "4lw.commands.whitelist" not in cfg_keys:
            cfg.four_letter_words = _whitelist(value)
        elif key in ("readonlymode.enabled", "zookeeper.readonlymode.enabled"):
            cfg.read_only_mode = _bool(key, value)
        elif key == "zookeeper.globalOutstandingLimit":
            cfg.global_outstanding_limit = _int(key, value, 1)
        elif key == "zookeeper.snapCount":
            cfg.snap_count = _int(key, value, 2)
        elif key == "zookeeper.forceSync":
            cfg.force_sync = _bool(key, value)
        elif key == "zookeeper.admin.enableServer":
            cfg.admin_enable_server = _bool(key, value)
        elif key in ("zookeeper.admin.serverPort", "zookeeper.admin.serverAddress", "zookeeper.admin.commandURL"):
            # -Dzookeeper.admin.X is ZooKeeper's other spelling of zoo.cfg's admin.X (which wins).
            if key[len("zookeeper."):] not in cfg_keys:
                _apply_cfg_key(cfg, key[len("zookeeper."):], value, {})
        elif key == "zookeeper.maxCnxns" and "maxCnxns" not in cfg_keys:
            cfg.max_cnxns = _int(key, value, 0)
        elif key == "zkpy.wireTrace":
            cfg.wire_trace = _int(key, value, 0)
        elif _is_client_ssl_key(key):
            _apply_ssl_property(cfg.ssl, key, value)
        elif key == "zookeeper.sslQuorum":
            cfg.ssl_quorum = _bool("sslQuorum", value)
        elif key == "zookeeper.ssl.quorum.hostnameVerification":
            cfg.quorum_ssl.hostname_verification = _bool("ssl.quorum.hostnameVerification", value)
        elif key.startswith("zookeeper.ssl.quorum."):
            # The same keys as the client port's, one level down (X509Util's quorum prefix).
            _apply_ssl_property(cfg.quorum_ssl, "zookeeper.ssl." + key[len("zookeeper.ssl.quorum."):], value)
        elif key in _KNOWN_PROPERTIES or key.startswith(_KNOWN_PROPERTY_PREFIXES) or _security_setting(key):
            pass
        elif key.startswith("zookeeper.") and key[len("zookeeper."):] in cfg_keys:
            pass  # already warned about as a zoo.cfg key
        else:
            log.warning("unknown system property ignored", property=key)


_SSL_OTHER_KEYS = frozenset({"zookeeper.X509AuthenticationProvider.superUser", "zkpy.ssl.handshakeTimeoutMs"})
_SSL_STRINGS = {
    "keyStore.location": "keystore_location", "keyStore.password": "keystore_password",
    "keyStore.type": "keystore_type", "trustStore.location": "truststore_location",
    "trustStore.password": "truststore_password", "trustStore.type": "truststore_type",
}


def _is_client_ssl_key(key: str) -> bool:
    return key in _SSL_OTHER_KEYS or (key.startswith("zookeeper.ssl.") and key not in _KNOWN_PROPERTIES
                                      and not key.startswith("zookeeper.ssl.quorum."))


def _apply_ssl_property(ssl: SslConfig, key: str, value: str) -> None:
    """zookeeper.ssl.* (X509Util's client-port keys) and the x509 provider's superUser."""
    name = key.removeprefix("zookeeper.ssl.")
    if name in _SSL_STRINGS:
        setattr(ssl, _SSL_STRINGS[name], value)
    elif name in ("keyStore.passwordPath", "trustStore.passwordPath"):
        try:
            with open(value, encoding="utf-8") as f:
                secret = f.read().strip()
        except OSError as e:
            raise ConfigError(f"{key} {value}: {e.strerror}") from None
        setattr(ssl, _SSL_STRINGS[name.replace("Path", "")], secret)
    elif name == "clientAuth":
        if value.strip().lower() not in ("none", "want", "need"):
            raise ConfigError(f"{key}: {value!r} is not one of none, want, need")
        ssl.client_auth = value.strip().lower()
    elif name == "protocol":
        ssl.protocol = value.strip()
    elif name == "enabledProtocols":
        ssl.enabled_protocols = tuple(p.strip() for p in value.split(",") if p.strip())
    elif name == "ciphersuites":
        ssl.ciphersuites = tuple(c.strip() for c in value.split(",") if c.strip())
    elif name == "authProvider":
        if value.strip() != "x509":
            raise ConfigError(f"{key}: {value!r}: zkpy has the x509 provider only (ssl.authProvider=x509)")
    elif key == "zookeeper.X509AuthenticationProvider.superUser":
        ssl.x509_super_user = value
    elif key == "zkpy.ssl.handshakeTimeoutMs":
        ssl.handshake_timeout_ms = _int(key, value, 1)
    elif name in ("crl", "ocsp"):
        if _bool(key, value):
            raise ConfigError(f"{key}=true: zkpy does not check certificate revocation; remove the setting "
                              "rather than run without the check it asks for")
    elif name == "context.supplier.class":
        raise ConfigError(f"{key}: a Java SSLContext supplier cannot run in zkpy; "
                          "give ssl.keyStore.* and ssl.trustStore.* instead")
    else:
        log.warning("unknown ssl setting ignored", property=key)


def _refuse_unusable_server_line(key: str) -> None:
    """A line meant as a server line that is not one would leave a member out of the ensemble
    (ZooKeeper refuses `server.x`, and a typo such as `servr.2` would only be a property)."""
    prefix, dot, suffix = key.partition(".")
    if prefix == "server" and dot:
        raise ConfigError(f"{key!r} is not a server line: the id after 'server.' must be a number "
                          "(server.1=host:2888:3888)")
    if prefix in ("group", "weight") and suffix.isdigit():
        raise ConfigError(f"{key!r}: hierarchical quorums (group.N, weight.N) are not supported by zkpy; "
                          "remove the group and weight lines")
    if suffix.isdigit() and difflib.SequenceMatcher(None, prefix.lower(), "server").ratio() >= 0.6:
        raise ConfigError(f"{key!r} is not a known setting: did you mean server.{suffix}?")


def _check_server_addresses(cfg: Config) -> None:
    """Two members on one peer or election address cannot both listen: refuse it here, with
    the lines to fix, instead of a member that never joins."""
    seen: dict[tuple[str, int], str] = {}
    for sid, spec in sorted(cfg.servers.items()):
        for kind, port in (("peer", spec.peer_port), ("election", spec.election_port)):
            where = f"server.{sid} {kind} port"
            other = seen.setdefault((spec.host, port), where)
            if other != where:
                raise ConfigError(f"{cfg.source or 'zoo.cfg'}: {other} and {where} are both "
                                  f"{spec.host}:{port}: give every server its own peer and election ports")


# ------------------------------------------------------------ security: SASL, auth providers, enforce.auth,
# and the settings zkpy refuses or does not use (settings_table.py)

_DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"
_PROVIDER_SCHEMES = {  # authProvider.N classes -> the scheme they add (None: built in anyway)
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider": "sasl",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider": None,
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider": None,
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider": "x509",  # the TLS block's
}
_JAAS = "java.security.auth.login.config"
_SASL_SECTION = "zookeeper.sasl.serverconfig"
_QUORUM_AUTH = "zookeeper.quorum.auth."  # zoo.cfg quorum.auth.* (QuorumPeerConfig reads them from zoo.cfg)
_SECURITY_PROPERTIES = frozenset({
    _JAAS, _SASL_SECTION, "zookeeper.sessionRequireClientSASLAuth", "zookeeper.enforce.auth.enabled",
    "zookeeper.enforce.auth.schemes", "zookeeper.SASLAuthenticationProvider.superPassword",
    "zookeeper.sslQuorum",
    *(_QUORUM_AUTH + k for k in ("enableSasl", "learnerRequireSasl", "serverRequireSasl",
                                 "learner.saslLoginContext", "server.saslLoginContext")),
})


def _security_setting(key: str) -> bool:
    """A zoo.cfg key or property that this block reads or the settings table classifies."""
    name = short_name(key)
    return (key in _SECURITY_PROPERTIES or "zookeeper." + key in _SECURITY_PROPERTIES or name in REFUSED
            or name in UNUSED or name.startswith("authProvider.") or name.split(".")[0] == "superUser")


def _apply_security(cfg: Config, props: dict[str, str]) -> None:
    _refuse_or_warn(props)
    cfg.auth_providers = _auth_providers(props)
    cfg.sasl = _sasl_settings(props)
    cfg.enforce_auth_schemes = _enforced_schemes(props, cfg)
    cfg.quorum_auth = _quorum_auth(props, cfg)
    if cfg.ssl_quorum:
        for what in ("keyStore", "trustStore"):
            if not getattr(cfg.quorum_ssl, what.lower() + "_location"):
                raise ConfigError(f"sslQuorum=true needs ssl.quorum.{what}.location: peer links are mutual TLS")


def _quorum_auth(props: dict[str, str], cfg: Config) -> QuorumAuth | None:
    """quorum.auth.* and the JAAS QuorumLearner / QuorumServer sections (QuorumPeerConfig's
    checks: a *RequireSasl needs enableSasl, serverRequireSasl needs learnerRequireSasl).
    A zkpy learner always authenticates and checks the server's proof once enableSasl is on,
    so learnerRequireSasl=false changes nothing; serverRequireSasl=false (ZooKeeper's rolling
    upgrade) accepts learners that do not authenticate, with a warning per link."""
    def flag(name: str) -> bool:
        return _bool("quorum.auth." + name, props.get(_QUORUM_AUTH + name, "false"))

    enabled, learner_req, server_req = flag("enableSasl"), flag("learnerRequireSasl"), flag("serverRequireSasl")
    for name, value in (("learnerRequireSasl", learner_req), ("serverRequireSasl", server_req)):
        if value and not enabled:
            raise ConfigError(f"quorum.auth.enableSasl is disabled, so cannot enable quorum.auth.{name}")
    if server_req and not learner_req:
        raise ConfigError("quorum.auth.learnerRequireSasl is disabled, so cannot enable quorum.auth.serverRequireSasl")
    if not enabled:
        return None
    path = props.get(_JAAS)
    if not path:
        raise ConfigError(f"quorum.auth.enableSasl=true needs {_JAAS} naming a JAAS file with QuorumServer "
                          "and QuorumLearner sections")
    try:
        sections = jaas.read(path)
    except jaas.JaasError as e:
        raise ConfigError(f"{_JAAS}: {e}") from None
    learner = _digest_options(path, sections, props.get(_QUORUM_AUTH + "learner.saslLoginContext", "QuorumLearner"))
    server = _digest_options(path, sections, props.get(_QUORUM_AUTH + "server.saslLoginContext", "QuorumServer"))
    if "username" not in learner or "password" not in learner:
        raise ConfigError(f"{path}: the QuorumLearner section needs username=\"...\" and password=\"...\"")
    users = tuple((k[len("user_"):], v) for k, v in server.items() if k.startswith("user_"))
    if not users:
        raise ConfigError(f"{path}: the QuorumServer section names no learner (user_<name>=\"<password>\")")
    return QuorumAuth(learner["username"], learner["password"], users, server_req,
                      tuple((sid, spec.host) for sid, spec in cfg.servers.items()))


def _digest_options(path: str, sections: dict[str, list[jaas.LoginModule]], section: str) -> dict[str, str]:
    if section not in sections:
        raise ConfigError(f"{path} has no JAAS section named {section!r} (needed by quorum.auth.enableSasl)")
    options: dict[str, str] = {}
    for module in sections[section]:
        if module.class_name != _DIGEST_LOGIN_MODULE:
            raise ConfigError(f"{path}: section {section}: login module {module.class_name} is not supported: "
                              f"zkpy's quorum authentication uses {_DIGEST_LOGIN_MODULE}")
        options.update(module.options)
    return options


def _refuse_or_warn(props: dict[str, str]) -> None:
    """Stop at a setting whose value zkpy cannot honour without being less secure or durable
    than asked; warn once about each tuning knob it does not use."""
    warned = set()
    for key, value in props.items():
        name = short_name(key)
        refused = REFUSED.get(name)
        if refused is not None and refused[0](value):
            raise ConfigError(f"{name}={value} is not supported: {refused[1]}")
        if name in UNUSED and name not in warned:
            warned.add(name)
            log.warning("setting not used by zkpy", setting=name, value=value, why=UNUSED[name])


def _auth_providers(props: dict[str, str]) -> frozenset[str]:
    """The schemes authProvider.N adds; an unknown class stops the start (ZooKeeper would load it)."""
    schemes = set()
    for key, value in props.items():
        if not short_name(key).startswith("authProvider."):
            continue
        cls = value.strip()
        if cls not in _PROVIDER_SCHEMES:
            known = ", ".join(c.rpartition(".")[2] for c in _PROVIDER_SCHEMES)
            raise ConfigError(f"{short_name(key)}={cls}: zkpy has no such authentication provider (it has {known})")
        if _PROVIDER_SCHEMES[cls]:
            schemes.add(_PROVIDER_SCHEMES[cls])
    return frozenset(schemes)


def _sasl_settings(props: dict[str, str]) -> SaslSettings | None:
    """DIGEST-MD5 users from the JAAS file's `Server` section (ServerCnxnFactory.configureSaslLogin:
    a file that cannot be read stops the start; a file without the section means no SASL)."""
    path = props.get(_JAAS)
    section = props.get(_SASL_SECTION, "Server")
    if not path:
        if _SASL_SECTION in props:
            raise ConfigError(f"{_SASL_SECTION}={section} is set but {_JAAS} names no JAAS file")
        return None
    try:
        sections = jaas.read(path)
    except jaas.JaasError as e:
        raise ConfigError(f"{_JAAS}: {e}") from None
    modules = sections.get(section)
    if modules is None:
        if _SASL_SECTION in props:
            raise ConfigError(f"{path} has no JAAS section named {section!r} ({_SASL_SECTION})")
        return None
    users: dict[str, str] = {}
    for module in modules:
        if module.class_name != _DIGEST_LOGIN_MODULE:
            raise ConfigError(f"{path}: section {section}: login module {module.class_name} is not supported: "
                              f"zkpy's SASL is DIGEST-MD5 with {_DIGEST_LOGIN_MODULE}")
        users.update({k[len("user_"):]: v for k, v in module.options.items() if k.startswith("user_")})
    super_users = frozenset(v for k, v in props.items()
                            if k == "zookeeper.superUser" or k.startswith("zookeeper.superUser."))
    return SaslSettings(users, super_users, props.get("zookeeper.SASLAuthenticationProvider.superPassword"))


def _enforced_schemes(props: dict[str, str], cfg: Config) -> frozenset[str]:
    """AuthenticationHelper: sessionRequireClientSASLAuth means enforce.auth with the sasl scheme;
    every enforced scheme must have its provider."""
    key = "zookeeper.sessionRequireClientSASLAuth"
    if _bool(key, props.get(key, "false")):
        schemes = {"sasl"}
    else:
        key = "zookeeper.enforce.auth.enabled"
        if not _bool(key, props.get(key, "false")):
            return frozenset()
        schemes = {s.strip() for s in props.get("zookeeper.enforce.auth.schemes", "").split(",") if s.strip()}
        if not schemes:
            raise ConfigError("enforce.auth.enabled=true needs enforce.auth.schemes (for example sasl or digest)")
    missing = sorted(schemes - {"ip", "digest"} - cfg.auth_providers)
    if missing:
        raise ConfigError(f"enforce.auth.schemes: authentication scheme {missing[0]} is not available: add its "
                          "authProvider.N (sasl: org.apache.zookeeper.server.auth.SASLAuthenticationProvider)")
    if "sasl" in schemes and cfg.sasl is None:
        raise ConfigError(f"SASL authentication is required but there are no SASL users: give {_JAAS} "
                          "a JAAS file with a Server section (DigestLoginModule, user_<name>=\"<password>\")")
    return frozenset(schemes)


def member_id(cfg: Config) -> int:
    """This member's id from `dataDir/myid`, checked against the server lines."""
    path = os.path.join(cfg.data_dir or ".", "myid")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().strip()
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: write this server's id (the N of its server.N line) into it") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    if not text.isdigit():
        raise ConfigError(f"{path} holds {text[:40]!r}, not a server id: write the N of this server's server.N line")
    sid = int(text)
    if sid not in cfg.servers:
        listed = ", ".join(f"server.{s}" for s in sorted(cfg.servers))
        raise ConfigError(f"{path} says {sid}, but {cfg.source or 'zoo.cfg'} has no server.{sid} line "
                          f"(it has {listed}): fix myid or add the line")
    return sid


def check_data_dir(cfg: Config) -> None:
    """dataDir (and dataLogDir) must be directories this process can create and write."""
    for key, path in (("dataDir", cfg.data_dir), ("dataLogDir", cfg.data_log_dir)):
        if not path:
            continue
        sub = os.path.join(path, "version-2")
        try:
            os.makedirs(sub, exist_ok=True)
            probe = os.path.join(sub, ".zkpy-write-check")
            with open(probe, "wb"):
                pass
            os.unlink(probe)
        except OSError as e:
            raise ConfigError(f"{key} {path}: {e.strerror or e}: give a directory zkpy can create and write "
                              f"({cfg.source or 'zoo.cfg'})") from None


def parse_properties(args: list[str]) -> dict[str, str]:
    """['-Dk=v', ...] -> {k: v}; raises ConfigError on anything else."""
    out = {}
    for a in args:
        if not a.startswith("-D") or "=" not in a:
            raise ConfigError(f"expected -Dkey=value, got {a!r}")
        k, _, v = a[2:].partition("=")
        out[k] = v
    return out


def default_data_dir() -> str:
    return os.path.join(os.getcwd(), "zkpy-data")
