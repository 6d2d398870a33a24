"""`zkpy shell`: zkCli without a JVM.

- A script piped into `zkpy shell` prints what the real zkCli 3.8 (`/usr/share/zookeeper/bin/zkCli.sh`)
  prints for the same script against the same server, stdout and stderr line by line (times, zxids
  and session ids aside), with the same exit code; against zkpy and against Apache ZooKeeper.
- One command from the command line (`zkpy shell -server h:p get /x`), as zkCli.sh takes it.
- In a real terminal (tmux): Tab completes a znode path, Up recalls the last command, a watch
  fires while the prompt waits.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from zkpy.testing import ZkpyServer
from zkpy.testing.external import ApacheZooKeeper, apache_zookeeper_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
ENV = dict(os.environ, PYTHONPATH=ROOT)

pytestmark = pytest.mark.timeout(240)

# Each line is something zkCli users type; the script removes what it creates, so zkCli and
# zkpy shell can run it one after the other against the same server.
SCRIPT = """\
ls /
create /sh hello
create /sh x
get -s /sh
set -v 5 /sh y
set -s /sh v2
ls -s /sh
get -w /sh
set /sh z
stat /sh/nope
getAcl /sh
delete /sh/nope
create /sh/b
create -e /sh/e
create -s /sh/s
create -s /sh/s "two words"
create -c /sh/box
create -c -e /sh/bad
create -t abc /sh/bad
create -t 1000 /sh/ttl
create bad
create /sh/x 1 world:anyone
create /sh/z 1 world:anyone:rq
getAcl /sh/z
ls -R /sh
get /sh/s0000000003
ls -sw /sh/b
create /sh/b/c
removewatches /sh/b
stat -w /sh/b
removewatches /sh/b -d
addWatch /sh/b
create /sh/b/d
set /sh/b/d v
delete /sh/b/d
addWatch -m PERSISTENT /sh/e
set /sh/e e
removewatches /sh/e
addWatch -m NOSUCH /sh/e
bogus
ls
get
set /sh
ls -x /
set -v
getEphemerals /sh
getEphemerals /nope
getAllChildrenNumber /sh
getAllChildrenNumber /nope
sync /sh
config
config -c
create /sh/q
create /sh/q/c1 d
setquota -n 5 /sh/q
setquota -b 100 /sh/q
listquota /sh/q
delquota -n /sh/q
listquota /sh/q
delquota /sh/q
listquota /sh/q
delquota /sh/q
setquota -n 2 /nope
setquota /sh/q
setquota -n 1 -b 2 /sh/q
setquota -n 0 /sh/q
setAcl /sh/q world:anyone:rwa
create /sh/q/c3
delete -v 7 /sh/q/c1
delete /sh/q
getAcl -s /sh/q
setAcl -v 9 /sh/q world:anyone:cdrwa
setAcl -s /sh/q world:anyone:cdrwa
addauth digest user:pass
whoami
getAcl /sh/nope
deleteall /nope
history
redo 3
redo 999
printwatches
printwatches off
get -w /sh
set /sh w
get /sh
printwatches on
deleteall /sh
ls /
printwatches off
close
ls /
history
connect
ls /zookeeper
"""

_VOLATILE = re.compile(r"^(cZxid|mZxid|pZxid|ctime|mtime) = .*$")
_OWNER = re.compile(r"^ephemeralOwner = 0x(?!0$)[0-9a-f]+$")


def normalized(text: str) -> list[str]:
    """Lines without what differs run to run (times, zxids, session ids) and without the JVM's
    noise (SLF4J's warnings, zkCli's note that it runs without JLine)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("SLF4J:") or line == "JLine support is disabled":
            continue
        line = _VOLATILE.sub(r"\1 = ?", line)
        lines.append(_OWNER.sub("ephemeralOwner = 0x<session>", line))
    return lines


CONNECTED = ["", "WATCHER::", "", "WatchedEvent state:SyncConnected type:None path:null"]


