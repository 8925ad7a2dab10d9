// The blocks people act on: actions (buttons with a style and an optional confirmation, single
// and multiple selects), forms and polls. Each act is one `POST /v1/interactions`
// (interactions.js). Controls that need a scope the person lacks are disabled and say why; a
// decided block shows its decision and offers its controls no more. The server checks
// everything again: its answers (a 400's field paths, a 403, a 409) are shown where they apply.
import { useState, useEffect } from "../deps.js";
import * as state from "../state.js";
import { interact, refusal, fieldErrors, decidedText } from "../interactions.js";
import { ask } from "./dialogs.js";
import { FormAnswers } from "./cardmaker.js";
import { html, Markdown, shortTime, fullTime } from "./ui.js";

const uid = (message, block, part = "") => `c-${message.id}-${block.block_id || "b"}${part ? "-" + part : ""}`.replace(/[^\w-]/g, "_");

/** "at 14:06" today, "on Dec 3, 2026, 14:06" another day. */
function when(iso) {
  const today = new Date(iso).toDateString() === new Date().toDateString();
  return html` <time datetime=${iso} title=${fullTime(iso)}>${today ? "at " + shortTime(iso) : "on " + fullTime(iso)}</time>`;
}

/** A decided block's line, "Approved by Olivia at 14:06", in place of acting on it: the block
 * settles for everyone (message.updated brings it live). */
export function Decided({ decided }) {
  if (!decided) return null;
  return html`<p class="decided" data-decided=${decided.label}>
    <span aria-hidden="true">✓ </span>${decidedText(decided)}${decided.at && when(decided.at)}
  </p>`;
}

function Needs({ id, scope }) {
  return html`<span class="needs meta" id=${id}>Needs the ${scope} permission.</span>`;
}

/** What happened to the last act on a block: sending, sent, or refused (announced politely). */
function Feedback({ feedback }) {
  if (!feedback) return html`<span class="feedback" role="status" aria-live="polite"></span>`;
  if (feedback.error) return html`<span class="feedback error" role="alert">${feedback.error}</span>`;
  return html`<span class="feedback" role="status" aria-live="polite">${feedback.text}</span>`;
}

function useAct(message, block) {
  const [busy, setBusy] = useState(false);
  const [feedback, setFeedback] = useState(null);
  async function act(actionId, values, sentText) {
    setBusy(true);
    setFeedback({ text: "Sending…" });
    try {
      await interact(message, { actionId, blockId: block.block_id, values });
      setFeedback({ text: sentText || "Sent." });
      return true;
    } catch (error) {
      setFeedback({ error: refusal(error) });
      return error;
    } finally {
      setBusy(false);
    }
  }
  return { busy, feedback, setFeedback, act };
}

// --- actions: buttons and selects ---------------------------------------------------------------

function CardButton({ element, message, block, disabled, act }) {
  const allowed = !element.scope || state.can(element.scope);
  const needsId = uid(message, block, element.action_id + "-needs");
  async function click() {
    if (element.confirm) {
      const confirm = element.confirm;
      const yes = await ask({
        title: confirm.title,
        text: confirm.text,
        confirmLabel: confirm.confirm_label || "Confirm",
        denyLabel: confirm.deny_label || "Cancel",
        danger: element.style === "danger",
      });
      if (yes !== true) return;
    }
    await act(element.action_id, undefined, `${element.label}: sent.`);
  }
  return html`<span class="card-control">
    <button type="button" class=${"card-button style-" + (element.style || "default")}
      data-action-id=${element.action_id} disabled=${disabled || !allowed}
      aria-haspopup=${element.confirm ? "dialog" : null}
      aria-describedby=${allowed ? null : needsId} onClick=${click}>${element.label}</button>
    ${!allowed && html`<${Needs} id=${needsId} scope=${element.scope} />`}
  </span>`;
}

