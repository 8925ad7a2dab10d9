"""Who is asking and what they may do: sessions, tokens, and the one permission function."""
