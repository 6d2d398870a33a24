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

log = get_logger("zkpy.config")


class ConfigError(ValueError):
    pass


ALL_4LW = ("ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "envi", "mntr", "wchs", "wchc", "wchp",
           "dump", "isro", "dirs")


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
class Config:
    tick_time: int = 3000
    init_limit: int = 10
    sync_limit: int = 5
    data_dir: str | None = None
    data_log_dir: str | None = None
    client_port: int = 2181
    client_port_address: str = "127.0.0.1"
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

    @property
    def purge_retain(self) -> int | None:
        """Snapshots autopurge keeps after each new one, or None when autopurge is off."""
        return self.autopurge_snap_retain_count if self.autopurge_purge_interval > 0 else None
    read_only_mode: bool = False
    admin_enable_server: bool = False
    admin_server_port: int = 8080
    admin_server_address: str = "127.0.0.1"
    servers: dict[int, ServerSpec] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    source: str | None = None

    @property
    def min_timeout(self) -> int:
        return self.min_session_timeout if self.min_session_timeout > 0 else 2 * self.tick_time

    @property
    def max_timeout(self) -> int:
        return self.max_session_timeout if self.max_session_timeout > 0 else 20 * self.tick_time

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["four_letter_words"] = sorted(self.four_letter_words)
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
_IGNORED_KEYS = frozenset({
    "electionAlg", "peerType", "standaloneEnabled", "reconfigEnabled", "syncEnabled", "quorumListenOnAllIPs",
    "localSessionsEnabled", "localSessionsUpgradingEnabled", "dynamicConfigFile", "metricsProvider.className",
    "audit.enable", "preAllocSize", "connectToLearnerMasterLimit", "clientCnxnSocket", "serverCnxnFactory",
    "digest.enabled", "closeSessionTxn.enabled", "snapshot.trust.empty", "skipACL", "sslQuorum", "portUnification",
    "secureClientPort", "secureClientPortAddress", "multiAddress.enabled", "initLimit", "syncLimit",
    "admin.commandURL", "admin.idleTimeout", "minSessionTimeout", "maxSessionTimeout", "4lw.commands.whitelist",
    "leaderServes", "cnxTimeout", "electionPortBindRetry", "forceSync", "snapCount",
    "globalOutstandingLimit", "readonlymode.enabled", "autopurge.snapRetainCount",
    "autopurge.purgeInterval", "admin.enableServer", "admin.serverPort", "admin.serverAddress",
})
_KNOWN_PROPERTY_PREFIXES = ("zookeeper.ssl", "zookeeper.authProvider", "zookeeper.metricsProvider", "zookeeper.admin.")
_KNOWN_PROPERTIES = frozenset({
    "zookeeper.DigestAuthenticationProvider.superDigest", "zookeeper.extendedTypesEnabled", "jute.maxbuffer",
    "zookeeper.jute.maxbuffer", "znode.container.checkIntervalMs", "znode.container.maxPerMinute",
    "zookeeper.4lw.commands.whitelist", "readonlymode.enabled", "zookeeper.readonlymode.enabled",
    "zookeeper.globalOutstandingLimit", "zookeeper.snapCount", "zookeeper.forceSync", "zookeeper.skipACL",
    "zookeeper.admin.enableServer", "zookeeper.admin.serverPort", "zookeeper.admin.serverAddress",
    "zookeeper.maxCnxns", "zookeeper.preAllocSize", "zookeeper.electionPortBindRetry",
    "zookeeper.closeSessionTxn.enabled", "zookeeper.digest.enabled", "zookeeper.serverCnxnFactory",
    "zookeeper.sessionRequireClientSASLAuth", "zookeeper.authProvider.1", "java.net.preferIPv4Stack",
    "zookeeper.log.dir", "zookeeper.root.logger", "zookeeper.snapshot.trust.empty", "zookeeper.audit.enable",
    "zookeeper.localSessionsEnabled", "zookeeper.leaderServes", "zookeeper.log.file",
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
    for lineno, key, value in entries:
        try:
            _apply_cfg_key(cfg, key, value, props)
        except ConfigError as e:
            raise ConfigError(f"{path}:{lineno}: {e}") from None
    props.update(overrides or {})
    _apply_properties(cfg, props, set_keys)
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
    elif key in _IGNORED_KEYS:
        pass
    else:
        # QuorumPeerConfig turns any other key into the system property zookeeper.<key>.
        props["zookeeper." + key] = value
        if "zookeeper." + key not in _KNOWN_PROPERTIES and not key.startswith(("ssl", "authProvider")):
            log.warning("unknown setting in zoo.cfg, kept as a system property", key=key, property="zookeeper." + key)


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
        elif key == "zookeeper.maxCnxns" and "maxCnxns" not in cfg_keys:
            cfg.max_cnxns = _int(key, value, 0)
        elif key == "zkpy.wireTrace":
            cfg.wire_trace = _int(key, value, 0)
        elif key in _KNOWN_PROPERTIES or key.startswith(_KNOWN_PROPERTY_PREFIXES):
            pass
        elif key.startswith("zookeeper.") and key[len("zookeeper."):] in cfg_keys:
            pass  # already warned about as a zoo.cfg key
        else:
            log.warning("unknown system property ignored", property=key)


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
