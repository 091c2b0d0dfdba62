"""AdaGRPO (DESIGN section 4): gated GRPO with an NLL anchor, and its baselines. Kedro-free."""