function CardSelect({ element, message, block, disabled, act }) {
  const allowed = !element.scope || state.can(element.scope);
  const [chosen, setChosen] = useState(() => element.initial || []);
  const id = uid(message, block, element.action_id);
  const label = element.placeholder || "Choose";
  const off = disabled || !allowed;
  const multiple = element.multiple;
  const low = multiple ? (element.min ?? 1) : 1;
  const high = multiple ? (element.max ?? element.options.length) : 1;
  const labelOf = (value) => (element.options.find((o) => o.value === value) || {}).label || value;
  const send = (event) => {
    event.preventDefault();
    act(element.action_id, chosen, `${label}: ${chosen.map(labelOf).join(", ") || "none"}, sent.`);
  };
  const hint = multiple ? (low === high ? `Choose ${low}.` : `Choose ${low} to ${high}.`) : null;
  if (!multiple) {
    return html`<form class="card-control card-select" data-action-id=${element.action_id} onSubmit=${send}>
      <label for=${id}>${label}</label>
      <select id=${id} disabled=${off} aria-describedby=${allowed ? null : id + "-needs"}
        onChange=${(e) => setChosen(e.currentTarget.value ? [e.currentTarget.value] : [])}>
        <option value="" selected=${!chosen.length}>${label}…</option>
        ${element.options.map((o) => html`<option value=${o.value} selected=${chosen[0] === o.value}>${o.label}</option>`)}
      </select>
      <button type="submit" class="small" disabled=${off || !chosen.length}>Send</button>
      ${!allowed && html`<${Needs} id=${id + "-needs"} scope=${element.scope} />`}
    </form>`;
  }
  const toggle = (value, on) => setChosen((list) => (on ? [...list.filter((v) => v !== value), value] : list.filter((v) => v !== value)));
  return html`<form class="card-control card-select multiple" data-action-id=${element.action_id} onSubmit=${send}>
    <fieldset disabled=${off} aria-describedby=${id + "-hint"}>
      <legend>${label}</legend>
      ${element.options.map(
        (o) => html`<label class="check" key=${o.value}>
          <input type="checkbox" value=${o.value} checked=${chosen.includes(o.value)}
            onChange=${(e) => toggle(o.value, e.currentTarget.checked)} />${o.label}
        </label>`,
      )}
      <span class="meta" id=${id + "-hint"}>${hint}</span>
    </fieldset>
    <button type="submit" class="small" disabled=${off}>Send</button>
    ${!allowed && html`<${Needs} id=${id + "-needs"} scope=${element.scope} />`}
  </form>`;
}

export function ActionsBlock({ block, message, decided }) {
  const { busy, feedback, act } = useAct(message, block);
  if (decided) {
    return html`<div class="block block-actions" data-decided="true"><${Decided} decided=${decided} /></div>`;
  }
  const disabled = busy;
  return html`<div class="block block-actions" role="group" aria-label="Actions" data-decided=${decided ? "true" : "false"}>
    <div class="card-controls">
      ${block.elements.map((element) =>
        element.type === "button"
          ? html`<${CardButton} key=${element.action_id} element=${element} message=${message} block=${block} disabled=${disabled} act=${act} />`
          : html`<${CardSelect} key=${element.action_id} element=${element} message=${message} block=${block} disabled=${disabled} act=${act} />`,
      )}
    </div>
    <${Decided} decided=${decided} />
    ${!decided && html`<${Feedback} feedback=${feedback} />`}
  </div>`;
}

// --- forms ----------------------------------------------------------------------------------------

// What was typed into a form, kept while its row scrolls out of the virtualized list and back.
const drafts = new Map();

function initialValues(block) {
  const values = {};
  for (const field of block.fields) {
    if (field.type === "checkbox") values[field.name] = field.default ?? false;
    else if (field.type === "multiselect") values[field.name] = field.default || [];
    else values[field.name] = field.default === undefined ? "" : String(field.default);
  }
  return values;
}

/** The form's values as the server takes them: an empty answer is left out (docs/cards.md). */
function collect(block, values) {
  const out = {};
  for (const field of block.fields) {
    const value = values[field.name];
    if (field.type === "checkbox") out[field.name] = Boolean(value);
    else if (field.type === "multiselect") out[field.name] = value || [];
    else if (value === "" || value === undefined || value === null) continue;
    else if (field.type === "number") out[field.name] = Number.isFinite(Number(value)) ? Number(value) : value;
    else out[field.name] = value;
  }
  return out;
}

