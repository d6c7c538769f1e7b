"""GraphSAGE embeddings: features, encoder/decoder/loss, sampler, training and the refresh job."""
