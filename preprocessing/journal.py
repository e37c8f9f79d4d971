"""Which file a shard's task was decoding when it died, so one file cannot stop a shard for ever.

Python can record a codec's exception, but not a segfault in a C codec or the kernel's OOM kill on
a huge file: the process is gone, the array task fails, and a rerun dies on the same file again.
So before each file the task writes its pseudonym to ``parts/.shard-N.inflight`` (a 64-byte pwrite,
no fsync: the page cache outlives the process) and blanks it after. A rerun that finds a name there
adds it to ``parts/.shard-N.deaths``; a file in flight at two deaths is rejected without being
decoded again. One death rejects nothing, so ``kill -9`` (or a Slurm time limit) at any point still
reruns to exactly the uninterrupted result. Both files go once the shard is committed.
"""

from __future__ import annotations

import os
from pathlib import Path

DEATHS_TO_REJECT = 2
REASON = "the task died while decoding this file in two attempts (a codec crash or running out of memory)"


class CrashJournal:
    def __init__(self, parts: Path, name: str) -> None:
        parts.mkdir(parents=True, exist_ok=True)
        self._inflight, self._deaths = parts / f".{name}.inflight", parts / f".{name}.deaths"
        deaths = self._deaths.read_text().split() if self._deaths.is_file() else []
        if self._inflight.is_file() and (last := self._inflight.read_text().strip()):
            deaths.append(last)  # the previous attempt died with this file in flight
            self._deaths.write_text("".join(f"{d}\n" for d in deaths))
        self.suspects = {d for d in deaths if deaths.count(d) >= DEATHS_TO_REJECT}
        self._fd = os.open(self._inflight, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def start(self, file_id: str) -> None:
        os.pwrite(self._fd, file_id.encode().ljust(64), 0)

    def done(self) -> None:
        os.pwrite(self._fd, b" " * 64, 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def clear(self) -> None:
        """The shard is committed: nothing was in flight, and past deaths no longer matter."""
        self._inflight.unlink(missing_ok=True)
        self._deaths.unlink(missing_ok=True)
