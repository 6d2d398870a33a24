"""SASL DIGEST-MD5, the server side (RFC 2831), as ZooKeeper runs it for clients.

No well-kept Python library implements the *server* side of DIGEST-MD5 (pure-sasl, which
kazoo uses, is client-only; pysasl has PLAIN, LOGIN, CRAM-MD5 and OAuth; Cyrus bindings need
a sasldb), so the exchange is written here, following RFC 2831 and what Java's
DigestMD5Server, which ZooKeeper uses, sends and checks:

    client: empty token
    server: realm="zk-sasl-md5",nonce="...",qop="auth",charset=utf-8,algorithm=md5-sess
    client: username=..,realm=..,nonce=..,cnonce=..,nc=00000001,qop=auth,digest-uri="zookeeper/zk-sasl-md5",response=..
    server: rspauth=...   (authenticated: the connection gains the id sasl:<username>)

Only qop=auth (no integrity or privacy layer), as ZooKeeper's default.  Sans-IO: the
exchange is bytes in, bytes out; the caller answers the client and closes on SaslError.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

REALM = "zk-sasl-md5"  # ZooKeeperSaslServer's server name, the realm Java's DIGEST-MD5 offers
DIGEST_URI = "zookeeper/" + REALM
MAX_RESPONSE = 4096  # RFC 2831 2.1.2: a digest-response is at most 4096 bytes

_SINGLE = ("username", "realm", "nonce", "cnonce", "nc", "qop", "digest-uri", "response", "maxbuf", "charset",
           "cipher", "authzid")
_PAIR = re.compile(rb'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,"\s]*))\s*(?:,|$)', re.DOTALL)
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


class SaslError(Exception):
    """The exchange failed: the client is answered with an error and disconnected."""


@dataclass(frozen=True)
class SaslSettings:
    """What the server needs for SASL, from the JAAS `Server` section and system properties."""

    users: dict[str, str] = field(default_factory=dict, repr=False)  # user_<name>="<password>"
    super_users: frozenset[str] = frozenset()  # zookeeper.superUser (and zookeeper.superUser.*)
    super_password: str | None = field(default=None, repr=False)  # zookeeper.SASLAuthenticationProvider.superPassword

    def password(self, user: str) -> str | None:
        if user == "super" and self.super_password is not None:
            return self.super_password
        return self.users.get(user)


def parse_directives(token: bytes) -> dict[str, str]:
    """`k=v,k="quoted"` (RFC 2831 digest-response) -> {k: v}; a directive RFC 2831 allows once
    may not come twice.  Values are bytes decoded as UTF-8 (charset=utf-8) or ISO 8859-1."""
    if len(token) > MAX_RESPONSE:
        raise SaslError(f"digest-response of {len(token)} bytes, over the {MAX_RESPONSE} RFC 2831 allows")
    raw: dict[str, bytes] = {}
    pos = 0
    while pos < len(token):
        m = _PAIR.match(token, pos)
        if m is None or m.end() == pos:
            raise SaslError(f"malformed digest-response at byte {pos}")
        key = m.group(1).decode("ascii").lower()
        value = _ESCAPE.sub(rb"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        if key in raw and key in _SINGLE:
            raise SaslError(f"directive {key} given twice")
        raw[key] = value
        pos = m.end()
    charset = "utf-8" if raw.get("charset", b"").lower() == b"utf-8" else "iso-8859-1"
    try:
        return {k: v.decode(charset) for k, v in raw.items()}
    except UnicodeDecodeError:
        raise SaslError("digest-response is not valid UTF-8") from None


def _bytes(text: str, utf8: bool) -> bytes:
    """RFC 2831 2.1.2.1: with charset=utf-8, text that ISO 8859-1 can hold is hashed in it."""
    try:
        return text.encode("iso-8859-1")
    except UnicodeEncodeError:
        if not utf8:
            raise SaslError("credentials outside ISO 8859-1 without charset=utf-8") from None
        return text.encode("utf-8")


def _hex_md5(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


class DigestMD5Exchange:
    """One client's DIGEST-MD5 exchange: `evaluate(token)` until `complete`."""

    __slots__ = ("settings", "nonce", "step", "authorization_id")

    def __init__(self, settings: SaslSettings, nonce: str | None = None) -> None:
        self.settings = settings
        self.nonce = nonce or secrets.token_urlsafe(24)
        self.step = 0
        self.authorization_id: str | None = None

    @property
    def complete(self) -> bool:
        return self.authorization_id is not None

    def evaluate(self, token: bytes) -> bytes:
        """The server's answer to the client's `token`; raises SaslError when authentication fails."""
        self.step += 1
        if self.step == 1:
            if token:
                raise SaslError("DIGEST-MD5 has no initial response: the first token must be empty")
            return (f'realm="{REALM}",nonce="{self.nonce}",qop="auth",charset=utf-8,'
                    f"algorithm=md5-sess").encode("ascii")
        if self.step == 2:
            return self._check(parse_directives(token))
        raise SaslError("the DIGEST-MD5 exchange is already complete")

    def _check(self, d: dict[str, str]) -> bytes:
        for key in ("username", "nonce", "cnonce", "nc", "digest-uri", "response"):
            if key not in d:
                raise SaslError(f"digest-response lacks {key}")
        if not hmac.compare_digest(d["nonce"].encode(), self.nonce.encode()):
            raise SaslError("digest-response names another nonce")
        if d["nc"].lower() != "00000001":
            raise SaslError(f"nonce-count {d['nc']!r} is not 00000001")
        if d.get("qop", "auth") != "auth":
            raise SaslError(f"qop {d['qop']!r} is not offered (only auth)")
        realm = d.get("realm", "")
        if realm not in (REALM, ""):
            raise SaslError(f"realm {realm!r} is not offered")
        serv_type, _, host = d["digest-uri"].partition("/")
        if serv_type != "zookeeper" or host.lower() != REALM:
            raise SaslError(f"digest-uri {d['digest-uri']!r} is not {DIGEST_URI}")
        user = d["username"]
        password = self.settings.password(user)
        if password is None:
            raise SaslError(f"user {user!r} is not in the JAAS Server section")
        utf8 = "charset" in d
        secret = hashlib.md5(_bytes(f"{user}:{realm}:{password}", utf8)).digest()
        a1 = secret + b":" + d["nonce"].encode("ascii", "replace") + b":" + d["cnonce"].encode("utf-8")
        if "authzid" in d:
            a1 += b":" + _bytes(d["authzid"], utf8)
        ha1 = _hex_md5(a1)
        tail = b":".join([d["nonce"].encode(), d["nc"].encode(), d["cnonce"].encode("utf-8"), b"auth"])
        expected = _hex_md5(ha1 + b":" + tail + b":" + _hex_md5(b"AUTHENTICATE:" + d["digest-uri"].encode()))
        if not hmac.compare_digest(expected, d["response"].lower().encode("ascii", "replace")):
            raise SaslError(f"wrong password for user {user!r}")
        # ZooKeeper's SaslServerCallbackHandler authorizes the authentication id, whatever authzid says.
        self.authorization_id = user
        return b"rspauth=" + _hex_md5(ha1 + b":" + tail + b":" + _hex_md5(b":" + d["digest-uri"].encode()))
