"""How often each user was shown to a viewer: what the re-rank's seen penalty and the newcomer slots weigh."""

from __future__ import annotations

import numpy as np

from candidates.recent_shown import RecentImpressions
from graph.snapshot import Snapshot
from graph.snapshot.csr import run_bounds


class SeenCounts:
    """The impression counts of CandidatePipeline: the snapshot's event log within a window of its newest
    impression, and those logged since (`recent_shown`, set by the server)."""

    snap: Snapshot
    reranker: object | None
    recent_shown: RecentImpressions | None

    def count_seen_from(self, snap: Snapshot, window_days: float) -> None:
        """Impressions by viewer (the snapshot's shared copy), counted from `window_days` before the newest."""
        self._imp_viewer, self._imp_shown, self._imp_sec = snap.impressions_by_viewer()
        self._seen_from = self._imp_sec.max() - window_days * 86_400.0 if self._imp_sec.size else 0.0

    def times_seen(self, user: int) -> dict[int, int]:
        """How often each user was shown to `user`: impressions in the snapshot's event log within
        `seen_window_days` of the newest, and those logged since (`recent_shown`, when the server set it)."""
        lo, hi = run_bounds(self._imp_viewer, user)
        shown, counts = np.unique(self._imp_shown[lo:hi][self._imp_sec[lo:hi] >= self._seen_from], return_counts=True)
        seen = dict(zip(shown.tolist(), counts.tolist(), strict=True))
        if self.recent_shown is not None:
            for index, n in self.recent_shown.counts(user).items():
                seen[index] = seen.get(index, 0) + n
        return seen

    @property
    def seen_decay(self) -> float:
        """The re-rank's seen penalty per time shown (1: none without a re-rank)."""
        return self.reranker.cfg.seen_decay if self.reranker is not None else 1.0

    def seen_by_id(self, user_id: str, times: dict[int, int] | None = None) -> dict[str, int]:
        """How often each user was shown to `user_id`, by id: `times_seen` (`times` when the caller has it)
        and the newcomers shown since for a viewer the snapshot holds, the impressions logged since for one it
        does not (lists served off the store: the fresh path)."""
        recent = self.recent_shown
        if not self.snap.has_user(user_id):
            return dict(recent.others_counts(user_id)) if recent is not None else {}
        user = self.snap.index_of(user_id)
        times = self.times_seen(user) if times is None else times
        seen = {self.snap.external_id(i): n for i, n in times.items()}
        for other, n in (recent.newcomer_counts(user) if recent is not None else {}).items():
            seen[other] = seen.get(other, 0) + n
        return seen
