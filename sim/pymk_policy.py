"""pymk's own pipeline as a simulator policy, for closed-loop A/B tests against the heuristics.

Each simulated day the policy rebuilds a snapshot from the simulator's current graph (as the
refresh job would), then serves with friends-of-friends + PPR candidates, the hard rules, and the
learned ranker scoring either calibrated P(send) * P(accept)^w or P(send) alone (the send-only
ablation).
"""

from __future__ import annotations

from candidates.filters import SnapshotStateReader
from candidates.fof import FriendsOfFriendsSource
from candidates.pipeline import CandidatePipeline, PipelineConfig
from candidates.ppr import PersonalizedPageRankSource
from candidates.types import Candidate
from graph.snapshot import Snapshot
from ranker.calibration import Calibration
from ranker.features import FeatureContext
from ranker.model import MultiTaskRanker
from ranker.scorers import TorchScorer
from ranker.serve import ModelRanker
from sim.behaviour import WorldState
from sim.world import world_snapshot


def state_snapshot(state: WorldState) -> Snapshot:
    """The simulator's graph right now, with the world's profiles."""
    return world_snapshot(state.world, state.adj)


class SendOnlyRanker(ModelRanker):
    """Ranks by P(send) alone: what a model optimizing requests sent would do."""

    def __call__(self, viewer_id: str, candidates: list[Candidate]) -> list[Candidate]:
        ranked = super().__call__(viewer_id, candidates)
        return sorted(ranked, key=lambda c: (-c.score("p_send"), c.index))


class PymkPolicy:
    def __init__(self, state: WorldState, model: MultiTaskRanker, send_only: bool = False,
                 calibration: Calibration | None = None) -> None:
        self.state, self.model, self.send_only = state, model.eval(), send_only
        self.calibration = calibration
        self.name = "pymk_send_only" if send_only else "pymk_ranked"
        self.pipeline: CandidatePipeline | None = None
        self.now = 0.0

    def start_day(self, ts: float) -> None:
        self.now = ts
        if self.pipeline is not None:
            self.pipeline.close()
        snap = state_snapshot(self.state)
        cls = SendOnlyRanker if self.send_only else ModelRanker
        scorer = TorchScorer(self.model, self.calibration or Calibration(), mode="send_accept")
        ranker = cls(FeatureContext(snap), scorer, clock=lambda: self.now)
        self.pipeline = CandidatePipeline(snap, [FriendsOfFriendsSource(snap), PersonalizedPageRankSource(snap)],
                                          SnapshotStateReader(snap), PipelineConfig(per_source_k=100,
                                                                                    source_budget_s=5.0),
                                          ranker=ranker)

    def __call__(self, user: int, k: int) -> list[int]:
        if self.pipeline is None:
            raise RuntimeError("start_day() must be called before serving")
        return [c.index for c in self.pipeline.recommend(str(user), k).candidates]

