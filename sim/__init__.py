"""A synthetic social world with hidden send/accept behaviour, for training, demos and tests."""
