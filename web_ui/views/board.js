// A team's task board (GET /v1/tasks?team_id=): a column per status, cards with number, title,
// priority and assignee, live from `task.*` events. A card offers only the moves its status
// allows and the person may make (Approve and Reject need tasks:approve): its first moves as
// buttons, all of them under "Move to"; dragging it shows which columns take it, and a drop on
// another says where it can go. On a phone the columns stack, and an empty one is a single line.
// New tasks are created here.
import { useEffect, useState, signal } from "../deps.js";
import * as state from "../state.js";
import {
  tasks, loadTasks, createTask, moveTask, actionFor, STATUSES, STATUS_LABEL, PRIORITIES, ACTION_LABEL,
} from "../tasks.js";
import { navigate, taskPath, tasksPath } from "../router.js";
import { html, ErrorNote } from "./ui.js";

const APPROVAL = new Set(["approve", "reject"]);

export function moveLabel(from, to) {
  const action = actionFor(from, to);
  return action ? ACTION_LABEL[action] : `To ${STATUS_LABEL[to].toLowerCase()}`;
}

/** The moves a task offers to this person: its status's allowed moves, without approving or
 * rejecting for those who may not. */
export function offeredMoves(task) {
  const mayApprove = state.can("tasks:approve");
  return task.allowed_transitions.filter((to) => mayApprove || !APPROVAL.has(actionFor(task.status, to)));
}

function cannotMove(task, to, allowed) {
  const from = STATUS_LABEL[task.status] || task.status;
  const where = allowed.length ? `It can move to: ${allowed.map((s) => STATUS_LABEL[s] || s).join(", ")}.` : "It cannot move now.";
  return `#${task.number} cannot move from ${from} to ${STATUS_LABEL[to] || to}. ${where}`;
}

/** What to say about a refused move: an illegal one names where the task can go. */
export function moveRefusal(task, to, error) {
  const details = error.details || {};
  if (error.code === "illegal_transition" && Array.isArray(details.allowed)) {
    return cannotMove({ ...task, status: details.status }, to, details.allowed);
  }
  if (error.status === 403 && details.scope) return `You need the ${details.scope} permission for this.`;
  return error.message;
}

/** After a move the pressed control is gone (the card went to another column, or the task page
 * offers other moves): the focus goes to the card at its new place (its title link), or on the
 * task's page to its first move, instead of falling to <body>. Re-renders may follow (the
 * server's answer, then the task.* event), so it is watched for a few frames. */
function keepFocusOnTask(taskId, frames = 30) {
  if (frames <= 0) return;
  const active = document.activeElement;
  if (!active || active === document.body || !active.isConnected) {
    const id = CSS.escape(taskId);
    const target =
      document.querySelector(`li.task-card[data-task-id="${id}"] .task-title`) ||
      document.querySelector(`.task-view[data-task-id="${id}"] .task-moves button:not([disabled]), .task-view[data-task-id="${id}"] .task-moves select`);
    if (target) target.focus();
  }
  requestAnimationFrame(() => keepFocusOnTask(taskId, frames - 1));
}

