// An agent's status page (GET /v1/agents/{id}/status, diagnostics:read): the model and provider
// serving it, its health, queue per channel, running turns and workers, latency (p50 / p95 over
// 24 h), usage windows, budgets and last errors with hints; Restart and Reconnect for operators.
// It follows the agent's events and refetches shortly after each.
import { useEffect, useState, useRef } from "../deps.js";
import { get } from "../api.js";
import { onEvent } from "../realtime.js";
import * as state from "../state.js";
import { channelPath, threadPath } from "../router.js";
import { OpsButton } from "./opsbuttons.js";
import { HealthChip, NeedsScope } from "./dashboard.js";
import { Errors, costOf, money, ms, number, tokensOf } from "./metrics.js";
import { html, ErrorNote } from "./ui.js";

function channelName(id) {
  const channel = state.channels.value.get(id);
  return channel ? "#" + channel.name : id;
}

export function AgentView({ agentId }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const timer = useRef(null);
  const allowed = state.can("diagnostics:read");
  useEffect(() => {
    if (!allowed) return undefined;
    let alive = true;
    const load = () =>
      get(`/v1/agents/${encodeURIComponent(agentId)}/status`).then(
        (value) => alive && (setData(value), setError(null)),
        (failure) => alive && setError(failure),
      );
    load();
    const off = onEvent((event) => {
      const p = event.payload || {};
      const mine = p.agent_id === agentId || (event.actor && event.actor.id === agentId);
      if (!mine && !event.event_type.startsWith("system.")) return;
      clearTimeout(timer.current);
      timer.current = setTimeout(load, 500);
    });
    return () => ((alive = false), off(), clearTimeout(timer.current));
  }, [agentId]);
  if (!allowed) return html`<${NeedsScope} scope="diagnostics:read" what="an agent's status" />`;
  const agent = data && data.agent;
  const now = (data && data.now) || {};
  return html`<section class="view agent-view" aria-labelledby="view-title">
    <header class="view-head">
      <h1 id="view-title" class="view-title">${agent ? agent.name : agentId}</h1>
      ${agent && html`<${HealthChip} status=${now.health || agent.health} />`}
    </header>
    <div class="page-body">
      <${ErrorNote} error=${error} />
      ${!data
        ? !error && html`<p class="meta">Loading…</p>`
        : html`
          <section class="panel" aria-labelledby="now-title">
            <h2 id="now-title">Now</h2>
            <p data-model=${now.model || agent.model}>${now.model || agent.model} via ${now.provider || agent.provider}</p>
            <div class="row-actions">
              <${OpsButton} action="restart" target=${agent.id} label="Restart agent" />
              <${OpsButton} action="reconnect" target=${now.provider || agent.provider} label=${`Reconnect ${now.provider || agent.provider}`} />
            </div>
            <table class="data-table">
              <thead><tr><th scope="col">Channel</th><th scope="col">Queue</th><th scope="col">Turn</th></tr></thead>
              <tbody>
                ${Object.entries(now.queue || {}).map(
                  ([channelId, depth]) => html`<tr key=${channelId}>
                    <th scope="row"><a href=${channelPath(channelId)}>${channelName(channelId)}</a></th>
                    <td>${depth}</td><td>${(now.running || {})[channelId] ? "running" : "idle"}</td>
                  </tr>`,
                )}
              </tbody>
            </table>
            <h3>Workers</h3>
            ${(now.workers || []).length
              ? html`<ul class="plain-list">
                  ${now.workers.map(
                    (w) => html`<li key=${w.worker_id} data-worker-state=${w.state}>${w.task || w.worker_id}: <strong>${w.state}</strong> in ${channelName(w.channel_id)}</li>`,
                  )}
                </ul>`
              : html`<p class="meta">No workers.</p>`}
            ${Object.keys(now.state || {}).length > 0 &&
            html`<h3>Shared state</h3>
              ${Object.entries(now.state).map(
                ([threadId, value]) => html`<details key=${threadId} class="shared-state" data-thread=${threadId}>
                  <summary>Thread <a href=${threadPath(threadId)}>${threadId}</a></summary>
                  <pre>${JSON.stringify(value, null, 2)}</pre>
                </details>`,
              )}`}
          </section>
          <section class="panel" aria-labelledby="latency-title">
            <h2 id="latency-title">Latency (24 hours)</h2>
            <p>${`Time to first token: p50 ${ms(data.latency.ttft_ms.p50)}, p95 ${ms(data.latency.ttft_ms.p95)}. ` +
              `Turns: p50 ${ms(data.latency.turn_ms.p50)}, p95 ${ms(data.latency.turn_ms.p95)}. ` +
              `${data.latency.turns} turns, ${data.latency.failed} failed.`}</p>
          </section>
          <section class="panel" aria-labelledby="agent-usage-title">
            <h2 id="agent-usage-title">Usage</h2>
            <table class="data-table">
              <thead><tr><th scope="col">Window</th><th scope="col">Requests</th><th scope="col">Tokens</th><th scope="col">Cost</th></tr></thead>
              <tbody>
                ${[["hour", "Last hour"], ["day", "Last 24 hours"], ["30d", "Last 30 days"]].map(
                  ([key, label]) => html`<tr key=${key}>
                    <th scope="row">${label}</th><td>${number(data.usage[key].requests)}</td>
                    <td>${number(tokensOf(data.usage[key]))}</td><td>${costOf(data.usage[key])}</td>
                  </tr>`,
                )}
              </tbody>
            </table>
            ${data.budgets.map(
              (b) => html`<p key=${b.scope} class=${b.stopped ? "form-error" : ""}>
                Budget ${b.scope} (${b.period}): ${money(b.spent_usd)} of ${money(b.limit_usd)}${b.stopped ? " — spent, turns are paused" : ""}; resets ${b.resets_at}.
              </p>`,
            )}
          </section>
          <section class="panel" aria-labelledby="errors-title">
            <h2 id="errors-title">Last errors</h2>
            <${Errors} errors=${data.errors} />
          </section>`}
    </div>
  </section>`;
}
