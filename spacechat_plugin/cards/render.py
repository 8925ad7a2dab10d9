"""Cards outside Spacechat: Slack Block Kit, Discord components and plain text, and clicks coming back.

Why pure functions over validated cards: the Slack and Discord connectors, e-mail and push
notifications and the logs all show the same card with fewer features than Spacechat's own client.
Each renderer keeps what its target can show and links back to the message for the rest (forms,
menus too long for Discord, confirmations Discord cannot ask). A renderer never fails on a valid
card: it truncates to the target's limits. docs/connectors.md has the table of what each keeps.

`state` is what the server knows live about the card: `{"polls": {block_id: {"tallies", "voters",
"closed"}}, "tasks": {task_id: {"title", "status", "assignee", "number"}}, "decided": {block_id:
{"label", "by"}}}`; every part is optional.

The encodings of acts inside these messages (Slack poll values, Discord custom_ids) live in
cards/validate.py with their decoding, `interaction_from_slack` and `interaction_from_discord`, which this
module re-exports for connectors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .validate import (
    DISCORD_CUSTOM_ID,
    SLACK_OPEN_ACTION,
    SLACK_VOTE_PREFIX,
    SLACK_VOTE_SELECT,
    CardError,
    discord_custom_id,
    interaction_from_discord,
    interaction_from_slack,
    slack_vote_value,
)

__all__ = [
    "CardError",
    "interaction_from_discord",
    "interaction_from_slack",
    "render_discord",
    "render_slack",
    "render_text",
    "to_discord",
    "to_mrkdwn",
    "to_plain",
]

SLACK_MAX_BLOCKS = 50
DISCORD_MAX_ROWS = 5
DISCORD_MAX_EMBEDS = 10
DISCORD_EMBED_TOTAL = 6000
DISCORD_SELECT_OPTIONS = 25

STATUS_EMOJI = {"ok": "✅", "warning": "⚠️", "error": "❌", "info": "ℹ️", "running": "⏳"}
OUTCOME_EMOJI = {"running": "⏳", "succeeded": "✅", "failed": "❌", "denied": "🚫", "skipped": "⏭️"}
DISCORD_STYLE = {"primary": 1, "default": 2, "danger": 4}

# --- shared helpers ------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _absolute(url: str, message_url: str) -> str:
    """An attachment path on the server that serves `message_url`."""
    if url.startswith("/"):
        parts = urlsplit(message_url)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}{url}"
    return url


def _duration(ms: int) -> str:
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes} min {seconds} s"


def _when(moment: str) -> str:
    return datetime.fromisoformat(moment).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class _Context:
    state: dict[str, Any]
    message_url: str

    def part(self, name: str, key: str) -> dict[str, Any] | None:
        found = (self.state.get(name) or {}).get(key)
        return found if isinstance(found, dict) else None

    def decided(self, block: dict[str, Any]) -> str | None:
        """The line that replaces an answered actions block or form: "Approved, by Ann"."""
        decision = self.part("decided", block["block_id"]) if block["type"] in ("actions", "form") else None
        if decision is None:
            return None
        by = decision.get("by")
        return f"{decision.get('label', 'Answered')}, by {by}" if by else str(decision.get("label", "Answered"))

    def poll_closed(self, block: dict[str, Any]) -> bool:
        return bool((self.part("polls", block["block_id"]) or {}).get("closed"))

    def tallies(self, block: dict[str, Any]) -> list[tuple[str, str]]:
        """(label, "3 votes: Ann, Bob") per option; names only for a poll that is not anonymous."""
        poll = self.part("polls", block["block_id"])
        if poll is None:
            return [(option["label"], "") for option in block["options"]]
        counts, voters = poll.get("tallies") or {}, poll.get("voters") or {}
        rows = []
        for option in block["options"]:
            count = int(counts.get(option["value"], 0))
            text = f"{count} vote" + ("" if count == 1 else "s")
            names = [] if block.get("anonymous") else list(voters.get(option["value"]) or [])
            if names:
                shown = ", ".join(str(name) for name in names[:10])
                text += f": {shown}" + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            rows.append((option["label"], text))
        return rows

    def poll_notes(self, block: dict[str, Any]) -> str:
        notes = ["choose any" if block.get("multiple") else "choose one"]
        if block.get("anonymous"):
            notes.append("anonymous")
        if self.poll_closed(block):
            notes.append("closed")
        elif "closes_at" in block:
            notes.append(f"closes {_when(block['closes_at'])}")
        return " · ".join(notes)

    def task(self, block: dict[str, Any]) -> tuple[str, str]:
        """The task's heading and its "status · assignee" line."""
        task = self.part("tasks", block["task_id"])
        if task is None:
            return f"Task {block['task_id']}", "status unavailable"
        number = f"#{task['number']} " if task.get("number") is not None else ""
        status = str(task.get("status") or "unknown").replace("_", " ")
        assignee = f"assigned to {task['assignee']}" if task.get("assignee") else "unassigned"
        return f"Task {number}{task.get('title') or block['task_id']}", f"{status} · {assignee}"


