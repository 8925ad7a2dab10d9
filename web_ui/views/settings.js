// Settings: your devices (sessions) with sign-out per device, your API tokens, the members and
// their roles, and for admins, invitation links (admin.js has members and tokens).
import { useState, useEffect } from "../deps.js";
import * as state from "../state.js";
import { listSessions, revokeSession, createInvitation, endSession } from "../actions.js";
import { navigate } from "../router.js";
import { html, fullTime, ErrorNote } from "./ui.js";
import { Members, Tokens } from "./admin.js";
import { MyMemory } from "./memory.js";

function Devices() {
  const [sessions, setSessions] = useState(null);
  const [error, setError] = useState(null);
  const load = () => listSessions().then((d) => setSessions(d.sessions), setError);
  useEffect(() => {
    load();
  }, []);
  async function revoke(session) {
    try {
      await revokeSession(session.id);
      if (session.current) {
        endSession();
        navigate("/login", { replace: true });
        return;
      }
      load();
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<section class="panel" aria-labelledby="devices-title">
    <h2 id="devices-title">Your devices</h2>
    <${ErrorNote} error=${error} onRetry=${load} />
    ${sessions === null
      ? html`<p>Loading…</p>`
      : html`<ul class="devices">
          ${sessions
            .filter((s) => !s.revoked)
            .map(
              (s) => html`<li key=${s.id} class="device" data-session-id=${s.id}>
                <div>
                  <strong>${s.device_name}</strong> ${s.current && html`<span class="chip">this device</span>`}
                  <div class="meta">${s.user_agent}</div>
                  <div class="meta">Signed in ${fullTime(s.created_at)} · last seen ${fullTime(s.last_seen_at)} · ${s.ip}</div>
                </div>
                <button type="button" class="small secondary" onClick=${() => revoke(s)}>
                  ${s.current ? "Sign out" : "Sign out this device"}
                </button>
              </li>`,
            )}
        </ul>`}
  </section>`;
}

function Invitations() {
  const [made, setMade] = useState(null);
  const [error, setError] = useState(null);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = { role: String(form.get("role")) };
    const email = String(form.get("email") || "").trim();
    if (email) body.email = email;
    try {
      setMade(await createInvitation(body));
      setError(null);
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<section class="panel" aria-labelledby="invite-title">
    <h2 id="invite-title">Invite people</h2>
    <form class="form inline" onSubmit=${submit}>
      <label>Role
        <select name="role">
          ${["member", "guest", "operator", "admin"].map((r) => html`<option value=${r}>${r}</option>`)}
        </select>
      </label>
      <label>Email (optional) <input name="email" type="email" autocomplete="off" /></label>
      <button type="submit">Create link</button>
    </form>
    <${ErrorNote} error=${error} />
    ${made &&
    html`<div class="invite-link">
      <label>Send this link (it works once, until ${fullTime(made.invitation.expires_at)})
        <input readOnly value=${made.link} onFocus=${(e) => e.currentTarget.select()} />
      </label>
      <button type="button" class="small" onClick=${() => navigator.clipboard && navigator.clipboard.writeText(made.link)}>Copy</button>
    </div>`}
  </section>`;
}

export function SettingsView() {
  const me = state.me.value;
  return html`<section class="view settings-view" aria-labelledby="view-title">
    <header class="view-head"><h1 id="view-title" class="view-title">Settings</h1></header>
    <div class="settings-body">
      <section class="panel">
        <h2>You</h2>
        <p>${me.user.name} · ${me.user.email} · ${me.role}</p>
      </section>
      <${Devices} />
      <${MyMemory} />
      ${state.can("tokens:create") && html`<${Tokens} />`}
      ${state.can("members:read") && html`<${Members} />`}
      ${state.can("members:manage") && html`<${Invitations} />`}
    </div>
  </section>`;
}
