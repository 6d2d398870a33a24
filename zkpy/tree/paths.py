"""ZooKeeper's path rules (PathUtils.validatePath)."""

import re

# Characters ZooKeeper rejects.  Java strings are UTF-16, so every code point outside
# the BMP arrives there as a surrogate pair (rejected by the \ud800-\uf8ff range): we
# reject those code points directly.
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


_valid_cache: set[str] = set()


def is_valid_path(path: str) -> bool:
    """True when `path` is an absolute, canonical znode path (valid paths are cached)."""
    if path in _valid_cache:
        return True
    if _check(path):
        if len(_valid_cache) > 100_000:
            _valid_cache.clear()
        _valid_cache.add(path)
        return True
    return False


def _check(path: str) -> bool:
    if not path or path[0] != "/":
        return False
    if len(path) == 1:
        return True
    if path[-1] == "/":
        return False
    if _BAD_CHARS.search(path):
        return False
    for name in path[1:].split("/"):
        if name == "" or name == "." or name == "..":
            return False
    return True


def ancestors(path: str):
    """Yields the proper ancestors of `path`, nearest first, ending with '/'."""
    while path != "/":
        i = path.rfind("/")
        path = path[:i] if i > 0 else "/"
        yield path