def _tool_line(block: dict[str, Any]) -> str:
    took = f" in {_duration(block['duration_ms'])}" if "duration_ms" in block else ""
    return f"{block['outcome']}{took}"


# --- Markdown ------------------------------------------------------------------------------
# Cards carry CommonMark. Slack's mrkdwn differs in a few marks, so we convert those (bold,
# italic, strike, links, headings, bullets) outside code, and leave the rest as written.

_CODE = re.compile(r"(```.*?```|`[^`\n]+`)", re.DOTALL)
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?|mailto):[^\s)]+)\)")
_BOLD = re.compile(r"\*\*(?!\s)(.+?)(?<!\s)\*\*|__(?!\s)(.+?)(?<!\s)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?![\s*])([^*\n]+?)(?<![\s*])\*(?![*\w])")
_UNDERSCORE = re.compile(r"(?<![_\w])_(?![\s_])([^_\n]+?)(?<![\s_])_(?![_\w])")
_STRIKE = re.compile(r"~~(?!\s)(.+?)(?<!\s)~~")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+", re.MULTILINE)


def _outside_code(text: str, convert: Callable[[str], str]) -> str:
    return "".join(part if i % 2 else convert(part) for i, part in enumerate(_CODE.split(text)))


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn_part(text: str) -> str:
    text = re.sub(r"(?m)^&gt;", ">", _slack_escape(text))  # block quotes stay quotes
    text = _BULLET.sub(r"\1• ", text)
    text = _LINK.sub(lambda m: f"<{m[2]}|{m[1]}>", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _BOLD.sub(lambda m: f"*{m[1] or m[2]}*", text)
    text = _STRIKE.sub(r"~\1~", text)
    return _HEADING.sub(r"*\1*", text)


def to_mrkdwn(markdown: str) -> str:
    """CommonMark to Slack mrkdwn: **b** -> *b*, *i* -> _i_, ~~s~~ -> ~s~, [t](u) -> <u|t>,
    # Heading -> *Heading*, - item -> • item; &, < and > escaped; code left alone."""
    return _outside_code(markdown, _mrkdwn_part)


def to_discord(markdown: str) -> str:
    """CommonMark to Discord Markdown: the same, except that __b__ (underline in Discord) -> **b**."""
    return _outside_code(markdown, lambda text: re.sub(r"__(?!\s)(.+?)(?<!\s)__", r"**\1**", text))


def _plain_part(text: str) -> str:
    text = _LINK.sub(lambda m: m[1] if m[1] == m[2] else f"{m[1]} ({m[2]})", text)
    text = _BOLD.sub(lambda m: m[1] or m[2], text)
    text = _UNDERSCORE.sub(r"\1", _ITALIC.sub(r"\1", text))
    return _HEADING.sub(r"\1", _STRIKE.sub(r"\1", text))


def to_plain(markdown: str) -> str:
    """CommonMark to readable plain text: emphasis marks dropped, links as "text (url)"."""
    return _outside_code(markdown, _plain_part)


def _code_span(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


# --- Slack ---------------------------------------------------------------------------------


def _plain_text(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _clip(text, limit), "emoji": True}


def _mrkdwn(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text), **extra}


def _context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(text) for text in texts[:10]]}


def _open_button(ctx: _Context, label: str = "Open in Spacechat") -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": SLACK_OPEN_ACTION,
        "text": _plain_text(label, 75),
        "url": _clip(ctx.message_url, 3000),
    }


def _slack_option(option: dict[str, Any]) -> dict[str, Any]:
    return {"text": _plain_text(option["label"], 75), "value": option["value"]}


