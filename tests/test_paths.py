"""ZooKeeper's path rules (org.apache.zookeeper.common.PathUtils.validatePath).

`is_valid_path` against a table of known paths, and against `java_validate_path` below: a
line-by-line transcription of the Java method, working on UTF-16 code units as Java's
String does (so every character outside the BMP is a surrogate pair, and refused).  Then
end to end: the server answers BADARGUMENTS for exactly the paths ZooKeeper refuses —
sent as raw frames, because kazoo refuses or rewrites some of them itself.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo.exceptions import BadArgumentsError

from zkpy.protocol.codes import Err, Op
from zkpy.testing import ZkpyServer
from zkpy.testing.client import RawClient
from zkpy.tree.paths import is_valid_path

pytestmark = pytest.mark.timeout(60)


def java_validate_path(path: str) -> bool:
    """PathUtils.validatePath(String) of ZooKeeper 3.8, True where it does not throw."""
    if path is None or len(path) == 0:
        return False
    units = path.encode("utf-16-be", "surrogatepass")
    chars = [units[i] << 8 | units[i + 1] for i in range(0, len(units), 2)]  # Java's char[]
    slash, dot = ord("/"), ord(".")
    if chars[0] != slash:
        return False  # "Path must start with / character"
    if len(chars) == 1:
        return True  # the root
    if chars[-1] == slash:
        return False  # "Path must not end with / character"
    lastc = slash
    for i in range(1, len(chars)):
        c = chars[i]
        if c == 0:
            return False  # "null character not allowed"
        elif c == slash and lastc == slash:
            return False  # "empty node name specified"
        elif c == dot and lastc == dot:
            if chars[i - 2] == slash and (i + 1 == len(chars) or chars[i + 1] == slash):
                return False  # "relative paths not allowed"
        elif c == dot:
            if chars[i - 1] == slash and (i + 1 == len(chars) or chars[i + 1] == slash):
                return False  # "relative paths not allowed"
        elif (0x0000 < c <= 0x001F) or (0x007F <= c <= 0x009F) or (0xD800 <= c <= 0xF8FF) or (0xFFF0 <= c <= 0xFFFF):
            return False  # "invalid character"
        lastc = c
    return True


VALID = [
    "/", "/a", "/a/b/c", "/zookeeper", "/zookeeper/quota", "/a.b", "/.a", "/a.", "/..a", "/a..", "/...",
    "/a/.../b", "/.a/b.", "/a b", "/ ", "/-_:@!$%^&*()[]{}<>?,;'\"`~+=|\\",
    "/日本語", "/ünïcödé", "/a\x20", "/a\xa0", "/a\xa1", "/\u00ff", "/\u0100", "/\u07ff", "/\u0800",
    "/\ud7ff", "/\uf900", "/\ufeff", "/\uffef", "/a/b/c/d/e/f/g", "/" + "x" * 1000,
]
INVALID = [
    "", "a", "a/b", "./a", " /a",  # not absolute
    "/a/", "/a/b/", "//",  # trailing slash
    "//a", "/a//b", "/a///b",  # empty node names
    "/.", "/..", "/a/.", "/a/..", "/./a", "/../a", "/a/./b", "/a/../b", "/.../.",  # relative
    "/a\x00b", "/\x00", "/a\x01", "/a\x09", "/a\n", "/a\x1f",  # control characters
    "/a\x7f", "/a\x80", "/a\x85", "/a\x9f",  # DEL and C1 controls
    "/a\ue000", "/a\uf8ff", "/a\ue123", "/\ud800", "/a\udfff",  # private use and (lone) surrogates
    "/a\ufff0", "/a\ufffd", "/a\ufffe", "/a\uffff",  # specials, including the replacement character
    "/a\U00010000", "/a\U0001f600", "/\U0010ffff",  # beyond the BMP: surrogate pairs in Java
]


@pytest.mark.parametrize("path", VALID, ids=ascii)
def test_valid_paths(path):
    assert java_validate_path(path), "the reference disagrees with the table"
    assert is_valid_path(path) is True


@pytest.mark.parametrize("path", INVALID, ids=ascii)
def test_invalid_paths(path):
    assert not java_validate_path(path), "the reference disagrees with the table"
    assert is_valid_path(path) is False


def test_valid_paths_are_cached_without_changing_answers():
    for _ in range(3):
        assert [is_valid_path(p) for p in VALID + INVALID] == [True] * len(VALID) + [False] * len(INVALID)


# Characters around every boundary of the rules, and the characters that make structure.
EDGES = ["/", ".", "a", "\x00", "\x01", "\x1f", " ", "\x7e", "\x7f", "\x9f", "\xa0", "\ud7ff", "\ue000",
         "\uf8ff", "\uf900", "\uffef", "\ufff0", "\ufffd", "\uffff", "\U00010000", "\U0010ffff", "é"]


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(EDGES), max_size=12))
def test_matches_java_on_edge_characters(path):
    assert is_valid_path(path) == java_validate_path(path)


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(EDGES), max_size=10))
def test_matches_java_on_absolute_paths(rest):
    assert is_valid_path("/" + rest) == java_validate_path("/" + rest)


@settings(max_examples=150)
@given(st.lists(st.one_of(st.sampled_from(["", ".", "..", "...", "a", ".a", "a."]), st.text(max_size=4)), max_size=5),
       st.booleans())
def test_matches_java_on_node_names(names, trailing):
    path = "/" + "/".join(names) + ("/" if trailing else "")
    assert is_valid_path(path) == java_validate_path(path)


@settings(max_examples=300)
@given(st.text(max_size=20))
def test_matches_java_on_any_text(text):
    assert is_valid_path(text) == java_validate_path(text)
    assert is_valid_path("/" + text) == java_validate_path("/" + text)


# ---------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def server():
    with ZkpyServer() as s:
        yield s


@pytest.fixture(scope="module")
def raw(server):
    c = RawClient(server.host, server.port)
    assert c.create("/p")[0] == 0
    yield c
    c.close()


# Invalid paths whose parent exists (ZooKeeper looks the parent up before judging the path).
E2E_INVALID = ["//", "/.", "/..", "/p/", "/p/.", "/p/..", "/p/a\x01", "/p/a\x7f", "/p/a\ue000", "/p/a\ufff5",
               "/p/\U0001f600", "/\x1f", "/p/\x85"]


def test_through_kazoo(server, raw):
    """kazoo refuses "." and ".." itself and silently rewrites "//" and a trailing "/" (hence the raw
    frames above); invalid characters it sends, and the server's BADARGUMENTS reaches the caller."""
    zk = KazooClient(server.connect_string, timeout=10)
    zk.start(10)
    try:
        for path in ("/p/.", "/p/..", "/p/../x"):
            with pytest.raises(ValueError):
                zk.create(path)
        assert zk.create("/p//k/") == "/p/k"
        for path in ("/p/a\x01", "/p/a\x7f", "/p/a\ufff0", "/p/\U0001f600"):
            with pytest.raises(BadArgumentsError):
                zk.create(path)
            with pytest.raises(BadArgumentsError):
                zk.set(path, b"")
        assert "k" in zk.get_children("/p")
        zk.delete("/p/k")
    finally:
        zk.stop()
        zk.close()


