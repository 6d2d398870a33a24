"""What a `zkpy verify` run is asked to do (RunConfig) and what it found (RunResult)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .nemesis import FaultWindow
from .report import Report
from .stats import RunStats


@dataclass
class RunConfig:
    workload: str = "register"
    clients: int = 5
    seconds: float = 30.0
    seed: int = 0
    nemesis: tuple[str, ...] = ()
    size: int = 3
    apache: bool = False
    connect: list[str] | None = None
    commands: dict[str, str] = field(default_factory=dict)
    broken: str | None = None
    out: str | None = None
    quiet: bool = False

    def replay_command(self) -> str:
        parts = ["zkpy verify", f"--workload {self.workload}", f"--clients {self.clients}", f"--time {self.seconds:g}",
                 f"--seed {self.seed}", f"--nemesis {','.join(self.nemesis) or 'none'}"]
        if self.connect:
            parts.append(f"--connect {','.join(self.connect)}")
            parts += [f"--{name}-cmd {cmd!r}" for name, cmd in self.commands.items() if cmd]
        else:
            parts.append(f"--size {self.size}")
        if self.apache:
            parts.append("--apache")
        if self.broken:
            parts.append(f"--broken {self.broken}")
        return " ".join(parts)


@dataclass
class RunResult:
    config: RunConfig
    report: Report
    lost: list[str]
    stats: RunStats
    windows: list[FaultWindow]
    log: list[str]
    out: str
    seconds: float  # end to end, ensemble start to report written
    members: list[str] = field(default_factory=list)  # what OUT/members/ kept of each member (members.py)

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.lost
