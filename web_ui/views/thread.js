// A thread: its messages in a virtualized feed (only the rows in view exist in the DOM), opened
// at the newest page; older pages load as you scroll up, the view stays where it was, and it
// follows new messages and streaming replies while you are at the bottom.
import { useEffect, useLayoutEffect, useMemo, useRef, useCallback, useState } from "../deps.js";
import * as state from "../state.js";
import { threadModel, openThread, loadOlder, loadNewer } from "../store.js";
import { outbox, pendingFor, retry, discard } from "../outbox.js";
import { markRead, retryReply } from "../actions.js";
import { get } from "../api.js";
import { channelPath } from "../router.js";
import { useVirtualizer, useBatchedMeasure } from "../virtual.js";
import { MessageRow, PendingRow } from "./message.js";
import { Composer } from "./composer.js";
import { html, Icon, Spinner, ErrorNote, StaleNote } from "./ui.js";
import { focusRow } from "./feed.js";
import { MetricsToggle, ThreadMetrics, metricsOpen } from "./metrics.js";
import { markThreadRead, channelLabel } from "../chat.js";
import { TypingLine } from "./notifications.js";
import { keepThread } from "../offline.js";

const EDGE = 60; // rows from an end of what is loaded at which the next page is fetched (early: a fling is fast)

function estimate(message) {
  const text = message ? message.text || "" : "";
  const lines = Math.ceil(text.length / 90) + (text.match(/\n/g) || []).length;
  return 58 + Math.min(lines, 40) * 21 + (message && message.attachments && message.attachments.length ? 190 : 0);
}

export function ThreadView({ threadId, messageId }) {
  const model = useMemo(() => threadModel(threadId), [threadId]);
  model.version.value; // re-render on every change of the model
  outbox.value;
  const pending = pendingFor({ threadId });
  // When this open started (rendering the list marks when it finished: bench/ui.py reads both).
  useMemo(() => (window.spacechat.threadOpening = { threadId, at: performance.now() }), [threadId, messageId]);

  useEffect(() => {
    if ((!model.loaded && !model.loading) || (messageId && model.target !== messageId)) {
      openThread(model, { aroundMessageId: messageId });
    } else if (!messageId && model.target) {
      model.target = null;
      model.bump();
    }
  }, [threadId, messageId]);
  useEffect(() => keepThread(model), [model]); // kept on this device for reading offline

  const channel = model.thread ? state.channels.value.get(model.thread.channel_id) : null;
  const lastSeq = channel ? channel.last_seq : 0;
  useEffect(() => {
    if (channel && model.atLiveEnd) markRead(channel.id);
  }, [channel && channel.id, lastSeq, model.loaded]);
  // Seen at its newest message: the thread is read (on this device and, by the event, on others).
  const newestSeq = model.atLiveEnd && model.items.length ? model.items[model.items.length - 1].seq : 0;
  useEffect(() => {
    if (newestSeq) markThreadRead(threadId, newestSeq);
  }, [threadId, newestSeq]);

  const activity = state.activity.value.get(threadId);
  const waiting = state.waitingWorker(threadId);

  // Workers are followed from their events; a page opened while a reply is still under way
  // asks the channel's metrics which of them work for this thread (one may wait for people).
  const underWay = model.loaded && model.atLiveEnd && replyUnderWay(model.items);
  useEffect(() => {
    if (!underWay || !channel || state.workers.value.has(threadId)) return;
    get(`/v1/channels/${encodeURIComponent(channel.id)}/metrics`).then(
      (metrics) => {
        for (const agent of metrics.agents) {
          for (const w of agent.workers) {
            if (w.thread_id === threadId) state.learnWorker(threadId, w.worker_id, { agent_id: agent.id, state: w.state, status: "", task: w.task });
          }
        }
      },
      () => {},
    );
  }, [underWay, channel && channel.id]);
  const list = useRef(null);
  const title = model.thread ? model.thread.title : "";

  function sent() {
    if (!model.atLiveEnd) openThread(model); // jump to the newest page, where the message is
    else if (list.current) list.current.scrollToEnd();
  }

  const showList = model.loaded || pending.length > 0;
  return html`<section class="view thread-view" aria-labelledby="view-title">
    <header class="view-head">
      ${channel &&
      html`<a class="back" href=${channelPath(channel.id)} aria-label=${"Back to " + channelLabel(channel)}>
        <${Icon} name="back" /><span class="back-label">${channelLabel(channel)}</span>
      </a>`}
      <h1 id="view-title" class="view-title">${title || "Thread"}</h1>
      <a class="small-link timeline-link" href=${`/t/${encodeURIComponent(threadId)}/timeline`}>Timeline</a>
      <${MetricsToggle} controls="thread-metrics" available=${Boolean(channel)} />
    </header>
    <${StaleNote} stale=${model.stale} />
    ${metricsOpen.value && channel && html`<${ThreadMetrics} id="thread-metrics" threadId=${threadId} channelId=${channel.id} />`}
    <${ErrorNote} error=${model.error} onRetry=${() => openThread(model, { aroundMessageId: messageId })} />
    ${showList
      ? html`<${MessageList} key=${model.generation} model=${model} pending=${pending} title=${title} handle=${list} />`
      : html`<div class="scroller" aria-busy="true">
          ${model.loading && html`<div class="loading-center"><${Spinner} label="Loading the thread" /></div>`}
        </div>`}
    <div class="activity" aria-live="polite" data-activity=${waiting ? "waiting" : activity ? activity.status : "idle"}>
      ${activity &&
      html`<span class="dots" aria-hidden="true"></span>
        ${state.displayName({ kind: "agent", id: activity.agent_id })}
        ${waiting
          ? ` is waiting: ${waiting.status || "waiting for input"}…`
          : activity.tool
            ? ` is using ${activity.tool}…`
            : activity.status === "branching"
              ? " is thinking it over…"
              : activity.status === "working" && activity.detail
                ? ` is working: ${activity.detail}…`
                : activity.status === "compacting"
                  ? " is summarising the conversation to fit…"
                  : " is thinking…"}`}
    </div>
    ${channel && html`<${TypingLine} channelId=${channel.id} threadId=${threadId} />`}
    ${channel &&
    html`<${Composer}
      channelId=${channel.id}
      threadId=${threadId}
      label="Reply in this thread"
      placeholder="Reply…"
      onSent=${sent}
      autoFocus=${!messageId}
    />`}
  </section>`;
}

