"""setquota / listquota / delquota as zkCli 3.8 does them: nodes under /zookeeper/quota
holding StatsTrack strings ('count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1')."""

from __future__ import annotations

import re
from typing import Any, Iterator, Protocol

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from .texts import CliError, cli_message, parse_options, validate_path


class Shell(Protocol):
    """What the quota commands use of commands.Shell (named here, so that the two modules do
    not import each other)."""

    zk: Any

    def out(self, text: str = "", end: str = "\n") -> None: ...
    def err(self, text: str) -> None: ...
    def _subtree_dfs(self, path: str, watch: Any = None) -> Iterator[str]: ...

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
_KEYS = {"n": "count", "b": "bytes", "N": "countHardLimit", "B": "byteHardLimit"}


class StatsTrack(dict):
    """org.apache.zookeeper.StatsTrack: key=value pairs; a missing key reads as -1."""

    @classmethod
    def parse(cls, data: bytes | None) -> StatsTrack:
        track = cls()
        for pair in re.split(r"[,;]+", (data or b"").decode("utf-8")):
            if pair:
                key, _, value = pair.partition("=")
                value = value.split("=")[0]
                track[key] = int(value) if value else -1
        return track

    def get_value(self, key: str) -> int:
        return self.get(key, -1)

    def __str__(self) -> str:
        text = f"count={self.get_value('count')},bytes={self.get_value('bytes')}"
        extra = sorted(k for k in self if k not in ("count", "bytes"))
        if extra:
            text += "=" + "".join(f";{k}={self[k]}" for k in extra)
        return text

    def encode(self) -> bytes:
        return str(self).encode("utf-8")


def _quota_options(args: list[str], takes_value: bool, required: bool) -> tuple[dict[str, str], list[str]]:
    opts, pos = parse_options(args, {k: takes_value for k in _KEYS})
    if len(opts) > 1:
        given = list(opts)
        raise CliError("org.apache.commons.cli.AlreadySelectedException: The option '" + given[1] + "' was "
                       "specified but an option from this group has already been selected: '" + given[0] + "'")
    if required and not opts:
        raise CliError("org.apache.commons.cli.MissingOptionException: Missing required option: "
                       "[-n num soft quota, -b bytes soft quota, -N num hard quota, -B bytes hard quota]")
    return opts, pos


def set_quota(shell: Shell, args: list[str]) -> None:
    opts, pos = _quota_options(args, True, True)
    if len(pos) < 2:
        raise CliError("setquota -n|-b|-N|-B val path")
    path = pos[1]
    if path.startswith(QUOTA_ROOT):
        shell.err(f"cannot set a quota under the path: {QUOTA_ROOT}")
        return
    quota = StatsTrack(count=-1, bytes=-1, countHardLimit=-1, byteHardLimit=-1)
    for letter, value in opts.items():
        try:
            number = int(value)
        except ValueError:
            shell.err("NumberFormatException happens when parsing the option value")
            return
        if letter in "nN" and number <= 0:
            shell.err("the num quota must be greater than zero")
            return
        if letter in "bB" and number < 0:
            shell.err("the bytes quota must be greater than or equal to zero")
            return
        quota[_KEYS[letter]] = number
    try:
        _create_quota(shell, path, quota)
    except KazooException as e:
        raise CliError(cli_message(e, path)) from None


def _create_quota(shell: Shell, path: str, quota: StatsTrack) -> None:
    """SetQuotaCommand.createQuota."""
    zk = shell.zk
    validate_path(path)
    if zk.exists(path) is None:
        raise CliError(f"{path} does not exist.")
    _check_no_quota_around(shell, path)
    if zk.exists(QUOTA_ROOT) is None:
        for p in ("/zookeeper", QUOTA_ROOT):
            try:
                zk.create(p, None)
            except NodeExistsError:
                pass
    quota_path = QUOTA_ROOT
    for part in path.split("/")[1:]:
        quota_path += "/" + part
        if zk.exists(quota_path) is None:
            try:
                zk.create(quota_path, None)
            except NodeExistsError:
                pass
    stat_path, limit_path = f"{quota_path}/{STAT_NODE}", f"{quota_path}/{LIMIT_NODE}"
    if zk.exists(limit_path) is None:
        zk.create(limit_path, quota.encode())
        zk.create(stat_path, StatsTrack(count=0, bytes=0).encode())
        limits = StatsTrack.parse(zk.get(limit_path)[0])
        _warn(shell, limits, StatsTrack.parse(zk.get(stat_path)[0]))
        return
    limits = StatsTrack.parse(zk.get(limit_path)[0])
    for key, value in quota.items():
        if value > -1:
            limits[key] = value
    _warn(shell, limits, StatsTrack.parse(zk.get(stat_path)[0]))
    zk.set(limit_path, limits.encode())


