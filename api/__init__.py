"""The Flask API: suggestions with explanations, feedback events, graph writes, health and metrics."""

from api.app import create_app

__all__ = ["create_app"]
