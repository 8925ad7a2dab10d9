"""Operations: usage and observability, ops with the two-person rule, incidents."""
