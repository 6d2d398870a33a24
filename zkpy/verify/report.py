"""What a check found: anomalies, each with the ops that show it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .history import Op


@dataclass
class Anomaly:
    """One violated guarantee, with the smallest sub-history we found that still violates it."""

    kind: str  # "linearizability", or a session guarantee (see sessions.py)
    model: str
    key: str
    ops: list[Op]
    note: str = ""

    def __str__(self) -> str:
        lines = [f"{self.kind} violated on {self.model}:{self.key} ({len(self.ops)} ops){': ' + self.note if self.note else ''}"]
        lines += [f"  {op}" for op in sorted(self.ops, key=lambda o: (o.call, o.id))]
        return "\n".join(lines)


@dataclass
class Report:
    anomalies: list[Anomaly] = field(default_factory=list)
    undetermined: list[str] = field(default_factory=list)  # objects whose search ran past its bound
    ops: int = 0
    partitions: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.anomalies and not self.undetermined

    def __str__(self) -> str:
        head = (f"{'linearizable' if self.ok else f'{len(self.anomalies)} anomalies'}"
                f"{f', {len(self.undetermined)} objects not decided' if self.undetermined else ''}: {self.ops} ops, "
                f"{self.partitions} objects, checked in {self.seconds:.3f}s")
        return "\n".join([head] + [str(a) for a in self.anomalies] + [f"not decided: {u}" for u in self.undetermined])
