"""Search: semantic and hybrid ranking over messages and memories, filtered by tenancy before ranking."""