/** The constraint, said in words (the server checks it; this is a hint). */
function hintFor(field) {
  const parts = [];
  if (field.required) parts.push(field.type === "checkbox" ? "Required: tick it" : "Required");
  const { min, max } = field;
  if (field.type === "text" || field.type === "textarea") {
    if (min !== undefined && max !== undefined) parts.push(`${min}–${max} characters`);
    else if (max !== undefined) parts.push(`at most ${max} characters`);
    else if (min !== undefined) parts.push(`at least ${min} characters`);
    if (field.pattern) parts.push(field.pattern_message || `format: ${field.pattern}`);
  } else if (field.type === "number" || field.type === "date") {
    if (min !== undefined && max !== undefined) parts.push(`${min} to ${max}`);
    else if (min !== undefined) parts.push(`from ${min}`);
    else if (max !== undefined) parts.push(`up to ${max}`);
  } else if (field.type === "multiselect") {
    if (min !== undefined && max !== undefined) parts.push(`choose ${min} to ${max}`);
    else if (max !== undefined) parts.push(`choose at most ${max}`);
    else if (min !== undefined) parts.push(`choose at least ${min}`);
  }
  return parts.join(" · ");
}

function FormField({ field, id, value, error, disabled, onValue }) {
  const hint = hintFor(field);
  const describedBy = [hint && id + "-hint", error && id + "-error"].filter(Boolean).join(" ") || null;
  const common = {
    id,
    name: field.name,
    disabled,
    "aria-invalid": error ? "true" : "false",
    "aria-describedby": describedBy,
    "aria-required": field.required ? "true" : null,
  };
  // The constraints as attributes (for assistive technology and the browser's hints), only
  // those the field has: an absent maxLength must not become 0.
  const limits = {};
  const length = field.type === "text" || field.type === "textarea";
  if (field.min !== undefined) limits[length ? "minLength" : "min"] = field.min;
  if (field.max !== undefined) limits[length ? "maxLength" : "max"] = field.max;
  if (field.pattern) limits.pattern = field.pattern;
  if (field.placeholder) limits.placeholder = field.placeholder;
  const text = (e) => onValue(e.currentTarget.value);
  let control;
  if (field.type === "textarea") {
    control = html`<textarea ...${common} ...${limits} rows="3" value=${value} onInput=${text}></textarea>`;
  } else if (field.type === "text") {
    control = html`<input ...${common} ...${limits} type="text" value=${value} autocomplete="off" onInput=${text} />`;
  } else if (field.type === "number") {
    control = html`<input ...${common} ...${limits} type="number" step="any" value=${value} onInput=${text} />`;
  } else if (field.type === "date") {
    control = html`<input ...${common} ...${limits} type="date" value=${value} onInput=${text} />`;
  } else if (field.type === "select") {
    control = html`<select ...${common} onChange=${text}>
      <option value="" selected=${!value}>${field.placeholder || "—"}</option>
      ${field.options.map((o) => html`<option value=${o.value} selected=${value === o.value}>${o.label}</option>`)}
    </select>`;
  } else if (field.type === "checkbox") {
    return html`<div class=${"form-field checkbox" + (error ? " invalid" : "")} data-field=${field.name}>
      <label class="check"><input ...${common} type="checkbox" checked=${Boolean(value)}
        onChange=${(e) => onValue(e.currentTarget.checked)} />${field.label}</label>
      ${hint && html`<small id=${id + "-hint"}>${hint}</small>`}
      ${error && html`<p class="field-error" id=${id + "-error"}>${error}</p>`}
    </div>`;
  } else if (field.type === "multiselect") {
    const list = value || [];
    return html`<fieldset class=${"form-field multiselect" + (error ? " invalid" : "")} data-field=${field.name}
      disabled=${disabled} aria-describedby=${describedBy} aria-invalid=${error ? "true" : "false"}>
      <legend>${field.label}</legend>
      ${field.options.map(
        (o) => html`<label class="check" key=${o.value}><input type="checkbox" name=${field.name} value=${o.value}
          checked=${list.includes(o.value)}
          onChange=${(e) => onValue(e.currentTarget.checked ? [...list, o.value] : list.filter((v) => v !== o.value))} />${o.label}</label>`,
      )}
      ${hint && html`<small id=${id + "-hint"}>${hint}</small>`}
      ${error && html`<p class="field-error" id=${id + "-error"}>${error}</p>`}
    </fieldset>`;
  }
  return html`<div class=${"form-field" + (error ? " invalid" : "")} data-field=${field.name}>
    <label for=${id}>${field.label}${field.required && html`<span aria-hidden="true"> *</span>`}</label>
    ${control}
    ${hint && html`<small id=${id + "-hint"}>${hint}</small>`}
    ${error && html`<p class="field-error" id=${id + "-error"}>${error}</p>`}
  </div>`;
}

