// The inbox (`/inbox`): threads I started, replied to, was mentioned in or am in (a direct
// conversation), newest activity first, each with its unread count, last reply and "Mark read".
import { useEffect } from "../deps.js";
import * as state from "../state.js";
import { inbox, loadInbox, markThreadRead, markAllRead, channelLabel } from "../chat.js";
import { threadPath } from "../router.js";
import { html, Spinner, ErrorNote, shortTime } from "./ui.js";

const REASON = { started: "you started it", replied: "you replied", mentioned: "you were mentioned", direct: "direct" };

function Item({ thread }) {
  const unread = thread.unread_count || 0;
  const last = thread.last_reply;
  const channel = state.channels.value.get(thread.channel_id) || thread.channel;
  return html`<li class=${"inbox-item" + (unread ? " unread" : "")} data-thread-id=${thread.id} data-unread=${String(unread)}>
    <a class="thread-link" href=${threadPath(thread.id)}>
      <span class="thread-title">${thread.title || "(message deleted)"}</span>
      <span class="thread-meta">
        <span class="where">${channel ? channelLabel(channel) : ""}</span>
        <span>${(thread.reasons || []).map((r) => REASON[r]).join(", ")}</span>
        <time datetime=${thread.last_message_at}>${shortTime(thread.last_message_at)}</time>
      </span>
      ${last && thread.reply_count > 0 &&
      html`<span class="last-reply"><span class="author">${state.displayName(last.author)}:</span> ${last.preview || "(deleted)"}</span>`}
    </a>
    ${unread > 0 &&
    html`<span class="badge" aria-label=${unread + " unread"}>${unread}</span>
      <button type="button" class="small secondary" aria-label=${"Mark read: " + (thread.title || "thread")}
        onClick=${() => markThreadRead(thread.id, thread.last_seq)}>Mark read</button>`}
  </li>`;
}

export function InboxView() {
  const box = inbox.value;
  useEffect(() => {
    const started = performance.now();
    loadInbox().then(() => {
      // When its rows were rendered (bench/ui.py reads it).
      requestAnimationFrame(() => {
        const at = performance.now();
        window.spacechat.inboxOpened = { at, ms: at - started, rows: inbox.value.threads.length };
      });
    });
  }, []);
  return html`<section class="view inbox-view" aria-labelledby="view-title">
    <header class="view-head">
      <h1 id="view-title" class="view-title">Inbox</h1>
      ${box.unread > 0 && html`<button type="button" class="small" onClick=${() => markAllRead().catch(() => {})}>Mark all read</button>`}
    </header>
    <${ErrorNote} error=${box.error} onRetry=${() => loadInbox()} />
    <div class="scroller" aria-busy=${box.loading ? "true" : "false"}
      onScroll=${(e) => {
        const el = e.currentTarget;
        if (el.scrollTop + el.clientHeight > el.scrollHeight - 400) loadInbox({ more: true });
      }}>
      ${!box.loaded && box.loading && html`<div class="loading-center"><${Spinner} label="Loading your inbox" /></div>`}
      ${box.loaded && !box.threads.length && html`<p class="empty">Nothing here yet: threads you start, reply to or are mentioned in show up here.</p>`}
      <ul class="inbox-list" aria-label="Your threads">${box.threads.map((t) => html`<${Item} key=${t.id} thread=${t} />`)}</ul>
    </div>
  </section>`;
}
