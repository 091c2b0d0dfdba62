"""The reward model: a SASRec-style ranker trained on logged impressions, its calibration,
and the batched reward function AdaGRPO calls. Kedro-free."""
