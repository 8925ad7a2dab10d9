// The observability panel of a thread or a channel (GET /v1/threads/{id}/metrics,
// /v1/channels/{id}/metrics; members may see them): tokens and cost, which add up live while a
// reply streams (`agent.token.usage`), the model and provider serving, latency, the agent's
// queue, turn and workers, and the last errors with what to do about them. Operations on what
// it shows are offered to those whose role allows them.
import { signal, useEffect, useState, useRef } from "../deps.js";
import { get } from "../api.js";
import { onEvent } from "../realtime.js";
import * as state from "../state.js";
import { agentPath } from "../router.js";
import { OpsButton } from "./opsbuttons.js";
import { html, Icon, ErrorNote, shortTime } from "./ui.js";

export const metricsOpen = signal(localStorage.getItem("spacechat:metrics-open") === "1");

/** The Metrics button. `available`: whether its panel can show here (it names the panel in
 * aria-controls only while the panel is in the page: an id that names nothing is invalid ARIA). */
export function MetricsToggle({ controls, available = true }) {
  const open = metricsOpen.value;
  return html`<button type="button" class="small secondary metrics-toggle" aria-expanded=${open && available ? "true" : "false"}
    aria-controls=${open && available ? controls : undefined} onClick=${() => {
      metricsOpen.value = !open;
      localStorage.setItem("spacechat:metrics-open", metricsOpen.value ? "1" : "0");
    }}>
    <${Icon} name="chart" /> Metrics
  </button>`;
}

const COUNTERS = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"];

export const tokensOf = (usage) =>
  usage ? usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens : 0;

/** USD as people read it; a cost nobody knows (an unpriced request) is "unpriced", never $0. */
export function money(usd) {
  if (usd === null || usd === undefined) return "unpriced";
  if (!usd) return "$0.00";
  if (usd >= 1) return `$${usd.toFixed(2)}`;
  if (usd >= 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(6)}`;
}

/** A total's cost: the priced requests' sum, and how many requests are not in it (so a total
 * that mixes priced and unpriced requests never reads as complete). */
export function costOf(usage) {
  const unpriced = (usage && usage.unpriced_requests) || 0;
  if (!unpriced || usage.cost_usd === null || usage.cost_usd === undefined) return money(usage ? usage.cost_usd : 0);
  return `${money(usage.cost_usd)} + ${unpriced} unpriced`;
}

export const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString());
export const ms = (value) => (value === null || value === undefined ? "–" : value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(1)} s`);

/** One request's usage added to a total (a copy). */
export function addUsage(total, p) {
  const next = { ...(total || {}) };
  for (const name of COUNTERS) next[name] = (next[name] || 0) + (p[name] || 0);
  next.requests = (next.requests || 0) + 1;
  if (p.cost_usd === null || p.cost_usd === undefined) next.unpriced_requests = (next.unpriced_requests || 0) + 1;
  else next.cost_usd = (next.cost_usd || 0) + p.cost_usd;
  return next;
}

/** Fetch `url`, then keep it current: `onUsage` folds each matching usage event in at once, and
 * anything else that matches refetches shortly after (the server's numbers win). */
function useLive(url, matches, onUsage) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const timer = useRef(null);
  useEffect(() => {
    let alive = true;
    const load = () =>
      get(url).then(
        (value) => alive && (setData(value), setError(null)),
        (failure) => alive && setError(failure),
      );
    const soon = (delay) => {
      clearTimeout(timer.current);
      timer.current = setTimeout(load, delay);
    };
    load();
    const off = onEvent((event) => {
      if (!matches(event)) return;
      const type = event.event_type;
      if (type === "agent.token.usage") {
        setData((current) => (current ? onUsage(current, event.payload) : current));
        soon(1500);
      } else if (
        type === "agent.status.changed" ||
        type.startsWith("worker.") ||
        type.startsWith("tool.") ||
        type === "message.completed" ||
        type === "message.failed" ||
        type === "system.recovery.invoked"
      ) {
        soon(400);
      }
    });
    return () => {
      alive = false;
      off();
      clearTimeout(timer.current);
    };
  }, [url]);
  return { data, error };
}