def _slack_button(button: dict[str, Any]) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "type": "button",
        "action_id": button["action_id"],
        "text": _plain_text(button["label"], 75),
    }
    if "value" in button:
        rendered["value"] = button["value"]
    if button["style"] != "default":
        rendered["style"] = button["style"]
    if "confirm" in button:
        confirm = button["confirm"]
        rendered["confirm"] = {
            "title": _plain_text(confirm["title"], 100),
            "text": _mrkdwn(to_mrkdwn(confirm["text"]), 300),
            "confirm": _plain_text(confirm["confirm_label"], 30),
            "deny": _plain_text(confirm["deny_label"], 30),
        }
        if button["style"] == "danger":
            rendered["confirm"]["style"] = "danger"
    return rendered


def _slack_select(select: dict[str, Any]) -> dict[str, Any]:
    multiple = select["multiple"]
    rendered: dict[str, Any] = {
        "type": "multi_static_select" if multiple else "static_select",
        "action_id": select["action_id"],
        "placeholder": _plain_text(select.get("placeholder", "Choose"), 150),
        "options": [_slack_option(option) for option in select["options"]],
    }
    initial = [option for option in select["options"] if option["value"] in select.get("initial", [])]
    if initial and multiple:
        rendered["initial_options"] = [_slack_option(option) for option in initial]
    elif initial:
        rendered["initial_option"] = _slack_option(initial[0])
    if multiple and "max" in select:
        rendered["max_selected_items"] = select["max"]
    return rendered