def _check_no_quota_around(shell: Shell, path: str) -> None:
    """checkIfChildQuota and checkIfParentQuota: quotas do not nest."""
    zk = shell.zk
    own = QUOTA_ROOT + path
    try:
        for quota_path in shell._subtree_dfs(own):
            try:
                children = zk.get_children(quota_path)
            except NoNodeError:
                continue
            if quota_path != own and LIMIT_NODE in children:
                raise CliError(f"{path} has a child {quota_path[len(QUOTA_ROOT):]} which has a quota")
    except CliError as e:
        if not str(e).startswith("Node does not exist"):
            raise
    parts = path.split("/")
    quota_path = QUOTA_ROOT
    for part in parts[1:-1]:
        quota_path += "/" + part
        try:
            children = zk.get_children(quota_path)
        except NoNodeError:
            return
        if not children:
            return
        if quota_path != own and LIMIT_NODE in children:
            raise CliError(f"{path} has a parent {quota_path[len(QUOTA_ROOT):]} which has a quota")


def _warn(shell: Shell, limits: StatsTrack, stats: StatsTrack) -> None:
    count, size = stats.get_value("count"), stats.get_value("bytes")
    if (-1 < limits.get_value("count") < count) or (-1 < limits.get_value("countHardLimit") < count):
        shell.out(f"[Warning]: the count quota you create is less than the existing count:{count}")
    if (-1 < limits.get_value("bytes") < size) or (-1 < limits.get_value("byteHardLimit") < size):
        shell.out(f"[Warning]: the bytes quota you create is less than the existing bytes:{size}")


def list_quota(shell: Shell, args: list[str]) -> None:
    _, pos = parse_options(args, {})
    if len(pos) < 2:
        raise CliError("listquota path")
    path = pos[1]
    shell.err(f"absolute path is {QUOTA_ROOT}{path}/{LIMIT_NODE}")
    try:
        limits = shell.zk.get(f"{QUOTA_ROOT}{path}/{LIMIT_NODE}")[0]
        stats = shell.zk.get(f"{QUOTA_ROOT}{path}/{STAT_NODE}")[0]
    except NoNodeError:
        shell.err(f"quota for {path} does not exist.")
        return
    except KazooException as e:
        raise CliError(cli_message(e, path)) from None
    shell.out(f"Output quota for {path} {StatsTrack.parse(limits)}")
    shell.out(f"Output stat for {path} {StatsTrack.parse(stats)}")


def del_quota(shell: Shell, args: list[str]) -> None:
    opts, pos = _quota_options(args, False, False)
    if len(pos) < 2:
        raise CliError("delquota [-n|-b|-N|-B] path")
    path = pos[1]
    zk = shell.zk
    parent, limit_path = QUOTA_ROOT + path, f"{QUOTA_ROOT}{path}/{LIMIT_NODE}"
    try:
        if zk.exists(limit_path) is None:
            shell.out(f"Quota does not exist for {path}")
            return
        limits = StatsTrack.parse(zk.get(limit_path)[0])
        if not opts:
            for child in zk.get_children(parent):
                zk.delete(f"{parent}/{child}")
            _trim(zk, parent)
            return
        for letter in opts:
            limits[_KEYS[letter]] = -1
        zk.set(limit_path, limits.encode())
    except NoNodeError:
        shell.err(f"quota for {path} does not exist.")
    except KazooException as e:
        raise CliError(cli_message(e, path)) from None


def _trim(zk, path: str) -> None:
    """trimProcQuotas: remove emptied quota directories up to /zookeeper/quota."""
    while path != QUOTA_ROOT and not zk.get_children(path):
        zk.delete(path)
        path = path[:path.rfind("/")]
