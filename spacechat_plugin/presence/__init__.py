"""Who is around and who is typing: live state, never stored (issue 13)."""