def _slack_actions(block: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    elements = [_slack_button(e) if e["type"] == "button" else _slack_select(e) for e in block["elements"]]
    return [{"type": "actions", "block_id": block["block_id"], "elements": elements}]


def _slack_form(block: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    labels = ", ".join(_slack_escape(field["label"]) for field in block["fields"])
    return [_section(f"📝 *Form:* {labels}", accessory=_open_button(ctx))]


def _slack_poll(block: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    lines = [to_mrkdwn(block["question"])]
    lines += [f"• {_slack_escape(label)}" + (f" — {count}" if count else "") for label, count in ctx.tallies(block)]
    rendered = [_section("\n".join(lines))]
    if not ctx.poll_closed(block) and block["multiple"]:
        # One click is one whole vote, so a vote for several options is a multi-select.
        choose = {
            "type": "multi_static_select",
            "action_id": SLACK_VOTE_SELECT,
            "placeholder": _plain_text("Choose any", 150),
            "options": [_slack_option(option) for option in block["options"]],
        }
        rendered.append({"type": "actions", "block_id": block["block_id"], "elements": [choose]})
    elif not ctx.poll_closed(block):
        buttons = [
            {
                "type": "button",
                "action_id": f"{SLACK_VOTE_PREFIX}{i}",
                "text": _plain_text(option["label"], 75),
                "value": slack_vote_value(block["block_id"], option["value"]),
            }
            for i, option in enumerate(block["options"])
        ]
        rendered.append({"type": "actions", "block_id": block["block_id"], "elements": buttons})
    return [*rendered, _context(_slack_escape(ctx.poll_notes(block)))]


def _slack_image(block: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    if block["url"].startswith("https://"):
        image: dict[str, Any] = {"type": "image", "image_url": block["url"], "alt_text": _clip(block["alt_text"], 2000)}
        if "title" in block:
            image["title"] = _plain_text(block["title"], 2000)
        return [image]
    # Slack fetches image_url itself and refuses the whole message when it cannot; an attachment
    # needs a Spacechat session, so it becomes a link.
    url = _absolute(block["url"], ctx.message_url)
    title = f"*{_slack_escape(block['title'])}* " if "title" in block else ""
    return [_section(f"🖼️ {title}<{url}|{_slack_escape(block['alt_text'])}>")]


def _slack_task(block: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    heading, line = ctx.task(block)
    text = f"*{_slack_escape(heading)}*\n{_slack_escape(line)}"
    return [_section(text, accessory=_open_button(ctx, "Open task"))]


def _slack_tool_run(block: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    parts = [f"{OUTCOME_EMOJI[block['outcome']]} {_code_span(block['tool'])} {_tool_line(block)}"]
    if block["arguments_summary"]:
        parts.append(_slack_escape(_code_span(block["arguments_summary"])))
    if "detail" in block:
        parts.append(to_mrkdwn(block["detail"]))
    return [_context(*parts)]


_SLACK: dict[str, Callable[[dict[str, Any], _Context], list[dict[str, Any]]]] = {
    "section": lambda b, ctx: [_section(to_mrkdwn(b["text"]))],
    "fields": lambda b, ctx: [
        {
            "type": "section",
            "fields": [_mrkdwn(f"*{_slack_escape(f['label'])}*\n{to_mrkdwn(f['value'])}", 2000) for f in b["fields"]],
        }
    ],
    "context": lambda b, ctx: [_context(*(to_mrkdwn(text) for text in b["elements"]))],
    "divider": lambda b, ctx: [{"type": "divider"}],
    "image": _slack_image,
    "actions": _slack_actions,
    "form": _slack_form,
    "poll": _slack_poll,
    "task": _slack_task,
    "status": lambda b, ctx: [
        _context(
            f"{STATUS_EMOJI[b['state']]} *{_slack_escape(b['label'])}*"
            + (f" — {to_mrkdwn(b['detail'])}" if "detail" in b else "")
        )
    ],
    "tool_run": _slack_tool_run,
}


def render_slack(
    blocks: list[dict[str, Any]], *, state: dict[str, Any] | None = None, message_url: str
) -> list[dict[str, Any]]:
    """Slack Block Kit blocks for a validated card (for chat.postMessage's `blocks`)."""
    ctx = _Context(state or {}, message_url)
    rendered: list[dict[str, Any]] = []
    for block in blocks:
        decided = ctx.decided(block)
        parts = [_context(f"✅ {_slack_escape(decided)}")] if decided else _SLACK[block["type"]](block, ctx)
        # The card's block_id goes on the Slack block that carries its buttons, else on the first,
        # so that Slack sends it back with a click and ids stay unique in the message.
        if "block_id" in block and not any("block_id" in part for part in parts):
            parts[0] = {"type": parts[0]["type"], "block_id": block["block_id"], **parts[0]}
        rendered.extend(parts)
    if len(rendered) > SLACK_MAX_BLOCKS:
        more = _context(f"More in Spacechat: <{message_url}|open the message>")
        rendered = [*rendered[: SLACK_MAX_BLOCKS - 1], more]
    return rendered


# --- Discord -------------------------------------------------------------------------------


@dataclass
class _Discord:
    ctx: _Context
    lines: list[str] = field(default_factory=list)
    embeds: list[dict[str, Any]] = field(default_factory=list)
    rows: list[list[dict[str, Any]]] = field(default_factory=list)

    def link(self, label: str) -> dict[str, Any]:
        return {"type": 2, "style": 5, "label": _clip(label, 80), "url": self.ctx.message_url}

    def add(self, components: list[dict[str, Any]]) -> None:
        """One block's components in rows of their own: up to 5 buttons share a row; a select
        fills one."""
        start = len(self.rows)
        for component in components:
            last = self.rows[-1] if len(self.rows) > start else None
            if component["type"] == 2 and last is not None and last[0]["type"] == 2 and len(last) < 5:
                last.append(component)
            else:
                self.rows.append([component])


def _discord_select(select: dict[str, Any], custom_id: str, minimum: int, maximum: int) -> dict[str, Any]:
    initial = select.get("initial", [])
    options = []
    for option in select["options"]:
        rendered = {"label": _clip(option["label"], 100), "value": option["value"]}
        if option["value"] in initial:
            rendered["default"] = True
        options.append(rendered)
    component: dict[str, Any] = {"type": 3, "custom_id": custom_id, "options": options}
    if "placeholder" in select:
        component["placeholder"] = select["placeholder"]
    if (minimum, maximum) != (1, 1):
        component["min_values"], component["max_values"] = minimum, min(maximum, DISCORD_SELECT_OPTIONS)
    return component


def _discord_actions(block: dict[str, Any], out: _Discord) -> None:
    components = []
    for element in block["elements"]:
        custom_id = discord_custom_id("a", block["block_id"], element["action_id"])
        if element["type"] == "button" and "confirm" in element:
            # Discord cannot ask "are you sure?"; the click happens in Spacechat, which can.
            components.append(out.link(element["label"]))
        elif element["type"] == "button":
            style = DISCORD_STYLE[element["style"]]
            components.append({"type": 2, "style": style, "label": _clip(element["label"], 80), "custom_id": custom_id})
        elif len(element["options"]) > DISCORD_SELECT_OPTIONS:
            components.append(out.link(f"{element.get('placeholder', 'Choose')} (in Spacechat)"))
        else:
            count = len(element["options"])
            low, high = (element.get("min", 1), element.get("max", count)) if element["multiple"] else (1, 1)
            components.append(_discord_select(element, custom_id, low, high))
    out.add(components)


def _discord_poll(block: dict[str, Any], out: _Discord) -> None:
    lines = [to_discord(block["question"]), ""]
    lines += [f"**{label}**" + (f" — {count}" if count else "") for label, count in out.ctx.tallies(block)]
    out.embeds.append({"description": _clip("\n".join(lines), 4096), "footer": {"text": out.ctx.poll_notes(block)}})
    if out.ctx.poll_closed(block):
        return
    options, block_id = block["options"], block["block_id"]
    ids = [discord_custom_id("v", block_id, option["value"]) for option in options]
    if not block["multiple"] and len(options) <= 5 and all(len(i) <= DISCORD_CUSTOM_ID for i in ids):
        buttons = [
            {"type": 2, "style": 2, "label": _clip(option["label"], 80), "custom_id": custom_id}
            for option, custom_id in zip(options, ids, strict=True)
        ]
        out.add(buttons)
    else:
        high = len(options) if block["multiple"] else 1
        out.add([_discord_select(block, discord_custom_id("v", block_id), 1, high)])


def _discord_form(block: dict[str, Any], out: _Discord) -> None:
    out.lines.append("📝 **Form:** " + ", ".join(field["label"] for field in block["fields"]))
    out.add([out.link("Open in Spacechat")])


def _discord_image(block: dict[str, Any], out: _Discord) -> None:
    if block["url"].startswith("https://"):
        embed: dict[str, Any] = {"description": _clip(block["alt_text"], 4096), "image": {"url": block["url"]}}
        if "title" in block:
            embed["title"] = block["title"]
        out.embeds.append(embed)
    else:
        url = _absolute(block["url"], out.ctx.message_url)
        title = f"**{block['title']}** " if "title" in block else ""
        alt = block["alt_text"].replace("[", "(").replace("]", ")")
        out.lines.append(f"🖼️ {title}[{alt}]({url})")


def _discord_task(block: dict[str, Any], out: _Discord) -> None:
    heading, line = out.ctx.task(block)
    out.embeds.append({"title": _clip(heading, 256), "url": out.ctx.message_url, "description": line})


def _discord_tool_run(block: dict[str, Any], out: _Discord) -> None:
    line = f"{OUTCOME_EMOJI[block['outcome']]} {_code_span(block['tool'])} {_tool_line(block)}"
    if block["arguments_summary"]:
        line += f"\n-# {_code_span(block['arguments_summary'])}"
    if "detail" in block:
        line += f"\n{to_discord(block['detail'])}"
    out.lines.append(line)


_DISCORD: dict[str, Callable[[dict[str, Any], _Discord], None]] = {
    "section": lambda b, out: out.lines.append(to_discord(b["text"])),
    "fields": lambda b, out: out.embeds.append(
        {
            "fields": [
                {"name": _clip(f["label"], 256), "value": _clip(to_discord(f["value"]), 1024), "inline": True}
                for f in b["fields"]
            ]
        }
    ),
    "context": lambda b, out: out.lines.append(
        "-# " + " · ".join(to_discord(text).replace("\n", " ") for text in b["elements"])
    ),
    "divider": lambda b, out: out.lines.append("─" * 20),
    "image": _discord_image,
    "actions": _discord_actions,
    "form": _discord_form,
    "poll": _discord_poll,
    "task": _discord_task,
    "status": lambda b, out: out.lines.append(
        f"{STATUS_EMOJI[b['state']]} **{b['label']}**" + (f" — {to_discord(b['detail'])}" if "detail" in b else "")
    ),
    "tool_run": _discord_tool_run,
}


def _embed_size(embed: dict[str, Any]) -> int:
    fields = sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    footer = len(embed.get("footer", {}).get("text", ""))
    return len(embed.get("title", "")) + len(embed.get("description", "")) + fields + footer


def render_discord(
    blocks: list[dict[str, Any]], *, state: dict[str, Any] | None = None, message_url: str
) -> dict[str, Any]:
    """A Discord message body: `content`, `embeds` and `components` (action rows). Discord shows
    content, then embeds, then components, so blocks are grouped that way. `allowed_mentions` is
    empty: an agent's "@everyone" in a card must not ping a Discord server."""
    out = _Discord(_Context(state or {}, message_url))
    for block in blocks:
        decided = out.ctx.decided(block)
        if decided:
            out.lines.append(f"✅ {decided}")
        else:
            _DISCORD[block["type"]](block, out)
    embeds: list[dict[str, Any]] = []
    size, dropped = 0, False
    for embed in out.embeds:
        size += _embed_size(embed)
        if len(embeds) == DISCORD_MAX_EMBEDS or size > DISCORD_EMBED_TOTAL:
            dropped = True
            break
        embeds.append(embed)
    rows = out.rows
    if len(rows) > DISCORD_MAX_ROWS:
        rows = [*rows[: DISCORD_MAX_ROWS - 1], [out.link("More in Spacechat")]]
    more = f"\n[More in Spacechat]({message_url})"
    content = "\n".join(out.lines) + (more if dropped else "")
    if len(content) > 2000:
        content = content[: 2000 - len(more) - 1] + "…" + more
    components = [{"type": 1, "components": row} for row in rows]
    return {"content": content, "embeds": embeds, "components": components, "allowed_mentions": {"parse": []}}


# --- plain text ----------------------------------------------------------------------------


def _text_actions(block: dict[str, Any], ctx: _Context) -> str:
    parts = []
    for element in block["elements"]:
        if element["type"] == "button":
            parts.append(f"[{element['label']}]")
        else:
            choices = " | ".join(option["label"] for option in element["options"])
            parts.append(f"[{element.get('placeholder', 'Choose')}: {choices}]")
    return " ".join(parts)


def _text_form(block: dict[str, Any], ctx: _Context) -> str:
    labels = ", ".join(field["label"] for field in block["fields"])
    return f"Form: {labels}\nOpen in Spacechat: {ctx.message_url}"


def _text_poll(block: dict[str, Any], ctx: _Context) -> str:
    box = "[ ]" if block["multiple"] else "( )"
    lines = [f"Poll: {to_plain(block['question'])}"]
    lines += [f"  {box} {label}" + (f" — {count}" if count else "") for label, count in ctx.tallies(block)]
    return "\n".join([*lines, f"  ({ctx.poll_notes(block)})"])


def _text_image(block: dict[str, Any], ctx: _Context) -> str:
    title = f"{block['title']} — " if "title" in block else ""
    return f"[Image: {title}{block['alt_text']}] {_absolute(block['url'], ctx.message_url)}"


def _text_tool_run(block: dict[str, Any], ctx: _Context) -> str:
    arguments = f"({block['arguments_summary']})" if block["arguments_summary"] else ""
    line = f"Tool {block['tool']}{arguments}: {_tool_line(block)}"
    return line + (f"\n{to_plain(block['detail'])}" if "detail" in block else "")


def _text_task(block: dict[str, Any], ctx: _Context) -> str:
    heading, line = ctx.task(block)
    return f"{heading} ({line})"


_TEXT: dict[str, Callable[[dict[str, Any], _Context], str]] = {
    "section": lambda b, ctx: to_plain(b["text"]),
    "fields": lambda b, ctx: "\n".join(f"{f['label']}: {to_plain(f['value'])}" for f in b["fields"]),
    "context": lambda b, ctx: " · ".join(to_plain(text) for text in b["elements"]),
    "divider": lambda b, ctx: "-" * 20,
    "image": _text_image,
    "actions": _text_actions,
    "form": _text_form,
    "poll": _text_poll,
    "task": _text_task,
    "status": lambda b, ctx: (
        f"[{b['state'].upper()}] {b['label']}" + (f": {to_plain(b['detail'])}" if "detail" in b else "")
    ),
    "tool_run": _text_tool_run,
}


def render_text(blocks: list[dict[str, Any]], *, state: dict[str, Any] | None = None, message_url: str) -> str:
    """Plain text for notifications, e-mail and logs: blocks separated by blank lines, and a
    link back when something is still waiting for an answer."""
    ctx = _Context(state or {}, message_url)
    parts = [f"✓ {decided}" if (decided := ctx.decided(b)) else _TEXT[b["type"]](b, ctx) for b in blocks]
    waiting = any(
        (block["type"] == "actions" and ctx.decided(block) is None)
        or (block["type"] == "poll" and not ctx.poll_closed(block))
        for block in blocks
    )
    if waiting:
        parts.append(f"Respond in Spacechat: {message_url}")
    return "\n\n".join(parts)
