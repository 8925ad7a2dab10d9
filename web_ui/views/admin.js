// Settings for admins and everyone's API tokens: members and their roles (GET /v1/users,
// PATCH /v1/users/{id}), API tokens (GET/POST/DELETE /v1/tokens; a new token's secret is shown
// once), and the audit log (GET /v1/audit, audit:read), newest first, filtered and paged.
import { useEffect, useState } from "../deps.js";
import { get, post, patch, del } from "../api.js";
import * as state from "../state.js";
import { NeedsScope } from "./dashboard.js";
import { html, ErrorNote, fullTime } from "./ui.js";

// Who may give which role (docs/permissions.md): an owner any, an admin up to admin.
const ASSIGNABLE = {
  owner: ["owner", "admin", "operator", "member", "guest"],
  admin: ["admin", "operator", "member", "guest"],
};

function RolePicker({ user, roles, onChange }) {
  const [role, setRole] = useState(user.role);
  useEffect(() => setRole(user.role), [user.role]);
  return html`<form class="inline-select" onSubmit=${(e) => (e.preventDefault(), onChange(user, role))}>
    <select aria-label=${"Role of " + user.name} value=${role} onChange=${(e) => setRole(e.currentTarget.value)}>
      ${roles.map((r) => html`<option value=${r}>${r}</option>`)}
    </select>
    <button type="submit" class="small secondary" disabled=${role === user.role}>Change</button>
  </form>`;
}

export function Members() {
  const [people, setPeople] = useState(null);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(null);
  const load = () => get("/v1/users").then((d) => setPeople(d.users), setError);
  useEffect(() => {
    load();
  }, []);
  const manage = state.can("members:manage");
  const roles = ASSIGNABLE[state.me.value.role] || [];
  async function change(user, role) {
    setError(null);
    setSaved(null);
    try {
      const answer = await patch(`/v1/users/${encodeURIComponent(user.id)}`, { role });
      const updated = answer.user || { ...user, role };
      setPeople((list) => list.map((u) => (u.id === user.id ? updated : u)));
      setSaved(`${user.name} is now ${role}.`);
    } catch (failure) {
      setError(failure);
      load();
    }
  }
  return html`<section class="panel" aria-labelledby="members-title">
    <h2 id="members-title">Members and roles</h2>
    <${ErrorNote} error=${error} />
    ${saved && html`<p class="meta" role="status">${saved}</p>`}
    ${people === null
      ? html`<p class="meta">Loading…</p>`
      : html`<div class="table-scroll" role="region" aria-label="Members" tabindex="0"><table class="data-table members">
          <thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Role</th></tr></thead>
          <tbody>
            ${people.map((u) => {
              const editable = manage && u.kind === "human" && !u.deactivated && u.id !== state.myId() && roles.includes(u.role);
              return html`<tr key=${u.id} data-user-id=${u.id}>
                <th scope="row">${u.name}${u.kind === "agent" ? html` <span class="tag">agent</span>` : ""}${u.deactivated ? html` <span class="meta">(deactivated)</span>` : ""}</th>
                <td>${u.email || ""}</td>
                <td>${editable ? html`<${RolePicker} user=${u} roles=${roles} onChange=${change} />` : u.role}</td>
              </tr>`;
            })}
          </tbody>
        </table></div>`}
  </section>`;
}

/** Copy a text to the clipboard, and say so (or say how to copy it by hand). */
export function CopyButton({ text, label = "Copy" }) {
  const [done, setDone] = useState(null);
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setDone("Copied.");
    } catch {
      setDone("Select it and copy it by hand.");
    }
  }
  return html`<button type="button" class="small" onClick=${copy}>${label}</button>
    <span class="meta" role="status">${done || ""}</span>`;
}

