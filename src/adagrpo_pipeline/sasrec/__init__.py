"""SASRec, shared by the impression ranker (`reward`) and the reference retriever of `evaluate`
(full-catalog cross-entropy on the interaction sequences). Kedro-free."""
