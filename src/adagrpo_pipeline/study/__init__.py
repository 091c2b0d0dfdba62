"""The controlled study (docs/architecture.md, "The controlled study"): does AdaGRPO's gate pick
the samples where a biased ranker's reward helps? Kedro-free plan, settings and analysis."""
