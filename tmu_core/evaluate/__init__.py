"""Evaluation: the paper's readouts (`metrics`), every model's logits on the evaluation sets (`evaluator`),
the per-sample table and activations a run stores (`artifacts`) and the paper's tables (`paper_tables`)."""
