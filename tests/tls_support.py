"""Certificates and key stores for the TLS tests, made with `cryptography` and `pyjks`: a CA,
a server certificate for 127.0.0.1/localhost, and client certificates (trusted, expired, from
an unknown CA), written as the JKS, PKCS12 and PEM stores ZooKeeper reads."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import jks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

__all__ = ["NameOID", "Party", "ca", "client", "make", "server", "write_stores"]

PASSWORD = "apassword"
_PEM = serialization.Encoding.PEM
_DER = serialization.Encoding.DER


@dataclass
class Party:
    """A key and its certificate (signed by `issuer`, or self-signed for a CA)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(_PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def write_pem(self, directory: str, name: str) -> tuple[str, str]:
        """(certfile, keyfile) as kazoo's `certfile=`/`keyfile=` take them."""
        cert, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
        with open(cert, "wb") as f:
            f.write(self.cert_pem())
        with open(key, "wb") as f:
            f.write(self.key_pem())
        return cert, key


def _name(subject: list[tuple]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in subject])


def make(subject: list[tuple], issuer: Party | None = None, days: float = 1, ca: bool = False,
         hosts: tuple[str, ...] = (), expired: bool = False) -> Party:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (now - datetime.timedelta(days=3), now - datetime.timedelta(days=2)) if expired else (
        now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days))
    name = _name(subject)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.cert.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        import ipaddress
        alt = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h) for h in hosts]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Party(key, cert)


def ca(common_name: str = "zkpy test CA") -> Party:
    return make([(NameOID.COMMON_NAME, common_name)], ca=True)


def server(issuer: Party) -> Party:
    return make([(NameOID.COMMON_NAME, "localhost")], issuer, hosts=("localhost", "127.0.0.1"))


def client(issuer: Party, common_name: str = "client", expired: bool = False) -> Party:
    return make([(NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "zkpy"),
                 (NameOID.ORGANIZATIONAL_UNIT_NAME, "tests"), (NameOID.COMMON_NAME, common_name)],
                issuer, expired=expired)


def write_stores(directory: str, kind: str, owner: Party, chain: list[Party], trusted: list[Party],
                 password: str = PASSWORD) -> tuple[str, str]:
    """(keystore path, truststore path) of `kind` JKS, PKCS12 or PEM: the keystore holds
    `owner`'s key and certificate chain, the truststore the `trusted` certificates."""
    certs = [owner.cert] + [p.cert for p in chain]
    ext = {"JKS": "jks", "PKCS12": "p12", "PEM": "pem"}[kind]
    keystore, truststore = os.path.join(directory, "keystore." + ext), os.path.join(directory, "truststore." + ext)
    if kind == "JKS":
        key_der = owner.key.private_bytes(_DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        entry = jks.PrivateKeyEntry.new("server", [c.public_bytes(_DER) for c in certs], key_der, "pkcs8")
        jks.KeyStore.new("jks", [entry]).save(keystore, password)
        cas = [jks.TrustedCertEntry.new(f"ca{i}", p.cert.public_bytes(_DER)) for i, p in enumerate(trusted)]
        jks.KeyStore.new("jks", cas).save(truststore, password)
    elif kind == "PKCS12":
        enc = serialization.BestAvailableEncryption(password.encode())
        with open(keystore, "wb") as f:
            f.write(pkcs12.serialize_key_and_certificates(b"server", owner.key, owner.cert,
                                                          [p.cert for p in chain] or None, enc))
        with open(truststore, "wb") as f:
            f.write(pkcs12.serialize_java_truststore(
                [pkcs12.PKCS12Certificate(p.cert, f"ca{i}".encode()) for i, p in enumerate(trusted)], enc))
    else:
        enc = serialization.BestAvailableEncryption(password.encode())
        with open(keystore, "wb") as f:
            f.write(owner.key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, enc))
            f.writelines(c.public_bytes(_PEM) for c in certs)
        with open(truststore, "wb") as f:
            f.writelines(p.cert_pem() for p in trusted)
    return keystore, truststore