@pytest.mark.parametrize("path", E2E_INVALID, ids=ascii)
def test_server_refuses_invalid_paths_with_badarguments(raw, path):
    assert raw.create(path, op=Op.CREATE)[0] == Err.BADARGUMENTS
    assert raw.create(path, op=Op.CREATE2)[0] == Err.BADARGUMENTS
    assert raw.call(Op.SET_DATA, (path, b"", -1))[0] == Err.BADARGUMENTS
    assert raw.call(Op.EXISTS, ("/p", False))[0] == 0  # the connection goes on


def test_sequential_create_judges_the_path_with_its_suffix(raw):
    """ZooKeeper appends the sequence number first: "/p/" is a valid sequential create, "/p/." too."""
    err, r, _ = raw.create("/p/", flags=2, op=Op.CREATE)
    assert err == 0 and r.ustring().startswith("/p/00000")
    err, r, _ = raw.create("/p/.", flags=2, op=Op.CREATE)
    assert err == 0 and r.ustring().startswith("/p/.00000")
    assert raw.create("/p/a\x01", flags=2, op=Op.CREATE)[0] == Err.BADARGUMENTS


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.text(alphabet=st.sampled_from(EDGES), min_size=1, max_size=6))
def test_server_accepts_exactly_what_zookeeper_accepts(raw, name):
    path = "/p/" + name
    err = raw.create(path, op=Op.CREATE)[0]
    if not java_validate_path(path):
        # a parent that does not exist is looked up first (NONODE), as ZooKeeper does
        assert err in (Err.BADARGUMENTS, Err.NONODE), (path, err)
        if java_validate_path(path.rsplit("/", 1)[0]) and raw.call(Op.EXISTS, (path.rsplit("/", 1)[0], False))[0] == 0:
            assert err == Err.BADARGUMENTS
    else:
        assert err in (0, Err.NODEEXISTS, Err.NONODE), (path, err)
        if err == 0:
            assert raw.call(Op.EXISTS, (path, False))[0] == 0
            assert raw.call(Op.DELETE, (path, -1))[0] == 0