function Usage({ usage, label }) {
  const tokens = tokensOf(usage);
  return html`<div class="stat usage-stat" data-tokens=${tokens} data-cost=${usage ? usage.cost_usd : 0}>
    <span class="stat-label">${label}</span>
    <span class="stat-value"><span class="tokens">${number(tokens)}</span> tokens · <span class="cost">${usage ? money(usage.cost_usd) : "$0.00"}</span></span>
    ${usage &&
    html`<span class="meta">in ${number(usage.input_tokens)} · out ${number(usage.output_tokens)} · cache ${number(usage.cache_read_tokens + usage.cache_write_tokens)}
      ${usage.reasoning_tokens ? ` · reasoning ${number(usage.reasoning_tokens)}` : ""} · ${number(usage.requests)} requests
      ${usage.unpriced_requests ? ` · ${usage.unpriced_requests} unpriced` : ""}</span>`}
  </div>`;
}

function Latency({ latency }) {
  if (!latency) return null;
  return html`<div class="stat">
    <span class="stat-label">Latency</span>
    <span class="stat-value">first token ${ms(latency.ttft_ms.p50)} · turn ${ms(latency.turn_ms.p50)}</span>
    <span class="meta">p95 ${ms(latency.ttft_ms.p95)} / ${ms(latency.turn_ms.p95)} · ${latency.turns} turns${latency.failed ? ` · ${latency.failed} failed` : ""}</span>
  </div>`;
}

export function Errors({ errors }) {
  if (!errors || !errors.length) return html`<p class="meta">No recent errors.</p>`;
  return html`<ul class="errors plain-list">
    ${errors.map(
      (e, i) => html`<li key=${i} class="error-item">
        <span class="chip chip-failed">${e.source}</span> <time datetime=${e.ts}>${shortTime(e.ts)}</time>
        <div class="error-message">${e.message}</div>
        ${e.hint && html`<div class="hint">${e.hint}</div>`}
      </li>`,
    )}
  </ul>`;
}

const WORKER_STATE = { running: "running", waiting_for_input: "waiting", done: "done", failed: "failed" };

function Live({ threadId, agents }) {
  const activity = threadId ? state.activity.value.get(threadId) : null;
  const workers = threadId ? [...(state.workers.value.get(threadId) || new Map()).entries()] : [];
  return html`<div class="stat live-stat">
    <span class="stat-label">Now</span>
    <span class="stat-value" data-agent-status=${activity ? activity.status : "idle"}>
      ${activity ? `${state.displayName({ kind: "agent", id: activity.agent_id })} ${activity.status}${activity.tool ? ` (${activity.tool})` : ""}` : "idle"}
    </span>
    ${agents &&
    agents.map(
      (a) => html`<span class="meta" key=${a.id}>${state.displayName({ kind: "agent", id: a.id })}: queue ${a.queue}${a.running ? " · a turn running" : ""} · ${a.workers.length} workers · ${a.health}</span>`,
    )}
    ${workers.map(
      ([id, w]) => html`<span class="meta" key=${id} data-worker-state=${w.state}>worker: ${WORKER_STATE[w.state] || w.state}${w.status ? ` (${w.status})` : w.task ? ` (${w.task})` : ""}</span>`,
    )}
  </div>`;
}

function Serving({ model, provider, agentId }) {
  return html`<div class="stat">
    <span class="stat-label">Serving</span>
    <span class="stat-value" data-model=${model || ""} data-provider=${provider || ""}>
      ${model ? html`<span class="model">${model}</span> via <span class="provider">${provider}</span>` : "–"}
    </span>
    ${agentId &&
    html`<span class="meta">${state.can("diagnostics:read")
      ? html`<a href=${agentPath(agentId)}>${state.displayName({ kind: "agent", id: agentId })}: status</a>`
      : state.displayName({ kind: "agent", id: agentId })}</span>`}
  </div>`;
}

