"""Run kazoo's own test suite (`kazoo.tests`, kazoo 2.11) against a 3-node zkpy ensemble.

    python tests/kazoo_suite/run.py [pytest options, e.g. -x -k test_lock]

kazoo's harness starts each ensemble member as `java ... QuorumPeerMain zoo.cfg`; a java shim
(`zkpy java-shim`) first in PATH turns that into `python -m zkpy serve zoo.cfg -D...`. The
tests listed in deselected.txt wait for zkpy features and are deselected by name; an entry
that matches no test is an error, so the list cannot go stale silently.

Environment (each has a default; kazoo's harness reads them):
  ZOOKEEPER_VERSION      the version zkpy reports (kazoo picks its 3.5+ settings from it, and
                         test_build checks the server against it when CI is set)
  ZOOKEEPER_CLASSPATH    passed to java as -cp; the shim ignores it (default "zkpy-java-shim")
  ZOOKEEPER_PORT_OFFSET  first port of the ensemble (default 20000; member n uses
                         offset+10(n-1) .. +4), on 127.0.0.1/localhost
  ZOOKEEPER_CLUSTER_SIZE members (default 3)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def read_deselected(path: str) -> list[str]:
    """`module::Class` / `module` entries of the list, comments and blank lines dropped."""
    with open(path, encoding="utf-8") as f:
        return [line.partition("#")[0].strip() for line in f if line.partition("#")[0].strip()]


class Deselect:
    """Deselects kazoo tests by name, before -k/-m filtering; fails on an entry matching nothing."""

    def __init__(self, entries: list[str]) -> None:
        self.entries = entries

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        matched: set[str] = set()
        keep, drop = [], []
        for item in items:
            name = item.nodeid.rpartition("kazoo/tests/")[2]
            entry = next((e for e in self.entries if name == e or name.startswith(e + "::")), None)
            (keep if entry is None else drop).append(item)
            if entry is not None:
                matched.add(entry)
        stale = [e for e in self.entries if e not in matched]
        if stale:
            raise pytest.UsageError(f"deselected.txt names tests kazoo does not have: {stale}")
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def main(argv: list[str]) -> int:
    import kazoo

    from zkpy.server.fourletter import VERSION
    from zkpy.testing.java_shim import write_shim

    shim_dir = tempfile.mkdtemp(prefix="zkpy-java-shim-")
    try:
        write_shim(shim_dir)
        os.environ["PATH"] = shim_dir + os.pathsep + os.environ.get("PATH", "")
        os.environ.setdefault("ZOOKEEPER_VERSION", VERSION.split("-")[0])
        os.environ.setdefault("ZOOKEEPER_CLASSPATH", "zkpy-java-shim")
        kazoo_parent = os.path.dirname(os.path.dirname(os.path.abspath(kazoo.__file__)))
        args = ["-c", os.path.join(HERE, "pytest.ini"), "--rootdir", kazoo_parent, "-p", "no:cacheprovider",
                "--pyargs", "kazoo.tests", *argv]
        return int(pytest.main(args, plugins=[Deselect(read_deselected(os.path.join(HERE, "deselected.txt")))]))
    finally:
        shutil.rmtree(shim_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
