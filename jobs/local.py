"""A local executor whose arrays honour ``array_parallelism`` like Slurm's ``--array=…%N``.

submitit's LocalExecutor starts every array item at once. This one starts an item only when fewer
than N of its jobs are running, so submission of a large array blocks until the last item has
started (local runs wait for their results anyway). Job handles, folders and result pickles are
submitit's own, so the same code reads results whichever executor ran them.
"""

from __future__ import annotations

import time
from pathlib import Path

from submitit.local.local import LocalExecutor, LocalJob


class ThrottledLocalExecutor(LocalExecutor):
    def __init__(
        self, folder: str | Path, *, parallelism: int = 16, max_num_timeout: int = 3, poll_s: float = 0.1
    ):
        super().__init__(folder=folder, max_num_timeout=max_num_timeout)
        self.parallelism = max(1, int(parallelism))
        self.poll_s = poll_s
        self._live: list[LocalJob] = []

    def _submit_command(self, command: str) -> LocalJob:
        while True:
            self._live = [j for j in self._live if not j.done()]
            if len(self._live) < self.parallelism:
                break
            time.sleep(self.poll_s)
        job = super()._submit_command(command)
        self._live.append(job)
        return job
