// One task: its fields (title, description and priority editable), status with the moves it
// allows, assignee, comments (GET/POST /v1/tasks/{id}/comments) and history, all live.
import { useEffect, useState, useRef } from "../deps.js";
import * as state from "../state.js";
import {
  tasks, fetchTask, editTask, assignTask, listComments, listHistory, addComment, onTaskEvent, STATUS_LABEL, PRIORITIES,
} from "../tasks.js";
import { channelPath, tasksPath } from "../router.js";
import { TaskMoves } from "./board.js";
import { html, Icon, ErrorNote, Markdown, fullTime, shortTime } from "./ui.js";

const who = (actor) => (actor ? state.displayName(actor) : "someone");

function historyLine(entry) {
  switch (entry.kind) {
    case "created":
      return `created it in ${STATUS_LABEL[entry.to_status] || entry.to_status}`;
    case "assigned":
      return entry.details && entry.details.to
        ? `assigned it to ${state.displayName({ kind: "user", id: entry.details.to })}`
        : "unassigned it";
    case "edited":
      return `edited ${Object.keys(entry.details || {}).join(", ")}`;
    case "comment":
      return "commented";
    default:
      return `${entry.kind === "status" ? "moved it" : entry.kind === "approve" ? "approved it" : entry.kind === "reject" ? "rejected it" : entry.kind}: ${STATUS_LABEL[entry.from_status] || entry.from_status} → ${STATUS_LABEL[entry.to_status] || entry.to_status}`;
  }
}

