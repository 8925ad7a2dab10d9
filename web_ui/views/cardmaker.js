// Making a poll or a form from the message box (issue 13), and a form's answers for the person
// who posted it. A poll or a form is a card (docs/cards.md) posted like any message; the server
// checks it as it checks an agent's.
import { useState, useRef, useEffect, signal } from "../deps.js";
import { get, postOnce } from "../api.js";
import * as state from "../state.js";
import { html, Icon, ErrorNote, fullTime } from "./ui.js";

const FIELD_TYPES = [
  ["text", "Short answer"],
  ["textarea", "Paragraph"],
  ["number", "Number"],
  ["date", "Date"],
  ["checkbox", "Tick box"],
  ["select", "Choice"],
];

const lines = (text) => [...new Set(text.split("\n").map((l) => l.trim()).filter(Boolean))];
const options = (text) => lines(text).map((label, i) => ({ label: label.slice(0, 75), value: `o${i + 1}` }));

export function pollCard({ question, choices, multiple, anonymous }) {
  return [{ type: "poll", block_id: "poll", question, options: options(choices), multiple, anonymous }];
}

export function formCard({ title, fields, submit }) {
  const built = fields.map((field, i) => {
    const out = { type: field.type, name: `q${i + 1}`, label: field.label.trim(), required: field.type !== "checkbox" && field.required };
    if (field.type === "select") out.options = options(field.choices);
    return out;
  });
  return [
    { type: "section", text: title },
    { type: "form", block_id: "form", action_id: "submit", submit_label: submit || "Submit", fields: built },
  ];
}

const blankField = () => ({ label: "", type: "text", required: false, choices: "" });

function FieldRow({ field, index, onChange, onRemove }) {
  const id = `field-${index}`;
  return html`<fieldset class="maker-field" data-field=${index}>
    <legend>Question ${index + 1}</legend>
    <label for=${id + "-label"}>Question</label>
    <input id=${id + "-label"} required maxLength="200" value=${field.label} onInput=${(e) => onChange({ label: e.currentTarget.value })} />
    <label for=${id + "-type"}>Answer</label>
    <select id=${id + "-type"} value=${field.type} onChange=${(e) => onChange({ type: e.currentTarget.value })}>
      ${FIELD_TYPES.map(([value, label]) => html`<option value=${value} selected=${value === field.type}>${label}</option>`)}
    </select>
    ${field.type === "select" &&
    html`<label for=${id + "-choices"}>Choices, one per line</label>
      <textarea id=${id + "-choices"} rows="3" required value=${field.choices} onInput=${(e) => onChange({ choices: e.currentTarget.value })}></textarea>`}
    ${field.type !== "checkbox" &&
    html`<label class="check"><input type="checkbox" checked=${field.required} onChange=${(e) => onChange({ required: e.currentTarget.checked })} />Required</label>`}
    ${onRemove && html`<button type="button" class="small secondary" onClick=${onRemove}>Remove question ${index + 1}</button>`}
  </fieldset>`;
}

/** The dialog: a poll or a form, then Post. */
function Maker({ channelId, threadId, onClose }) {
  const ref = useRef(null);
  const [kind, setKind] = useState("poll");
  const [fields, setFields] = useState([blankField()]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog && dialog.open && dialog.close();
  }, []);
  async function submit(event) {
    event.preventDefault();
    const form = Object.fromEntries(new FormData(event.currentTarget));
    let body;
    if (kind === "poll") {
      if (lines(form.choices || "").length < 2) return setError(new Error("A poll needs at least two choices."));
      body = { text: form.question, blocks: pollCard({ question: form.question, choices: form.choices, multiple: Boolean(form.multiple), anonymous: Boolean(form.anonymous) }) };
    } else {
      if (fields.some((f) => f.type === "select" && !lines(f.choices).length)) return setError(new Error("A choice question needs its choices."));
      body = { text: form.title, blocks: formCard({ title: form.title, fields, submit: form.submit }) };
    }
    const path = threadId ? `/v1/threads/${encodeURIComponent(threadId)}/messages` : `/v1/channels/${encodeURIComponent(channelId)}/messages`;
    setBusy(true);
    setError(null);
    try {
      await postOnce(path, body);
      state.announce(kind === "poll" ? "Poll posted" : "Form posted");
      onClose();
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  }
  const change = (index, patch) => setFields((list) => list.map((f, i) => (i === index ? { ...f, ...patch } : f)));
  return html`<dialog ref=${ref} class="dialog maker" aria-labelledby="maker-title" onClose=${onClose}>
    <h2 id="maker-title">New poll or form</h2>
    <form class="form" onSubmit=${submit}>
      <div role="radiogroup" aria-label="What to make" class="maker-kind">
        <label class="check"><input type="radio" name="kind" value="poll" checked=${kind === "poll"} onChange=${() => setKind("poll")} />Poll</label>
        <label class="check"><input type="radio" name="kind" value="form" checked=${kind === "form"} onChange=${() => setKind("form")} />Form</label>
      </div>
      ${kind === "poll"
        ? html`<label>Question <input name="question" required maxLength="300" /></label>
            <label>Choices, one per line <textarea name="choices" rows="4" required></textarea></label>
            <label class="check"><input type="checkbox" name="multiple" />People may choose more than one</label>
            <label class="check"><input type="checkbox" name="anonymous" />Anonymous: nobody sees who chose what</label>`
        : html`<label>Title <input name="title" required maxLength="300" /></label>
            ${fields.map((field, i) => html`<${FieldRow} key=${i} field=${field} index=${i} onChange=${(p) => change(i, p)}
              onRemove=${fields.length > 1 ? () => setFields((list) => list.filter((_, j) => j !== i)) : null} />`)}
            ${fields.length < 25 && html`<button type="button" class="small secondary" onClick=${() => setFields((list) => [...list, blankField()])}>Add a question</button>`}
            <label>Button <input name="submit" maxLength="40" placeholder="Submit" /></label>`}
      <${ErrorNote} error=${error} />
      <div class="actions">
        <button type="button" class="secondary" onClick=${onClose}>Cancel</button>
        <button type="submit" disabled=${busy}>Post</button>
      </div>
    </form>
  </dialog>`;
}