function AgentOps({ agents, channelId, threadId }) {
  if (!agents || !agents.length) return null;
  const any = ["ops:retry", "ops:restart", "ops:reconnect"].some(state.can);
  if (!any) return null;
  const providers = [...new Set(agents.map((a) => a.provider))];
  return html`<div class="metrics-ops" role="group" aria-label="Operations">
    <${OpsButton} action="retry" target=${channelId} label="Retry last turn" extra=${threadId ? { thread_id: threadId } : undefined} />
    ${agents.map((a) => html`<${OpsButton} key=${a.id} action="restart" target=${a.id} label=${`Restart ${a.id}`} />`)}
    ${providers.map((p) => html`<${OpsButton} key=${p} action="reconnect" target=${p} label=${`Reconnect ${p}`} />`)}
  </div>`;
}

export function ThreadMetrics({ threadId, channelId, id }) {
  const thread = useLive(
    `/v1/threads/${encodeURIComponent(threadId)}/metrics`,
    (event) => event.thread_id === threadId,
    (current, p) => ({
      ...current,
      usage: addUsage(current.usage, p),
      serving: { model: p.model, provider: p.provider, agent_id: p.agent_id },
    }),
  );
  const channel = useLive(`/v1/channels/${encodeURIComponent(channelId)}/metrics`, (event) => event.channel_id === channelId, (c) => c);
  const data = thread.data;
  const shown = data && data.serving;
  return html`<section class="metrics" id=${id} aria-label="Thread metrics" data-metrics="thread">
    <${ErrorNote} error=${thread.error} />
    ${!data
      ? html`<p class="meta">Loading metrics…</p>`
      : html`<div class="stats">
          <${Usage} usage=${data.usage} label="This thread" />
          <${Serving} model=${shown && shown.model} provider=${shown && shown.provider} agentId=${shown && shown.agent_id} />
          <${Latency} latency=${data.latency} />
          <${Live} threadId=${threadId} agents=${channel.data && channel.data.agents} />
        </div>
        <details class="metrics-more">
          <summary>Errors (${data.errors.length})</summary>
          <${Errors} errors=${data.errors} />
        </details>
        <${AgentOps} agents=${channel.data && channel.data.agents} channelId=${channelId} threadId=${threadId} />`}
  </section>`;
}

export function ChannelMetrics({ channelId, id }) {
  const { data, error } = useLive(
    `/v1/channels/${encodeURIComponent(channelId)}/metrics`,
    (event) => event.channel_id === channelId,
    (current, p) => ({
      ...current,
      usage: Object.fromEntries(Object.entries(current.usage).map(([window, total]) => [window, addUsage(total, p)])),
    }),
  );
  const agent = data && data.agents[0];
  return html`<section class="metrics" id=${id} aria-label="Channel metrics" data-metrics="channel">
    <${ErrorNote} error=${error} />
    ${!data
      ? html`<p class="meta">Loading metrics…</p>`
      : html`<div class="stats">
          <${Usage} usage=${data.usage.hour} label="Last hour" />
          <${Usage} usage=${data.usage.day} label="Last 24 hours" />
          <${Usage} usage=${data.usage["30d"]} label="Last 30 days" />
          ${agent && html`<${Serving} model=${agent.model} provider=${agent.provider} agentId=${agent.id} />`}
          <${Latency} latency=${data.latency} />
          <${Live} agents=${data.agents} />
        </div>
        <details class="metrics-more">
          <summary>Errors (${data.errors.length})</summary>
          <${Errors} errors=${data.errors} />
        </details>
        <${AgentOps} agents=${data.agents} channelId=${channelId} />`}
  </section>`;
}
