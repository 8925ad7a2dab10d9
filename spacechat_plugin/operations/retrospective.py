"""The retrospective draft of a closed incident: facts from its timeline, nothing invented.

incident.io and Rootly start a post-mortem from a template filled with what the tool recorded;
so does this: the summary line, durations between the statuses, roles, every timeline entry with
its time and who, the status updates and the pinned messages. The sections only people can
write (what went well, what to improve, follow-ups) are left as headings to fill in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def duration(start: str | None, end: str | None) -> str:
    """`1 h 05 min`, `4 min 10 s`, or `-` when either end is unknown."""
    a, b = _moment(start), _moment(end)
    if a is None or b is None:
        return "-"
    seconds = max(0, int((b - a).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def draft(
    incident: Mapping[str, Any],
    timeline: Sequence[Mapping[str, Any]],
    roles: Mapping[str, str],
    severity_label: str,
    name_of: Callable[[str | None], str],
) -> str:
    """Markdown: the retrospective's first draft, built only from what was recorded."""
    opened = incident["opened_at"]
    lines = [
        f"# Retrospective: incident #{incident['number']}: {incident['title']}",
        "",
        f"- Severity: {incident['severity']} ({severity_label})",
        f"- Kind: {incident['kind']}" + (f" (source `{incident['source']}`)" if incident.get("source") else ""),
        f"- Opened: {opened}",
        f"- Closed: {incident.get('closed_at') or '-'}",
        "",
        "## Durations",
        "",
        f"- Time to acknowledge (triage to investigating): {duration(opened, incident.get('acknowledged_at'))}",
        f"- Time to mitigate: {duration(opened, incident.get('mitigated_at'))}",
        f"- Time to resolve: {duration(opened, incident.get('resolved_at'))}",
        f"- Open in total: {duration(opened, incident.get('closed_at'))}",
        "",
        "## Roles",
        "",
    ]
    lines += [f"- {role}: {name_of(user)}" for role, user in sorted(roles.items())] or ["- none assigned"]
    lines += ["", "## Timeline (UTC)", ""]
    for entry in timeline:
        who = name_of(entry["actor_id"]) if entry["actor_kind"] != "system" else "system"
        lines.append(f"- {entry['at']} · {entry['kind']} · {who}: {entry['text']}")
    updates = [e for e in timeline if e["kind"] == "update"]
    lines += ["", f"## Status updates ({len(updates)})", ""]
    lines += [f"- {e['at']} {name_of(e['actor_id'])}: {e['data'].get('text', e['text'])}" for e in updates] or [
        "- none posted"
    ]
    pins = [e for e in timeline if e["kind"] == "pin"]
    lines += ["", f"## Pinned messages ({len(pins)})", ""]
    lines += [f"- {e['at']} {e['data'].get('quote', e['text'])}" for e in pins] or ["- none"]
    lines += ["", "## What went well", "", "## What could be improved", "", "## Follow-up actions", ""]
    return "\n".join(lines)
