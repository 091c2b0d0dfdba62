"""AdaGRPO (arXiv 2606.08480; docs/architecture.md, "The algorithm"): GRPO gated per sample by
two rollout diagnostics, with an NLL anchor, and its baselines. Kedro-free."""
