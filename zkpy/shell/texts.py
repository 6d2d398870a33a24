"""zkCli 3.8's texts: error messages (CliWrapperException, KeeperException), Stat and ACL
printing, path validation (PathUtils) and the command line tokenizer (ZooKeeperMain).

Kept in one place so a difference from zkCli is a one-line fix here."""

from __future__ import annotations

import re
import time
from typing import Any

from kazoo.exceptions import ConnectionClosedError, KazooException

# KeeperException.getCodeMessage
CODE_MESSAGES = {
    0: "ok", -1: "SystemError", -2: "RuntimeInconsistency", -3: "DataInconsistency", -4: "ConnectionLoss",
    -5: "MarshallingError", -6: "Unimplemented", -7: "OperationTimeout", -8: "BadArguments",
    -12: "UnknownSession", -13: "NewConfigNoQuorum", -14: "ReconfigInProgress", -100: "APIError",
    -101: "NoNode", -102: "NoAuth", -103: "BadVersion", -108: "NoChildrenForEphemerals", -110: "NodeExists",
    -111: "Directory not empty", -112: "Session expired", -113: "Invalid callback", -114: "InvalidACL",
    -115: "AuthFailed", -118: "Session moved", -119: "Not a read-only call",
    -120: "Ephemeral node on local session", -121: "No such watcher", -122: "Request timeout",
    -123: "Reconfig is disabled", -124: "Session closed because client failed to authenticate",
    -125: "Quota has exceeded", -127: "Op throttled due to high load",
}

# CliWrapperException: the codes zkCli words itself
CLI_MESSAGES = {
    -101: "Node does not exist: {path}", -108: "Ephemerals cannot have children: {path}",
    -110: "Node already exists: {path}", -111: "Node not empty: {path}", -119: "Not a read-only call: {path}",
    -114: "Acl is not valid : {path}", -102: "Insufficient permission : {path}",
    -8: "Arguments are not valid : {path}", -103: "version No is not valid : {path}",
    -14: "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)",
    -13: "No quorum of new config is connected and up-to-date with the leader of last commmitted config - "
         "try invoking reconfiguration after new servers are connected and synced",
    -125: "Quota has exceeded : {path}",
}


class CliError(Exception):
    """A command failed: zkCli prints the message on stderr; exit code 1 (127: no such command)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def error_code(exc: KazooException) -> int:
    if isinstance(exc, ConnectionClosedError):
        return -4
    return getattr(exc, "code", -1)


def keeper_message(code: int, path: str | None) -> str:
    """KeeperException.getMessage(): 'KeeperErrorCode = NoNode for /x'."""
    text = f"KeeperErrorCode = {CODE_MESSAGES.get(code, f'Unknown error {code}')}"
    return text + f" for {path}" if path is not None else text


def cli_message(exc: KazooException, path: str | None) -> str:
    """What zkCli prints for a failed call on `path`."""
    code = error_code(exc)
    template = CLI_MESSAGES.get(code)
    return template.format(path=path) if template else keeper_message(code, path)


def java_date(ms: int) -> str:
    """java.util.Date.toString(): 'Tue Dec 01 19:32:46 UTC 2026', in local time."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(ms / 1000))


def hex64(value: int) -> str:
    """Long.toHexString: two's complement for negative values."""
    return f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"


def stat_lines(stat: Any) -> list[str]:
    """StatPrinter."""
    return [f"cZxid = {hex64(stat.czxid)}", f"ctime = {java_date(stat.ctime)}", f"mZxid = {hex64(stat.mzxid)}",
            f"mtime = {java_date(stat.mtime)}", f"pZxid = {hex64(stat.pzxid)}", f"cversion = {stat.cversion}",
            f"dataVersion = {stat.version}", f"aclVersion = {stat.aversion}",
            f"ephemeralOwner = {hex64(stat.ephemeralOwner)}", f"dataLength = {stat.dataLength}",
            f"numChildren = {stat.numChildren}"]


def perm_string(perms: int) -> str:
    """ZKUtil.getPermString: in the order c d r w a."""
    return "".join(ch for ch, bit in (("c", 4), ("d", 8), ("r", 1), ("w", 2), ("a", 16)) if perms & bit)


def _csv(text: str) -> str:
    """jute's CsvOutputArchive string escaping."""
    return "'" + "".join({"\0": "%00", "\n": "%0A", "\r": "%0D", ",": "%2C", "}": "%7D", "%": "%25"}.get(c, c)
                         for c in text)


def id_string(scheme: str, ident: str) -> str:
    """Id.toString() as jute writes a record: "'world,'anyone" and a newline."""
    return f"{_csv(scheme)},{_csv(ident)}\n"


def validate_path(path: str) -> None:
    """PathUtils.validatePath; raises CliError with its message (zkCli's MalformedPathException)."""
    if not path:
        raise CliError("Path length must be > 0")
    if path[0] != "/":
        raise CliError("Path must start with / character")
    if len(path) == 1:
        return
    if path[-1] == "/":
        raise CliError("Path must not end with / character")
    reason = None
    last = "/"
    for i in range(1, len(path)):
        c = path[i]
        if c == "\0":
            reason = f"null character not allowed @{i}"
        elif c == "/" and last == "/":
            reason = f"empty node name specified @{i}"
        elif c == "." and last == "." and path[i - 2] == "/" and (i + 1 == len(path) or path[i + 1] == "/") or c == "." and last == "/" and (i + 1 == len(path) or path[i + 1] == "/"):
            reason = f"relative paths not allowed @{i}"
        elif ("\x00" < c <= "\x1f" or "\x7f" <= c <= "\x9f" or "\ud800" <= c <= "\uf8ff"
              or "\ufff0" <= c <= "\uffff"):
            reason = f"invalid character @{i}"
        if reason:
            raise CliError(f'Invalid path string "{path}" caused by {reason}')
        last = c


_ARG = re.compile(r"""\s*([^"']\S*|"[^"]*"|'[^']*')\s*""")
_QUOTED = re.compile(r"""^(['"])(.*)(\1)$""", re.DOTALL)


def split_command(line: str) -> list[str]:
    """ZooKeeperMain.MyCommandOptions.parseCommand: words, or "..." / '...' with the quotes off."""
    words = []
    for m in _ARG.finditer(line):
        word = m.group(1)
        if _QUOTED.match(word):
            word = word[1:-1]
        words.append(word)
    return words


def parse_options(args: list[str], spec: dict[str, bool]) -> tuple[dict[str, str], list[str]]:
    """commons-cli DefaultParser as zkCli's commands use it: single-letter options anywhere
    (`spec[letter]` says whether it takes a value: `-v 3` or `-v3`), the rest positional
    (the command name first, as CommandLine.getArgs() has it)."""
    options: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token.startswith("-") and len(token) > 1 and not _negative_number(token):
            if token[1] not in spec:
                raise CliError(f"org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {token}")
            for j in range(1, len(token)):  # -sw is -s -w; -v3 is -v 3
                name = token[j]
                if name not in spec:
                    raise CliError(f"org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: "
                                   f"-{name}")
                if not spec[name]:
                    options[name] = ""
                    continue
                if j + 1 < len(token):
                    options[name] = token[j + 1:]
                elif i < len(args) and not (args[i].startswith("-") and args[i][1:2] in spec):
                    options[name] = args[i]
                    i += 1
                else:
                    raise CliError(f"org.apache.commons.cli.MissingArgumentException: Missing argument for "
                                   f"option: {name}")
                break
        else:
            positional.append(token)
    return options, positional


def _negative_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False
