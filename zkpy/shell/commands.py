"""zkCli's commands (org.apache.zookeeper.cli.*Command, ZooKeeperMain.processZKCmd) over kazoo,
printing what zkCli 3.8 prints, on the same stream (stdout or stderr)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

from kazoo.exceptions import KazooException, NoNodeError
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id

from . import quotas
from .requests import (
    AddWatch,
    CreateContainer,
    CreateTTL,
    GetAllChildrenNumber,
    GetEphemerals,
    RemoveWatches,
    WhoAmI,
)
from .session import ShellSession
from .texts import (
    CliError,
    cli_message,
    error_code,
    id_string,
    keeper_message,
    parse_options,
    perm_string,
    split_command,
    stat_lines,
    validate_path,
)

ADD_WATCH_USAGE = ("[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - "
                   "default is PERSISTENT_RECURSIVE")
RECONFIG_USAGE = ("[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | "
                  "[-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]")
USAGES = {
    "addWatch": ADD_WATCH_USAGE, "addauth": "scheme auth", "close": "", "config": "[-c] [-w] [-s]",
    "connect": "host:port", "create": "[-s] [-e] [-c] [-t ttl] path [data] [acl]", "delete": "[-v version] path",
    "deleteall": "path [-b batch size]", "delquota": "[-n|-b|-N|-B] path", "get": "[-s] [-w] path",
    "getAcl": "[-s] path", "getAllChildrenNumber": "path", "getEphemerals": "path", "history": "",
    "listquota": "path", "ls": "[-s] [-w] [-R] path", "printwatches": "on|off", "quit": "",
    "reconfig": RECONFIG_USAGE, "redo": "cmdno", "removewatches": "path [-c|-d|-a] [-l]",
    "set": "[-s] [-v version] path data", "setAcl": "[-s] [-v version] [-R] path acl",
    "setquota": "-n|-b|-N|-B val path", "stat": "[-w] path", "sync": "path", "version": "", "whoami": "",
}
COMMANDS = sorted(USAGES)
PERMS = {"r": 1, "w": 2, "c": 4, "d": 8, "a": 16}
WATCH_MODES = {"PERSISTENT": 0, "PERSISTENT_RECURSIVE": 1}


class Shell:
    """The state zkCli keeps between commands: the session, history, printwatches, exit code."""

    def __init__(self, server: str, timeout_ms: int = 30000, out: TextIO | None = None,
                 err: TextIO | None = None, read_only: bool = False) -> None:
        self.host = server
        self.timeout_ms = timeout_ms
        self.read_only = read_only
        self._out, self._err = out, err  # None: sys.stdout / sys.stderr at the time of writing
        self._lock = threading.Lock()  # watch events come from kazoo's thread
        self.history: dict[int, str] = {}
        self.count = 0
        self.print_watches = True
        self.exit_code = 0
        self.session: ShellSession | None = None

    # ------------------------------------------------------------------ output

    def out(self, text: str = "", end: str = "\n") -> None:
        with self._lock:
            stream = self._out or sys.stdout
            stream.write(text + end)
            stream.flush()

    def err(self, text: str) -> None:
        with self._lock:
            stream = self._err or sys.stderr
            stream.write(text + "\n")
            stream.flush()

    def _event(self, state: str, kind: str, path: str | None) -> None:
        """ZooKeeperMain.MyWatcher: every event, with printMessage's leading blank line."""
        if self.print_watches:
            self.out(f"\nWATCHER::\n\nWatchedEvent state:{state} type:{kind} path:{path if path is not None else 'null'}")

    # ------------------------------------------------------------------ session

    def connect(self, host: str, wait: bool = True) -> None:
        """A new session (closing the old one); `wait`: until connected or the session timeout."""
        if self.session is not None:
            self.session.close(report=False)
        self.host = host
        self.session = ShellSession(host, self.timeout_ms, self._event, self.read_only)
        self.session.start()
        if wait:
            self.wait_connected()

    def wait_connected(self) -> bool:
        """zkCli does not wait (commands queue in the client until it connects); waiting puts the
        connection event before the first command's output, where zkCli usually has it."""
        assert self.session is not None
        return self.session.wait_connected(self.timeout_ms / 1000)

    def prompt(self) -> str:
        state = self.session.state_name if self.session else "CLOSED"
        return f"[zk: {self.host}({state}) {self.count}] "

    def close(self) -> None:
        if self.session is not None:
            self.session.close(report=False)

    # ------------------------------------------------------------------ lines and commands

    def execute_line(self, line: str) -> None:
        """ZooKeeperMain.executeLine: numbered into history, then run."""
        if not line.strip():
            return
        self.history[self.count] = line
        self.run(split_command(line))
        self.count += 1

    def run(self, args: list[str]) -> int:
        """processCmd: errors go to stderr and set the exit code."""
        try:
            self._process(args)
            self.exit_code = 0
        except CliError as e:
            self.exit_code = e.exit_code
            self.err(str(e))
        return self.exit_code

    def _process(self, args: list[str]) -> None:
        if not args:
            self._usage()
            raise CliError("No command entered")
        cmd = args[0]
        if cmd not in USAGES:
            self._usage()
            raise CliError(f"Command not found: Command not found {cmd}", 127)
        if cmd == "quit":
            self.close()
            raise SystemExit(self.exit_code)
        if cmd == "redo" and len(args) >= 2:
            self._redo(args[1])
        elif cmd == "history":
            for i in range(max(self.count - 10, 0), self.count + 1):
                self.out(f"{i} - {self.history.get(i)}")
        elif cmd == "printwatches":
            if len(args) == 1:
                self.out(f"printwatches is {'on' if self.print_watches else 'off'}")
            else:
                self.print_watches = args[1] == "on"
        elif cmd == "connect":
            self.connect(args[1] if len(args) >= 2 else self.host)
        if self.session is None or not self.session.alive:
            self.out("Not connected")
            return
        handler: Callable[[list[str]], None] | None = getattr(self, "cmd_" + cmd, None)
        if handler is not None:
            handler(args)

    def _usage(self) -> None:
        lines = ["ZooKeeper -server host:port -client-configuration properties-file cmd args"]
        lines += [f"\t{cmd} {USAGES[cmd]}" for cmd in COMMANDS]
        self.err("\n".join(lines))

    def _redo(self, number: str) -> None:
        try:
            i = int(number, 0)
        except ValueError:
            raise CliError(f'For input string: "{number}"') from None
        if self.count <= i or i < 0:
            raise CliError("Command index out of range")
        line = self.history[i]
        args = split_command(line)
        if args and args[0] == "redo":
            raise CliError("No redoing redos")
        self.history[self.count] = line
        self.run(args)

    def _call(self, path: str | None, fn: Callable, *args, **kwargs):
        """A kazoo call; its error as zkCli words it for `path`."""
        try:
            return fn(*args, **kwargs)
        except KazooException as e:
            raise CliError(cli_message(e, path)) from None

    @property
    def zk(self):
        assert self.session is not None
        return self.session.client

    def _stat(self, stat) -> None:
        self.out("\n".join(stat_lines(stat)))

    @staticmethod
    def _need(args: list[str], count: int, cmd: str) -> None:
        if len(args) < count:
            raise CliError(f"{cmd} {USAGES[cmd]}")

    @staticmethod
    def _version(opts: dict[str, str]) -> int:
        value = opts.get("v")
        if value is None:
            return -1
        try:
            return int(value)
        except ValueError:
            raise CliError(f'For input string: "{value}"') from None

    def _deprecated(self, args: list[str], pos: list[str], spec: dict[str, bool], old: str, new: str):
        """'get path [watch]' and friends: zkCli rewrites the third word to -w, with a warning."""
        self.err(f"'{old}' has been deprecated. Please use '{new}' instead.")
        args = list(args)
        args[2] = "-w"
        return parse_options(args, spec)

    # ------------------------------------------------------------------ the commands

    def cmd_ls(self, args: list[str]) -> None:
        spec = {"?": False, "s": False, "w": False, "R": False}
        opts, pos = parse_options(args, spec)
        if len(pos) > 2:
            opts, pos = self._deprecated(args, pos, spec, "ls path [watch]", "ls [-w] path")
        self._need(pos, 2, "ls")
        path = pos[1]
        watch = self.session.watch if "w" in opts else None
        if "R" in opts:
            validate_path(path)
            for p in self._subtree_dfs(path, watch):
                self.out(p)
            return
        validate_path(path)
        if "s" in opts:
            children, stat = self._call(path, self.zk.get_children, path, watch=watch, include_data=True)
        else:
            children, stat = self._call(path, self.zk.get_children, path, watch=watch), None
        self.out("[" + ", ".join(sorted(children)) + "]")
        if stat is not None:
            self._stat(stat)

    def _subtree_dfs(self, path: str, watch=None):
        """ZKUtil.visitSubTreeDFS: the node, then each level's children sorted before their subtrees."""
        self._call(path, self.zk.get, path, watch=watch)
        yield path
        yield from self._dfs_children(path, watch)

    def _dfs_children(self, path: str, watch):
        try:
            children = sorted(self._raw(self.zk.get_children, path, watch=watch))
        except NoNodeError:
            return
        paths = [(path if path == "/" else path + "/") + c for c in children]
        yield from paths
        for p in paths:
            yield from self._dfs_children(p, watch)

    def _raw(self, fn: Callable, *args, **kwargs):
        """A kazoo call whose errors the caller handles, except the unexpected ones."""
        try:
            return fn(*args, **kwargs)
        except NoNodeError:
            raise
        except KazooException as e:
            raise CliError(cli_message(e, args[0] if args else None)) from None

    def cmd_get(self, args: list[str]) -> None:
        spec = {"s": False, "w": False}
        opts, pos = parse_options(args, spec)
        self._need(pos, 2, "get")
        if len(pos) > 2:
            opts, pos = self._deprecated(args, pos, spec, "get path [watch]", "get [-s] [-w] path")
        path = pos[1]
        validate_path(path)
        data, stat = self._call(path, self.zk.get, path, watch=self.session.watch if "w" in opts else None)
        self.out("null" if data is None else data.decode("utf-8", "replace"))
        if "s" in opts:
            self._stat(stat)

    def cmd_set(self, args: list[str]) -> None:
        opts, pos = parse_options(args, {"s": False, "v": True})
        self._need(pos, 3, "set")
        path = pos[1]
        version = self._version(opts)
        validate_path(path)
        stat = self._call(path, self.zk.set, path, pos[2].encode("utf-8"), version)
        if "s" in opts:
            self._stat(stat)

    def cmd_create(self, args: list[str]) -> None:
        opts, pos = parse_options(args, {"e": False, "s": False, "c": False, "t": True})
        self._need(pos, 2, "create")
        eph, seq, container, has_ttl = "e" in opts, "s" in opts, "c" in opts, "t" in opts
        if container and (eph or seq):
            raise CliError("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.")
        ttl = 0
        if has_ttl:
            try:
                ttl = int(opts["t"])
            except ValueError:
                raise CliError("-t argument must be a long value") from None
        if has_ttl and eph:
            raise CliError("TTLs cannot be used with Ephemeral znodes")
        if has_ttl and container:
            raise CliError("TTLs cannot be used with Container znodes")
        if has_ttl and not 0 < ttl <= 0xFFFFFFFFFF:
            raise CliError(f"ttl must be positive and cannot be larger than: {0xFFFFFFFFFF}")
        path = pos[1]
        data = pos[2].encode("utf-8") if len(pos) > 2 else None
        acl = parse_acl(pos[3], self.err) if len(pos) > 3 else list(OPEN_ACL_UNSAFE)
        validate_path(path)
        if not acl:  # the Java client refuses an empty ACL itself, with no path in the message
            self.err(keeper_message(-114, None))
            raise CliError("Acl is not valid : null")
        try:
            if has_ttl:
                created = self.session.call(CreateTTL(path, data, acl, 6 if seq else 5, ttl))
            elif container:
                created = self.session.call(CreateContainer(path, data, acl, 4))
            else:
                created = self.zk.create(path, data, acl, ephemeral=eph, sequence=seq)
        except KazooException as e:
            if error_code(e) == -114:
                self.err(keeper_message(-114, path))
            elif error_code(e) == -120:
                self.err("Unable to create ephemeral node on a local session")
            raise CliError(cli_message(e, path)) from None
        self.err(f"Created {created}")

    def cmd_delete(self, args: list[str]) -> None:
        spec = {"v": True}
        opts, pos = parse_options(args, spec)
        self._need(pos, 2, "delete")
        if len(pos) > 2:
            self.err("'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.")
        path = pos[1]
        version = self._version(opts)
        validate_path(path)
        self._call(path, self.zk.delete, path, version)

    def cmd_deleteall(self, args: list[str]) -> None:
        opts, pos = parse_options(args, {"b": True})
        self._need(pos, 2, "deleteall")
        try:
            batch = int(opts.get("b", "1000"))
        except ValueError:
            raise CliError("-b argument must be an int value") from None
        path = pos[1]
        validate_path(path)
        tree = self._subtree_bfs(path)
        ok = True
        ops: list[str] = []
        for i in range(len(tree) - 1, -1, -1):  # the leaves first, the root last
            ops.append(tree[i])
            if len(ops) == batch or i == 0:
                txn = self.zk.transaction()
                for p in ops:
                    txn.delete(p)
                try:
                    results = txn.commit()
                except KazooException:
                    ok = False
                    break
                if any(isinstance(r, Exception) for r in results):
                    ok = False
                    break
                ops = []
        if not ok:
            self.err("Failed to delete some node(s) in the subtree!")

    def _subtree_bfs(self, path: str) -> list[str]:
        """ZKUtil.listSubTreeBFS: the root's NoNode is an error, a vanished child is not."""
        tree = [path]
        queue = [path]
        first = True
        while queue:
            node = queue.pop(0)
            try:
                children = self._raw(self.zk.get_children, node)
            except NoNodeError:
                if first:
                    raise CliError(f"Node does not exist: {node}") from None
                continue
            first = False
            for c in children:
                child = node.rstrip("/") + "/" + c
                tree.append(child)
                queue.append(child)
        return tree

    def cmd_stat(self, args: list[str]) -> None:
        spec = {"w": False}
        opts, pos = parse_options(args, spec)
        self._need(pos, 2, "stat")
        if len(pos) > 2:
            opts, pos = self._deprecated(args, pos, spec, "stat path [watch]", "stat [-w] path")
        path = pos[1]
        validate_path(path)
        stat = self._call(path, self.zk.exists, path, watch=self.session.watch if "w" in opts else None)
        if stat is None:
            raise CliError(f"Node does not exist: {path}")
        self._stat(stat)

    def cmd_getAcl(self, args: list[str]) -> None:
        opts, pos = parse_options(args, {"s": False})
        self._need(pos, 2, "getAcl")
        path = pos[1]
        validate_path(path)
        acls, stat = self._call(path, self.zk.get_acls, path)
        for a in acls:
            self.out(f"{id_string(a.id.scheme, a.id.id)}: {perm_string(a.perms)}")
        if "s" in opts:
            self._stat(stat)

    def cmd_setAcl(self, args: list[str]) -> None:
        opts, pos = parse_options(args, {"s": False, "v": True, "R": False})
        self._need(pos, 3, "setAcl")
        path = pos[1]
        acl = parse_acl(pos[2], self.err)
        version = self._version(opts)
        validate_path(path)
        if "R" in opts:
            for p in self._subtree_dfs(path):
                try:
                    self.zk.set_acls(p, acl, version)
                except KazooException as e:
                    self.out(keeper_message(error_code(e), p), end="")  # zkCli: out.print(e.getMessage())
            return
        stat = self._call(path, self.zk.set_acls, path, acl, version)
        if "s" in opts:
            self._stat(stat)

    def cmd_addauth(self, args: list[str]) -> None:
        _, pos = parse_options(args, {})
        self._need(pos, 2, "addauth")
        self._call(None, self.zk.add_auth, pos[1], pos[2] if len(pos) >= 3 else "")

    def cmd_addWatch(self, args: list[str]) -> None:
        opts, pos = parse_options(args, {"m": True})
        if len(pos) != 2:
            raise CliError(f"addWatch {ADD_WATCH_USAGE}")
        mode = WATCH_MODES.get(opts.get("m", "PERSISTENT_RECURSIVE").upper())
        if mode is None:
            raise CliError(f"addWatch {ADD_WATCH_USAGE}")
        path = pos[1]
        self._call(path, self.session.call, AddWatch(path, mode))
        self.session.persistent.setdefault(path, set()).add(mode)

    def cmd_removewatches(self, args: list[str]) -> None:
        opts, pos = parse_options(args, {"c": False, "d": False, "a": False, "l": False})
        self._need(pos, 2, "removewatches")
        path = pos[1]
        kind = 1 if "c" in opts else 2 if "d" in opts else 3
        validate_path(path)
        removed = self._local_watches(path, kind)
        if not removed:
            raise CliError(keeper_message(-121, path))
        try:
            self.session.call(RemoveWatches(path, kind))
        except KazooException as e:
            if "l" not in opts:
                raise CliError(cli_message(e, path)) from None
        for event in removed:  # the Java client tells the removed watchers
            self._event("SyncConnected", event, path)

    def _local_watches(self, path: str, kind: int) -> list[str]:
        """Drop the watches this client holds on `path` of `kind`: the events the Java client's
        watch manager then delivers (one per kind of watch removed)."""
        zk = self.zk
        removed = []
        if kind in (1, 3) and zk._child_watchers.pop(path, None):
            removed.append("ChildWatchRemoved")
        if kind in (2, 3) and zk._data_watchers.pop(path, None):
            removed.append("DataWatchRemoved")
        if kind == 3 and self.session.persistent.pop(path, None):
            removed.append("PersistentWatchRemoved")
        return removed

    def cmd_sync(self, args: list[str]) -> None:
        _, pos = parse_options(args, {})
        self._need(pos, 2, "sync")
        path = pos[1]
        validate_path(path)
        try:
            self.zk.sync(path)
            self.out("Sync is OK")
        except KazooException as e:
            self.out(f"Sync has failed. rc={error_code(e)}")

    def cmd_getEphemerals(self, args: list[str]) -> None:
        _, pos = parse_options(args, {})
        path = pos[1] if len(pos) >= 2 else "/"
        if len(pos) >= 2:
            validate_path(path)
        found = self._call(path, self.session.call, GetEphemerals(path))
        self.out("[" + ", ".join(found) + "]")

    def cmd_getAllChildrenNumber(self, args: list[str]) -> None:
        _, pos = parse_options(args, {})
        self._need(pos, 2, "getAllChildrenNumber")
        path = pos[1]
        validate_path(path)
        self.out(str(self._call(path, self.session.call, GetAllChildrenNumber(path))))

    def cmd_config(self, args: list[str]) -> None:
        opts, _ = parse_options(args, {"s": False, "w": False, "c": False})
        path = "/zookeeper/config"
        data, stat = self._call(path, self.zk.get, path, watch=self.session.watch if "w" in opts else None)
        text = "null" if data is None else data.decode("utf-8", "replace")
        self.out(client_config(text) if "c" in opts else text)
        if "s" in opts:
            self._stat(stat)

    def cmd_whoami(self, args: list[str]) -> None:
        infos = self._call(None, self.session.call, WhoAmI())
        self.out("Auth scheme: User")
        for scheme, user in infos:
            self.out(f"{scheme}: {user}")

    def cmd_close(self, args: list[str]) -> None:
        self.session.close()

    def cmd_version(self, args: list[str]) -> None:
        if len(args) > 1:
            raise CliError("version ")
        from .. import __version__

        self.out(f"ZooKeeper CLI version: zkpy shell {__version__}")

    def cmd_setquota(self, args: list[str]) -> None:
        quotas.set_quota(self, args)

    def cmd_listquota(self, args: list[str]) -> None:
        quotas.list_quota(self, args)

    def cmd_delquota(self, args: list[str]) -> None:
        quotas.del_quota(self, args)

    def cmd_reconfig(self, args: list[str]) -> None:
        raise CliError("reconfig is not supported by zkpy shell; use zkCli.sh or kazoo's reconfig()")


def parse_acl(text: str, err: Callable[[str], None]) -> list[ACL]:
    """AclParser: scheme:id:perm[,...]; malformed entries are reported and skipped."""
    acl = []
    for entry in text.split(","):
        first, last = entry.find(":"), entry.rfind(":")
        if first == -1 or first == last:
            err(f"{entry} does not have the form scheme:id:perm")
            continue
        perms = 0
        for ch in entry[last + 1:]:
            if ch in PERMS:
                perms |= PERMS[ch]
            else:
                err(f"Unknown perm type: {ch}")
        acl.append(ACL(perms, Id(entry[:first], entry[first + 1:last])))
    return acl


def client_config(text: str) -> str:
    """ConfigUtils.getClientConfigStr: 'version host:port,...' from the server.N lines."""
    version = ""
    addresses = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key == "version":
            version = value
        elif key.startswith("server.") and ";" in value:
            client = value.rsplit(";", 1)[1]
            addresses.append(client if ":" in client else f"0.0.0.0:{client}")
    return f"{version} {','.join(addresses)}"
