"""The report directory of a `zkpy verify` run: report.md (and the same text as report.txt),
history.jsonl (replayable with `python -m zkpy.verify`), timeline.png, and for a local
ensemble members/serverN/ (each member's log and data-dir listing: members.py)."""

from __future__ import annotations

import os
from .history import History
from .plot import plot_timeline
from .report import Anomaly
from .runconfig import RunResult


def verdict(result: RunResult) -> str:
    if result.ok:
        return "VALID: linearizable, session guarantees kept, no acknowledged write lost"
    parts = []
    if result.report.anomalies:
        parts.append(f"{len(result.report.anomalies)} anomalies")
    if result.report.undetermined:
        parts.append(f"{len(result.report.undetermined)} objects the checker could not decide")
    if result.lost:
        parts.append(f"{len(result.lost)} lost-write findings")
    return "INVALID: " + ", ".join(parts)


def render(result: RunResult) -> str:
    c, s, r = result.config, result.stats, result.report
    lines = [f"# zkpy verify: {verdict(result)}", "",
             f"- workload `{c.workload}`, {c.clients} clients, {s.seconds:.1f}s of load, seed {c.seed}",
             "- target: " + (f"`{','.join(c.connect)}`" if c.connect else
                               f"local {c.size}-member {'Apache ZooKeeper 3.8' if c.apache else 'zkpy'} ensemble")
             + (f", broken build `{c.broken}`" if c.broken else ""),
             f"- nemesis: {', '.join(c.nemesis) or 'none'}; {len(result.windows)} faults injected",
             f"- replay: `{c.replay_command()}`",
             f"- end to end {result.seconds:.1f}s; checked {r.ops} ops over {r.partitions} objects in {r.seconds:.2f}s",
             "", "## Operations", "",
             "| ops | ok | error | unknown | ok ops/s | p50 ms | p90 ms | p99 ms | max ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             f"| {s.ops} | {s.ok} | {s.error} | {s.unknown} | {s.throughput:.0f} | {s.latency_ms['p50']:.1f} | "
             f"{s.latency_ms['p90']:.1f} | {s.latency_ms['p99']:.1f} | {s.latency_ms['max']:.0f} |", "",
             "By kind: " + ", ".join(f"{k} {n}" for k, n in s.by_kind.items()), "",
             "## Anomalies", ""]
    if not r.anomalies:
        lines.append("None.")
    for i, anomaly in enumerate(r.anomalies, 1):
        lines += [f"### {i}. {anomaly.kind} on {anomaly.model}:{anomaly.key}", "", "```", *_witness(anomaly, i), "```", ""]
    if r.undetermined:
        lines += ["", "Not decided (the search ran past its bound of states; neither shown valid nor invalid):", ""]
        lines += [f"- {u}" for u in r.undetermined]
    lines += ["", "## Lost acknowledged writes (each member read directly after healing)", ""]
    lines += [f"- {p}" for p in result.lost] or ["None."]
    lines += ["", "## Members' logs and data", ""]
    lines += [f"- {m}" for m in result.members] or [
        "Not kept: with --connect the members' logs are on your side." if c.connect else "None kept."]
    lines += ["", "## Run log (faults as they happened)", "", "```", *result.log, "```", ""]
    return "\n".join(lines)


LONG_WITNESS = 40  # ops shown in the report; the whole sub-history goes to anomaly-N.txt


def _witness(anomaly: Anomaly, number: int) -> list[str]:
    """The anomaly's sub-history, cut to its first and last ops when the shrinker ran out of
    time before it got small (a broken build's register history keeps its whole version chain)."""
    text = str(anomaly).splitlines()
    if len(anomaly.ops) <= LONG_WITNESS:
        return text
    half = LONG_WITNESS // 2
    return [text[0], *text[1:half + 1], f"  ... {len(anomaly.ops) - 2 * half} more ops in anomaly-{number}.txt "
            "(shrinking stopped at its time limit) ...", *text[-half:]]


def write_report(result: RunResult, history: History, started: float) -> None:
    os.makedirs(result.out, exist_ok=True)
    for i, anomaly in enumerate(result.report.anomalies, 1):
        if len(anomaly.ops) > LONG_WITNESS:
            with open(os.path.join(result.out, f"anomaly-{i}.txt"), "w") as f:
                f.write(str(anomaly) + "\n")
    text = render(result)
    for name in ("report.md", "report.txt"):
        with open(os.path.join(result.out, name), "w") as f:
            f.write(text)
    history.save(os.path.join(result.out, "history.jsonl"))
    plot_timeline(os.path.join(result.out, "timeline.png"), history, started, result.stats.seconds,
                  result.windows, f"zkpy verify {result.config.workload} seed {result.config.seed}: {verdict(result)}")