/** Whether an agent's reply among the newest messages is still being written. */
function replyUnderWay(items) {
  for (let i = items.length - 1; i >= Math.max(0, items.length - 50); i--) {
    const m = items[i];
    if (m.author.kind === "agent" && (m.state === "created" || m.state === "streaming")) return true;
  }
  return false;
}

async function retryAgent(message) {
  try {
    await retryReply(message.id);
    state.announce("Retrying the reply");
  } catch (error) {
    state.announce(`Retry failed: ${error.message}`);
  }
}

/** The virtualized messages of one load of a thread: it starts at the newest message, or
 * centred on the deep-linked one, before the first paint. */
function MessageList({ model, pending, title, handle }) {
  const scroller = useRef(null);
  const items = model.items;
  const count = items.length + pending.length;
  const threadId = model.id;
  const [targetIndex] = useState(() => (model.target ? items.findIndex((m) => m.id === model.target) : -1));

  const keyOf = useRef();
  keyOf.current = (i) => (i < items.length ? items[i].client_msg_id || items[i].id : pending[i - items.length].key);
  const sizeOf = useRef();
  sizeOf.current = (i) => estimate(i < items.length ? items[i] : pending[i - items.length]);
  const getItemKey = useCallback((i) => keyOf.current(i), [items]);
  const estimateSize = useCallback((i) => sizeOf.current(i), []);
  const initialOffset = useCallback(() => {
    if (targetIndex < 0) return Number.MAX_SAFE_INTEGER; // clamped to the end
    let offset = 0;
    for (let i = 0; i < targetIndex; i++) offset += sizeOf.current(i);
    return Math.max(0, offset - 300);
  }, []);

  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scroller.current,
    estimateSize,
    getItemKey,
    initialOffset,
    overscan: 8,
    anchorTo: "end",
    followOnAppend: true,
    scrollEndThreshold: 48,
  });
  handle.current = virtualizer;
  const measure = useBatchedMeasure(virtualizer);

  // Pages load only once the view is placed: a scroll to an index still settling when older
  // messages are prepended would land on whatever has that index then.
  const [settled, setSettled] = useState(false);

  // Place the view at the deep-linked message or at the newest, then mark the open as rendered.
  useLayoutEffect(() => {
    if (targetIndex >= 0) virtualizer.scrollToIndex(targetIndex, { align: "center" });
    else virtualizer.scrollToEnd();
    let frames = 0;
    const settle = () => {
      // virtual-core keeps `scrollState` until its scroll command has held for a few frames.
      if (virtualizer.scrollState === null || ++frames > 300) setSettled(true);
      else requestAnimationFrame(settle);
    };
    requestAnimationFrame(settle);
    requestAnimationFrame(() => {
      const opening = window.spacechat.threadOpening;
      if (opening && opening.threadId === threadId) {
        const ms = performance.now() - opening.at;
        window.spacechat.threadOpened = { threadId, ms, rows: model.items.length };
        window.spacechat.threadOpening = null;
        performance.mark("spacechat:thread-rendered", { detail: { threadId, ms } });
      }
      if (targetIndex >= 0) focusRow(scroller.current, targetIndex);
    });
  }, []);

  const virtualItems = virtualizer.getVirtualItems();

  // Fetch the next page when the view nears an end of what is loaded.
  useEffect(() => {
    if (!settled || model.loading || !virtualItems.length) return;
    if (virtualItems[0].index < EDGE && model.before !== null) loadOlder(model);
    else if (virtualItems[virtualItems.length - 1].index > items.length - EDGE && model.after !== null) loadNewer(model);
  });

  const me = state.me.value;
  const myName = me ? me.user.name : "";
  const worker = state.waitingWorker(threadId);
  const waiting = worker ? worker.status || "waiting for input" : null;
  const total = model.before === null && model.after === null ? count : -1;

  return html`<div
    class="scroller"
    ref=${scroller}
    role="feed"
    tabindex="0"
    aria-busy=${model.loading || (count > 0 && !virtualItems.length) ? "true" : "false"}
    aria-label=${"Messages in " + (title || "this thread")}
    onKeyDown=${(event) => feedKeys(event, virtualizer, count)}
  >
    ${model.loading === "older" && html`<div class="loading-older"><${Spinner} label="Loading older messages" /></div>`}
    <div class="rows" style=${{ height: virtualizer.getTotalSize() + "px" }}>
      ${virtualItems.map((row) => {
        if (row.index < items.length) {
          const message = items[row.index];
          return html`<${MessageRow}
            key=${row.key}
            message=${message}
            name=${state.displayName(message.author)}
            index=${row.index}
            total=${total}
            start=${row.start}
            target=${message.id === model.target}
            measure=${measure}
            onRetryReply=${retryAgent}
            waiting=${waiting && message.author.kind === "agent" && (message.state === "created" || message.state === "streaming") ? waiting : null}
          />`;
        }
        const entry = pending[row.index - items.length];
        return html`<${PendingRow}
          key=${row.key}
          entry=${entry}
          name=${myName}
          index=${row.index}
          total=${total}
          start=${row.start}
          measure=${measure}
          onRetry=${retry}
          onDiscard=${discard}
          connection=${state.connection.value}
        />`;
      })}
    </div>
  </div>`;
}

/** Arrow keys, j/k, Home and End move between messages (WAI-ARIA feed pattern). */
export function feedKeys(event, virtualizer, count) {
  // Keys in a control (a card's buttons, menus, forms and polls included) are the control's.
  if (event.target.closest("textarea, input, select, button, a, summary, .blocks, .metrics") && !event.target.matches("[role=article], article")) return;
  const current = event.target.closest("[data-index]");
  let index = current ? Number(current.dataset.index) : -1;
  switch (event.key) {
    case "ArrowDown":
    case "j":
      index = index < 0 ? count - 1 : Math.min(count - 1, index + 1);
      break;
    case "ArrowUp":
    case "k":
      index = index < 0 ? count - 1 : Math.max(0, index - 1);
      break;
    case "Home":
      index = 0;
      break;
    case "End":
      index = count - 1;
      break;
    default:
      return;
  }
  event.preventDefault();
  virtualizer.scrollToIndex(index, { align: "auto" });
  focusRow(event.currentTarget, index);
}
