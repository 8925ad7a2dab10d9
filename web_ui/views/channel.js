// A channel: its threads, most recently active first (virtualized, more load as you scroll),
// and a box that starts a new thread. Each row opens its thread.
import { useEffect, useMemo, useRef, useCallback } from "../deps.js";
import * as state from "../state.js";
import { channelModel, loadThreads } from "../store.js";
import { onEvent } from "../realtime.js";
import { outbox, pendingFor, retry, discard } from "../outbox.js";
import { markRead } from "../actions.js";
import { threadPath, navigate } from "../router.js";
import { useVirtualizer } from "../virtual.js";
import { memo, pendingLabel } from "./message.js";
import { Composer } from "./composer.js";
import { focusRow } from "./feed.js";
import { MetricsToggle, ChannelMetrics, metricsOpen } from "./metrics.js";
import { NotifyLevel, TypingLine } from "./notifications.js";
import { html, Icon, Spinner, ErrorNote, StaleNote, shortTime } from "./ui.js";
import { channelLabel } from "../chat.js";
import { keepChannel } from "../offline.js";

const ROW = 88;

const ThreadRow = memo(function ThreadRow({ thread, author, index, total, start, activity, unread }) {
  return html`<article
    class="row thread-row"
    data-index=${index}
    data-thread-id=${thread.id}
    style=${{ transform: `translateY(${start}px)` }}
    aria-posinset=${index + 1}
    aria-setsize=${total}
    aria-labelledby=${"t-" + thread.id}
  >
    <a class="thread-link" href=${threadPath(thread.id)} id=${"t-" + thread.id}>
      <span class="thread-title">${thread.title || (thread.root_message_id ? "(message deleted)" : "(attachment)")}</span>
      ${thread.unread_count > 0 && html`<span class="badge" aria-label=${thread.unread_count + " unread"}>${thread.unread_count}</span>`}
      ${thread.reply_count > 0 && thread.last_reply &&
      html`<span class="last-reply">${thread.last_reply.author && html`<span class="author">${state.displayName(thread.last_reply.author)}:</span>`} ${thread.last_reply.preview || "…"}</span>`}
      <span class="thread-meta">
        <span class="author">${author}</span>
        ${(thread.repliers || []).length > 0 && html`<span class="repliers" aria-label="Replied lately">${thread.repliers.map((r) => state.displayName(r)).join(", ")}</span>`}
        <span>${thread.reply_count} ${thread.reply_count === 1 ? "reply" : "replies"}</span>
        <time datetime=${thread.last_message_at}>${shortTime(thread.last_message_at)}</time>
        ${activity && html`<span class="chip chip-streaming">${activity.status}</span>`}
      </span>
    </a>
  </article>`;
});

const PendingThreadRow = memo(function PendingThreadRow({ entry, index, total, start, connection }) {
  return html`<article
    class=${"row thread-row pending " + entry.status}
    data-index=${index}
    data-pending=${entry.status}
    data-client-id=${entry.key}
    style=${{ transform: `translateY(${start}px)` }}
    aria-posinset=${index + 1}
    aria-setsize=${total}
  >
    <div class="thread-link">
      <span class="thread-title">${entry.text || "(attachment)"}</span>
      <span class="thread-meta">
        <span class=${"chip chip-" + entry.status}>${entry.status === "failed" ? "not sent: " + entry.error : pendingLabel(entry)}</span>
        ${entry.status === "failed" &&
        html`<button type="button" class="small" onClick=${() => retry(entry.key)}>Retry</button>
          <button type="button" class="small secondary" onClick=${() => discard(entry.key)}>Delete</button>`}
      </span>
    </div>
  </article>`;
});

/** A channel where an agent answers (its category, or an agent bound to it). */
function agentsChannel(channel) {
  return channel.category === "agents" || state.agents.value.some((a) => (a.channels || []).includes(channel.name));
}

/** Open the thread a send starts, once the server has it, if the person is still on the channel
 * (as Slack opens the thread of a message to an assistant): the agent's reply comes there. */
function openWhenStarted(pending, channelId) {
  pending.then((entry) => {
    const stop = onEvent((event) => {
      const message = event.event_type === "message.created" ? event.payload.message : null;
      if (!message || message.client_msg_id !== entry.key) return;
      stop();
      const route = state.route.value;
      if (route.name === "channel" && route.channelId === channelId) navigate(threadPath(message.thread_id));
    });
  });
}

