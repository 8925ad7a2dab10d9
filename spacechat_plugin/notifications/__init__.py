"""Who hears about which message: notification levels, the rule, and delivery (issue 13)."""
