"""Kedro-free data layer: raw-source readers, the synthetic simulator, the exposure policy,
validation suites, id remapping, k-core filtering, leave-one-out splitting and exposure-bias
metrics. Nothing here imports kedro."""
