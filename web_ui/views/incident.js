// One incident in depth (GET /v1/incidents/{id}/timeline): its severity, its roles (lead,
// communications, ...), status updates, its timeline of every step and pinned message, and the
// retrospective drafted when it closed. Those with incidents:manage change the severity, assign
// roles and post updates from here.
import { useEffect, useState } from "../deps.js";
import * as state from "../state.js";
import { incidentTimeline, setSeverity, assignRole, postUpdate } from "../agentops.js";
import { refusal } from "../interactions.js";
import { anyMessagePath } from "../router.js";
import { render as renderMarkdown } from "../markdown.js";
import { html, ErrorNote, fullTime, shortTime } from "./ui.js";

function Feedback({ result }) {
  if (!result) return null;
  return result.error
    ? html`<span class="feedback error" role="alert">${result.error}</span>`
    : html`<span class="feedback" role="status">${result.text}</span>`;
}

export function IncidentDetail({ incident }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [result, setResult] = useState(null);
  const [busy, setBusy] = useState(false);
  const manage = state.can("incidents:manage") && incident.status !== "closed";
  const load = () => incidentTimeline(incident.id).then((d) => (setData(d), setError(null)), setError);
  useEffect(() => {
    load();
  }, [incident.id, incident.status, incident.severity, incident.last_update_at]);

  async function run(work, done) {
    setBusy(true);
    setResult(null);
    try {
      await work();
      setResult({ text: done });
      await load();
    } catch (failure) {
      setResult({ error: refusal(failure) });
    } finally {
      setBusy(false);
    }
  }
  function submitRole(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const role = String(form.get("role"));
    const userId = String(form.get("user"));
    if (userId) run(() => assignRole(incident.id, role, userId), `${role} assigned.`);
  }
  function submitUpdate(event) {
    event.preventDefault();
    const field = event.currentTarget.elements.namedItem("update");
    const text = field.value.trim();
    if (text) run(() => postUpdate(incident.id, text).then(() => (field.value = "")), "Update posted.");
  }
  const id = incident.id;
  const people = [...state.users.value.values()].filter((u) => u.kind === "human");
  const roles = data ? new Map(data.roles.map((r) => [r.role, r.user_id])) : new Map();
  return html`<div class="incident-detail" data-incident-detail=${id}>
    <${ErrorNote} error=${error} onRetry=${load} />
    ${data &&
    html`<dl class="incident-roles">
        ${data.role_names.map(
          (role) => html`<div key=${role}><dt>${role}</dt><dd data-role=${role}>${roles.has(role) ? state.displayName({ kind: "user", id: roles.get(role) }) : "—"}</dd></div>`,
        )}
      </dl>
      ${manage &&
      html`<div class="incident-forms">
        <label class="inline-select">Severity
          <select value=${incident.severity} disabled=${busy}
            onChange=${(e) => run(() => setSeverity(id, e.currentTarget.value), "Severity changed.")}>
            ${data.severities.map((s) => html`<option value=${s.name}>${s.name} · ${s.label}</option>`)}
          </select>
        </label>
        <form class="inline-select" onSubmit=${submitRole}>
          <label for=${`role-${id}`}>Role</label>
          <select id=${`role-${id}`} name="role">${data.role_names.map((r) => html`<option value=${r}>${r}</option>`)}</select>
          <label for=${`person-${id}`}>Person</label>
          <select id=${`person-${id}`} name="user">
            <option value="">…</option>
            ${people.map((u) => html`<option value=${u.id}>${u.name}</option>`)}
          </select>
          <button type="submit" class="small secondary" disabled=${busy}>Assign</button>
        </form>
        <form class="incident-update" onSubmit=${submitUpdate}>
          <label for=${`update-${id}`}>Status update</label>
          <textarea id=${`update-${id}`} name="update" rows="2" maxlength="5000" placeholder="What is known, what is being done"></textarea>
          <button type="submit" class="small" disabled=${busy}>Post update</button>
        </form>
        <${Feedback} result=${result} />
      </div>`}
      <h3>Timeline</h3>
      <ol class="incident-timeline plain-list">
        ${data.timeline.map(
          (entry) => html`<li key=${entry.id} data-kind=${entry.kind}>
            <time datetime=${entry.at} title=${fullTime(entry.at)}>${shortTime(entry.at)}</time>
            <span class="chip">${entry.kind}</span>
            <span>${entry.text}</span>
            ${entry.message_id && html` <a class="small-link" href=${anyMessagePath(entry.message_id)}>message</a>`}
          </li>`,
        )}
      </ol>
      ${data.incident.retrospective &&
      html`<details class="retrospective" open>
        <summary>Retrospective draft</summary>
        <div class="md" dangerouslySetInnerHTML=${{ __html: renderMarkdown(data.incident.retrospective) }}></div>
      </details>`}`}
  </div>`;
}
