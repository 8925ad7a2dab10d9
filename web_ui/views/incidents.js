// Incidents (GET /v1/incidents, incidents:read), newest first and live (`incident.*`): opened by
// a failed worker, a provider outage, a budget stop or a person. Those with incidents:manage
// acknowledge, escalate (to admins or owners) and resolve them, with an optional note.
import { useEffect, useState } from "../deps.js";
import * as state from "../state.js";
import { incidents, loadIncidents, incidentAction } from "../ops.js";
import { refusal } from "../interactions.js";
import { anyMessagePath } from "../router.js";
import { ask } from "./dialogs.js";
import { NeedsScope } from "./dashboard.js";
import { html, ErrorNote, fullTime, shortTime } from "./ui.js";

const FILTERS = [
  ["all", "All"],
  ["active", "Open and acknowledged"],
  ["open", "Open"],
  ["acknowledged", "Acknowledged"],
  ["resolved", "Resolved"],
];

function IncidentRow({ incident }) {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const [escalateTo, setEscalateTo] = useState("");
  const manage = state.can("incidents:manage");
  const active = incident.status !== "resolved";
  async function act(action, body = {}) {
    setBusy(true);
    setResult(null);
    try {
      await incidentAction(incident.id, action, body);
      setResult({ text: `${action === "acknowledge" ? "Acknowledged" : action === "resolve" ? "Resolved" : "Escalated"}.` });
    } catch (error) {
      setResult({ error: refusal(error) });
    } finally {
      setBusy(false);
    }
  }
  async function resolve() {
    const note = await ask({
      title: `Resolve incident #${incident.number}?`,
      input: { label: "Note (what fixed it)", minLength: 1, placeholder: "e.g. the provider is back" },
      confirmLabel: "Resolve",
    });
    if (note) act("resolve", { note });
  }
  const details = incident.details || {};
  return html`<li class="incident" data-incident-id=${incident.id} data-status=${incident.status} data-source=${incident.source || ""}>
    <div class="incident-head">
      <span class=${"chip incident-status " + incident.status}>${incident.status}</span>
      <strong>#${incident.number} ${incident.title}</strong>
      <span class=${"chip severity " + incident.severity}>${incident.severity}</span>
    </div>
    <div class="meta">
      ${incident.kind}${incident.source ? ` · ${incident.source}` : ""} · opened <time datetime=${incident.opened_at} title=${fullTime(incident.opened_at)}>${shortTime(incident.opened_at)}</time>
      ${incident.acknowledged_at && ` · acknowledged by ${state.displayName({ kind: "user", id: incident.acknowledged_by })}`}
      ${incident.escalated_to && ` · escalated to ${incident.escalated_to.replace(/^role:/, "") + (incident.escalated_to.startsWith("role:") ? "s" : "")}`}
      ${incident.resolved_at && ` · resolved by ${incident.resolved_by ? state.displayName({ kind: "user", id: incident.resolved_by }) : "the system"}`}
    </div>
    ${details.error && html`<div class="error-message">${String(details.error)}</div>`}
    ${details.hint && html`<div class="hint">${details.hint}</div>`}
    <div class="row-actions">
      ${incident.message_id && html`<a class="small-link" href=${anyMessagePath(incident.message_id)}>Open its thread</a>`}
      ${manage &&
      active &&
      html`${incident.status === "open" &&
        html`<button type="button" class="small" disabled=${busy} onClick=${() => act("acknowledge")}>Acknowledge</button>`}
        <form class="inline-select" onSubmit=${(e) => {
          e.preventDefault();
          if (escalateTo) act("escalate", { to: escalateTo });
        }}>
          <label for=${`escalate-${incident.id}`}>Escalate to</label>
          <select id=${`escalate-${incident.id}`} disabled=${busy} value=${escalateTo} onChange=${(e) => setEscalateTo(e.currentTarget.value)}>
            <option value="">…</option>
            <option value="role:admin">Admins</option>
            <option value="role:owner">Owners</option>
          </select>
          <button type="submit" class="small secondary" disabled=${busy || !escalateTo}>Escalate</button>
        </form>
        <button type="button" class="small" disabled=${busy} onClick=${resolve}>Resolve</button>`}
      ${result && (result.error ? html`<span class="feedback error" role="alert">${result.error}</span>` : html`<span class="feedback" role="status">${result.text}</span>`)}
    </div>
  </li>`;
}

export function IncidentsView() {
  const [filter, setFilter] = useState("all");
  const [error, setError] = useState(null);
  const [loaded, setLoaded] = useState(false);
  const allowed = state.can("incidents:read");
  useEffect(() => {
    if (allowed) loadIncidents().then(() => setLoaded(true), setError);
  }, []);
  if (!allowed) return html`<${NeedsScope} scope="incidents:read" what="incidents" />`;
  const list = [...incidents.value.values()]
    .filter((i) => filter === "all" || (filter === "active" ? i.status !== "resolved" : i.status === filter))
    .sort((a, b) => b.number - a.number);
  return html`<section class="view incidents-view" aria-labelledby="view-title">
    <header class="view-head">
      <h1 id="view-title" class="view-title">Incidents</h1>
      <label class="inline-select">Show
        <select value=${filter} onChange=${(e) => setFilter(e.currentTarget.value)}>
          ${FILTERS.map(([value, label]) => html`<option value=${value}>${label}</option>`)}
        </select>
      </label>
    </header>
    <div class="page-body">
      <${ErrorNote} error=${error} onRetry=${() => loadIncidents().then(() => setLoaded(true), setError)} />
      ${!loaded && !error && html`<p class="meta">Loading…</p>`}
      ${loaded && !list.length && html`<p class="empty">No incidents here.</p>`}
      <ul class="incidents plain-list" aria-label="Incidents" aria-live="polite">
        ${list.map((incident) => html`<${IncidentRow} key=${incident.id} incident=${incident} />`)}
      </ul>
    </div>
  </section>`;
}
