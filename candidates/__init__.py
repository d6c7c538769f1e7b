"""Candidate generation: sources -> merge -> filters -> heuristic order -> truncate."""
