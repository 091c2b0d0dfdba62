"""Kedro-free semantic-ID library: item embeddings, residual quantisation (RQ-KMeans,
RQ-VAE), the dedup level, the token vocabulary and the prefix trie for constrained decoding."""
