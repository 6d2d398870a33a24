"""Quorum peer authentication (`quorum.auth.enableSasl`): who may open a peer link, and the proofs.

ZooKeeper runs SASL DIGEST-MD5 on its quorum sockets with the JAAS sections `QuorumServer`
(`user_<name>="<password>"`: the learners it accepts) and `QuorumLearner` (`username`,
`password`: what this member presents when it dials).  zkpy's peers speak their own protocol,
so the exchange is zkpy's, keeping ZooKeeper's configuration: a challenge–response with
HMAC-SHA256 keyed by the JAAS password.  HMAC rather than sasl.py's DIGEST-MD5 because no Java
peer has to understand it, and HMAC-SHA256 is a stdlib primitive with a constant-time compare,
where DIGEST-MD5 is MD5 and obsolete (RFC 6331).  The exchange (peers.py carries it):

    dialer -> acceptor   ["hello", dialer_sid, username, dialer_nonce]
    acceptor -> dialer   ["challenge", acceptor_sid, acceptor_nonce]
    dialer -> acceptor   ["proof", HMAC(pw, "learner" | transcript)]
    acceptor -> dialer   ["welcome", HMAC(pw, "server" | transcript)]

The transcript binds both server ids, the username and both fresh nonces, so a proof cannot be
replayed on another link nor moved to another claimed id; each side proves it knows the
password (mutual).  Nothing else is read from a link before its proof checks out.

Which ids a username may claim (CVE-2023-44981: ZooKeeper authorised a Kerberos principal
without an instance part for any id): a username `name/instance[@realm]` may claim server id N
only when `instance` is N or the host of server.N's line; a username without an instance is an
ensemble-wide credential (ZooKeeper's DIGEST-MD5 example, `user_test="test"`) that any member
may present for its own id.  Give each member `zkquorum/<its id>` to bind ids to passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

NONCE_BYTES = 16
PROTOCOL = b"zkpy-quorum-auth-1"


@dataclass(frozen=True)
class QuorumAuth:
    """This member's quorum credentials and requirements, from zoo.cfg and the JAAS file."""

    learner_user: str  # QuorumLearner username: what this member presents when it dials
    learner_password: str = ""
    server_users: tuple[tuple[str, str], ...] = ()  # QuorumServer user_<name>: (name, password)
    server_require: bool = True  # refuse dialers that do not authenticate (False: rolling upgrade)
    hosts: tuple[tuple[int, str], ...] = ()  # (server id, its line's host): what an instance may name

    def password_of(self, user: str) -> str | None:
        return dict(self.server_users).get(user)

    def may_claim(self, user: str, sid: int) -> bool:
        """Whether an authenticated username may speak as server id `sid` (CVE-2023-44981)."""
        name, slash, rest = user.partition("/")
        if not slash:
            return True  # an ensemble-wide credential (ZooKeeper's DIGEST-MD5 users)
        instance = rest.partition("@")[0]
        return instance == str(sid) or instance == dict(self.hosts).get(sid)


def nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def proof(password: str, role: bytes, dialer: int, acceptor: int, user: str, dialer_nonce: bytes,
          acceptor_nonce: bytes) -> bytes:
    """HMAC-SHA256 over the whole transcript; `role` (b"learner" / b"server") keeps one side's
    proof from serving as the other's."""
    msg = b"|".join((PROTOCOL, role, str(dialer).encode(), str(acceptor).encode(), user.encode("utf-8"),
                     dialer_nonce, acceptor_nonce))
    return hmac.new(password.encode("utf-8"), msg, hashlib.sha256).digest()


def check(expected: bytes, got: object) -> bool:
    return isinstance(got, bytes) and hmac.compare_digest(expected, got)
