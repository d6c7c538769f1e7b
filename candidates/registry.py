"""The one place candidate sources are registered."""

from __future__ import annotations

from candidates.ann import EmbeddingAnnSource
from candidates.base import SourceRegistry
from candidates.coldstart import ColdStartSource
from candidates.fof import FriendsOfFriendsSource
from candidates.popular import PopularSource, TrendingSource
from candidates.ppr import PersonalizedPageRankSource

REGISTRY = SourceRegistry()
REGISTRY.register(FriendsOfFriendsSource.name, FriendsOfFriendsSource)
REGISTRY.register(PersonalizedPageRankSource.name, PersonalizedPageRankSource)
REGISTRY.register(ColdStartSource.name, ColdStartSource)
REGISTRY.register(PopularSource.name, PopularSource)
REGISTRY.register(TrendingSource.name, TrendingSource)
REGISTRY.register(EmbeddingAnnSource.name, EmbeddingAnnSource, needs_embeddings=True)
