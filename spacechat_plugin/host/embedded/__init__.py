"""The embedded host: agents from config, a turn loop per channel, workers and model providers."""
