"""The AG-UI host: agents whose turns any AG-UI endpoint runs (LangGraph, CrewAI, Pydantic AI,
Mastra, Google ADK, ...), reached by `provider` entries of kind `agui` (docs/agui.md).

The embedded host keeps such an agent's channels, queues, retries and restarts as for any agent;
a turn posts a `RunAgentInput` and maps the streamed AG-UI events to the same hooks every host
calls (run.py), so nothing above `host/` can tell who runs the agent.
"""
