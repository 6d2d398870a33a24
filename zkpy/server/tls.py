"""TLS for clients (ZooKeeper's secureClientPort): the SSL context from the `ssl.*` settings,
the key stores ZooKeeper reads (JKS, PKCS12, PEM), the listener, and x509 identities.

The key stores are read with well-kept libraries (`pyjks`, `cryptography`: the `tls` extra)
and handed to Python's `ssl` module as PEM.  The TLS listener accepts with a small protocol
that pauses the socket and runs `loop.start_tls`: a handshake that fails or outlasts
`zkpy.ssl.handshakeTimeoutMs` raises there, so each one is logged and closed (asyncio's own
`create_server(ssl=...)` drops them without a word).  Once the handshake is done the
connection is the same `ClientConnection` class as on the plaintext port, which stays as it
was: TLS costs plaintext clients nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import ssl
import tempfile
from typing import TYPE_CHECKING, Any, Callable

from ..logs import get_logger
from ..tree.acl import SUPER
from .config import Config, ConfigError, SslConfig

if TYPE_CHECKING:
    from .connection import ClientConnection

log = get_logger("zkpy.tls")

_EXTRA = "TLS needs zkpy's optional extra 'tls': pip install 'zkpy[tls]'"
_STORE_TYPES = {".jks": "JKS", ".p12": "PKCS12", ".pfx": "PKCS12", ".pem": "PEM", ".crt": "PEM"}
_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
# The attribute types RFC 2253 names by keyword: CN, C, L, ST, O, OU, STREET, DC, UID.
_RFC2253_TYPES = frozenset({"2.5.4.3", "2.5.4.6", "2.5.4.7", "2.5.4.8", "2.5.4.10", "2.5.4.11", "2.5.4.9",
                            "0.9.2342.19200300.100.1.25", "0.9.2342.19200300.100.1.1"})
_VERIFY = {"none": ssl.CERT_NONE, "want": ssl.CERT_OPTIONAL, "need": ssl.CERT_REQUIRED}


def _libraries() -> tuple[Any, Any, Any]:
    try:
        import jks
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError as e:
        raise ConfigError(f"{_EXTRA} (missing: {e.name})") from None
    return jks, x509, serialization


# ------------------------------------------------------------ key stores


def store_type(what: str, location: str, given: str | None) -> str:
    """ssl.<what>.type, or the type the file's extension names (KeyStoreFileType.fromFilename)."""
    if given:
        kind = given.strip().upper()
        if kind not in ("JKS", "PKCS12", "PEM"):
            raise ConfigError(f"ssl.{what}.type: {given!r} is not one of JKS, PKCS12, PEM")
        return kind
    kind = _STORE_TYPES.get(os.path.splitext(location)[1].lower())
    if kind is None:
        raise ConfigError(f"ssl.{what}.location {location}: cannot tell the store type from the file name: "
                          f"set ssl.{what}.type to JKS, PKCS12 or PEM")
    return kind


def _read(what: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"ssl.{what}.location {path}: {e.strerror}") from None


def load_keystore(location: str, password: str | None, given_type: str | None) -> tuple[Any, list[Any]]:
    """(private key, certificate chain, leaf first) as `cryptography` objects."""
    jks, x509, serialization = _libraries()
    kind = store_type("keyStore", location, given_type)
    data = _read("keyStore", location)
    secret = password.encode() if password else None
    try:
        if kind == "JKS":
            store = jks.KeyStore.loads(data, password or "")
            entries = list(store.private_keys.values())
            if not entries:
                raise ValueError("it holds no private key entry")
            entry = entries[0]
            key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
            chain = [x509.load_der_x509_certificate(der) for _, der in entry.cert_chain]
        elif kind == "PKCS12":
            from cryptography.hazmat.primitives.serialization import pkcs12

            p12 = pkcs12.load_pkcs12(data, secret)
            if p12.key is None or p12.cert is None:
                raise ValueError("it holds no private key with its certificate")
            key, chain = p12.key, [p12.cert.certificate] + [c.certificate for c in p12.additional_certs]
        else:
            key = serialization.load_pem_private_key(data, secret)
            chain = x509.load_pem_x509_certificates(data)
    except Exception as e:  # noqa: BLE001 - every library's own error: wrong password, corrupt file, ...
        raise ConfigError(f"ssl.keyStore.location {location}: cannot read it as a {kind} key store "
                          f"({e or type(e).__name__}): check ssl.keyStore.password and ssl.keyStore.type") from None
    return key, chain


