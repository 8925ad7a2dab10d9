// Pending tool approvals (GET /v1/approvals, tasks:approve), oldest first with their age: the
// inbox of those who may decide. Each can be approved, approved for its thread, denied, or denied
// and remembered (POST /v1/approvals/{id}/decide); its card in the thread offers the same.
import { useEffect, useState } from "../deps.js";
import * as state from "../state.js";
import { pendingApprovals, decideApproval } from "../agentops.js";
import { refusal } from "../interactions.js";
import { threadPath } from "../router.js";
import { NeedsScope } from "./dashboard.js";
import { html, ErrorNote } from "./ui.js";

const DECISIONS = [
  ["approve", "Approve"],
  ["approve_thread", "Approve for this thread"],
  ["deny", "Deny"],
  ["deny_remember", "Deny and remember"],
];

export function age(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function ApprovalRow({ approval, onDecided }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  async function decide(decision) {
    setBusy(true);
    setError(null);
    try {
      await decideApproval(approval.id, decision);
      state.announce(`${approval.tool}: ${decision.replace("_", " ")}`);
      onDecided();
    } catch (failure) {
      setError(refusal(failure));
      setBusy(false);
    }
  }
  const headingId = `approval-${approval.id}`;
  return html`<li class="approval" data-approval-id=${approval.id} data-risk=${approval.risk} aria-labelledby=${headingId}>
    <div class="incident-head">
      <strong id=${headingId}>${state.displayName({ kind: "agent", id: approval.agent_id })} wants to run ${approval.tool}</strong>
      <span class=${"chip risk " + approval.risk}>risk: ${approval.risk}</span>
      <span class="meta approval-age">waiting ${age(approval.age_seconds)}${approval.escalated_to ? ` · escalated to ${approval.escalated_to}` : ""}</span>
    </div>
    <pre class="arguments">${JSON.stringify(approval.arguments, null, 1)}</pre>
    <div class="row-actions">
      <a class="small-link" href=${threadPath(approval.thread_id)}>Open its thread</a>
      ${DECISIONS.map(
        ([decision, label]) => html`<button type="button" class=${"small" + (decision.startsWith("deny") ? " secondary" : "")}
          disabled=${busy} data-decision=${decision} onClick=${() => decide(decision)}>${label}</button>`,
      )}
      ${error && html`<span class="feedback error" role="alert">${error}</span>`}
    </div>
  </li>`;
}

export function ApprovalsView() {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const allowed = state.can("tasks:approve");
  const load = () => pendingApprovals().then(({ approvals }) => (setList(approvals), setError(null)), setError);
  useEffect(() => {
    if (allowed) load();
  }, []);
  if (!allowed) return html`<${NeedsScope} scope="tasks:approve" what="tool approvals" />`;
  return html`<section class="view approvals-view" aria-labelledby="view-title">
    <header class="view-head">
      <h1 id="view-title" class="view-title">Approvals</h1>
      <button type="button" class="small secondary" onClick=${load}>Refresh</button>
    </header>
    <div class="page-body">
      <${ErrorNote} error=${error} onRetry=${load} />
      ${list === null && !error && html`<p class="meta">Loading…</p>`}
      ${list && !list.length && html`<p class="empty">No tool call is waiting for a decision.</p>`}
      ${list &&
      html`<ul class="approvals plain-list" aria-label="Pending approvals, oldest first">
        ${list.map((approval) => html`<${ApprovalRow} key=${approval.id} approval=${approval} onDecided=${load} />`)}
      </ul>`}
    </div>
  </section>`;
}