function Edit({ task, onDone }) {
  const [error, setError] = useState(null);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    try {
      await editTask(task.id, { title: String(form.get("title")).trim(), description: String(form.get("description") || "") });
      onDone();
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<form class="form panel" onSubmit=${submit} aria-label="Edit the task">
    <label>Title <input name="title" required maxLength="200" value=${task.title} /></label>
    <label>Description <textarea name="description" rows="5" maxLength="20000" value=${task.description}></textarea></label>
    <${ErrorNote} error=${error} />
    <div class="actions">
      <button type="button" class="secondary" onClick=${onDone}>Cancel</button>
      <button type="submit">Save</button>
    </div>
  </form>`;
}

/** Priority and assignee, saved together (a menu moved with the arrow keys changes nothing
 * until Save). */
function Fields({ task, people, disabled, onSave }) {
  const [priority, setPriority] = useState(task.priority);
  const [assignee, setAssignee] = useState(task.assignee_id || "");
  useEffect(() => setPriority(task.priority), [task.priority]);
  useEffect(() => setAssignee(task.assignee_id || ""), [task.assignee_id]);
  const changed = priority !== task.priority || assignee !== (task.assignee_id || "");
  function save(event) {
    event.preventDefault();
    onSave(async () => {
      if (priority !== task.priority) await editTask(task.id, { priority });
      if (assignee !== (task.assignee_id || "")) await assignTask(task.id, assignee);
    });
  }
  return html`<form class="form inline task-edit" onSubmit=${save}>
    <label>Priority
      <select value=${priority} disabled=${disabled} onChange=${(e) => setPriority(e.currentTarget.value)}>
        ${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}
      </select>
    </label>
    <label>Assignee
      <select value=${assignee} disabled=${disabled} onChange=${(e) => setAssignee(e.currentTarget.value)}>
        <option value="">nobody</option>
        ${people.map((u) => html`<option value=${u.id}>${u.name}${u.kind === "agent" ? " (agent)" : ""}</option>`)}
      </select>
    </label>
    ${!disabled && html`<button type="submit" class="small" disabled=${!changed}>Save</button>`}
  </form>`;
}

export function TaskView({ taskId }) {
  const task = tasks.value.get(taskId);
  const [error, setError] = useState(null);
  const [comments, setComments] = useState(null);
  const [history, setHistory] = useState(null);
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const timer = useRef(null);
  const mayWrite = state.can("tasks:write");
  useEffect(() => {
    let alive = true;
    const load = () =>
      Promise.all([listComments(taskId), listHistory(taskId)]).then(
        ([c, h]) => alive && (setComments(c.comments), setHistory(h.history)),
        (failure) => alive && setError(failure),
      );
    fetchTask(taskId).catch((failure) => alive && setError(failure));
    load();
    const off = onTaskEvent((changed) => {
      if (changed.id !== taskId) return;
      clearTimeout(timer.current);
      timer.current = setTimeout(load, 200);
    });
    return () => ((alive = false), off(), clearTimeout(timer.current));
  }, [taskId]);

  async function comment(event) {
    event.preventDefault();
    if (!text.trim()) return;
    setBusy(true);
    try {
      await addComment(taskId, text.trim());
      setText("");
      const c = await listComments(taskId);
      setComments(c.comments);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }
  async function change(fn) {
    setError(null);
    try {
      await fn();
    } catch (failure) {
      setError(failure);
    }
  }

  if (!task) {
    return html`<section class="view"><${ErrorNote} error=${error} />${!error && html`<p class="meta page-body">Loading the task…</p>`}</section>`;
  }
  const channel = task.channel_id ? state.channels.value.get(task.channel_id) : null;
  const people = [...state.users.value.values()].filter((u) => !u.deactivated);
  return html`<section class="view task-view" aria-labelledby="view-title" data-task-id=${task.id} data-status=${task.status}>
    <header class="view-head">
      <a class="back" href=${tasksPath(task.team_id)} aria-label="Tasks: back to the board"><${Icon} name="back" /><span class="back-label">Tasks</span></a>
      <h1 id="view-title" class="view-title">#${task.number} ${task.title}</h1>
      <span class=${"chip task-status status-" + task.status} data-task-status=${task.status}>${STATUS_LABEL[task.status]}</span>
    </header>
    <div class="page-body">
      <${ErrorNote} error=${error} />
      ${editing
        ? html`<${Edit} task=${task} onDone=${() => setEditing(false)} />`
        : html`<section class="panel">
            ${task.description ? html`<${Markdown} text=${task.description} />` : html`<p class="meta">No description.</p>`}
            ${mayWrite && html`<button type="button" class="small secondary" onClick=${() => setEditing(true)}>Edit</button>`}
          </section>`}
      <section class="panel task-fields" aria-label="Details">
        <${Fields} task=${task} people=${people} disabled=${!mayWrite} onSave=${change} />
        <p class="meta">
          ${channel && html`Card in <a href=${channelPath(channel.id)}>#${channel.name}</a> · `}
          Created ${fullTime(task.created_at)} by ${state.displayName({ kind: "user", id: task.created_by })}
          ${task.approved_by && ` · approved by ${state.displayName({ kind: "user", id: task.approved_by })}`}
          ${task.completed_at && ` · done ${fullTime(task.completed_at)}`}
        </p>
        ${task.last_error && html`<p class="form-error">Last error: ${task.last_error}</p>`}
        <${TaskMoves} task=${task} />
      </section>
      <section class="panel" aria-labelledby="comments-title">
        <h2 id="comments-title">Comments</h2>
        ${comments === null
          ? html`<p class="meta">Loading…</p>`
          : !comments.length
            ? html`<p class="meta">No comments yet.</p>`
            : html`<ul class="plain-list comments">
                ${comments.map(
                  (c) => html`<li key=${c.id} class="comment"><strong>${who(c.actor)}</strong>
                    <time class="meta" datetime=${c.created_at}> ${shortTime(c.created_at)}</time><${Markdown} text=${c.text} /></li>`,
                )}
              </ul>`}
        ${mayWrite &&
        html`<form class="form" onSubmit=${comment}>
          <label>Add a comment <textarea rows="2" value=${text} maxLength="10000" onInput=${(e) => setText(e.currentTarget.value)}></textarea></label>
          <div class="actions"><button type="submit" class="small" disabled=${busy || !text.trim()}>Comment</button></div>
        </form>`}
      </section>
      <section class="panel" aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        ${history &&
        html`<ol class="plain-list history">
          ${history.map(
            (h) => html`<li key=${h.id}><time class="meta" datetime=${h.created_at}>${shortTime(h.created_at)}</time>
              ${" "}<strong>${who(h.actor)}</strong> ${historyLine(h)}${h.text && h.kind !== "comment" ? `: ${h.text}` : ""}</li>`,
          )}
        </ol>`}
      </section>
    </div>
  </section>`;
}
