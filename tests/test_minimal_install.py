"""`pip install . && zkpy serve` (the README's first command) installs only uvloop, msgpack and
structlog.  The server must start and serve with nothing else: every other package is an extra
(admin, metrics, shell, verify, tls, test), imported only by the feature that needs it.

The server runs in a child process whose imports of anything outside the standard library and
the core dependencies fail as they would on a fresh install; a kazoo client in this process
then uses it over a real socket.  (Seen to fail: `zkpy serve` imported hypothesis through
`zkpy verify`'s parser, and exited with ModuleNotFoundError before it listened.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from kazoo.client import KazooClient

from zkpy.testing.external import four_letter_word, free_port

CORE = {"uvloop", "msgpack", "structlog", "zkpy"}

# Run as `python -c`: refuses every top-level module that is neither stdlib nor core.
LAUNCHER = textwrap.dedent("""
    import sys
    ALLOWED = set(sys.stdlib_module_names) | set(sys.argv[1].split(","))
    class OnlyCoreDependencies:
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top not in ALLOWED and not top.startswith("_"):
                raise ModuleNotFoundError(f"No module named {name!r} (not a core dependency)", name=name)
            return None
    sys.meta_path.insert(0, OnlyCoreDependencies())
    from zkpy.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def test_the_server_serves_with_only_its_core_dependencies(tmp_path):
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"clientPort={port}\nclientPortAddress=127.0.0.1\ndataDir={tmp_path / 'data'}\n"
                   "admin.enableServer=false\n")
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, ",".join(CORE), "serve", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"zkpy serve exited {proc.returncode}:\n{proc.stdout.read()}"
            try:
                if "Mode: standalone" in four_letter_word("127.0.0.1", port, "srvr"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "zkpy serve did not answer srvr in 30 s"
            time.sleep(0.1)
        client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
        client.start(timeout=15)
        try:
            client.create("/minimal", b"core only")
            assert client.get("/minimal")[0] == b"core only"
        finally:
            client.stop()
            client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "not a core dependency" not in out, out
