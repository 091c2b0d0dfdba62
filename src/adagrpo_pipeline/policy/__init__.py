"""Kedro-free generative policy: a TIGER-style T5 over semantic-ID tokens, batched decoding
(constrained/unconstrained beam search, sampling) with a KV cache, SFT training, metrics."""
