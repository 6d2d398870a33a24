"""ACL schemes and checks: world, auth, digest, ip, sasl, x509, and the super user.

An ACL entry is a tuple (perms, scheme, id); an identity is a tuple (scheme, id).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re

from ..protocol.codes import Err, Perm, ZkError
from . import javaorder

Acl = tuple[int, str, str]
Identity = tuple[str, str]

OPEN_ACL_UNSAFE: tuple[Acl, ...] = ((Perm.ALL.value, "world", "anyone"),)
READ_ACL_UNSAFE: tuple[Acl, ...] = ((Perm.READ.value, "world", "anyone"),)
SUPER: Identity = ("super", "")

# Schemes whose ids count as "authenticated" for the `auth` ACL scheme.
_AUTHENTICATED_SCHEMES = frozenset({"digest", "sasl", "x509"})
# A sasl id as SASLAuthenticationProvider.isValid takes it: a Kerberos name, or any name without '@'.
_KERBEROS_NAME = re.compile(r"[^/@]*(/[^/@]*)?@[^/@]*")


def digest(user_password: str) -> str:
    """'user:password' -> 'user:base64(sha1(user:password))' (DigestAuthenticationProvider)."""
    user = user_password.split(":", 1)[0]
    sha = hashlib.sha1(user_password.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(sha).decode('ascii')}"


def _java_id_hash(ident: Identity) -> int:
    # org.apache.zookeeper.data.Id.hashCode (jute-generated)
    h = (37 * 17 + javaorder.string_hash(ident[0])) & 0xFFFFFFFF
    return (37 * h + javaorder.string_hash(ident[1])) & 0xFFFFFFFF


def java_order(identities: list[Identity]) -> list[Identity]:
    """`identities` (in insertion order) in the order ZooKeeper lists a connection's ids.

    ZooKeeper keeps them in a ConcurrentHashMap-backed set, so whoAmI and the expansion
    of `auth` ACLs follow the map's bucket order.
    """
    return javaorder.iteration_order(identities, _java_id_hash, javaorder.table_capacity(len(identities)))


def _ip_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def is_valid_id(scheme: str, ident: str) -> bool:
    if scheme == "digest":
        return len(ident.split(":")) == 2
    if scheme == "ip":
        return _ip_network(ident) is not None
    if scheme == "x509":
        # An X500 name (CN=client,OU=...): X509AuthenticationProvider.isValid tries new X500Principal(id).
        return bool(ident) and all("=" in rdn for rdn in re.split(r"(?<!\\),", ident))
    if scheme == "sasl":
        return "@" not in ident or _KERBEROS_NAME.fullmatch(ident) is not None
    return False


def fixup(acl: list[Acl] | None, identities: list[Identity]) -> tuple[Acl, ...]:
    """Validate an ACL and expand `auth` entries (PrepRequestProcessor.fixupACL).

    Raises ZkError(INVALIDACL).
    """
    if not acl:
        raise ZkError(Err.INVALIDACL)
    unique: list[Acl] = []
    for a in acl:
        if a not in unique:
            unique.append(a)
    if unique == list(OPEN_ACL_UNSAFE):
        return OPEN_ACL_UNSAFE
    out: list[Acl] = []
    for perms, scheme, ident in unique:
        if scheme == "world" and ident == "anyone":
            out.append((perms, scheme, ident))
        elif scheme == "auth":
            found = False
            for id_scheme, id_value in java_order(identities):
                if id_scheme in _AUTHENTICATED_SCHEMES:
                    found = True
                    out.append((perms, id_scheme, id_value))
            if not found:
                raise ZkError(Err.INVALIDACL)
        elif is_valid_id(scheme, ident):
            out.append((perms, scheme, ident))
        else:
            raise ZkError(Err.INVALIDACL)
    return tuple(out)


def _matches(scheme: str, have: str, want: str) -> bool:
    if scheme == "ip":
        net = _ip_network(want)
        try:
            return net is not None and ipaddress.ip_address(have) in net
        except ValueError:
            return False
    if scheme == "sasl":
        return have == want or have == "super"  # SASLAuthenticationProvider.matches
    return have == want


def allowed(acl: tuple[Acl, ...], perm: int, identities: list[Identity]) -> bool:
    """ZooKeeperServer.checkACL without the exception."""
    if acl is OPEN_ACL_UNSAFE or not acl:
        return True
    if SUPER in identities:
        return True
    for perms, scheme, ident in acl:
        if perms & perm:
            if scheme == "world" and ident == "anyone":
                return True
            for id_scheme, id_value in identities:
                if id_scheme == scheme and _matches(scheme, id_value, ident):
                    return True
    return False


def check(acl: tuple[Acl, ...], perm: int, identities: list[Identity]) -> None:
    if not allowed(acl, perm, identities):
        raise ZkError(Err.NOAUTH)
