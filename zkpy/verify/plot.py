"""timeline.png: throughput and latency over the run, with the nemesis's faults shaded."""

from __future__ import annotations

from .history import History
from .nemesis import FaultWindow
from .stats import timeline

COLOURS = {"kill": "tab:red", "pause": "tab:orange", "partition": "tab:purple", "skew": "tab:brown",
           "torn-tail": "tab:pink"}


def plot_timeline(path: str, history: History, started: float, seconds: float, windows: list[FaultWindow],
                  title: str) -> None:
    """Two panels sharing the time axis (seconds since the run's start); each fault is a
    shaded span labelled with its kind and target.  Agg backend: no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, ok, failed, p50, p99 = timeline(history, started, seconds)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 6), constrained_layout=True)
    top.step(times, ok, where="post", label="ok ops/s", color="tab:green")
    top.step(times, failed, where="post", label="error/unknown ops/s", color="tab:gray")
    top.set_ylabel("ops/s")
    top.set_title(title)
    bottom.step(times, p50, where="post", label="p50", color="tab:blue")
    bottom.step(times, p99, where="post", label="p99", color="tab:cyan")
    bottom.set_ylabel("latency (ms)")
    bottom.set_yscale("symlog", linthresh=10)
    bottom.set_xlabel("seconds since the start of the run")
    for w in windows:
        end = w.end if w.end is not None else seconds
        for ax in (top, bottom):
            ax.axvspan(w.start, end, color=COLOURS.get(w.kind, "tab:olive"), alpha=0.18, lw=0)
        top.annotate(w.label, xy=(w.start, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                     va="top", ha="left", fontsize=7)
    top.legend(loc="upper right", fontsize=8)
    bottom.legend(loc="upper right", fontsize=8)
    top.set_xlim(0, max(seconds, times[-1] if times else 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
