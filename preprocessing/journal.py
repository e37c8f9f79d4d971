"""Which file a shard's task was decoding when it died, so one file cannot stop a shard for ever.

Python can record a codec's exception, but not a segfault in a C codec or the kernel's OOM kill on
a huge file: the process is gone, the array task fails, and a rerun dies on the same file again.
So before each file the task writes its pseudonym and an attempt token to ``parts/.shard-N.inflight``
(a 64-byte pwrite, no fsync: the page cache outlives the process) and blanks it after. A rerun that
finds a name there adds the line to ``parts/.shard-N.deaths``; a file in flight at the deaths of two
attempts is rejected without being decoded again. Errors that may pass (out of memory, an I/O error)
fail the task the same way, so they get one retry too.

One death rejects nothing, so ``kill -9`` at any point still reruns to exactly the uninterrupted
result; SIGTERM (``scancel``, Slurm's time limit) blanks the record before the process goes, so time
limits never count. Both files go once the shard is committed.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from pathlib import Path

DEATHS_TO_REJECT = 2
REASON = (
    "the task failed while decoding this file in two attempts "
    "(a codec crash, running out of memory or a read error)"
)


def task_failure(e: BaseException) -> bool:
    """Errors that say nothing about the file and may not happen again: they fail the task (which a
    rerun redoes) instead of rejecting the file for good. A file that vanished stays a rejection."""
    if isinstance(e, MemoryError):
        return True
    return isinstance(e, OSError) and e.errno not in (None, errno.ENOENT)


class CrashJournal:
    def __init__(self, parts: Path, name: str) -> None:
        parts.mkdir(parents=True, exist_ok=True)
        self._inflight, self._deaths = parts / f".{name}.inflight", parts / f".{name}.deaths"
        lines = set(self._deaths.read_text().splitlines()) if self._deaths.is_file() else set()
        if self._inflight.is_file() and (last := self._inflight.read_text().strip()):
            lines.add(last)  # the previous attempt died with this file in flight; a set: counted once
            tmp = self._deaths.with_name(self._deaths.name + ".new")
            tmp.write_text("".join(f"{x}\n" for x in sorted(lines)))
            os.replace(tmp, self._deaths)
        ids = [x.split()[0] for x in lines if x.strip()]
        self.suspects = {f for f in ids if ids.count(f) >= DEATHS_TO_REJECT}
        self._token = f"{os.getpid()}.{time.time_ns()}"
        self._fd = os.open(self._inflight, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._installed, self._previous, self._stopped = False, None, False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_term)
            self._installed = True

    def _on_term(self, signum, frame) -> None:
        """Stopped from outside (scancel, a time limit): not the file's doing. The record is blanked
        and stays blank, since the process may go on until the SIGKILL that follows (submitit lets a
        job run on after SIGTERM)."""
        self.done()
        self._stopped = True
        previous = self._previous
        self._restore()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), signal.SIGTERM)  # the default action, now that this handler is gone

    def start(self, file_id: str) -> None:
        if self._fd >= 0 and not self._stopped:
            os.pwrite(self._fd, f"{file_id} {self._token}".encode().ljust(64), 0)

    def done(self) -> None:
        if self._fd >= 0:
            os.pwrite(self._fd, b" " * 64, 0)

    def _restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._restore()

    def clear(self) -> None:
        """The shard is committed: nothing was in flight, and past deaths no longer matter."""
        for f in (self._inflight, self._deaths, self._deaths.with_name(self._deaths.name + ".new")):
            f.unlink(missing_ok=True)
