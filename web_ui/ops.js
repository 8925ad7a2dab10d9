// Observability and operations data (docs/observability.md): the instance's health, incidents
// and operations waiting for a second operator, kept live from `system.health.changed`,
// `incident.*` and `system.recovery.invoked`; and the operations themselves. Everything here is
// for people whose role grants the scope; the views ask `can()` before showing any of it.
import { signal, computed } from "./deps.js";
import { get, post, postOnce } from "./api.js";
import { onEvent, onReady } from "./realtime.js";
import * as state from "./state.js";

export const health = signal(null); // GET /v1/system/health, with components kept live
export const incidents = signal(new Map()); // id -> incident
export const pendingOps = signal(null); // GET /v1/ops/pending
export const recoveries = signal([]); // the last system.recovery.invoked payloads, newest first

/** The overall state: the worst of the components'. */
export const healthStatus = computed(() => {
  const value = health.value;
  if (!value) return null;
  const states = (value.components || []).map((c) => c.status);
  return states.includes("down") ? "down" : states.includes("degraded") ? "degraded" : "ok";
});

export const openIncidents = computed(
  () => [...incidents.value.values()].filter((i) => ["triage", "investigating", "mitigated"].includes(i.status)).length,
);

export const OPS = {
  retry: { scope: "ops:retry", label: "Retry", path: (target) => `/v1/ops/channels/${encodeURIComponent(target)}/retry` },
  restart: { scope: "ops:restart", label: "Restart", path: (target) => `/v1/ops/agents/${encodeURIComponent(target)}/restart` },
  reconnect: {
    scope: "ops:reconnect",
    label: "Reconnect",
    path: (target) => `/v1/ops/providers/${encodeURIComponent(target)}/reconnect`,
  },
  // Instance-wide: the instance role too, never an organisation's role alone.
  recover: { scope: "ops:recover", also: "instance:operate", label: "Recover", path: () => "/v1/ops/instance/recover" },
};

/** Whether the signed-in person may run (or decide) an operation. */
export const mayOperate = (op) => state.can(op.scope) && (!op.also || state.can(op.also));

export async function loadHealth() {
  if (!state.can("diagnostics:read")) return null;
  const value = await get("/v1/system/health");
  health.value = value;
  return value;
}

export function putIncidents(list) {
  const next = new Map(incidents.value);
  for (const incident of list) next.set(incident.id, incident);
  incidents.value = next;
}

export async function loadIncidents() {
  if (!state.can("incidents:read")) return [];
  const { incidents: list } = await get("/v1/incidents?limit=200");
  incidents.value = new Map(list.map((i) => [i.id, i]));
  return list;
}

export async function loadPending() {
  if (!state.can("diagnostics:read")) return [];
  const { operations } = await get("/v1/ops/pending");
  pendingOps.value = operations;
  return operations;
}

/** Run an operation with its reason. 200: done ({outcome, result}); 202: it waits for a second
 * operator (the pending operation). Either way the answer says which. */
export async function requestOp(action, target, reason, extra = {}) {
  const { data, status } = await postOnce(OPS[action].path(target), { reason, ...extra });
  if (status === 202) loadPending().catch(() => {});
  return { ...data, waiting: status === 202 };
}

export async function decideOp(id, approve) {
  const result = await post(`/v1/ops/pending/${encodeURIComponent(id)}/${approve ? "approve" : "deny"}`, {});
  loadPending().catch(() => {});
  return result;
}

export async function incidentAction(id, action, body = {}) {
  const { incident } = await post(`/v1/incidents/${encodeURIComponent(id)}/actions/${action}`, body);
  putIncidents([incident]);
  return incident;
}

let healthTimer = null;
function refreshHealthSoon() {
  clearTimeout(healthTimer);
  healthTimer = setTimeout(() => loadHealth().catch(() => {}), 300);
}

onEvent((event) => {
  const p = event.payload || {};
  const type = event.event_type;
  if (type === "system.health.changed") {
    const value = health.value || { components: [] };
    const components = (value.components || []).filter((c) => c.component !== p.component);
    components.push({ component: p.component, status: p.status, detail: p.detail, since: event.timestamp });
    components.sort((a, b) => a.component.localeCompare(b.component));
    health.value = { ...value, components };
    refreshHealthSoon();
  } else if (type.startsWith("incident.") && p.incident) {
    putIncidents([p.incident]);
  } else if (type === "system.recovery.invoked") {
    recoveries.value = [{ ...p, at: event.timestamp, actor: event.actor }, ...recoveries.value].slice(0, 20);
    if (pendingOps.value !== null || p.operation_id) loadPending().catch(() => {});
  }
});

// After a gap in the stream, what is shown is fetched again.
onReady(() => {
  if (!state.booted.value) return;
  if (health.value) loadHealth().catch(() => {});
  if (incidents.value.size) loadIncidents().catch(() => {});
});

/** Called once the structure is loaded: the sidebar's health and incident badges. */
export function startOps() {
  loadHealth().catch(() => {});
  loadIncidents().catch(() => {});
}

/** Signing out forgets what was shown. */
export function resetOps() {
  health.value = null;
  incidents.value = new Map();
  pendingOps.value = null;
  recoveries.value = [];
}
