"""Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): merge ranked lists from
different rankers (full text, vectors) without comparing their scores, for a `hybrid` mode.
Every input list must already be within the request's filters (search/scope.py)."""

from __future__ import annotations

from collections.abc import Sequence

from .service import Hit

K = 60  # the paper's constant: dampens the weight of the very first ranks


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], *, k: int = K) -> list[Hit]:
    """One list, best first: each hit scored by the sum of 1 / (k + rank) over the lists that
    have it; a hit keeps the message and snippet of the first list that carried them."""
    scores: dict[str, float] = {}
    best: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.message_id] = scores.get(hit.message_id, 0.0) + 1.0 / (k + rank)
            kept = best.get(hit.message_id)
            if kept is None or (kept.snippet is None and hit.snippet is not None):
                best[hit.message_id] = (
                    hit
                    if kept is None or kept.message is None
                    else Hit(hit.message_id, hit.score, kept.message, hit.snippet)
                )
    ordered = sorted(scores, key=lambda message_id: scores[message_id], reverse=True)
    return [Hit(m, scores[m], best[m].message, best[m].snippet) for m in ordered]
