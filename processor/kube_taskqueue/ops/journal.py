"""The redrive journal: which dead letters already have their copy in the source queue.

A redrive sends a copy, then deletes the dead letter. Killed in between, the dead letter
comes back (its visibility ends) while its copy is already queued; the journal, written
(and flushed to disk) right after each successful send, tells the re-run to delete it
without sending it again. One append-only file per dead-letter queue; removed when a run
leaves nothing half-done.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def default_directory() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "taskqueue" / "redrive"


class RedriveJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: its send is repeated, not lost
                if "sent" in entry:
                    self._pending.add(str(entry["sent"]))
                elif "done" in entry:
                    self._pending.discard(str(entry["done"]))

    @classmethod
    def for_queue(cls, dead_letter_arn: str, directory: Path | None = None) -> RedriveJournal:
        digest = hashlib.sha256(dead_letter_arn.encode()).hexdigest()[:16]
        return cls((directory or default_directory()) / f"{digest}.jsonl")

    @property
    def pending(self) -> int:
        """Dead letters copied but not yet deleted (by an interrupted run)."""
        return len(self._pending)

    def sent(self, message_id: str) -> bool:
        return message_id in self._pending

    def record(self, message_id: str) -> None:
        self._append({"sent": message_id})
        self._pending.add(message_id)

    def done(self, message_id: str) -> None:
        if message_id in self._pending:
            self._append({"done": message_id})
            self._pending.discard(message_id)

    def close(self) -> None:
        """Remove the file when nothing is half-done."""
        if not self._pending and self.path.exists():
            self.path.unlink()

    def _append(self, entry: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")
            file.flush()
            os.fsync(file.fileno())
