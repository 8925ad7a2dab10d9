"""Cards: the block schema, validation of cards and of every interaction, renderers for Slack,
Discord and plain text, and the card service that records interactions."""
