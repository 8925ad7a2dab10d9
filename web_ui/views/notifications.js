// Notification levels, the browser's permission, presence dots and typing lines
// (docs/notifications.md).
import { useState } from "../deps.js";
import * as state from "../state.js";
import { LEVELS, LEVEL_LABEL, levelOf, setLevel, permission, askPermission } from "../notify.js";
import { statusOf, typists, placeKey } from "../presence.js";
import { html } from "./ui.js";

/** A channel's notification level for me, in its header. */
export function NotifyLevel({ channel }) {
  const [error, setError] = useState(null);
  const level = levelOf(channel.id);
  const id = `notify-${channel.id}`;
  async function change(event) {
    const wanted = event.currentTarget.value;
    setError(null);
    try {
      await setLevel(channel.id, wanted);
      state.announce(`Notifications for #${channel.name}: ${LEVEL_LABEL[wanted].toLowerCase()}`);
    } catch (failure) {
      setError(failure.message);
    }
  }
  return html`<span class=${"notify-level level-" + level}>
    <label for=${id} class="sr-only">Notifications for #${channel.name}</label>
    <select id=${id} class="small-select" value=${level} onChange=${change} title="Notifications">
      ${LEVELS.map((l) => html`<option value=${l} selected=${l === level}>${LEVEL_LABEL[l]}</option>`)}
    </select>
    ${error && html`<span class="form-error" role="alert">${error}</span>`}
  </span>`;
}

const PERMISSION_TEXT = {
  granted: "On: this browser shows mentions, direct messages and replies in your threads.",
  denied: "Blocked in this browser's site settings.",
  default: "Off in this browser.",
  unsupported: "This browser cannot show notifications.",
};

/** Settings: the browser's permission, and what the levels mean. */
export function NotificationSettings() {
  const now = permission.value;
  return html`<section class="panel" aria-labelledby="notifications-title">
    <h2 id="notifications-title">Notifications</h2>
    <p data-permission=${now}>Desktop notifications: ${PERMISSION_TEXT[now] || now}</p>
    ${now === "default" && html`<button type="button" class="small" onClick=${askPermission}>Turn on desktop notifications</button>`}
    <p class="meta">Each channel's header sets what it notifies about: all messages, mentions and replies
      (the default: mentions, direct messages and replies in threads you started or replied to) or nothing (muted).</p>
  </section>`;
}

/** A small dot: active (filled) or away (hollow), with the words for screen readers. */
export function PresenceDot({ userId }) {
  const status = statusOf(userId);
  return html`<span class=${"presence-dot " + status} data-presence=${status} role="img" aria-label=${status}></span>`;
}

function names(ids) {
  const shown = ids.slice(0, 3).map((id) => state.displayName({ kind: "user", id }));
  if (ids.length > 3) return `${shown.join(", ")} and ${ids.length - 3} more`;
  return shown.length > 1 ? `${shown.slice(0, -1).join(", ")} and ${shown[shown.length - 1]}` : shown[0];
}

/** "Rita is typing…" for a thread, or for a new thread in a channel (threadId null). */
export function TypingLine({ channelId, threadId = null }) {
  const ids = typists.value.get(placeKey(channelId, threadId)) || [];
  const what = threadId ? "typing" : "writing a new thread";
  return html`<div class="typing-line" data-typing=${ids.length ? ids.join(" ") : null}>
    ${ids.length > 0 && html`<span class="dots" aria-hidden="true"></span> ${names(ids)} ${ids.length > 1 ? "are" : "is"} ${what}…`}
  </div>`;
}