export function ChannelView({ channelId }) {
  const channel = state.channels.value.get(channelId);
  const model = useMemo(() => channelModel(channelId), [channelId]);
  model.version.value;
  outbox.value;
  const scroller = useRef(null);
  // Opened by a keyboard jump: the focus goes to the threads, not the message box.
  const jumped = useMemo(() => {
    const wanted = state.focusNext.channel === channelId;
    state.focusNext.channel = null;
    return wanted;
  }, [channelId]);
  useEffect(() => {
    if (jumped && scroller.current) scroller.current.focus();
  }, [channelId]);
  const pending = pendingFor({ channelId });
  const threads = model.threads;
  const count = pending.length + threads.length;

  useEffect(() => {
    localStorage.setItem("spacechat:last-channel", channelId);
    loadThreads(model);
  }, [channelId]);
  useEffect(() => keepChannel(model), [model]); // kept on this device for reading offline

  // The first channel of a page load shown with its threads: bench/ui.py's "first paint".
  useEffect(() => {
    if (!model.loaded || window.spacechat.channelRendered) return;
    window.spacechat.channelRendered = true;
    requestAnimationFrame(() => performance.mark("spacechat:channel-rendered"));
  }, [model.loaded]);

  const lastSeq = channel ? channel.last_seq : 0;
  useEffect(() => {
    if (channel) markRead(channel.id);
  }, [channelId, lastSeq]);

  const keyOf = useRef();
  keyOf.current = (i) => (i < pending.length ? pending[i].key : threads[i - pending.length].id);
  const getItemKey = useCallback((i) => keyOf.current(i), [threads, pending.length, model]);
  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    getItemKey,
    overscan: 6,
  });
  const virtualItems = virtualizer.getVirtualItems();

  useEffect(() => {
    if (model.loaded && !model.loading && model.nextBefore !== null && virtualItems.length) {
      if (virtualItems[virtualItems.length - 1].index > count - 10) loadThreads(model, { more: true });
    }
  });

  if (!channel) {
    return html`<section class="view"><p class="empty">This channel does not exist or is not visible to you.</p></section>`;
  }
  const activity = state.activity.value;
  const total = model.nextBefore === null ? count : -1;
  // A feed holds articles and nothing else: an empty (or still loading) channel's list is none.
  const isFeed = count > 0;
  // Busy while loading, and while its rows are not laid out yet (a resize): no article in it then.
  const busy = model.loading || (count > 0 && !virtualItems.length);

  function keys(event) {
    const current = event.target.closest("[data-index]");
    let index = current ? Number(current.dataset.index) : -1;
    if (event.key === "ArrowDown" || event.key === "j") index = Math.min(count - 1, index + 1);
    else if (event.key === "ArrowUp" || event.key === "k") index = Math.max(0, index - 1);
    else if (event.key === "Home") index = 0;
    else if (event.key === "End") index = count - 1;
    else return;
    event.preventDefault();
    virtualizer.scrollToIndex(index, { align: "auto" });
    const focusLink = (tries = 6) => {
      const row = scroller.current && scroller.current.querySelector(`[data-index="${index}"]`);
      const link = row && row.querySelector("a, button");
      if (link) link.focus({ preventScroll: true });
      else if (row) focusRow(scroller.current, index);
      else if (tries) requestAnimationFrame(() => focusLink(tries - 1));
    };
    focusLink();
  }

  return html`<section class="view channel-view" aria-labelledby="view-title">
    <header class="view-head">
      <h1 id="view-title" class="view-title">
        ${channel.kind === "dm"
          ? channelLabel(channel)
          : html`<${Icon} name=${channel.private ? "lock" : "hash"} label=${channel.private ? "private channel" : null} />
              ${channel.name}`}
      </h1>
      <${NotifyLevel} channel=${channel} />
      <${MetricsToggle} controls="channel-metrics" />
      ${channel.topic && html`<p class="topic">${channel.topic}</p>`}
    </header>
    ${metricsOpen.value && html`<${ChannelMetrics} id="channel-metrics" channelId=${channel.id} />`}
    <${StaleNote} stale=${model.stale} />
    <${ErrorNote} error=${model.error} onRetry=${() => loadThreads(model)} />
    <div class="scroller" ref=${scroller} role=${isFeed ? "feed" : null} tabindex="-1" aria-busy=${busy ? "true" : "false"}
      aria-label=${isFeed ? "Threads in " + channelLabel(channel) : null} onKeyDown=${keys}>
      ${!model.loaded && model.loading && html`<div class="loading-center"><${Spinner} label="Loading threads" /></div>`}
      ${model.loaded && !count && html`<p class="empty">No threads yet. Start one below.</p>`}
      <div class="rows" style=${{ height: virtualizer.getTotalSize() + "px" }}>
        ${virtualItems.map((row) =>
          row.index < pending.length
            ? html`<${PendingThreadRow} key=${row.key} entry=${pending[row.index]} index=${row.index} total=${total} start=${row.start}
                connection=${state.connection.value} />`
            : html`<${ThreadRow}
                key=${row.key}
                thread=${threads[row.index - pending.length]}
                author=${state.displayName(threads[row.index - pending.length].created_by)}
                index=${row.index}
                total=${total}
                start=${row.start}
                activity=${activity.get(threads[row.index - pending.length].id)}
                unread=${threads[row.index - pending.length].unread_count}
              />`,
        )}
      </div>
    </div>
    <${TypingLine} channelId=${channel.id} />
    <${Composer}
      channelId=${channel.id}
      label=${"Start a new thread in " + channelLabel(channel)}
      placeholder=${"Start a new thread in " + channelLabel(channel)}
      autoFocus=${!jumped}
      onSent=${(sending) => {
        virtualizer.scrollToOffset(0);
        if (agentsChannel(channel)) openWhenStarted(sending, channel.id);
      }}
    />
  </section>`;
}
