// Agent operations from the UI (docs/observability.md): stop a streaming reply, open an incident
// from a message, a thread's provenance timeline, and the pending tool approvals.
import { get, post } from "./api.js";
import { putIncidents } from "./ops.js";

const enc = encodeURIComponent;

/** POST /v1/messages/{id}/stop: the reply ends at once and keeps what it wrote. */
export async function stopReply(messageId) {
  const { message } = await post(`/v1/messages/${enc(messageId)}/stop`);
  return message;
}

/** POST /v1/incidents with the message it comes from (pinned to its timeline). */
export async function openIncident({ title, severity, details = "", messageId = null }) {
  const body = { title, details };
  if (severity) body.severity = severity;
  if (messageId) body.message_id = messageId;
  const { incident } = await post("/v1/incidents", body);
  putIncidents([incident]);
  return incident;
}

export const threadTimeline = (threadId) => get(`/v1/threads/${enc(threadId)}/timeline`);
export const incidentTimeline = (incidentId) => get(`/v1/incidents/${enc(incidentId)}/timeline`);

async function incidentPost(incidentId, what, body) {
  const { incident } = await post(`/v1/incidents/${enc(incidentId)}/${what}`, body);
  putIncidents([incident]);
  return incident;
}

export const setSeverity = (id, severity) => incidentPost(id, "severity", { severity });
export const assignRole = (id, role, userId) => incidentPost(id, "roles", { role, user_id: userId });
export const postUpdate = (id, text) => incidentPost(id, "updates", { text });

export const pendingApprovals = () => get("/v1/approvals");
export const decideApproval = (id, decision) => post(`/v1/approvals/${enc(id)}/decide`, { decision });