export function FormBlock({ block, message, decided }) {
  const key = `${message.id}|${block.block_id}`;
  const [values, setValues] = useState(() => drafts.get(key) || initialValues(block));
  const [errors, setErrors] = useState({});
  const { busy, feedback, setFeedback, act } = useAct(message, block);
  const allowed = !block.scope || state.can(block.scope);
  const disabled = busy || Boolean(decided) || !allowed;
  const base = uid(message, block);
  function setValue(name, value) {
    setValues((current) => {
      const next = { ...current, [name]: value };
      drafts.set(key, next);
      return next;
    });
    if (errors[name]) setErrors((current) => ({ ...current, [name]: null }));
  }
  if (decided) {
    return html`<div class="block block-form" data-decided="true"><${Decided} decided=${decided} /></div>`;
  }
  async function submit(event) {
    event.preventDefault();
    setErrors({});
    const result = await act(block.action_id, collect(block, values), "Submitted.");
    if (result === true) {
      drafts.delete(key);
      return;
    }
    if (result && result.code === "invalid_values") {
      const found = fieldErrors(result);
      setErrors(found);
      setFeedback({ error: found._ || "Some answers need another look." });
      const first = block.fields.find((f) => found[f.name]);
      const el = first && document.getElementById(`${base}-${first.name}`);
      if (el && el.focus) el.focus();
    }
  }
  return html`<form class="block block-form" noValidate onSubmit=${submit} data-decided=${decided ? "true" : "false"}>
    ${block.fields.map(
      (field) => html`<${FormField} key=${field.name} field=${field} id=${`${base}-${field.name}`} value=${values[field.name]}
        error=${errors[field.name]} disabled=${disabled} onValue=${(value) => setValue(field.name, value)} />`,
    )}
    <div class="form-foot">
      <button type="submit" disabled=${disabled} aria-describedby=${allowed ? null : base + "-needs"}>${block.submit_label || "Submit"}</button>
      ${!allowed && html`<${Needs} id=${base + "-needs"} scope=${block.scope} />`}
      <${FormAnswers} message=${message} block=${block} />
      ${!decided && html`<${Feedback} feedback=${feedback} />`}
    </div>
    <${Decided} decided=${decided} />
  </form>`;
}

// --- polls ----------------------------------------------------------------------------------------

// Votes cast on anonymous polls, by this browser: nobody else can say which was yours.
const VOTES = "spacechat:votes:v1";
function rememberedVote(key) {
  try {
    return (JSON.parse(localStorage.getItem(VOTES) || "{}") || {})[key] || null;
  } catch {
    return null;
  }
}
function rememberVote(key, values) {
  try {
    const all = JSON.parse(localStorage.getItem(VOTES) || "{}") || {};
    all[key] = values;
    localStorage.setItem(VOTES, JSON.stringify(all));
  } catch {
    // storage disabled: the highlight lasts until the page reloads
  }
}

/** My vote: from the voters the server lists (by name), or, for an anonymous poll, what this
 * browser remembers casting. */