const making = signal(null); // {channelId, threadId, opener} while the dialog is open

/** The message box's button for it. */
export function CardMakerButton({ channelId, threadId }) {
  const open = (event) => (making.value = { channelId, threadId, opener: event.currentTarget });
  return html`<button type="button" class="icon-button" aria-label="New poll or form" aria-haspopup="dialog"
    onClick=${open}><${Icon} name="poll" /></button>`;
}

/** The dialog, rendered next to (not inside) the message box's form: forms do not nest. */
export function CardMakerDialog() {
  const now = making.value;
  if (!now) return null;
  function close() {
    making.value = null;
    requestAnimationFrame(() => now.opener && now.opener.isConnected && now.opener.focus());
  }
  return html`<${Maker} channelId=${now.channelId} threadId=${now.threadId} onClose=${close} />`;
}

// --- a form's answers, for its poster --------------------------------------------------------

function Answers({ message, onClose }) {
  const ref = useRef(null);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    get(`/v1/messages/${encodeURIComponent(message.id)}/responses`).then(setData, setError);
    return () => dialog && dialog.open && dialog.close();
  }, []);
  const form = data && data.forms[0];
  const label = (field, value) => ((field.options || []).find((o) => o.value === value) || {}).label ?? value;
  const cell = (field, value) =>
    Array.isArray(value) ? value.map((v) => label(field, v)).join(", ") : value === true ? "yes" : value === false ? "no" : label(field, value ?? "");
  return html`<dialog ref=${ref} class="dialog answers" aria-labelledby="answers-title" onClose=${onClose}>
    <h2 id="answers-title">Answers</h2>
    <${ErrorNote} error=${error} />
    ${form &&
    html`<p class="meta">${form.responses.length} ${form.responses.length === 1 ? "answer" : "answers"}</p>
      <div class="table-wrap"><table class="data-table">
        <thead><tr><th scope="col">Who</th><th scope="col">When</th>${form.fields.map((f) => html`<th scope="col">${f.label}</th>`)}</tr></thead>
        <tbody>${form.responses.map(
          (r) => html`<tr key=${r.id}><th scope="row">${r.user.name || state.displayName(r.user)}</th><td>${fullTime(r.created_at)}</td>
            ${form.fields.map((f) => html`<td>${cell(f, r.values[f.name])}</td>`)}</tr>`,
        )}</tbody>
      </table></div>
      <a class="button-link" href=${`/v1/messages/${encodeURIComponent(message.id)}/responses?format=csv`} download>Download CSV</a>`}
    <div class="actions"><button type="button" class="secondary" onClick=${onClose}>Close</button></div>
  </dialog>`;
}

/** Under a form its poster (or an admin) sees how many answered, and opens the answers. */
export function FormAnswers({ message, block }) {
  const [open, setOpen] = useState(false);
  const mine = message.author && message.author.id === state.myId();
  if (!mine && !state.can("channels:manage")) return null;
  const count = (((message.card_state || {}).forms || {})[block.block_id] || {}).responses || 0;
  return html`<button type="button" class="small secondary" aria-haspopup="dialog" onClick=${() => setOpen(true)}>
      Answers (${count})</button>
    ${open && html`<${Answers} message=${message} onClose=${() => setOpen(false)} />`}`;
}