export function Tokens() {
  const [tokens, setTokens] = useState(null);
  const [error, setError] = useState(null);
  const [secret, setSecret] = useState(null);
  const [all, setAll] = useState(false);
  const mine = state.me.value.scopes;
  const load = () => get("/v1/tokens").then((d) => setTokens(d.tokens), setError);
  useEffect(() => {
    load();
  }, []);
  async function create(event) {
    event.preventDefault();
    const element = event.currentTarget; // null once the event is dispatched, so kept for after the await
    const form = new FormData(element);
    const scopes = all ? [...mine] : form.getAll("scope").map(String);
    const body = { name: String(form.get("name")).trim(), scopes };
    const days = Number(form.get("days"));
    if (days > 0) body.expires_in_days = days;
    setError(null);
    try {
      const made = await post("/v1/tokens", body);
      setSecret({ name: made.token.name, secret: made.secret });
      element.reset();
      setAll(false);
      load();
    } catch (failure) {
      setError(failure);
    }
  }
  async function revoke(token) {
    try {
      await del(`/v1/tokens/${encodeURIComponent(token.id)}`);
      load();
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<section class="panel" aria-labelledby="tokens-title">
    <h2 id="tokens-title">API tokens</h2>
    <${ErrorNote} error=${error} />
    ${secret &&
    html`<div class="secret" role="status">
      <p><strong>${secret.name}</strong>: copy the secret now; it is not shown again.</p>
      <input readOnly value=${secret.secret} aria-label="The new token's secret" onFocus=${(e) => e.currentTarget.select()} />
      <${CopyButton} text=${secret.secret} />
      <button type="button" class="small secondary" onClick=${() => setSecret(null)}>Done</button>
    </div>`}
    ${tokens &&
    html`<ul class="plain-list tokens">
      ${tokens.filter((t) => !t.revoked).map(
        (t) => html`<li key=${t.id} class="device" data-token-id=${t.id}>
          <div><strong>${t.name}</strong>
            <div class="meta">${t.scopes.join(", ")}</div>
            <div class="meta">Created ${fullTime(t.created_at)}${t.expires_at ? ` · expires ${fullTime(t.expires_at)}` : ""}${t.last_used_at ? ` · last used ${fullTime(t.last_used_at)}` : ""}</div>
          </div>
          <button type="button" class="small secondary" onClick=${() => revoke(t)}>Revoke</button>
        </li>`,
      )}
    </ul>`}
    ${state.can("tokens:create") &&
    html`<form class="form" onSubmit=${create} aria-label="New API token">
      <div class="form inline">
        <label>Name <input name="name" required maxLength="80" autocomplete="off" /></label>
        <label>Expires in (days, optional) <input name="days" type="number" min="1" max="3650" /></label>
      </div>
      <fieldset class="scopes">
        <legend>Scopes (at most your own)</legend>
        <label class="check all-scopes"><input type="checkbox" checked=${all} onChange=${(e) => setAll(e.currentTarget.checked)} />All my scopes</label>
        ${all
          ? html`<p class="meta">This token gets every scope you have now (${mine.length}).</p>`
          : mine.map((s) => html`<label class="check" key=${s}><input type="checkbox" name="scope" value=${s} />${s}</label>`)}
      </fieldset>
      <div class="actions"><button type="submit">Create token</button></div>
    </form>`}
  </section>`;
}

export function AuditView() {
  const [entries, setEntries] = useState(null);
  const [next, setNext] = useState(null);
  const [action, setAction] = useState("");
  const [error, setError] = useState(null);
  const allowed = state.can("audit:read");
  async function load(before = null) {
    const query = new URLSearchParams({ limit: "100" });
    if (action.trim()) query.set("action", action.trim());
    if (before) query.set("before", String(before));
    try {
      const page = await get(`/v1/audit?${query}`);
      setEntries((list) => (before && list ? [...list, ...page.entries] : page.entries));
      setNext(page.next_before);
      setError(null);
    } catch (failure) {
      setError(failure);
    }
  }
  useEffect(() => {
    if (allowed) load();
  }, []);
  if (!allowed) return html`<${NeedsScope} scope="audit:read" what="the audit log" />`;
  return html`<section class="view audit-view" aria-labelledby="view-title">
    <header class="view-head">
      <h1 id="view-title" class="view-title">Audit log</h1>
      <form class="form inline" onSubmit=${(e) => (e.preventDefault(), load())}>
        <label class="inline-select">Action
          <input
            value=${action}
            placeholder="ops.retry, or ops. for all"
            title="A full action name, or a prefix ending in a dot for every action under it"
            onInput=${(e) => setAction(e.currentTarget.value)}
          />
        </label>
        <button type="submit" class="small">Filter</button>
      </form>
    </header>
    <div class="page-body">
      <${ErrorNote} error=${error} onRetry=${() => load()} />
      ${entries === null
        ? !error && html`<p class="meta">Loading…</p>`
        : entries.length === 0
        ? html`<p class="meta empty">No entries match. A filter is a full action name (ops.retry) or a prefix ending in a dot (ops.).</p>`
        : html`<div class="table-scroll" role="region" aria-label="Audit log entries" tabindex="0"><table class="data-table audit">
            <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th><th scope="col">Details</th></tr></thead>
            <tbody>
              ${entries.map(
                (e) => html`<tr key=${e.id} data-action=${e.action}>
                  <td>${fullTime(e.ts)}</td>
                  <td>${e.actor ? state.displayName(e.actor) : ""}</td>
                  <th scope="row">${e.action}</th>
                  <td>${e.target ? `${e.target.type} ${e.target.id || ""}` : ""}</td>
                  <td>${e.outcome}</td>
                  <td class="detail"><code>${JSON.stringify(e.details || {})}</code></td>
                </tr>`,
              )}
            </tbody>
          </table></div>`}
      ${next && html`<button type="button" class="small secondary" onClick=${() => load(next)}>Older entries</button>`}
    </div>
  </section>`;
}
