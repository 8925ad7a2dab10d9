// A thread's provenance timeline (GET /v1/threads/{id}/timeline): every step the agent took, in
// order (turns, model calls with tokens, cost and latency, tool calls, approvals with the rule
// that applied, interactions, retries, stops), and a scrubber that shows the thread as it was at
// any step. Arrow keys on the scrubber move one step; Home and End go to the first and last.
import { useEffect, useState } from "../deps.js";
import * as state from "../state.js";
import { threadTimeline } from "../agentops.js";
import { threadPath } from "../router.js";
import { html, ErrorNote, Icon, fullTime, shortTime } from "./ui.js";
import { money } from "./metrics.js";

const KIND_LABEL = {
  message: "Message",
  retry: "Retry",
  turn_started: "Turn",
  model_call: "Model call",
  tool_call: "Tool call",
  approval_requested: "Approval asked",
  approval_decided: "Approval decided",
  approval_escalated: "Approval escalated",
  interaction: "Interaction",
  stop: "Stopped",
  turn_completed: "Turn ended",
  turn_failed: "Turn failed",
  memory_candidate: "Memory candidate",
};

const who = (actor) => (actor && actor.kind !== "system" ? state.displayName(actor) : "the system");

/** One line saying what a step was. */
export function describe(step) {
  const t = step.tokens || {};
  switch (step.kind) {
    case "message":
      return `${state.displayName(step.author)}: ${step.text}`;
    case "retry":
      return `a new turn on the same messages (retries ${step.retry_of})`;
    case "turn_started":
      return `${who(step.actor)} starts a turn with ${step.model || "its model"}`;
    case "model_call":
      return `${step.model}: ${t.input_tokens || 0} in, ${t.output_tokens || 0} out, ${t.cache_read_tokens || 0} cached · ${
        step.unpriced ? "unpriced" : money(step.cost_usd)
      }${step.latency_ms != null ? ` · ${step.latency_ms} ms` : ""}`;
    case "tool_call":
      return `${step.tool}(${step.arguments || ""}) → ${step.outcome}${step.result ? `: ${step.result}` : ""}`;
    case "approval_requested":
      return `${step.tool} waits for a person (policy ${step.policy}, risk ${step.risk})`;
    case "approval_decided":
      return `${step.tool} ${step.status}: ${step.rule}`;
    case "approval_escalated":
      return `${step.tool} escalated to ${step.escalated_to}`;
    case "interaction":
      return `${who(step.actor)} chose ${step.action_id}`;
    case "stop":
      return `stopped by ${step.stopped_by ? state.displayName({ kind: "user", id: step.stopped_by }) : "someone"}`;
    case "turn_completed":
      return `the reply is complete${step.duration_ms != null ? ` (${step.duration_ms} ms)` : ""}`;
    case "turn_failed":
      return `the turn failed: ${step.error || step.reason}`;
    default:
      return step.kind;
  }
}

/** The thread as it was once `steps[0..index]` had happened. */
export function snapshot(steps, index) {
  const rows = [];
  const replies = new Map(); // reply message id -> row
  for (const step of steps.slice(0, index + 1)) {
    if (step.kind === "message") rows.push({ id: step.message_id, author: step.author, text: step.text, state: "posted" });
    else if (step.kind === "turn_started") {
      const row = { id: step.message_id, author: step.actor, text: "", state: "writing", tools: [] };
      replies.set(step.message_id, row);
      rows.push(row);
    } else if (step.kind === "tool_call") {
      const last = [...replies.values()].pop();
      if (last) last.tools.push(`${step.tool}: ${step.outcome}`);
    } else if (["turn_completed", "turn_failed", "stop"].includes(step.kind)) {
      const row = replies.get(step.message_id);
      if (row) Object.assign(row, { text: step.text, state: step.kind === "turn_completed" ? "completed" : step.kind === "stop" ? "stopped" : "failed" });
    }
  }
  return rows;
}

export function TimelineView({ threadId }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [at, setAt] = useState(null);
  const load = () => threadTimeline(threadId).then((d) => (setData(d), setError(null)), setError);
  useEffect(() => {
    load();
  }, [threadId]);
  const steps = data ? data.steps : [];
  const index = at === null ? steps.length - 1 : Math.min(at, steps.length - 1);
  const current = steps[index];
  return html`<section class="view timeline-view" aria-labelledby="view-title">
    <header class="view-head">
      <a class="back" href=${threadPath(threadId)} aria-label="Back to the thread"><${Icon} name="back" /><span class="back-label">Thread</span></a>
      <h1 id="view-title" class="view-title">Timeline</h1>
      <button type="button" class="small secondary" onClick=${load}>Refresh</button>
    </header>
    <div class="page-body">
      <${ErrorNote} error=${error} onRetry=${load} />
      ${!data && !error && html`<p class="meta">Loading…</p>`}
      ${data && !steps.length && html`<p class="empty">Nothing happened in this thread yet (or it is older than the log keeps).</p>`}
      ${current &&
      html`<div class="scrubber">
          <label for="timeline-scrubber">Step</label>
          <input id="timeline-scrubber" type="range" min="0" max=${steps.length - 1} step="1" value=${index}
            aria-valuetext=${`Step ${index + 1} of ${steps.length}: ${KIND_LABEL[current.kind] || current.kind}`}
            onInput=${(e) => setAt(Number(e.currentTarget.value))} />
          <output for="timeline-scrubber" class="scrubber-step" data-index=${index}>${index + 1} / ${steps.length}</output>
        </div>
        <div class="timeline-panes">
          <section class="timeline-steps-pane" aria-labelledby="steps-title">
            <h2 id="steps-title">Steps</h2>
            <ol class="timeline-steps plain-list">
              ${steps.map(
                (step) => html`<li key=${step.seq + ":" + step.index} data-kind=${step.kind}
                  class=${"timeline-step" + (step.index === index ? " current" : "") + (step.index > index ? " future" : "")}
                  aria-current=${step.index === index ? "step" : null}>
                  <button type="button" class="link-button" onClick=${() => setAt(step.index)}>
                    <span class="step-kind">${KIND_LABEL[step.kind] || step.kind}</span>
                    <time datetime=${step.at} title=${fullTime(step.at)}>${shortTime(step.at)}</time>
                  </button>
                  <span class="step-text">${describe(step)}</span>
                </li>`,
              )}
            </ol>
          </section>
          <section class="timeline-snapshot" aria-labelledby="snapshot-title" aria-live="polite">
            <h2 id="snapshot-title">The thread at step ${index + 1}</h2>
            <ol class="snapshot-rows plain-list">
              ${snapshot(steps, index).map(
                (row) => html`<li key=${row.id} class="snapshot-row" data-state=${row.state}>
                  <strong>${state.displayName(row.author)}</strong>
                  <span class="chip">${row.state}</span>
                  <p>${row.text || (row.state === "writing" ? "…" : "")}</p>
                  ${row.tools && row.tools.length > 0 && html`<p class="meta">Tools: ${row.tools.join(", ")}</p>`}
                </li>`,
              )}
            </ol>
          </section>
        </div>`}
    </div>
  </section>`;
}