def split_events(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the other lines, the watch events in order).  zkCli prints events from its event thread,
    sometimes after the next command's output; zkpy shell prints each as it arrives (before the
    reply that follows it): compare the two sequences, not how they interleave."""
    others, events = [], []
    i = 0
    while i < len(lines):
        if lines[i:i + 3] == ["", "WATCHER::", ""] and i + 3 < len(lines) and lines[i + 3].startswith("WatchedEvent"):
            events.append(lines[i + 3])
            i += 4
        else:
            others.append(lines[i])
            i += 1
    return others, events


def zkpy_shell(server: str, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zkpy", "shell", "-server", server, *args], input=stdin,
                          capture_output=True, text=True, env=ENV, timeout=timeout, check=False)


def zkcli(server: str, *args: str, stdin: str = "", timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([ZKCLI, "-server", server, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)


needs_zookeeper = pytest.mark.skipif(not (apache_zookeeper_available() and os.path.exists(ZKCLI)),
                                     reason="Apache ZooKeeper 3.8 (zookeeper.jar, zkCli.sh, java) not installed")


@pytest.fixture(scope="module", params=["zkpy", pytest.param("zookeeper", marks=needs_zookeeper)])
def server(request) -> Iterator[str]:
    """A connect string, for an in-process zkpy or an Apache ZooKeeper 3.8 process."""
    if request.param == "zkpy":
        with ZkpyServer() as zk:
            yield zk.connect_string
    else:
        with ApacheZooKeeper() as zk:
            yield zk.connect_string


@needs_zookeeper
def test_a_script_prints_what_zkcli_prints(server: str) -> None:
    theirs = zkcli(server, stdin=SCRIPT)
    ours = zkpy_shell(server, stdin=SCRIPT)
    assert normalized(ours.stdout)[2:6] == CONNECTED  # before any command's output
    assert split_events(normalized(ours.stdout)) == split_events(normalized(theirs.stdout))
    assert normalized(ours.stderr) == normalized(theirs.stderr)
    assert ours.returncode == theirs.returncode
    assert "Node already exists: /sh" in ours.stderr and "WatchedEvent state:SyncConnected type:NodeDataChanged " \
        "path:/sh" in ours.stdout  # the script did run (and was not, say, refused as a whole)


@needs_zookeeper
@pytest.mark.parametrize("commands", [[["ls", "/"]], [["get", "/nope"]], [["bogus"]], [["ls", "-R", "/zookeeper"]],
                                      [["create", "/cmdline", "a b"], ["get", "/cmdline"], ["delete", "/cmdline"]]],
                         ids=["ls", "no-node", "no-command", "ls-R", "create-get-delete"])
def test_one_command_from_the_command_line_as_zkcli(server: str, commands: list[list[str]]) -> None:
    """`zkCli.sh -server h:p get /x`: one command per run, its exit code (1 failed, 127 unknown)."""
    def results(tool) -> list:
        runs = [tool(server, *command) for command in commands]
        out = []
        for r in runs:
            others, events = split_events(normalized(r.stdout))
            # zkCli may exit before its event thread prints the connection (`bogus` needs no server)
            events = [e for e in events if e != CONNECTED[3]]
            out.append((others, events, normalized(r.stderr), r.returncode))
        return out

    assert results(zkpy_shell) == results(zkcli)


def test_dash_c_runs_one_quoted_command_line(server: str) -> None:
    created = zkpy_shell(server, "-c", "create /dash_c 'one two'")
    assert created.returncode == 0 and "Created /dash_c" in created.stderr
    got = zkpy_shell(server, "-c", "get /dash_c")
    assert got.stdout.splitlines()[-1] == "one two"
    missing = zkpy_shell(server, "-c", "delete /dash_c_nope")
    assert missing.returncode == 1 and missing.stderr.strip() == "Node does not exist: /dash_c_nope"
    assert zkpy_shell(server, "delete", "/dash_c").returncode == 0


# ---------------------------------------------------------------------- in a real terminal

class Terminal:
    """`command` in a detached tmux session, 200x50, on a private tmux server (its socket in a
    temp dir that close() removes)."""

    def __init__(self, command: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="zkpy-shell-tmux-")  # the private server's socket
        self.tmux = ["tmux", "-S", os.path.join(self.dir, "socket")]
        # The pane outlives the command (so its last words stay readable), until close().
        subprocess.run(self.tmux + ["new-session", "-d", "-x", "200", "-y", "50", "-s", "t",
                                    f"{command}; echo EXITED $?; sleep 600"], check=True, timeout=10, env=ENV)

    def send(self, *keys: str) -> None:
        subprocess.run(self.tmux + ["send-keys", "-t", "t", *keys], check=True, timeout=10)

    def type(self, text: str) -> None:
        subprocess.run(self.tmux + ["send-keys", "-t", "t", "-l", text], check=True, timeout=10)

    def screen(self) -> str:
        return subprocess.run(self.tmux + ["capture-pane", "-p", "-t", "t"], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        """The screen once `pattern` (a regex) shows on it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if re.search(pattern, text, re.MULTILINE):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen after {timeout}s:\n{text}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(self.tmux + ["kill-server"], capture_output=True, timeout=10, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


@pytest.fixture
def terminal(server: str) -> Iterator[Terminal]:
    term = Terminal(f"{sys.executable} -m zkpy shell -server {server}")
    try:
        term.wait_for(re.escape(f"[zk: {server}(CONNECTED) 0]"))
        yield term
    finally:
        term.close()


def prompt(number: int) -> str:
    return rf"^\[zk: [0-9.:]+\(CONNECTED\) {number}\]"  # capture-pane drops the trailing space


@needs_tmux
def test_tab_completes_a_znode_path_and_up_recalls_history(server: str, terminal: Terminal) -> None:
    name = f"tab_{uuid.uuid4().hex[:6]}"
    terminal.type(f"create /{name} first")
    terminal.send("Enter")
    terminal.wait_for(prompt(1))
    terminal.type(f"create /{name}/child_alpha 42")
    terminal.send("Enter")
    terminal.wait_for(prompt(2))
    terminal.type(f"get /{name[:-2]}")
    terminal.send("Tab")
    terminal.wait_for(prompt(2) + re.escape(f" get /{name}") + r"\s*$")
    terminal.type("/chi")
    terminal.send("Tab")
    terminal.wait_for(prompt(2) + re.escape(f" get /{name}/child_alpha") + r"\s*$")
    terminal.send("Enter")
    terminal.wait_for(r"^42\s*$")
    terminal.wait_for(prompt(3))
    terminal.send("Up")
    terminal.wait_for(prompt(3) + re.escape(f" get /{name}/child_alpha") + r"\s*$")
    terminal.send("Up")
    terminal.wait_for(prompt(3) + re.escape(f" create /{name}/child_alpha 42") + r"\s*$")
    terminal.send("C-u")
    terminal.type("hist")
    terminal.send("Tab")  # command names complete too
    terminal.wait_for(prompt(3) + r" history\s*$")
    terminal.send("Enter")
    terminal.wait_for(r"^2 - " + re.escape(f"get /{name}/child_alpha") + r"\s*$")
    terminal.type(f"deleteall /{name}")
    terminal.send("Enter")
    terminal.wait_for(prompt(5))
    terminal.type("quit")
    terminal.send("Enter")
    terminal.wait_for(r"EXITED 0\s*$")


@needs_tmux
def test_a_watch_fires_while_the_prompt_waits(server: str, terminal: Terminal) -> None:
    name = f"/watched_{uuid.uuid4().hex[:6]}"
    client = KazooClient(hosts=server, timeout=10)
    client.start(timeout=30)
    try:
        client.create(name, b"1")
        terminal.type(f"get -w {name}")
        terminal.send("Enter")
        terminal.wait_for(prompt(1))
        client.set(name, b"2")
        text = terminal.wait_for(re.escape(f"WatchedEvent state:SyncConnected type:NodeDataChanged path:{name}"))
        assert "WATCHER::" in text
        terminal.wait_for(prompt(1) + r"\s*$")  # the prompt is drawn again below the event
    finally:
        client.delete(name)
        client.stop()
        client.close()


@needs_tmux
def test_without_prompt_toolkit_the_shell_says_how_to_install_it(server: str) -> None:
    hide = "import sys; sys.modules['prompt_toolkit'] = None; from zkpy.cli import main; sys.exit(main())"
    term = Terminal(f'{sys.executable} -c "{hide}" shell -server {server}')
    try:
        term.wait_for(re.escape("pip install 'zkpy[shell]'"))
        term.wait_for(re.escape(f"[zk: {server}(CONNECTED) 0]"))
        term.type("ls /zookeeper")
        term.send("Enter")
        term.wait_for(r"^\[config, quota\]|^\[quota\]|^\[config\]|^\[\]")
        term.send("C-d")
        term.wait_for(r"EXITED 0\s*$")
    finally:
        term.close()
