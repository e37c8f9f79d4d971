"""Chains of jobs, each starting only if the one before succeeded (``afterok``).

On Slurm the whole chain is submitted at once. A child of a failed parent ends CANCELLED when the
cluster sets ``DependencyParameters=kill_invalid_depend`` (the testbed does); where it does not,
the child would stay PENDING ("DependencyNeverSatisfied") forever, so ``ChainRun.wait`` cancels
such children itself. Locally, links run one after the other and the rest are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cxr.config.schema import ExecutorConfig, ExecutorKind
from jobs.state import TERMINAL
from jobs.submission import Submitted, submit


@dataclass
class Link:
    name: str
    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    executor: ExecutorConfig | None = None  # this link's resources (its kind is the chain's)


@dataclass
class LinkReport:
    name: str
    job_ids: list[str]
    state: str  # COMPLETED | FAILED | CANCELLED | … ; CANCELLED also for links never started locally


class ChainRun:
    def __init__(self, links: Sequence[Link], subs: list[Submitted | None]):
        self.links, self.subs = list(links), subs

    def report(self) -> list[LinkReport]:
        out = []
        for link, sub in zip(self.links, self.subs, strict=True):
            if sub is None:
                out.append(LinkReport(link.name, [], "CANCELLED"))
                continue
            states = set(sub.states().values())
            state = next(
                (
                    s
                    for s in ("FAILED", "KILLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED")
                    if s in states
                ),
                None,
            ) or (states.pop() if len(states) == 1 else "RUNNING")
            out.append(LinkReport(link.name, sub.job_ids, state))
        return out

    def failed_link(self) -> str | None:
        """The first link that did not complete (the one that broke the chain)."""
        for r in self.report():
            if r.state != "COMPLETED":
                return r.name if r.state in TERMINAL else None
        return None

    def wait(self, timeout_s: float | None = None) -> list[LinkReport]:
        import time

        start = time.monotonic()
        for i, sub in enumerate(self.subs):
            if sub is None:
                continue
            left = None if timeout_s is None else max(1.0, timeout_s - (time.monotonic() - start))
            if any(s != "COMPLETED" for s in sub.wait(timeout_s=left).values()):
                self._cancel_rest(i + 1)
                break
        return self.report()

    def _cancel_rest(self, start: int, timeout_s: float = 120) -> None:
        """Children of a failed link end CANCELLED: Slurm does it at its next scheduling pass with
        kill_invalid_depend; without it they would pend forever, so cancel those ourselves."""
        import time

        rest = [s for s in self.subs[start:] if s is not None and s.group.kind == ExecutorKind.slurm]
        end = time.monotonic() + timeout_s
        while rest and time.monotonic() < end:
            open_subs = []
            for sub in rest:
                states = sub.states()
                pending = [j for j, s in states.items() if s == "PENDING"]
                if pending and any(
                    "DependencyNeverSatisfied" in sub.slurm.pending_reason(j) for j in pending
                ):
                    sub.slurm.cancel(pending)
                if any(s not in TERMINAL for s in states.values()):
                    open_subs.append(sub)
            rest = open_subs
            if rest:
                time.sleep(1.0)


def submit_chain(
    links: Sequence[Link],
    *,
    cfg: ExecutorConfig,
    run_dir: str | Path,
    on_done: Callable[[Link, str, float], None] | None = None,
) -> ChainRun:
    """Slurm: every link at once, each ``afterok`` the one before. Local/debug: in order, stopping at
    the first failure; ``on_done(link, state, seconds)`` after each."""
    import time
    from dataclasses import replace

    subs: list[Submitted | None] = []
    kind = ExecutorKind(cfg.kind)
    for link in links:
        ecfg = replace(link.executor, kind=kind) if link.executor is not None else cfg
        if kind is ExecutorKind.slurm:
            dep = f"afterok:{subs[-1].job_ids[0].split('_')[0]}" if subs else None
            subs.append(
                submit(
                    link.fn,
                    *link.args,
                    cfg=ecfg,
                    run_dir=run_dir,
                    name=link.name,
                    dependency=dep,
                    **link.kwargs,
                )
            )
            continue
        # local / debug: run in order, stop at the first failure
        if subs and subs[-1] is None:
            subs.append(None)
            continue
        t0 = time.monotonic()
        sub = submit(link.fn, *link.args, cfg=ecfg, run_dir=run_dir, name=link.name, **link.kwargs)
        states = set(sub.wait().values())
        subs.append(sub)
        if on_done is not None:
            on_done(link, states.pop() if len(states) == 1 else "FAILED", time.monotonic() - t0)
        if any(s != "COMPLETED" for s in sub.states().values()):
            subs += [None] * (len(links) - len(subs))
            break
    return ChainRun(links, subs)
