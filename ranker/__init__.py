"""The multi-task send/accept ranker: features, focal loss, model, training."""
