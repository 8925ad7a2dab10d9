"""Memory under policy and consent: policies, consent, candidates, review, embeddings, retention, export."""