/** The moves a task allows now: as buttons (on the board, the first two), and under "Move to". */
export function TaskMoves({ task, compact = false }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [target, setTarget] = useState("");
  const mayWrite = state.can("tasks:write");
  if (!mayWrite) return null;
  async function move(to, event) {
    const focused = event && event.currentTarget.closest(".task-moves").contains(document.activeElement);
    setBusy(true);
    setError(null);
    try {
      await moveTask(task, to);
      state.announce(`#${task.number} is now ${STATUS_LABEL[to]}`);
      setTarget("");
    } catch (failure) {
      setError(moveRefusal(task, to, failure));
    } finally {
      setBusy(false);
      if (focused) keepFocusOnTask(task.id);
    }
  }
  const moves = offeredMoves(task);
  const buttons = compact ? moves.slice(0, 2) : moves;
  const id = `move-${task.id}`;
  if (!moves.length) return null;
  return html`<div class="task-moves">
    <div class="row-actions" role="group" aria-label=${`Move #${task.number}`}>
      ${buttons.map(
        (to) => html`<button type="button" class=${"small" + (actionFor(task.status, to) === "reject" ? " danger" : to === "backlog" ? " secondary" : "")}
          key=${to} disabled=${busy} data-move=${to} onClick=${(e) => move(to, e)}>${moveLabel(task.status, to)}</button>`,
      )}
    </div>
    <form class="move-to" onSubmit=${(e) => (e.preventDefault(), target && move(target, e))}>
      <label for=${id} class=${compact ? "sr-only" : ""}>Move to</label>
      <select id=${id} value=${target} disabled=${busy} onChange=${(e) => setTarget(e.currentTarget.value)}>
        <option value="">Move to…</option>
        ${moves.map((s) => html`<option value=${s}>${STATUS_LABEL[s]}</option>`)}
      </select>
      <button type="submit" class="small secondary" disabled=${busy || !target}>Move</button>
    </form>
    ${error && html`<p class="form-error move-error" role="alert">${error}</p>`}
  </div>`;
}

const dragging = signal(null); // the task being dragged: the columns that take it say so

function TaskCard({ task }) {
  const assignee = task.assignee_id ? state.displayName({ kind: "user", id: task.assignee_id }) : null;
  function start(e) {
    e.dataTransfer.setData("text/plain", task.id);
    e.dataTransfer.effectAllowed = "move";
    dragging.value = task;
  }
  return html`<li class="task-card" data-task-id=${task.id} data-status=${task.status} draggable="true"
    onDragStart=${start} onDragEnd=${() => (dragging.value = null)}>
    <a class="task-title" href=${taskPath(task.id)}>#${task.number} ${task.title}</a>
    <div class="task-meta meta">
      <span class=${"chip priority " + task.priority}>${task.priority}</span>
      <span>${assignee ? `Assignee: ${assignee}` : "Unassigned"}</span>
    </div>
    <${TaskMoves} task=${task} compact=${true} />
  </li>`;
}

function Column({ status, list, onDrop }) {
  const [over, setOver] = useState(false);
  const id = `col-${status}`;
  const moving = dragging.value;
  const takes = moving && moving.status !== status && offeredMoves(moving).includes(status);
  const names = "board-column" + (over ? " over" : "") + (takes ? " takes" : "") + (list.length ? "" : " empty");
  return html`<section class=${names} aria-labelledby=${id} data-column=${status}
    onDragOver=${(e) => (e.preventDefault(), setOver(true))} onDragLeave=${() => setOver(false)}
    onDrop=${(e) => {
      e.preventDefault();
      setOver(false);
      onDrop(e.dataTransfer.getData("text/plain"), status);
    }}>
    <h2 id=${id}>${STATUS_LABEL[status]} <span class="meta">(${list.length})</span></h2>
    <ul class="task-list">${list.map((task) => html`<${TaskCard} key=${task.id} task=${task} />`)}</ul>
  </section>`;
}

function CreateTask({ teamId, onDone }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const channels = state.channelList.value.filter((c) => c.team_id === teamId);
  const people = [...state.users.value.values()].filter((u) => !u.deactivated);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = {
      title: String(form.get("title") || "").trim(),
      description: String(form.get("description") || ""),
      priority: String(form.get("priority")),
      status: String(form.get("status")),
      team_id: teamId,
    };
    if (form.get("channel_id")) body.channel_id = String(form.get("channel_id"));
    if (form.get("assignee_id")) body.assignee_id = String(form.get("assignee_id"));
    setBusy(true);
    setError(null);
    try {
      const task = await createTask(body);
      state.announce(`Task #${task.number} created`);
      onDone(task);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }
  return html`<form class="form panel create-task" onSubmit=${submit} aria-label="New task">
    <label>Title <input name="title" required maxLength="200" autocomplete="off" /></label>
    <label>Description <textarea name="description" rows="3" maxLength="20000"></textarea></label>
    <div class="form inline">
      <label>Priority <select name="priority">${PRIORITIES.map((p) => html`<option value=${p} selected=${p === "medium"}>${p}</option>`)}</select></label>
      <label>Status
        <select name="status">
          <option value="backlog">Backlog</option>
          <option value="pending_approval">Pending approval</option>
          <option value="ready">Ready</option>
        </select>
      </label>
      <label>Card in
        <select name="channel_id"><option value="">no channel</option>${channels.map((c) => html`<option value=${c.id}>#${c.name}</option>`)}</select>
      </label>
      <label>Assignee
        <select name="assignee_id"><option value="">nobody</option>${people.map((u) => html`<option value=${u.id}>${u.name}</option>`)}</select>
      </label>
    </div>
    <${ErrorNote} error=${error} />
    <div class="actions">
      <button type="button" class="secondary" onClick=${() => onDone(null)}>Cancel</button>
      <button type="submit" disabled=${busy}>Create task</button>
    </div>
  </form>`;
}

export function BoardView({ teamId }) {
  const teams = state.teams.value;
  const team = teams.find((t) => t.id === teamId) || teams[0];
  const [error, setError] = useState(null);
  const [loaded, setLoaded] = useState(false);
  const [creating, setCreating] = useState(false);
  const [dropError, setDropError] = useState(null);
  const allowed = state.can("tasks:read");
  useEffect(() => {
    if (!team || !allowed) return;
    setLoaded(false);
    loadTasks(team.id).then(() => (setLoaded(true), setError(null)), setError);
  }, [team && team.id]);
  if (!allowed) return html`<section class="view"><p class="empty">You need the tasks:read permission to see tasks.</p></section>`;
  if (!team) return html`<section class="view"><p class="empty">No team yet.</p></section>`;
  const mine = [...tasks.value.values()].filter((t) => t.team_id === team.id).sort((a, b) => b.number - a.number);
  async function dropped(id, status) {
    const task = tasks.value.get(id);
    dragging.value = null;
    if (!task || task.status === status) return;
    setDropError(null);
    const allowed = offeredMoves(task);
    if (!allowed.includes(status)) {
      setDropError(cannotMove(task, status, allowed)); // said at once, nothing sent
      return;
    }
    try {
      await moveTask(task, status);
    } catch (failure) {
      setDropError(moveRefusal(task, status, failure));
    }
  }
  return html`<section class="view board-view" aria-labelledby="view-title">
    <header class="view-head">
      <h1 id="view-title" class="view-title">Tasks · ${team.name}</h1>
      ${teams.length > 1 &&
      html`<label class="inline-select">Team
        <select value=${team.id} onChange=${(e) => navigate(tasksPath(e.currentTarget.value))}>
          ${teams.map((t) => html`<option value=${t.id}>${t.name}</option>`)}
        </select>
      </label>`}
      ${state.can("tasks:write") &&
      html`<button type="button" class="small" aria-expanded=${creating ? "true" : "false"} onClick=${() => setCreating(!creating)}>New task</button>`}
    </header>
    <div class="page-body">
      ${creating && html`<${CreateTask} teamId=${team.id} onDone=${() => setCreating(false)} />`}
      <${ErrorNote} error=${error} onRetry=${() => loadTasks(team.id).then(() => setLoaded(true), setError)} />
      ${dropError && html`<p class="form-error" role="alert">${dropError}</p>`}
      ${!loaded && !error && html`<p class="meta">Loading…</p>`}
      <div class="board" data-loaded=${loaded ? "true" : "false"}>
        ${STATUSES.map((status) => html`<${Column} key=${status} status=${status} list=${mine.filter((t) => t.status === status)} onDrop=${dropped} />`)}
      </div>
    </div>
  </section>`;
}
