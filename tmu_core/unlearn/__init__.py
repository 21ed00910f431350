"""The unlearning contract below every method: the method registry and its entry types (`registry`) and the
shared loop the baselines and TMU's step are written over (`loop`). It imports no method, so TMU's own modules
can use it without registering every method first (`tmu_core.methods` fills the registry)."""
