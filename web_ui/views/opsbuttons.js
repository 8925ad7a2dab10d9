// Operations as buttons (docs/observability.md "Operations"): each is shown only to people whose
// role grants its scope, asks for the reason the audit log keeps, and says what came of it:
// done, failed (why), or waiting for a second operator (202, the two-person rule). Operations
// waiting for a second operator are listed with Approve and Deny.
import { useState, useEffect } from "../deps.js";
import * as state from "../state.js";
import { OPS, mayOperate, requestOp, decideOp, pendingOps, loadPending } from "../ops.js";
import { refusal } from "../interactions.js";
import { anyMessagePath } from "../router.js";
import { ask } from "./dialogs.js";
import { html, fullTime, ErrorNote } from "./ui.js";

const WHAT = {
  retry: (target) => `Run the last agent turn of this channel again (${target}). The failed reply is marked superseded.`,
  restart: (target) => `Restart the channel processes of agent **${target}**. Queued messages are kept.`,
  reconnect: (target) => `Drop and reopen the model provider **${target}**.`,
  recover: () => "Restart every channel process and reconnect every provider.",
};

export function OpsButton({ action, target, label, extra, className = "small secondary" }) {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const op = OPS[action];
  if (!mayOperate(op)) return null;
  const name = label || op.label;
  async function run() {
    const reason = await ask({
      title: `${name}?`,
      text: WHAT[action](target),
      input: { label: "Reason (kept in the audit log)", minLength: 3, placeholder: "Why?" },
      confirmLabel: name,
    });
    if (!reason) return;
    setBusy(true);
    setResult({ text: "Working…" });
    try {
      const answer = await requestOp(action, target, reason, extra);
      if (answer.waiting) setResult({ text: "Waiting for a second operator to approve.", state: "waiting" });
      else if (answer.outcome === "ok") setResult({ text: "Done.", state: "ok" });
      else setResult({ text: `Failed: ${(answer.result && answer.result.error) || "see the audit log"}`, state: "failed" });
      state.announce(`${name}: ${answer.waiting ? "waiting for a second operator" : answer.outcome}`);
    } catch (error) {
      setResult({ text: refusal(error), state: "failed" });
    } finally {
      setBusy(false);
    }
  }
  return html`<span class="ops-control">
    <button type="button" class=${className} data-ops=${action} data-target=${target} disabled=${busy}
      aria-haspopup="dialog" onClick=${run}>${name}</button>
    <span class=${"ops-result " + (result ? result.state || "" : "")} role="status" aria-live="polite"
      data-ops-result=${result ? result.state || "busy" : null}>${result ? result.text : ""}</span>
  </span>`;
}

/** Operations waiting for (or decided by) a second operator. */
export function PendingOps() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(null);
  useEffect(() => {
    loadPending().catch(setError);
  }, []);
  const list = pendingOps.value;
  if (list === null) return html`<p class="meta">Loading…</p>`;
  const waiting = list.filter((op) => op.status === "pending");
  const me = state.myId();
  async function decide(op, approve) {
    setBusy(op.id);
    setError(null);
    try {
      await decideOp(op.id, approve);
    } catch (failure) {
      setError({ message: refusal(failure) });
    } finally {
      setBusy(null);
    }
  }
  return html`<div class="pending-ops">
    <${ErrorNote} error=${error} />
    ${!waiting.length && html`<p class="meta">Nothing waits for a second operator.</p>`}
    <ul class="plain-list">
      ${waiting.map((op) => {
        const mayDecide = mayOperate(OPS[op.action]) && op.requested_by !== me;
        return html`<li key=${op.id} data-operation-id=${op.id} class="pending-op">
          <div><strong>${op.action}</strong> <code>${op.target}</code>${` · asked by ${state.displayName({ kind: "user", id: op.requested_by })}, ${fullTime(op.requested_at)}`}</div>
          <div class="meta">${op.reason}</div>
          ${op.message_id && html`<a class="meta" href=${anyMessagePath(op.message_id)}>Its card in the ops channel</a>`}
          ${mayDecide
            ? html`<div class="row-actions">
                <button type="button" class="small" disabled=${busy === op.id} onClick=${() => decide(op, true)}>Approve</button>
                <button type="button" class="small danger" disabled=${busy === op.id} onClick=${() => decide(op, false)}>Deny</button>
              </div>`
            : html`<p class="meta">${op.requested_by === me ? "Another operator has to approve it." : `Needs ${OPS[op.action].scope}.`}</p>`}
        </li>`;
      })}
    </ul>
  </div>`;
}
