// A message's reactions (emoji, counts and who, live), its actions (react, edit, delete), the
// inline editor, the "edited" mark with the earlier versions, and the tombstone of a deleted one.
import { useState, useRef, useEffect } from "../deps.js";
import * as state from "../state.js";
import { editing, editMessage, deleteMessage, messageEdits, toggleReaction } from "../chat.js";
import { ask } from "./dialogs.js";
import { html, fullTime } from "./ui.js";

export const QUICK = ["👍", "❤️", "😄", "🎉", "👀", "🙏", "✅", "👎"];

function names(ids) {
  return ids.map((id) => state.displayName({ kind: "user", id })).join(", ");
}

export function Reactions({ message }) {
  const reactions = message.reactions || [];
  if (!reactions.length || message.deleted_at) return null;
  const me = state.myId();
  return html`<div class="reactions" role="group" aria-label="Reactions">
    ${reactions.map((r) => {
      const mine = r.user_ids.includes(me);
      const who = names(r.user_ids);
      return html`<button type="button" key=${r.emoji} class=${"reaction" + (mine ? " mine" : "")}
        aria-pressed=${mine ? "true" : "false"} title=${who}
        aria-label=${`${r.emoji} ${r.count}: ${who}. ${mine ? "Take back yours" : "React with it too"}`}
        data-emoji=${r.emoji} onClick=${() => react(message, r.emoji)}>
        <span aria-hidden="true">${r.emoji}</span> <span class="count" aria-hidden="true">${r.count}</span>
      </button>`;
    })}
  </div>`;
}

async function react(message, emoji) {
  try {
    await toggleReaction(message, emoji);
  } catch (error) {
    state.announce(`Reaction not saved: ${error.message}`);
  }
}

function canEdit(message) {
  return (
    message.author.id === state.myId() &&
    message.state === "completed" &&
    !message.deleted_at &&
    !(message.metadata && message.metadata.turn_id)
  );
}

const canDelete = (message) =>
  !message.deleted_at &&
  message.state !== "created" &&
  message.state !== "streaming" &&
  (message.author.id === state.myId() || state.can("messages:moderate"));

/** React, Edit and Delete for one message (shown on hover and keyboard focus). */
export function MessageActions({ message, extra }) {
  const [picking, setPicking] = useState(false);
  const opener = useRef(null);
  const picker = useRef(null);
  useEffect(() => {
    if (picking && picker.current) picker.current.querySelector("button").focus();
  }, [picking]);
  if (message.deleted_at || message.state === "created") return null;
  function close() {
    setPicking(false);
    requestAnimationFrame(() => opener.current && opener.current.focus());
  }
  async function remove() {
    const mine = message.author.id === state.myId();
    const confirmed = await ask({
      title: "Delete this message?",
      text: mine ? "It is removed for everyone; a note that it was deleted stays." : "You are deleting someone else's message as a moderator. This is recorded in the audit log.",
      confirmLabel: "Delete",
      danger: true,
    });
    if (!confirmed) return;
    try {
      await deleteMessage(message.id);
      state.announce("Message deleted");
    } catch (error) {
      state.announce(`Not deleted: ${error.message}`);
    }
  }
  return html`<div class="msg-actions" role="toolbar" aria-label="Message actions">
    <button type="button" class="small secondary" ref=${opener} aria-expanded=${picking ? "true" : "false"}
      aria-haspopup="true" onClick=${() => setPicking(!picking)}>React</button>
    ${canEdit(message) && html`<button type="button" class="small secondary" onClick=${() => (editing.value = message.id)}>Edit</button>`}
    ${canDelete(message) && html`<button type="button" class="small secondary danger" onClick=${remove}>Delete</button>`}
    ${extra}
    ${picking &&
    html`<div class="emoji-picker" role="group" aria-label="Pick a reaction" ref=${picker}
      onKeyDown=${(e) => e.key === "Escape" && (e.stopPropagation(), close())}>
      ${QUICK.map(
        (emoji) => html`<button type="button" key=${emoji} class="emoji" aria-label=${"React with " + emoji}
          onClick=${() => (react(message, emoji), close())}>${emoji}</button>`,
      )}
    </div>`}
  </div>`;
}

/** The inline editor of one's own message: Enter saves, Escape cancels. */
export function Editor({ message }) {
  const [text, setText] = useState(message.text);
  const [error, setError] = useState(null);
  const area = useRef(null);
  useEffect(() => {
    if (area.current) {
      area.current.focus();
      area.current.setSelectionRange(text.length, text.length);
    }
  }, []);
  function stop() {
    editing.value = null;
    requestAnimationFrame(() => document.querySelector(`[data-message-id="${message.id}"]`)?.focus());
  }
  async function save(event) {
    if (event) event.preventDefault();
    try {
      await editMessage(message.id, text);
      state.announce("Message edited");
      stop();
    } catch (failure) {
      setError(failure.message);
    }
  }
  return html`<form class="editor" onSubmit=${save}>
    <label class="sr-only" for=${"edit-" + message.id}>Edit your message</label>
    <textarea id=${"edit-" + message.id} ref=${area} rows="3" value=${text}
      aria-invalid=${error ? "true" : "false"} aria-describedby=${error ? "edit-error-" + message.id : null}
      onInput=${(e) => (setText(e.currentTarget.value), setError(null))}
      onKeyDown=${(e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) save(e);
        else if (e.key === "Escape") (e.stopPropagation(), stop());
      }}></textarea>
    ${error && html`<p class="form-error" id=${"edit-error-" + message.id} role="alert">${error}</p>`}
    <div class="actions">
      <button type="button" class="small secondary" onClick=${stop}>Cancel</button>
      <button type="submit" class="small">Save</button>
    </div>
  </form>`;
}

/** "edited": opens the earlier versions (fetched when opened). */
export function Edited({ message }) {
  const [versions, setVersions] = useState(null);
  if (!message.edited_at || message.deleted_at) return null;
  async function toggle(event) {
    if (event.currentTarget.open && versions === null) {
      try {
        setVersions((await messageEdits(message.id)).versions);
      } catch (error) {
        setVersions([{ text: `Could not load: ${error.message}`, replaced_at: "" }]);
      }
    }
  }
  return html`<details class="edited" onToggle=${toggle}>
    <summary title=${"Edited " + fullTime(message.edited_at)}>edited</summary>
    ${versions === null
      ? html`<p class="meta">Loading…</p>`
      : html`<ol class="versions" aria-label="Earlier versions">
          ${versions.map((v, i) => html`<li key=${i}><span class="meta">until ${fullTime(v.replaced_at)}</span><p>${v.text}</p></li>`)}
        </ol>`}
  </details>`;
}

export function Tombstone() {
  return html`<div class="body deleted" data-deleted="true"><em>This message was deleted.</em></div>`;
}

export function isEditing(message) {
  return editing.value === message.id;
}