function myVote(block, poll, key) {
  const me = state.me.value;
  if (poll && poll.voters && me) {
    const mine = block.options.map((o) => o.value).filter((v) => (poll.voters[v] || []).includes(me.user.name));
    if (mine.length) return mine;
  }
  return rememberedVote(key) || [];
}

export function PollBlock({ block, message, poll, decided }) {
  const key = `${message.id}|${block.block_id}`;
  const mine = myVote(block, poll, key);
  const [chosen, setChosen] = useState(mine);
  const [, tick] = useState(0);
  const { busy, feedback, act } = useAct(message, block);
  const closesAt = block.closes_at ? Date.parse(block.closes_at) : null;
  const closed = Boolean((poll && poll.closed) || (closesAt !== null && closesAt <= Date.now()));
  const mineKey = mine.join("\u0000");
  useEffect(() => setChosen(mine), [mineKey]);
  useEffect(() => {
    // Close the poll on screen when its time comes.
    if (closesAt === null || closed) return;
    const wait = closesAt - Date.now();
    if (wait > 2 ** 31 - 1) return;
    const timer = setTimeout(() => tick((n) => n + 1), wait + 50);
    return () => clearTimeout(timer);
  }, [closesAt, closed]);
  const tallies = (poll && poll.tallies) || {};
  const total = block.options.reduce((sum, o) => sum + (tallies[o.value] || 0), 0);
  const base = uid(message, block);
  const multiple = block.multiple;
  const disabled = busy || closed || Boolean(decided);
  const changed = chosen.length > 0 && chosen.slice().sort().join("\u0000") !== mine.slice().sort().join("\u0000");
  async function vote(event) {
    event.preventDefault();
    const values = chosen.slice();
    const result = await act("vote", values, "Your vote is in.");
    if (result === true) rememberVote(key, values);
  }
  const pick = (value, on) =>
    setChosen((list) => (multiple ? (on ? [...list.filter((v) => v !== value), value] : list.filter((v) => v !== value)) : [value]));
  return html`<form class="block block-poll" onSubmit=${vote} data-closed=${closed ? "true" : "false"}>
    <fieldset role=${multiple ? "group" : "radiogroup"} aria-labelledby=${base + "-q"} disabled=${disabled}
      aria-describedby=${base + "-state"}>
      <legend id=${base + "-q"} class="poll-question"><${Markdown} text=${block.question} /></legend>
      ${block.options.map((option) => {
        const count = tallies[option.value] || 0;
        const share = total ? Math.round((count / total) * 100) : 0;
        const isMine = mine.includes(option.value);
        const voters = poll && poll.voters ? poll.voters[option.value] || [] : null;
        return html`<label class=${"poll-option" + (isMine ? " mine" : "")} key=${option.value} data-value=${option.value}
          data-count=${count} title=${voters && voters.length ? voters.join(", ") : null}>
          <input type=${multiple ? "checkbox" : "radio"} name=${base + "-choice"} value=${option.value}
            checked=${chosen.includes(option.value)} onChange=${(e) => pick(option.value, e.currentTarget.checked)} />
          <span class="poll-label">${option.label}${isMine && html`<span class="your-vote"> (your vote)</span>`}</span>
          <span class="poll-tally" data-tally=${count}>${count} ${count === 1 ? "vote" : "votes"}${total ? ` · ${share}%` : ""}</span>
          <span class="poll-bar" aria-hidden="true"><span class="poll-fill" style=${{ width: share + "%" }}></span></span>
        </label>`;
      })}
    </fieldset>
    <div class="form-foot">
      <button type="submit" class="small" disabled=${disabled || !changed}>${mine.length ? "Change vote" : "Vote"}</button>
      <span class="meta" id=${base + "-state"}>
        ${closed ? "Closed." : closesAt ? `Open until ${new Date(closesAt).toLocaleString()}.` : "Open."}
        ${" "}${total} ${total === 1 ? "vote" : "votes"}${block.anonymous ? " · anonymous" : ""}
      </span>
      ${!decided && html`<${Feedback} feedback=${feedback} />`}
    </div>
    <${Decided} decided=${decided} />
  </form>`;
}
