// Cards: a message's `blocks` (docs/cards.md, schema version 1). The blocks that show things are
// here (section, fields, context, divider, image, status, tool_run, task); the ones people act
// on (actions, form, poll) are in cardinputs.js. Markdown goes through the same sanitizer as
// messages; labels are always text nodes.
import { useEffect, useState } from "../deps.js";
import * as state from "../state.js";
import { tasks, fetchTask, STATUS_LABEL } from "../tasks.js";
import { taskPath } from "../router.js";
import { ActionsBlock, FormBlock, PollBlock } from "./cardinputs.js";
import { html, Markdown } from "./ui.js";

const STATE_LABEL = { ok: "OK", warning: "Warning", error: "Error", info: "Info", running: "Running" };

function StatusBlock({ block }) {
  return html`<div class="block block-status" data-state=${block.state}>
    <span class=${"status-chip state-" + block.state}>
      <span class="status-dot" aria-hidden="true"></span>
      <span class="sr-only">${STATE_LABEL[block.state] || block.state}: </span>${block.label}
    </span>
    <${Markdown} text=${block.detail} className="status-detail" />
  </div>`;
}

const OUTCOME_LABEL = { running: "running", succeeded: "succeeded", failed: "failed", denied: "denied", skipped: "skipped" };

function duration(ms) {
  if (ms === undefined || ms === null) return "";
  if (ms < 1000) return `${ms} ms`;
  return ms < 10_000 ? `${Math.round(ms / 100) / 10} s` : `${Math.round(ms / 1000)} s`;
}

function ToolRunBlock({ block }) {
  return html`<div class="block block-tool" data-outcome=${block.outcome}>
    <div class="tool-head">
      <span class="tool-name">${block.tool}</span>
      <span class=${"chip outcome-" + block.outcome} data-outcome=${block.outcome}>${OUTCOME_LABEL[block.outcome] || block.outcome}</span>
      ${block.duration_ms !== undefined && html`<span class="meta">${duration(block.duration_ms)}</span>`}
    </div>
    ${block.arguments_summary && html`<code class="tool-args">${block.arguments_summary}</code>`}
    <${Markdown} text=${block.detail} className="tool-detail" />
  </div>`;
}

function FieldsBlock({ block }) {
  return html`<dl class="block block-fields">
    ${block.fields.map(
      (field, i) => html`<div class="field" key=${i}>
        <dt>${field.label}</dt>
        <dd><${Markdown} text=${field.value} inline=${false} /></dd>
      </div>`,
    )}
  </dl>`;
}

function ContextBlock({ block }) {
  return html`<div class="block block-context">
    ${block.elements.map((text, i) => html`<${Markdown} key=${i} text=${text} className="context-item" />`)}
  </div>`;
}

const ATTACHMENT = /^\/v1\/attachments\/[A-Za-z0-9_-]+$/;

function ImageBlock({ block }) {
  // Attachments are ours and show inline; the CSP allows no other origin's pictures, so an
  // https image is a link to it (as Markdown images are).
  if (ATTACHMENT.test(block.url)) {
    return html`<figure class="block block-image">
      <a href=${block.url} target="_blank" rel="noopener noreferrer">
        <img src=${block.url} alt=${block.alt_text} loading="lazy" decoding="async" />
      </a>
      ${block.title && html`<figcaption>${block.title}</figcaption>`}
    </figure>`;
  }
  const safe = /^https:\/\//i.test(block.url) ? block.url : null;
  return html`<figure class="block block-image external">
    ${safe
      ? html`<a href=${safe} target="_blank" rel="noopener noreferrer">${block.title || block.alt_text}</a>`
      : html`<span>${block.title || block.alt_text}</span>`}
    <figcaption class="meta">Image: ${block.alt_text}</figcaption>
  </figure>`;
}

const PRIORITY_LABEL = { critical: "Critical", high: "High", medium: "Medium", low: "Low" };

/** A task shown live: the freshest copy this page has (task events keep it current), else the
 * card's snapshot, else it is fetched. */
function TaskBlock({ block, snapshot }) {
  const live = tasks.value.get(block.task_id);
  const [missing, setMissing] = useState(false);
  const mayRead = state.can("tasks:read");
  useEffect(() => {
    if (!live && mayRead) fetchTask(block.task_id).catch(() => setMissing(true));
  }, [block.task_id]);
  const task = live || snapshot;
  if (!task) {
    return html`<div class="block block-task" data-task-id=${block.task_id}>
      <span class="meta">${missing || !mayRead ? "This task is not available to you." : "Loading the task…"}</span>
    </div>`;
  }
  const assignee = task.assignee_id ? state.displayName({ kind: "user", id: task.assignee_id }) : "unassigned";
  return html`<div class="block block-task" data-task-id=${block.task_id} data-status=${task.status}>
    <div class="task-line">
      <a class="task-title" href=${taskPath(block.task_id)}>#${task.number} ${task.title}</a>
      <span class=${"chip task-status status-" + task.status} data-task-status=${task.status}>${STATUS_LABEL[task.status] || task.status}</span>
    </div>
    <div class="task-meta meta">
      <span>Priority: ${PRIORITY_LABEL[task.priority] || task.priority}</span>
      <span>Assignee: ${assignee}</span>
    </div>
  </div>`;
}

function Block({ block, message, cardState }) {
  const decided = block.block_id ? (cardState.decided || {})[block.block_id] : null;
  switch (block.type) {
    case "section":
      return html`<${Markdown} text=${block.text} className="block block-section" />`;
    case "fields":
      return html`<${FieldsBlock} block=${block} />`;
    case "context":
      return html`<${ContextBlock} block=${block} />`;
    case "divider":
      return html`<hr class="block block-divider" />`;
    case "image":
      return html`<${ImageBlock} block=${block} />`;
    case "status":
      return html`<${StatusBlock} block=${block} />`;
    case "tool_run":
      return html`<${ToolRunBlock} block=${block} />`;
    case "task":
      return html`<${TaskBlock} block=${block} snapshot=${(cardState.tasks || {})[block.task_id]} />`;
    case "actions":
      return html`<${ActionsBlock} block=${block} message=${message} decided=${decided} />`;
    case "form":
      return html`<${FormBlock} block=${block} message=${message} decided=${decided} />`;
    case "poll":
      return html`<${PollBlock} block=${block} message=${message} decided=${decided}
        poll=${(cardState.polls || {})[block.block_id]} />`;
    default:
      // A newer block type than this UI knows (the schema grows additively): say so, quietly.
      return html`<p class="block meta">(${block.type}: not shown in this version)</p>`;
  }
}

/** A message's card. */
export function Blocks({ message }) {
  const blocks = message.blocks;
  if (!Array.isArray(blocks) || !blocks.length) return null;
  const cardState = message.card_state || {};
  return html`<div class="blocks" data-blocks=${blocks.length}>
    ${blocks.map(
      (block, i) =>
        html`<div class="block-wrap" key=${block.block_id || i} data-block-type=${block.type} data-block-id=${block.block_id || null}>
          <${Block} block=${block} message=${message} cardState=${cardState} />
        </div>`,
    )}
  </div>`;
}
