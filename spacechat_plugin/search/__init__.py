"""Search: the query language, the tenancy scope every ranker uses, and the rankers by mode
(full text; semantic and hybrid over messages and memories)."""
