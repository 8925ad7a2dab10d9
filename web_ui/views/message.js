// One message: author, time (a link to the message), sanitized Markdown, attachments, its card
// (cards.js), the state of an agent's reply (working, waiting for people, streaming, completed,
// failed, interrupted) with Retry on failure, and the state of one's own unsent message
// (sending, queued, held behind a refused one, failed) with Retry and Delete.
import { Component } from "../deps.js";
import * as state from "../state.js";
import { render as renderMarkdown } from "../markdown.js";
import { messagePath } from "../router.js";
import { html, shortTime, fullTime, size, Icon } from "./ui.js";
import { Blocks } from "./cards.js";
import { Reactions, MessageActions, Editor, Edited, Tombstone, isEditing } from "./reactions.js";
import { StopButton, OpenIncidentButton } from "./replyops.js";
import { PresenceDot } from "./notifications.js";
import { Avatar } from "./profile.js";
import { VoiceNote } from "./voice.js";

/** A component that re-renders only when a prop changes (by identity). */
export function memo(render) {
  return class Memo extends Component {
    shouldComponentUpdate(next) {
      for (const key in next) if (next[key] !== this.props[key]) return true;
      for (const key in this.props) if (!(key in next)) return true;
      return false;
    }
    render(props) {
      return render(props);
    }
  };
}

const FAILURE = { error: "failed", interrupted: "interrupted", cancelled: "cancelled" };

function StateChip({ message, waiting }) {
  if (message.author.kind !== "agent") return null;
  if (message.state === "created" || message.state === "streaming") {
    if (waiting) return html`<span class="chip chip-waiting" data-chip="waiting">waiting</span>`;
    return html`<span class="chip chip-streaming" data-chip="streaming">${message.text ? "streaming" : "working"}</span>`;
  }
  if (message.state === "failed") {
    const reason = FAILURE[message.failure_reason] || "failed";
    return html`<span class="chip chip-failed" data-chip=${reason}>${reason}</span>`;
  }
  return null;
}

function Attachments({ attachments }) {
  if (!attachments || !attachments.length) return null;
  return html`<ul class="attachments" aria-label="Attachments">
    ${attachments.map((a) => {
      const url = `/v1/attachments/${encodeURIComponent(a.id)}`; // built here, never taken from the message
      if ((a.content_type || "").startsWith("image/")) {
        return html`<li class="attachment image" key=${a.id}>
          <a href=${url} target="_blank" rel="noopener noreferrer" title=${a.filename}>
            <img src=${url} alt=${a.filename} loading="lazy" decoding="async" />
          </a>
          <span class="filename">${a.filename}</span>
        </li>`;
      }
      if ((a.content_type || "").startsWith("audio/")) {
        return html`<li class="attachment audio" key=${a.id}>
          <span class="filename">${a.filename}</span>
          <audio controls preload="none" src=${url}></audio>
        </li>`;
      }
      return html`<li class="attachment file" key=${a.id}>
        <a href=${url + "?download=1"} download=${a.filename} rel="noopener noreferrer">
          <${Icon} name="clip" /><span class="filename">${a.filename}</span>
        </a>
        <span class="meta">${size(a.size || 0)}</span>
      </li>`;
    })}
  </ul>`;
}

function Body({ message }) {
  if (!message.text) return null;
  return html`<div class="body" dangerouslySetInnerHTML=${{ __html: renderMarkdown(message.text, message.format) }}></div>`;
}

/** The text, or its editor while its author edits it, or the tombstone of a deleted message
 * (a function component, so it follows the `editing` signal). */
function Content({ message }) {
  if (message.deleted_at) return html`<${Tombstone} />`;
  if (isEditing(message)) return html`<${Editor} message=${message} />`;
  return html`<${Body} message=${message} />`;
}

/** An agent's reply that went on in a newer message below (a question or a card came mid-turn)
 * and said nothing itself: it takes no room. */
function continuedEmpty(message) {
  const meta = message.metadata || {};
  return Boolean(meta.continued_in) && !message.text && !(message.blocks && message.blocks.length) && !(message.attachments && message.attachments.length);
}

