// Dialogs on the native <dialog> element (focus is trapped and Escape closes it): creating a
// channel, and the keyboard shortcuts.
import { signal, useRef, useEffect, useState } from "../deps.js";
import { createChannel } from "../actions.js";
import { channelPath, navigate } from "../router.js";
import { CATEGORIES } from "../state.js";
import { html } from "./ui.js";

export const openDialog = signal(null); // "create-channel" | "shortcuts" | null

export const openCreateChannel = () => (openDialog.value = "create-channel");
export const openShortcuts = () => (openDialog.value = "shortcuts");

function Dialog({ name, title, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog && dialog.open && dialog.close();
  }, []);
  return html`<dialog ref=${ref} class="dialog" aria-labelledby=${name + "-title"} onClose=${() => (openDialog.value = null)}>
    <h2 id=${name + "-title"}>${title}</h2>
    ${children}
  </dialog>`;
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
  return null;
}
