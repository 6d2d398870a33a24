"""Broken builds for `zkpy verify --broken`: member processes that acknowledge too early.

The flag lives in the pure core (`zab.BROKEN_COMMIT_WITHOUT_QUORUM`, off in every real build);
a member process gets it through a generated `sitecustomize` module, which Python imports at
start-up, so nothing in the server knows of it (the mechanism of zkpy/testing/fuzzbroken.py).
"""

from __future__ import annotations

import os

# name -> (module, flag) set to True in each member process
BUILDS = {"ack-before-quorum": ("zkpy.consensus.zab", "BROKEN_COMMIT_WITHOUT_QUORUM")}
_SITECUSTOMIZE = "import importlib\nsetattr(importlib.import_module({module!r}), {flag!r}, True)\n"


def member_env(build: str, directory: str) -> dict[str, str]:
    """Environment for a member process running the broken `build`; the sitecustomize goes
    in `directory` (the ensemble's temp dir, removed with it).  The package root of this very
    zkpy comes next on PYTHONPATH, so the member runs the same code as the caller."""
    module, flag = BUILDS[build]
    d = os.path.join(directory, "broken-build")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "sitecustomize.py"), "w") as f:
        f.write(_SITECUSTOMIZE.format(module=module, flag=flag))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = [d, root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {"PYTHONPATH": os.pathsep.join(path)}