def load_truststore(location: str, password: str | None, given_type: str | None) -> list[Any]:
    """The trusted certificates of a trust store."""
    jks, x509, _ = _libraries()
    kind = store_type("trustStore", location, given_type)
    data = _read("trustStore", location)
    try:
        if kind == "JKS":
            store = jks.KeyStore.loads(data, password or "")
            certs = [x509.load_der_x509_certificate(e.cert) for e in store.certs.values()]
        elif kind == "PKCS12":
            from cryptography.hazmat.primitives.serialization import pkcs12

            p12 = pkcs12.load_pkcs12(data, password.encode() if password else None)
            certs = ([p12.cert.certificate] if p12.cert else []) + [c.certificate for c in p12.additional_certs]
        else:
            certs = x509.load_pem_x509_certificates(data)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"ssl.trustStore.location {location}: cannot read it as a {kind} trust store "
                          f"({e or type(e).__name__}): check ssl.trustStore.password and ssl.trustStore.type") from None
    if not certs:
        raise ConfigError(f"ssl.trustStore.location {location}: it holds no certificate")
    return certs


# ------------------------------------------------------------ the SSL context


def _versions(ssl_cfg: SslConfig) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """ZooKeeper enables ssl.enabledProtocols, or else only ssl.protocol (TLSv1.2 by default)."""
    names = ssl_cfg.enabled_protocols or (ssl_cfg.protocol,)
    versions = []
    for name in names:
        if name == "TLS":  # Java's generic protocol: what the JDK enables by default
            versions += [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
        elif name in _VERSIONS:
            versions.append(_VERSIONS[name])
        else:
            raise ConfigError(f"ssl.enabledProtocols / ssl.protocol: {name!r} is not one of "
                              f"{', '.join(_VERSIONS)}, TLS")
    return min(versions), max(versions)


def openssl_cipher_name(java_name: str) -> str:
    """A cipher suite as Java (and IANA) names it, as OpenSSL names it:
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 -> ECDHE-RSA-AES128-GCM-SHA256,
    TLS_RSA_WITH_AES_128_CBC_SHA -> AES128-SHA.  TLS 1.3 suites (TLS_AES_128_GCM_SHA256)
    have the same name in both; a name of another shape is returned as it is."""
    kx, sep, rest = java_name.partition("_WITH_")
    parts = rest.split("_")
    prefix = "" if kx == "TLS_RSA" else kx.removeprefix("TLS_").replace("_", "-") + "-"
    if not sep:
        return java_name
    if parts[0] == "AES" and len(parts) == 4 and parts[2] == "GCM":
        return f"{prefix}AES{parts[1]}-GCM-{parts[3]}"
    if parts[0] == "AES" and len(parts) == 4 and parts[2] == "CBC":
        return f"{prefix}AES{parts[1]}-{parts[3]}"
    if parts[:2] == ["CHACHA20", "POLY1305"]:
        return f"{prefix}CHACHA20-POLY1305"
    return java_name


def _set_ciphers(ctx: ssl.SSLContext, java_names: tuple[str, ...]) -> None:
    everything = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    everything.set_ciphers("ALL")
    offered = {c["name"] for c in everything.get_ciphers()}
    names = [openssl_cipher_name(n) for n in java_names]
    unknown = [j for j, o in zip(java_names, names) if o not in offered]
    if unknown:
        raise ConfigError(f"ssl.ciphersuites: {', '.join(unknown)} not offered by this Python's OpenSSL "
                          f"({ssl.OPENSSL_VERSION})")
    tls12 = [n for n in names if not n.startswith("TLS_")]
    if tls12:
        ctx.set_ciphers(":".join(tls12))
    if len(tls12) < len(names):
        log.warning("ssl.ciphersuites: Python's ssl module cannot choose TLS 1.3 cipher suites; "
                    "OpenSSL's TLS 1.3 defaults apply", tls13=[n for n in names if n.startswith("TLS_")])


def _load_key_chain(ctx: ssl.SSLContext, key: Any, chain: list[Any]) -> None:
    """`ssl` reads a key and chain only from a file: write them to a private temp file, the key
    encrypted with a one-time password, and remove it at once."""
    _, _, serialization = _libraries()
    once = secrets.token_urlsafe(24).encode()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(once))
    pem += b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    fd, path = tempfile.mkstemp(prefix="zkpy-tls-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        ctx.load_cert_chain(path, password=once)
    except ssl.SSLError as e:
        raise ConfigError(f"ssl.keyStore.location: the key does not match its certificate ({e.reason})") from None
    finally:
        os.unlink(path)


def server_context(config: Config) -> ssl.SSLContext:
    """The SSL context of the secure client port; ConfigError names the setting that is wrong."""
    if not config.ssl.keystore_location:
        raise ConfigError("secureClientPort needs ssl.keyStore.location (the server's key and certificate)")
    return _context(config.ssl, ssl.PROTOCOL_TLS_SERVER)


def peer_contexts(config: Config) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(accepting, dialling) contexts of the peer links with sslQuorum=true: both ends present
    their ssl.quorum.keyStore certificate and verify the other's against ssl.quorum.trustStore
    (ssl.quorum.clientAuth as the accepting side's, need by default; the dialling side always
    verifies, and checks the peer's host name unless ssl.quorum.hostnameVerification=false)."""
    q = config.quorum_ssl  # config.load has checked that both stores are named
    accepting = _context(q, ssl.PROTOCOL_TLS_SERVER)
    dialling = _context(q, ssl.PROTOCOL_TLS_CLIENT)
    dialling.check_hostname = q.hostname_verification
    dialling.verify_mode = ssl.CERT_REQUIRED
    return accepting, dialling


def _context(s: SslConfig, protocol: int) -> ssl.SSLContext:
    _, _, serialization = _libraries()
    key, chain = load_keystore(s.keystore_location, s.keystore_password, s.keystore_type)
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version, ctx.maximum_version = _versions(s)
    _load_key_chain(ctx, key, chain)
    if s.truststore_location:
        certs = load_truststore(s.truststore_location, s.truststore_password, s.truststore_type)
        ctx.load_verify_locations(cadata="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs))
    else:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # ZooKeeper: the JVM's default trust store
    if protocol == ssl.PROTOCOL_TLS_SERVER:
        ctx.verify_mode = _VERIFY[s.client_auth]
    if s.ciphersuites:
        _set_ciphers(ctx, s.ciphersuites)
    return ctx


# ------------------------------------------------------------ x509 identities


def java_subject(der: bytes) -> str:
    """A certificate's subject as Java's X500Principal.getName() prints it (RFC 2253, the id
    ZooKeeper's X509AuthenticationProvider gives): `CN=client,OU=tests,O=zkpy,C=US`.  The
    attribute types RFC 2253 names (CN, C, L, ST, O, OU, STREET, DC, UID) print as strings, as
    cryptography's RFC 4514 form does; any other (emailAddress, serialNumber, ...) prints as
    Java prints it, `1.2.840.113549.1.9.1=#16076140622e6f7267` (the value's DER in hex)."""
    _, x509, _ = _libraries()
    subject = x509.load_der_x509_certificate(der).subject
    if all(a.oid.dotted_string in _RFC2253_TYPES for a in subject):
        return subject.rfc4514_string()
    from pyasn1.codec.der import decoder
    from pyasn1_modules import rfc5280

    asn1, _ = decoder.decode(subject.public_bytes(), asn1Spec=rfc5280.Name())
    rdns = []
    for rdn, raw_rdn in zip(reversed(subject.rdns), reversed(list(asn1[0])), strict=True):
        raw = {str(atv["type"]): bytes(atv["value"]).hex() for atv in raw_rdn}
        rdns.append("+".join(a.rfc4514_string() if a.oid.dotted_string in _RFC2253_TYPES
                             else f"{a.oid.dotted_string}=#{raw[a.oid.dotted_string]}" for a in rdn))
    return ",".join(rdns)


def x509_identities(transport: asyncio.BaseTransport, super_user: str | None) -> list[tuple[str, str]]:
    """The ids a verified client certificate grants: ("x509", subject), and the super user's
    when the subject is zookeeper.X509AuthenticationProvider.superUser; none without one."""
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return []
    subject = java_subject(der)
    ids = [("x509", subject)]
    if super_user is not None and subject == super_user:
        ids.append(SUPER)
        log.info("authenticated x509 id as super user", id=subject)
    return ids


def tls_connection_class(base: type["ClientConnection"], super_user: str | None) -> type["ClientConnection"]:
    """`base` (ClientConnection, or the traced one) with the client certificate's ids added
    when the connection is made (ZooKeeper's CertificateVerifier, after the handshake)."""

    class TlsConnection(base):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            for ident in x509_identities(transport, super_user):
                if ident not in self.identities:
                    self.identities.append(ident)

    return TlsConnection


# ------------------------------------------------------------ the listener


class TlsListener:
    """A TLS port (the secure client port; with sslQuorum, the quorum port): accepts,
    handshakes (bounded in time), hands on to a protocol.

    Its own accept loop hands each socket to `connect_accepted_socket(ssl=...)`, so the TLS
    layer is the transport's protocol from its first byte, and a failed handshake raises here,
    where it is logged.  (Accepting with a plain protocol and calling `start_tls` later lost
    ClientHellos: uvloop starts reading once `connection_made` returns, whatever it paused, so
    a ClientHello read before the handshake task ran went to the plain protocol; about one
    handshake in ten then stalled until its timeout.)
    """

    def __init__(self, context: ssl.SSLContext, timeout: float, make_connection: Callable[[], asyncio.Protocol],
                 port_name: str = "TLS port") -> None:
        self.context = context
        self.timeout = timeout
        self.make_connection = make_connection
        self.port_name = port_name  # in its log lines
        self.sock: socket.socket | None = None
        self.accepting: asyncio.Task | None = None
        self.handshakes: set[asyncio.Task] = set()  # in progress: cancelled on close
        self.failed_handshakes = 0  # ZooKeeper's unsuccessful_handshake

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        family, kind, proto, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                  flags=socket.AI_PASSIVE))[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.accepting = loop.create_task(self._accept(sock))
        return sock.getsockname()[:2]

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(listening)
            except OSError as e:  # EMFILE and the like: try again in a moment
                log.warning(f"{self.port_name}: accept failed", error=str(e))
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._handshake(sock, address))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    async def _handshake(self, sock: socket.socket, address: tuple) -> None:
        peer = f"{address[0]}:{address[1]}"
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.get_running_loop().connect_accepted_socket(
                self.make_connection, sock, ssl=self.context, ssl_handshake_timeout=self.timeout)
        except asyncio.CancelledError:
            _close_quietly(sock)
            raise
        except OSError as e:  # ssl.SSLError, ConnectionError and TimeoutError are OSErrors
            _close_quietly(sock)
            self.failed_handshakes += 1
            log.warning("closing connection: TLS handshake failed", port=self.port_name, peer=peer,
                        reason=_reason(e), timeout_s=self.timeout)

    async def close(self) -> None:
        if self.accepting is not None:
            self.accepting.cancel()
        for task in list(self.handshakes):
            task.cancel()
        if self.sock is not None:
            self.sock.close()


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"client certificate refused: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    if isinstance(e, TimeoutError) or "taking longer" in str(e):
        return "not completed in time"
    return str(e) or type(e).__name__
