"""No security or durability setting silently ignored: `zkpy serve` refuses, with one line and
exit code 2, each one it does not implement and whose value it cannot honour without being
less secure or durable than asked; it warns once about tuning knobs it does not use; and the
SASL settings it implements (JAAS files, authProvider, enforce.auth) are read as ZooKeeper reads
them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from zkpy.server import jaas
from zkpy.server.config import ConfigError, load

pytestmark = pytest.mark.timeout(120)

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
DIGEST_JAAS = 'Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob="pw"; };\n'


def _serve(tmp_path, lines: str, *props: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path / 'data'}\nclientPort=0\nclientPortAddress=127.0.0.1\n{lines}")
    return subprocess.run([sys.executable, "-m", "zkpy", "serve", str(cfg), *props], capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)  # a server that starts is a failure


# Each: zoo.cfg lines, -D properties, a word the refusal names.
REFUSED = {
    "skipACL": ("skipACL=yes\n", (), "skipACL"),
    "portUnification": ("portUnification=true\n", (), "portUnification"),
    "client.portUnification": ("", ("-Dzookeeper.client.portUnification=true",), "portUnification"),
    "skipACL property": ("", ("-Dzookeeper.skipACL=true",), "skipACL"),
    "sslQuorum without stores": ("sslQuorum=true\n", (), "ssl.quorum.keyStore.location"),
    "sslQuorum without a trust store": ("sslQuorum=true\nssl.quorum.keyStore.location=/k.p12\n", (),
                                        "ssl.quorum.trustStore.location"),
    "quorum.auth.enableSasl without JAAS": ("quorum.auth.enableSasl=true\n", (), "quorum.auth.enableSasl"),
    "quorum.auth.learnerRequireSasl without enableSasl": ("quorum.auth.learnerRequireSasl=true\n", (),
                                                          "learnerRequireSasl"),
    "quorum.auth.serverRequireSasl without learnerRequireSasl": (
        "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n", (), "learnerRequireSasl"),
    "quorum.auth JAAS without QuorumLearner": (
        "quorum.auth.enableSasl=true\n", ("-Djava.security.auth.login.config=" + __file__.replace(
            "test_config_security.py", "quorum_server_only.jaas"),), "QuorumLearner"),
    "digest off": ("", ("-Dzookeeper.DigestAuthenticationProvider.enabled=false",), "DigestAuthenticationProvider"),
    "digest SHA-256": ("", ("-Dzookeeper.DigestAuthenticationProvider.digestAlg=SHA-256",), "digestAlg"),
    "enforceQuota": ("enforceQuota=true\n", (), "enforceQuota"),
    "audit.enable": ("audit.enable=true\n", (), "audit"),
    "dynamicConfigFile": ("dynamicConfigFile=/etc/zookeeper/zoo.cfg.dynamic\n", (), "dynamicConfigFile"),
    "unknown authProvider": ("authProvider.1=com.example.LdapAuthenticationProvider\n", (), "LdapAuthentication"),
    "enforce.auth without schemes": ("enforce.auth.enabled=true\n", (), "enforce.auth.schemes"),
    "enforce.auth.schemes without provider": ("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n", (),
                                              "sasl"),
    "require SASL without users": (f"authProvider.1={SASL_PROVIDER}\nsessionRequireClientSASLAuth=true\n", (),
                                   "JAAS"),
    "missing JAAS file": ("", ("-Djava.security.auth.login.config=/nonexistent/jaas.conf",), "jaas.conf"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_serve_refuses(tmp_path, case):
    lines, props, word = REFUSED[case]
    r = _serve(tmp_path, lines, *props)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    out = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(out) == 1 and out[0].startswith("zkpy: invalid configuration:") and word in out[0], out


@pytest.mark.parametrize("module,word", [
    ("com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true", "Krb5LoginModule"),
    ("org.apache.zookeeper.server.auth.DigestLoginModule mandatory", "control flag"),
    ('org.apache.zookeeper.server.auth.DigestLoginModule required user_bob="pw"', "';'"),
])
def test_serve_refuses_a_jaas_server_section_it_cannot_use(tmp_path, module, word):
    jaas_file = tmp_path / "jaas.conf"
    jaas_file.write_text("Server {\n  " + module + ";\n};\n" if not module.endswith('"pw"') else
                         "Server {\n  " + module + "\n};\n")
    r = _serve(tmp_path, f"authProvider.1={SASL_PROVIDER}\n", f"-Djava.security.auth.login.config={jaas_file}")
    assert r.returncode == 2 and word in r.stderr and str(jaas_file) in r.stderr, r.stderr[-2000:]


def test_tuning_knobs_are_warned_about_once_and_serve(tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path / 'data'}\nclientPort=0\nclientPortAddress=127.0.0.1\npreAllocSize=65536\n"
                   "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\nskipACL=no\n")
    p = subprocess.Popen([sys.executable, "-m", "zkpy", "serve", str(cfg), "-Dzookeeper.preAllocSize=1024"],
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        lines = []
        for line in p.stderr:
            lines.append(line)
            if "serving" in line:
                break
    finally:
        p.terminate()
        p.wait(10)
    text = "".join(lines)
    assert "serving" in text
    assert sum("setting not used by zkpy" in line and "preAllocSize" in line for line in lines) == 1, text
    assert sum("serverCnxnFactory" in line for line in lines) == 1, text
    assert "skipACL" not in text and "unknown" not in text, text


def test_kazoo_harness_configuration_still_loads(tmp_path):
    """kazoo's harness writes these for every test (its TLS keys belong to the TLS block)."""
    jaas_file = tmp_path / "jaas.conf"
    jaas_file.write_text("")
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={tmp_path}\nclientPort=2181\nsecureClientPort=2281\nmaxClientCnxns=0\n"
                   "admin.serverPort=8080\nserverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
                   f"authProvider.1={SASL_PROVIDER}\nssl.keyStore.location=/k.jks\nssl.keyStore.password=apassword\n")
    c = load(str(cfg), {"readonlymode.enabled": "true", "java.security.auth.login.config": str(jaas_file)})
    assert c.sasl is None and c.auth_providers == {"sasl"} and not c.enforce_auth_schemes