export const MessageRow = memo(function MessageRow({ message, name, index, total, target, measure, start, onRetryReply, waiting }) {
  if (continuedEmpty(message)) {
    return html`<div class="row msg-continued" data-index=${index} data-message-id=${message.id} ref=${measure}
      style=${{ transform: `translateY(${start}px)` }} aria-hidden="true"></div>`;
  }
  const streaming = message.state === "created" || message.state === "streaming";
  const failed = message.state === "failed";
  const superseded = message.metadata && message.metadata.superseded_by_turn;
  const labelId = `m-${message.id}`;
  return html`<article
    class=${"row msg" + (target ? " target" : "") + (streaming ? " streaming" : "") + (failed ? " failed" : "")}
    data-index=${index}
    data-message-id=${message.id}
    data-seq=${message.seq}
    data-state=${message.state}
    data-author-kind=${message.author.kind}
    ref=${measure}
    style=${{ transform: `translateY(${start}px)` }}
    tabindex="-1"
    aria-posinset=${index + 1}
    aria-setsize=${total}
    aria-labelledby=${labelId}
    aria-busy=${streaming ? "true" : "false"}
  >
    <header class="msg-head">
      ${message.author.kind === "user" && html`<${Avatar} user=${state.users.value.get(message.author.id)} size=${20} />`}
      <span class="author" id=${labelId}>${name}</span>
      ${message.author.kind === "user" && html`<${PresenceDot} userId=${message.author.id} />`}
      ${message.author.kind === "agent" && html`<span class="tag">agent</span>`}
      <a class="time" href=${messagePath(message.thread_id, message.id)} title=${fullTime(message.created_at)}>
        <time datetime=${message.created_at}>${shortTime(message.created_at)}</time>
      </a>
      <${StateChip} message=${message} waiting=${waiting} />
      <${Edited} message=${message} />
      ${streaming && message.author.kind === "agent" && html`<${StopButton} message=${message} />`}
    </header>
    ${message._reasoning &&
    message._reasoning.text &&
    html`<details class="reasoning"><summary>Reasoning</summary><p>${message._reasoning.text}</p></details>`}
    ${!(message.metadata && message.metadata.voice && message.metadata.voice.kind === "memo") && html`<${Content} message=${message} />`}
    <${VoiceNote} message=${message} />
    ${streaming &&
    !message.text &&
    (waiting
      ? html`<div class="body typing waiting" data-waiting="true">Waiting: ${waiting}…</div>`
      : html`<div class="body typing" aria-label="working">…</div>`)}
    <${Attachments} attachments=${message.attachments} />
    <${Blocks} message=${message} />
    <${Reactions} message=${message} />
    <${MessageActions} message=${message} extra=${html`<${OpenIncidentButton} message=${message} />`} />
    ${failed &&
    html`<div class="failure" role="note">
      <span>${message.failure_reason === "interrupted" ? "The reply was interrupted." : message.error || "The reply failed."}</span>
      ${superseded
        ? html`<span class="meta">Retried.</span>`
        : html`<button type="button" class="small" data-action="retry-reply" onClick=${() => onRetryReply(message)}>
            <${Icon} name="retry" /> Retry
          </button>`}
    </div>`}
  </article>`;
});

/** What an unsent message's chip says (outbox.js statuses). */
export function pendingLabel(entry) {
  if (entry.status === "sending") return "sending…";
  if (entry.status === "failed") return "not sent";
  if (entry.status === "held") return "held: a message before it was not sent";
  return state.connection.value === "connected" ? "waiting to be sent" : "waiting for the connection";
}

export const PendingRow = memo(function PendingRow({ entry, name, index, total, measure, start, onRetry, onDiscard, connection }) {
  return html`<article
    class=${"row msg pending " + entry.status}
    data-index=${index}
    data-pending=${entry.status}
    data-client-id=${entry.key}
    data-author-kind="user"
    ref=${measure}
    style=${{ transform: `translateY(${start}px)` }}
    tabindex="-1"
    aria-posinset=${index + 1}
    aria-setsize=${total}
  >
    <header class="msg-head">
      <span class="author">${name}</span>
      <span class=${"chip chip-" + entry.status}>${pendingLabel(entry)}</span>
    </header>
    <${Body} message=${{ text: entry.text, format: "markdown" }} />
    <${Attachments} attachments=${entry.attachments} />
    ${entry.status === "failed" &&
    html`<div class="failure" role="alert">
      <span>${entry.error}</span>
      <button type="button" class="small" onClick=${() => onRetry(entry.key)}><${Icon} name="retry" /> Retry</button>
      <button type="button" class="small secondary" onClick=${() => onDiscard(entry.key)}>Delete</button>
    </div>`}
  </article>`;
});
