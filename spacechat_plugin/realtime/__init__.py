"""The realtime gateway: the bus that fans committed events out, the stream core (replay, then
live) and its sinks (SSE, WebSocket). Imports nothing of api/, host/ or the services."""