def test_sasl_settings_from_the_jaas_file_and_properties(tmp_path):
    jaas_file = tmp_path / "jaas.conf"
    jaas_file.write_text(DIGEST_JAAS.replace('user_bob="pw"', 'user_bob="pw" user_super="s3"'))
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nauthProvider.1={SASL_PROVIDER}\nsessionRequireClientSASLAuth=true\n")
    c = load(str(cfg), {"java.security.auth.login.config": str(jaas_file), "zookeeper.superUser": "bob",
                        "zookeeper.superUser.2": "carol",
                        "zookeeper.SASLAuthenticationProvider.superPassword": "override"})
    assert c.sasl.users == {"bob": "pw", "super": "s3"} and c.sasl.super_users == {"bob", "carol"}
    assert c.sasl.password("super") == "override" and c.sasl.password("bob") == "pw"
    assert c.enforce_auth_schemes == {"sasl"} and c.sasl_required
    assert "pw" not in str(c.as_dict()) and "override" not in str(c.as_dict())  # conf/envi never show them
    with pytest.raises(ConfigError, match="no JAAS section named 'Other'"):
        load(str(cfg), {"java.security.auth.login.config": str(jaas_file), "zookeeper.sasl.serverconfig": "Other"})


def test_enforce_auth_with_digest_needs_no_provider(tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nenforce.auth.enabled=true\nenforce.auth.schemes= digest , ip\n")
    assert load(str(cfg)).enforce_auth_schemes == {"digest", "ip"}


# ---------------------------------------------------------------------------- the JAAS syntax

def test_jaas_syntax_comments_quotes_and_sections():
    text = r"""
    // a line comment
    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required  /* a block
        comment */ user_bob="p;w\"d"
        user_eve='single }{ quoted'
        user_plain=bare.word-1;
    };
    "Client" { org.apache.zookeeper.server.auth.DigestLoginModule optional username="bob" password="x"; };
    Server { other.Module sufficient user_late="1"; };
    """
    sections = jaas.parse(text)
    assert sorted(sections) == ["Client", "Server"]
    first, late = sections["Server"]
    assert first.flag == "required" and first.options == {"user_bob": 'p;w"d', "user_eve": "single }{ quoted",
                                                          "user_plain": "bare.word-1"}
    assert late.class_name == "other.Module" and late.options == {"user_late": "1"}
    assert sections["Client"][0].options == {"username": "bob", "password": "x"}
    assert jaas.parse("  /* nothing */ \n") == {}


@pytest.mark.parametrize("text,where", [
    ("Server { m.M required a=1 }; ", "line 1"),
    ("Server {\n m.M required\n a 1; };", "line 3"),
    ('Server {\n m.M required a="unterminated; };', "line 2"),
    ("Server { m.M required; }", "end of file"),
])
def test_jaas_syntax_errors_name_the_line(text, where):
    with pytest.raises(jaas.JaasError, match=where):
        jaas.parse(text)


def test_quorum_auth_settings_from_zoo_cfg_and_jaas(tmp_path):
    jaas_file = tmp_path / "jaas.conf"
    jaas_file.write_text(
        'QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required\n'
        '  user_zkquorum/1="pw1" user_zkquorum/2="pw2"; };\n'
        'QuorumLearner { org.apache.zookeeper.server.auth.DigestLoginModule required\n'
        '  username="zkquorum/1" password="pw1"; };\n')
    cfg_file = tmp_path / "zoo.cfg"
    cfg_file.write_text(f"dataDir={tmp_path}\nquorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n"
                        "server.1=127.0.0.1:2888:3888\nserver.2=localhost:2889:3889\n")
    cfg = load(str(cfg_file), {"java.security.auth.login.config": str(jaas_file)})
    qa = cfg.quorum_auth
    assert (qa.learner_user, qa.learner_password, qa.server_require) == ("zkquorum/1", "pw1", False)
    assert qa.password_of("zkquorum/2") == "pw2" and qa.password_of("zkquorum/3") is None
    assert qa.may_claim("zkquorum/2", 2) and not qa.may_claim("zkquorum/2", 1)
    assert qa.may_claim("zkquorum/localhost@EXAMPLE.COM", 2) and not qa.may_claim("zkquorum/localhost", 1)
    assert qa.may_claim("test", 1)  # an ensemble-wide credential, as ZooKeeper's DIGEST-MD5 example
    assert "pw1" not in repr(cfg.as_dict()["quorum_auth"]) and "pw2" not in repr(cfg.as_dict()["quorum_auth"])
