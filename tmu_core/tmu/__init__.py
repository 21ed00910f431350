"""TMU itself, by stage: the twin problem (`twin`), the features (`features`, `attacks`), the easy/hard
classifier (`classifier`), the method that strings them together (`method`), its settings (`config`) and
what it reports (`report`)."""
