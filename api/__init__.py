"""The Flask API: suggestions with explanations, feedback events, graph writes, health and metrics."""

from api.app import close_app, create_app

__all__ = ["close_app", "create_app"]
