"""Search: the query language, the tenancy scope every ranker uses, and the rankers by mode."""
