// Dialogs on the native <dialog> element (focus is trapped and Escape closes it): creating a
// channel, the keyboard shortcuts, and `ask()`: a confirmation (a card button's `confirm`) or a
// question with a typed answer (an operation's reason).
import { signal, useRef, useEffect, useState } from "../deps.js";
import { createChannel } from "../actions.js";
import { render as renderMarkdown } from "../markdown.js";
import { channelPath, navigate } from "../router.js";
import { CATEGORIES } from "../state.js";
import { html } from "./ui.js";

export const openDialog = signal(null); // "create-channel" | "shortcuts" | "ask" | null
const asking = signal(null); // {id, title, text, confirmLabel, denyLabel, danger, input, resolve, opener}
let asked = 0;

export const openCreateChannel = () => (openDialog.value = "create-channel");
export const openShortcuts = () => (openDialog.value = "shortcuts");

/** Ask the person: resolves true (confirmed), the typed answer (with `input`), or null
 * (cancelled, Escape). `text` is Markdown; `input` is {label, minLength, placeholder}. */
export function ask(options) {
  return new Promise((resolve) => {
    if (asking.value) asking.value.resolve(null);
    asking.value = { ...options, id: ++asked, resolve, opener: document.activeElement };
    openDialog.value = "ask";
  });
}

function Dialog({ name, title, children, onClose }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog && dialog.open && dialog.close();
  }, []);
  function closed() {
    if (onClose) onClose();
    if (openDialog.value === name) openDialog.value = null;
  }
  return html`<dialog ref=${ref} class="dialog" aria-labelledby=${name + "-title"} onClose=${closed}>
    <h2 id=${name + "-title"}>${title}</h2>
    ${children}
  </dialog>`;
}

function Ask() {
  const request = asking.value;
  const [answer, setAnswer] = useState("");
  const [error, setError] = useState(null);
  const input = request.input;
  function finish(result) {
    if (asking.value !== request) return;
    asking.value = null;
    if (openDialog.value === "ask") openDialog.value = null;
    request.resolve(result);
    const opener = request.opener;
    if (opener && opener.isConnected && opener.focus) requestAnimationFrame(() => opener.focus());
  }
  function submit(event) {
    event.preventDefault();
    if (input) {
      const text = answer.trim();
      if (text.length < (input.minLength || 1)) {
        setError(`Please write at least ${input.minLength || 1} characters.`);
        return;
      }
      finish(text);
    } else {
      finish(true);
    }
  }
  return html`<${Dialog} name="ask" title=${request.title} onClose=${() => finish(null)}>
    <form class="form" onSubmit=${submit} noValidate>
      ${request.text && html`<div class="md" dangerouslySetInnerHTML=${{ __html: renderMarkdown(request.text) }}></div>`}
      ${input &&
      html`<label>${input.label}
        <textarea name="answer" rows="3" required minLength=${input.minLength || 1} maxLength=${input.maxLength || 1000}
          placeholder=${input.placeholder || ""} value=${answer} autoFocus
          aria-invalid=${error ? "true" : "false"} aria-describedby=${error ? "ask-error" : null}
          onInput=${(e) => (setAnswer(e.currentTarget.value), setError(null))}></textarea>
      </label>`}
      ${error && html`<p class="form-error" id="ask-error" role="alert">${error}</p>`}
      <div class="actions">
        <button type="button" class="secondary" onClick=${() => finish(null)}>${request.denyLabel || "Cancel"}</button>
        <button type="submit" class=${request.danger ? "danger" : ""} autoFocus=${!input}>${request.confirmLabel || "Confirm"}</button>
      </div>
    </form>
  <//>`;
}

function CreateChannel() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const channel = await createChannel({
        name: String(form.get("name")).trim(),
        topic: String(form.get("topic") || ""),
        category: String(form.get("category")),
        private: form.get("private") === "on",
      });
      openDialog.value = null;
      navigate(channelPath(channel.id));
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  }
  return html`<${Dialog} name="create-channel" title="Create a channel">
    <form class="form" onSubmit=${submit}>
      <label>Name
        <input name="name" required maxlength="80" pattern="[a-z0-9][a-z0-9_\\-]*" autocomplete="off"
          aria-describedby="channel-name-help" placeholder="e.g. launch-plans" />
      </label>
      <small id="channel-name-help">Lower-case letters, digits, - and _.</small>
      <label>Topic <input name="topic" maxlength="250" autocomplete="off" /></label>
      <label>Category
        <select name="category">${CATEGORIES.map((c) => html`<option value=${c} selected=${c === "projects"}>${c}</option>`)}</select>
      </label>
      <label class="check"><input type="checkbox" name="private" /> Private (only members see it)</label>
      ${error && html`<p class="form-error" role="alert">${error}</p>`}
      <div class="actions">
        <button type="button" class="secondary" onClick=${() => (openDialog.value = null)}>Cancel</button>
        <button type="submit" disabled=${busy}>Create</button>
      </div>
    </form>
  <//>`;
}

export const SHORTCUTS = [
  ["Ctrl+K", "Jump to a channel"],
  ["Alt+↑ / Alt+↓", "Previous / next channel"],
  ["↑ ↓ or j k", "Move between threads or messages in a list"],
  ["Home / End", "First / last loaded item"],
  ["Enter", "Open the focused thread; send a message"],
  ["Shift+Enter", "New line in a message"],
  ["n", "Write a message (focus the message box)"],
  ["/", "Search messages"],
  ["@ / #", "Mention someone / a channel (↑ ↓ choose, Enter or Tab insert)"],
  ["Escape", "Back from a thread to its channel; close a dialog"],
  ["?", "This list"],
];

function Shortcuts() {
  return html`<${Dialog} name="shortcuts" title="Keyboard shortcuts">
    <dl class="shortcuts">
      ${SHORTCUTS.map(([keys, what]) => html`<div key=${keys}><dt><kbd>${keys}</kbd></dt><dd>${what}</dd></div>`)}
    </dl>
    <div class="actions"><button type="button" onClick=${() => (openDialog.value = null)}>Close</button></div>
  <//>`;
}

export function Dialogs() {
  if (openDialog.value === "create-channel") return html`<${CreateChannel} />`;
  if (openDialog.value === "shortcuts") return html`<${Shortcuts} />`;
  if (openDialog.value === "ask" && asking.value) return html`<${Ask} key=${asking.value.id} />`;
  return null;
}
