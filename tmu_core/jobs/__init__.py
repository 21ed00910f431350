"""Jobs: one run end to end (`pipeline`), sweeps over classes (`sweep`), the forget-set preview (`preview`),
UMAP maps (`embedding`) and detached background processes (`launch`)."""
