// The organisation's dashboard (diagnostics:read): health of every component with Reconnect for
// a provider, the host's agents with their queues and workers, usage over time as a chart
// (GET /v1/usage?group_by=day|hour) and by agent and model, operations waiting for a second
// operator, the last operations, and Recover for those who may.
import { useEffect, useMemo, useState } from "../deps.js";
import { get } from "../api.js";
import { onEvent } from "../realtime.js";
import * as state from "../state.js";
import { health, healthStatus, loadHealth, openIncidents, recoveries } from "../ops.js";
import { agentPath } from "../router.js";
import { OpsButton, PendingOps } from "./opsbuttons.js";
import { UsageChart, series } from "./chart.js";
import { costOf, money, number, tokensOf } from "./metrics.js";
import { html, ErrorNote, fullTime, shortTime } from "./ui.js";

export function HealthChip({ status }) {
  return html`<span class=${"chip health-chip " + (status || "unknown")} data-health=${status || "unknown"}>${status || "unknown"}</span>`;
}

export function NeedsScope({ scope, what }) {
  return html`<section class="view"><p class="empty">You need the ${scope} permission to see ${what}.</p></section>`;
}

function Health() {
  const value = health.value;
  if (!value) return html`<p class="meta">Loading…</p>`;
  const components = value.components || [];
  return html`<div class="health">
    <p>Overall: <${HealthChip} status=${healthStatus.value} />${` · ${openIncidents.value} open incidents · started ${fullTime(value.started_at)}`}</p>
    ${!components.length && html`<p class="meta">No provider or connector has reported a problem.</p>`}
    ${components.length > 0 &&
    html`<table class="data-table health-table">
      <thead><tr><th scope="col">Component</th><th scope="col">Status</th><th scope="col">Detail</th><th scope="col">Since</th><th scope="col"><span class="sr-only">Operations</span></th></tr></thead>
      <tbody>
        ${components.map(
          (c) => html`<tr key=${c.component} data-component=${c.component} data-status=${c.status}>
            <th scope="row">${c.component}</th>
            <td><${HealthChip} status=${c.status} /></td>
            <td class="detail">${c.detail || ""}</td>
            <td>${c.since ? shortTime(c.since) : ""}</td>
            <td>${c.component.startsWith("provider:") &&
            html`<${OpsButton} action="reconnect" target=${c.component.slice("provider:".length)} label="Reconnect" />`}</td>
          </tr>`,
        )}
      </tbody>
    </table>`}
    ${value.store && html`<p class="meta">Store at seq ${number(value.store.last_seq)} · ${number(value.realtime && value.realtime.subscribers)} realtime subscribers</p>`}
  </div>`;
}

