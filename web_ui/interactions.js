// Acting on cards (docs/cards.md "Interactions"): `POST /v1/interactions` with an
// Idempotency-Key, so a retried click counts once. The answer carries the card as it now is (a
// poll's new tallies, say), which is shown at once; `message.updated` brings it to everyone else.
import { postOnce, newKey } from "./api.js";
import { threadModels } from "./store.js";
import { displayName } from "./state.js";

/** Send one act: `values` is absent for a button, a list for a select or a poll vote, an object
 * for a form. Resolves with the server's answer; rejects with the ApiError. */
export async function interact(message, { actionId, blockId, values }) {
  const body = { message_id: message.id, action_id: actionId };
  if (blockId) body.block_id = blockId;
  if (values !== undefined) body.values = values;
  const { data } = await postOnce("/v1/interactions", body, { key: newKey("act") });
  const updated = data && data.message;
  if (updated) {
    const model = threadModels.get(updated.thread_id);
    if (model && model.upsert(updated)) model.bump();
  }
  return data;
}

/** What to tell the person about a refused act. */
export function refusal(error) {
  const details = error.details || {};
  if (error.status === 403 && details.scope) return `You need the ${details.scope} permission for this.`;
  if (error.code === "same_operator") return "Another operator has to approve what you asked for.";
  if (error.code === "already_decided") {
    return details.label ? `Already decided: ${details.label}.` : "This was already decided.";
  }
  if (error.code === "poll_closed") return "This poll is closed.";
  if (error.code === "card_superseded") return "This card was replaced by a newer reply.";
  return error.message || "That did not work.";
}

/** Field errors of a 400 `invalid_values`: {name: message}, and `_` for the whole form. */
export function fieldErrors(error) {
  const out = {};
  for (const item of Array.isArray(error.details) ? error.details : []) {
    const match = /^values\.([A-Za-z_][A-Za-z0-9_-]*)/.exec(item.path || "");
    const key = match ? match[1] : "_";
    out[key] = out[key] ? `${out[key]} ${item.message}` : item.message;
  }
  if (!Object.keys(out).length) out._ = error.message;
  return out;
}

/** "Approved by Ann": the decision's label, with who decided when the label does not say. */
export function decidedText(decided) {
  if (!decided) return "";
  const label = decided.label || "Decided";
  if (!decided.by || / by /.test(label)) return label;
  return `${label} by ${displayName({ kind: "user", id: decided.by })}`;
}
