"""ZooKeeper's path rules (PathUtils.validatePath), against a small reference written here."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zkpy.protocol.codes import Err, Op
from zkpy.testing.client import RawClient
from zkpy.tree.paths import is_valid_path


def reference(path: str) -> bool:
    """A direct transcription of the rules, one character at a time (Java UTF-16 semantics)."""
    if not path or path[0] != "/":
        return False
    if path == "/":
        return True
    if path.endswith("/"):
        return False
    units = path.encode("utf-16-be")
    chars = [chr(units[i] << 8 | units[i + 1]) for i in range(0, len(units), 2)]
    for i, c in enumerate(chars):
        o = ord(c)
        if o == 0 or (0 < o <= 0x1F) or (0x7F <= o <= 0x9F) or (0xD800 <= o <= 0xF8FF) or (0xFFF0 <= o <= 0xFFFF):
            return False
    for name in path.split("/")[1:]:
        if name in ("", ".", ".."):
            return False
    return True


@pytest.mark.parametrize("path,ok", [
    ("/", True), ("/a", True), ("/a/b/c", True), ("/a.b", True), ("/..a", True), ("/a..", True), ("/.a/b.", True),
    ("/zookeeper", True), ("/日本", True), ("/a b", True),
    ("", False), ("a", False), ("/a/", False), ("//", False), ("/a//b", False), ("/.", False), ("/..", False),
    ("/a/./b", False), ("/a/../b", False), ("/a\x00b", False), ("/a\x01", False), ("/a\x1f", False),
    ("/a\x7f", False), ("/a\x9f", False), ("/a\ud800", False), ("/a\uf8ff", False), ("/a\ufff0", False),
    ("/a\uffff", False), ("/a\U0001f600", False), ("/a\x20", True), ("/a\xa0", True), ("/a\uf900", True),
])
def test_known_paths(path, ok):
    assert is_valid_path(path) is ok


@given(st.text(alphabet=st.sampled_from(list("/a.") + ["\x00", "\x1f", "\x7f", "\xa0", "\ue000", "\ufff5", "é"]), max_size=12))
def test_matches_reference(path):
    assert is_valid_path(path) == reference(path)


@given(st.text(max_size=20))
def test_matches_reference_on_any_text(text):
    assert is_valid_path("/" + text) == reference("/" + text)


def test_server_rejects_invalid_paths_kazoo_would_not_send(server):
    c = RawClient(server.host, server.port)
    for path in ("/a/../b", "/x\x01", "/./y"):
        assert c.call(Op.SET_DATA, (path, b"", -1))[0] == Err.BADARGUMENTS
    assert c.create("/ok")[0] == 0
    c.close()