function Agents() {
  const host = health.value && health.value.host;
  if (!host) return html`<p class="meta">No agent host is running.</p>`;
  return html`<table class="data-table agents-table">
    <thead><tr><th scope="col">Agent</th><th scope="col">Model</th><th scope="col">Health</th><th scope="col">Queue</th><th scope="col">Workers</th><th scope="col"><span class="sr-only">Operations</span></th></tr></thead>
    <tbody>
      ${host.agents.map((a) => {
        const queue = Object.values(a.queue || {}).reduce((sum, n) => sum + n, 0);
        return html`<tr key=${a.id} data-agent-id=${a.id}>
          <th scope="row"><a href=${agentPath(a.id)}>${state.displayName({ kind: "agent", id: a.id })}</a></th>
          <td>${a.model} <span class="meta">via ${a.provider}</span></td>
          <td><${HealthChip} status=${a.health} /></td>
          <td>${queue}${Object.keys(a.running || {}).length ? html` <span class="meta">(${Object.keys(a.running).length} running)</span>` : ""}</td>
          <td>${a.workers.length}${a.workers.some((w) => w.state === "waiting_for_input") ? html` <span class="meta">(waiting)</span>` : ""}</td>
          <td><${OpsButton} action="restart" target=${a.id} label="Restart" /></td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

const RANGES = { day: 30 * 24 * 3600 * 1000, hour: 48 * 3600 * 1000 };

function Usage() {
  const [groupBy, setGroupBy] = useState("day");
  const [report, setReport] = useState(null);
  const [breakdown, setBreakdown] = useState(null);
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const until = new Date(Date.now() + 1000).toISOString();
    const since = new Date(Date.now() - RANGES[groupBy]).toISOString();
    const range = `since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`;
    Promise.all([get(`/v1/usage?group_by=${groupBy}&${range}`), get(`/v1/usage?group_by=agent,model&${range}`)]).then(
      ([over, by]) => (setReport(over), setBreakdown(by), setError(null)),
      setError,
    );
  }, [groupBy, version]);
  useEffect(() => {
    let timer = null;
    const off = onEvent((event) => {
      if (event.event_type !== "agent.token.usage") return;
      clearTimeout(timer);
      timer = setTimeout(() => setVersion((n) => n + 1), 1500);
    });
    return () => (off(), clearTimeout(timer));
  }, []);
  const data = useMemo(() => (report ? series(report.rows, groupBy, report.since, report.until) : null), [report]);
  return html`<div class="usage">
    <${ErrorNote} error=${error} />
    <div class="toolbar">
      <label for="usage-group">Per</label>
      <select id="usage-group" value=${groupBy} onChange=${(e) => setGroupBy(e.currentTarget.value)}>
        <option value="day">day (30 days)</option>
        <option value="hour">hour (48 hours)</option>
      </select>
      ${report &&
      html`<span class="usage-total" data-tokens=${tokensOf(report.total)} data-cost=${report.total.cost_usd}>
        Total: ${number(tokensOf(report.total))} tokens · ${money(report.total.cost_usd)} · ${number(report.total.requests)} requests
        ${report.total.unpriced_requests ? ` · ${report.total.unpriced_requests} unpriced` : ""}
      </span>`}
    </div>
    ${data ? html`<${UsageChart} key=${groupBy} data=${data} label=${`Tokens and cost per ${groupBy}`} />` : html`<p class="meta">Loading…</p>`}
    ${breakdown &&
    html`<table class="data-table">
      <caption class="sr-only">Usage by agent and model</caption>
      <thead><tr><th scope="col">Agent</th><th scope="col">Model</th><th scope="col">Requests</th><th scope="col">Tokens</th><th scope="col">Cost</th></tr></thead>
      <tbody>
        ${breakdown.rows.map(
          (row) => html`<tr key=${row.agent + row.model}>
            <th scope="row">${state.displayName({ kind: "agent", id: row.agent })}</th><td>${row.model}</td>
            <td>${number(row.requests)}</td><td>${number(tokensOf(row))}</td><td class="cost">${costOf(row)}</td>
          </tr>`,
        )}
      </tbody>
    </table>`}
  </div>`;
}

function Recoveries() {
  const list = recoveries.value;
  if (!list.length) return html`<p class="meta">No operations since this page opened.</p>`;
  return html`<ul class="plain-list recoveries">
    ${list.map(
      (r, i) => html`<li key=${i} data-outcome=${r.outcome}>
        <strong>${r.action}</strong> <code>${r.target}</code>: ${r.outcome} · ${state.displayName(r.actor)} · ${shortTime(r.at)}
        <div class="meta">${r.reason}</div>
      </li>`,
    )}
  </ul>`;
}

export function DashboardView() {
  const [error, setError] = useState(null);
  useEffect(() => {
    if (!state.can("diagnostics:read")) return undefined;
    loadHealth().catch(setError);
    // Queues and workers change with every turn: refetch shortly after the agents' events.
    let timer = null;
    const off = onEvent((event) => {
      const type = event.event_type;
      if (type === "agent.status.changed" || type.startsWith("worker.") || type === "system.recovery.invoked") {
        clearTimeout(timer);
        timer = setTimeout(() => loadHealth().catch(() => {}), 600);
      }
    });
    return () => (off(), clearTimeout(timer));
  }, []);
  if (!state.can("diagnostics:read")) return html`<${NeedsScope} scope="diagnostics:read" what="the dashboard" />`;
  return html`<section class="view dashboard-view" aria-labelledby="view-title">
    <header class="view-head">
      <h1 id="view-title" class="view-title">Dashboard</h1>
      <${OpsButton} action="recover" target="instance" label="Recover instance" />
    </header>
    <div class="page-body">
      <${ErrorNote} error=${error} onRetry=${() => loadHealth().catch(setError)} />
      <section class="panel" aria-labelledby="health-title"><h2 id="health-title">Health</h2><${Health} /></section>
      <section class="panel" aria-labelledby="agents-title"><h2 id="agents-title">Agents</h2><${Agents} /></section>
      <section class="panel" aria-labelledby="usage-title"><h2 id="usage-title">Usage</h2><${Usage} /></section>
      <section class="panel" aria-labelledby="pending-title"><h2 id="pending-title">Waiting for a second operator</h2><${PendingOps} /></section>
      <section class="panel" aria-labelledby="ops-title"><h2 id="ops-title">Recent operations</h2><${Recoveries} /></section>
    </div>
  </section>`;
}
