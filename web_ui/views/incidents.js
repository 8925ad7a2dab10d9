// Incidents (GET /v1/incidents, incidents:read), newest first and live (`incident.*`): opened by
// a failed worker, a provider outage, a budget stop or a person (here, or from any message).
// Severity sev1-sev4; status triage -> investigating -> mitigated -> resolved -> closed. Those
// with incidents:manage open incidents, take the next step, escalate (to admins or owners), and
// in the details assign roles, post updates and read the timeline and the retrospective.
import { useEffect, useState } from "../deps.js";
import * as state from "../state.js";
import { incidents, loadIncidents, incidentAction } from "../ops.js";
import { openIncident } from "../agentops.js";
import { refusal } from "../interactions.js";
import { anyMessagePath } from "../router.js";
import { ask } from "./dialogs.js";
import { NeedsScope } from "./dashboard.js";
import { IncidentDetail } from "./incident.js";
import { html, ErrorNote, fullTime, shortTime } from "./ui.js";

const ACTIVE = ["triage", "investigating", "mitigated"];
const FILTERS = [
  ["all", "All"],
  ["active", "Active (triage, investigating, mitigated)"],
  ["triage", "Triage"],
  ["investigating", "Investigating"],
  ["mitigated", "Mitigated"],
  ["resolved", "Resolved"],
  ["closed", "Closed"],
];
// The status each step leads to, and the button that takes it.
const NEXT = { triage: ["acknowledge", "Acknowledge"], investigating: ["mitigate", "Mitigated"], mitigated: ["resolve", "Resolve"], resolved: ["close", "Close"] };
const DONE = { acknowledge: "Acknowledged.", mitigate: "Marked mitigated.", resolve: "Resolved.", close: "Closed.", escalate: "Escalated." };
const SEVERITIES = [
  ["sev1", "sev1 · Critical"],
  ["sev2", "sev2 · Major"],
  ["sev3", "sev3 · Minor"],
  ["sev4", "sev4 · Low"],
];

function IncidentRow({ incident, expanded }) {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const [escalateTo, setEscalateTo] = useState("");
  const [open, setOpen] = useState(expanded);
  const manage = state.can("incidents:manage");
  const active = ACTIVE.includes(incident.status);
  async function act(action, body = {}) {
    setBusy(true);
    setResult(null);
    try {
      await incidentAction(incident.id, action, body);
      setResult({ text: DONE[action] });
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
  function next() {
    const [action] = NEXT[incident.status];
    return action === "resolve" ? resolve() : act(action);
  }
  const details = incident.details || {};
  const step = NEXT[incident.status];
  const detailId = `incident-detail-${incident.id}`;
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
      ${incident.mitigated_at && ` · mitigated ${shortTime(incident.mitigated_at)}`}
      ${incident.resolved_at && ` · resolved by ${incident.resolved_by ? state.displayName({ kind: "user", id: incident.resolved_by }) : "the system"}`}
      ${incident.closed_at && ` · closed ${shortTime(incident.closed_at)}`}
    </div>
    ${details.error && html`<div class="error-message">${String(details.error)}</div>`}
    ${details.hint && html`<div class="hint">${details.hint}</div>`}
    <div class="row-actions">
      ${incident.message_id && html`<a class="small-link" href=${anyMessagePath(incident.message_id)}>Open its thread</a>`}
      <button type="button" class="small secondary" aria-expanded=${open ? "true" : "false"} aria-controls=${detailId}
        onClick=${() => setOpen(!open)}>${open ? "Hide details" : "Details"}</button>
      ${manage && step && html`<button type="button" class="small" data-step=${step[0]} disabled=${busy} onClick=${next}>${step[1]}</button>`}
      ${manage &&
      active &&
      incident.status !== "mitigated" &&
      html`<button type="button" class="small" data-step="resolve" disabled=${busy} onClick=${resolve}>Resolve</button>`}
      ${manage &&
      active &&
      html`<form class="inline-select" onSubmit=${(e) => {
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
        </form>`}
      ${result && (result.error ? html`<span class="feedback error" role="alert">${result.error}</span>` : html`<span class="feedback" role="status">${result.text}</span>`)}
    </div>
    <div id=${detailId}>${open && html`<${IncidentDetail} incident=${incident} />`}</div>
  </li>`;
}

function OpenIncidentForm() {
  const [result, setResult] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const formElement = event.currentTarget;
    const form = new FormData(formElement);
    setBusy(true);
    setResult(null);
    try {
      const incident = await openIncident({
        title: String(form.get("title")).trim(),
        severity: String(form.get("severity")),
        details: String(form.get("details") || ""),
      });
      formElement.reset();
      setResult({ text: `Incident #${incident.number} opened.` });
    } catch (error) {
      setResult({ error: refusal(error) });
    } finally {
      setBusy(false);
    }
  }
  return html`<form class="form open-incident-form" onSubmit=${submit} aria-labelledby="open-incident-title">
    <h2 id="open-incident-title">Open an incident</h2>
    <label>Title <input name="title" required minlength="1" maxlength="300" autocomplete="off" /></label>
    <label>Severity
      <select name="severity">${SEVERITIES.map(([value, label]) => html`<option value=${value} selected=${value === "sev3"}>${label}</option>`)}</select>
    </label>
    <label>What is known <textarea name="details" rows="2" maxlength="5000"></textarea></label>
    <div class="actions"><button type="submit" disabled=${busy}>Open incident</button></div>
    ${result && (result.error ? html`<p class="form-error" role="alert">${result.error}</p>` : html`<p class="feedback" role="status">${result.text}</p>`)}
  </form>`;
}

export function IncidentsView({ open = null }) {
  const [filter, setFilter] = useState("all");
  const [error, setError] = useState(null);
  const [loaded, setLoaded] = useState(false);
  const allowed = state.can("incidents:read");
  useEffect(() => {
    if (allowed) loadIncidents().then(() => setLoaded(true), setError);
  }, []);
  if (!allowed) return html`<${NeedsScope} scope="incidents:read" what="incidents" />`;
  const list = [...incidents.value.values()]
    .filter((i) => filter === "all" || (filter === "active" ? ACTIVE.includes(i.status) : i.status === filter))
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
      ${state.can("incidents:manage") && html`<${OpenIncidentForm} />`}
      <${ErrorNote} error=${error} onRetry=${() => loadIncidents().then(() => setLoaded(true), setError)} />
      ${!loaded && !error && html`<p class="meta">Loading…</p>`}
      ${loaded && !list.length && html`<p class="empty">No incidents here.</p>`}
      <ul class="incidents plain-list" aria-label="Incidents" aria-live="polite">
        ${list.map((incident) => html`<${IncidentRow} key=${incident.id} incident=${incident} expanded=${incident.id === open} />`)}
      </ul>
    </div>
  </section>`;
}
