"""Report-text metrics for evaluation (the CheXpert-rule labeler and its finding F1s)."""
