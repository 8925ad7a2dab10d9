"""What agents do, as people see it: reply streams, and their tools, workers and branches."""
