// Tasks (docs/api.md, spacechat_plugin/api/tasks.py): one in-memory map of the tasks this page
// has seen, kept current by `task.*` events (each carries the whole task), and the calls the
// board, the task view and task cards make. Statuses and transitions follow Spacebot's model.
import { signal } from "./deps.js";
import { get, post, patch } from "./api.js";
import { onEvent } from "./realtime.js";

export const STATUSES = ["pending_approval", "backlog", "ready", "in_progress", "done", "failed"];
export const STATUS_LABEL = {
  pending_approval: "Pending approval",
  backlog: "Backlog",
  ready: "Ready",
  in_progress: "In progress",
  done: "Done",
  failed: "Failed",
};
export const PRIORITIES = ["critical", "high", "medium", "low"];

export const tasks = signal(new Map()); // id -> task

/** Insert or update tasks; an older copy never replaces a newer one. */
export function putTasks(list) {
  let next = null;
  for (const task of list) {
    if (!task) continue;
    const current = (next || tasks.value).get(task.id);
    if (current && (current.updated_at || "") > (task.updated_at || "")) continue;
    next ||= new Map(tasks.value);
    next.set(task.id, task);
  }
  if (next) tasks.value = next;
}

const listeners = new Set();
/** Called with (task, event) for every task event; returns an unsubscribe function. */
export function onTaskEvent(callback) {
  listeners.add(callback);
  return () => listeners.delete(callback);
}

onEvent((event) => {
  if (!event.event_type.startsWith("task.")) return;
  const task = event.payload && event.payload.task;
  if (!task) return;
  putTasks([task]);
  for (const listener of listeners) listener(task, event);
});

export async function loadTasks(teamId) {
  const query = teamId ? `?team_id=${encodeURIComponent(teamId)}&limit=500` : "?limit=500";
  const { tasks: list } = await get(`/v1/tasks${query}`);
  putTasks(list);
  return list;
}

const fetching = new Map();
/** A task, fetched once however many cards ask for it at the same time. */
export function fetchTask(id) {
  if (!fetching.has(id)) {
    fetching.set(
      id,
      get(`/v1/tasks/${encodeURIComponent(id)}`)
        .then(({ task }) => (putTasks([task]), task))
        .finally(() => setTimeout(() => fetching.delete(id), 5000)),
    );
  }
  return fetching.get(id);
}

export async function createTask(body) {
  const { task } = await post("/v1/tasks", body);
  putTasks([task]);
  return task;
}

export async function editTask(id, changes) {
  const { task } = await patch(`/v1/tasks/${encodeURIComponent(id)}`, changes);
  putTasks([task]);
  return task;
}

export async function taskAction(id, action, body = {}) {
  const { task } = await post(`/v1/tasks/${encodeURIComponent(id)}/actions/${action}`, body);
  putTasks([task]);
  return task;
}

/** The action that moves a task from its status to `to` (approve, start, ...), or null when a
 * plain status change does (PATCH). Approving and rejecting need `tasks:approve`. */
export function actionFor(from, to) {
  if (from === "pending_approval" && to === "ready") return "approve";
  if (from === "pending_approval" && to === "backlog") return "reject";
  if (to === "in_progress") return "start";
  if (to === "done") return "complete";
  if (to === "failed") return "fail";
  if ((from === "done" || from === "failed") && to === "ready") return "reopen";
  return null;
}

export const ACTION_LABEL = {
  approve: "Approve",
  reject: "Reject",
  start: "Start",
  complete: "Complete",
  fail: "Mark failed",
  reopen: "Reopen",
};

/** Move a task to a status: its action when there is one, else a status change. An illegal move
 * answers 409 `illegal_transition` with `details.allowed`. */
export function moveTask(task, to, reason) {
  const action = actionFor(task.status, to);
  if (action) return taskAction(task.id, action, reason ? { reason } : {});
  return editTask(task.id, reason ? { status: to, reason } : { status: to });
}

export const assignTask = (id, assigneeId) => taskAction(id, "assign", { assignee_id: assigneeId || null });
export const listComments = (id) => get(`/v1/tasks/${encodeURIComponent(id)}/comments`);
export const listHistory = (id) => get(`/v1/tasks/${encodeURIComponent(id)}/history`);
export const addComment = (id, text) => post(`/v1/tasks/${encodeURIComponent(id)}/comments`, { text });

/** Signing out forgets the tasks. */
export function resetTasks() {
  tasks.value = new Map();
}
