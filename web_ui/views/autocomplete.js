// `@` and `#` completion in the message box: people and agents by handle or name, channels by
// name. The box points at the list of suggestions (aria-activedescendant): ↑ ↓ choose, Enter or
// Tab insert, Escape closes the list.
import { useLayoutEffect, useRef, useState } from "../deps.js";
import * as state from "../state.js";
import { html } from "./ui.js";

const TOKEN = /(^|[\s(])([@#])([\w-]{0,40})$/;
const MAX = 8;

function candidates(sigil, query) {
  const q = query.toLowerCase();
  if (sigil === "#") {
    return state.channelList.value
      .filter((c) => c.name.includes(q))
      .slice(0, MAX)
      .map((c) => ({ id: c.id, insert: "#" + c.name, label: "#" + c.name, detail: c.topic || "" }));
  }
  const me = state.myId();
  return [...state.users.value.values()]
    .filter((u) => u.handle && !u.deactivated && u.id !== me)
    .filter((u) => u.handle.startsWith(q) || u.name.toLowerCase().includes(q))
    .sort((a, b) => Number(b.handle.startsWith(q)) - Number(a.handle.startsWith(q)) || a.name.localeCompare(b.name))
    .slice(0, MAX)
    .map((u) => ({ id: u.id, insert: "@" + u.handle, label: u.name, detail: "@" + u.handle + (u.kind === "agent" ? " · agent" : "") }));
}

/** Completion for a textarea whose value is `text` (set with `setText`). Returns the props for
 * the textarea, a key handler to call first (true when it used the key), and the list to show. */
export function useCompletion({ id, text, setText, area }) {
  const [active, setActive] = useState(0);
  const [dismissed, setDismissed] = useState(null);
  const [, redraw] = useState(0); // the caret moved without the text changing
  // Where the caret goes after a completion was chosen. Until the new text is in the box and the
  // caret placed, the box's selectionStart is the old one: read there, the completed word looks
  // like a half-typed one (`@mia` of `@mia-member `), and the next Enter would complete it again.
  const placing = useRef(null);
  const el = area.current;
  const focused = el && document.activeElement === el;
  const caret = !focused ? -1 : placing.current !== null ? placing.current : el.selectionStart;
  const match = caret >= 0 ? TOKEN.exec(text.slice(0, caret)) : null;
  const key = match ? `${caret}:${match[0]}` : null;
  const options = match && key !== dismissed ? candidates(match[2], match[3]) : [];
  const open = options.length > 0;
  const listId = `${id}-completions`;
  const at = Math.min(active, Math.max(0, options.length - 1));

  function choose(option) {
    const start = caret - match[2].length - match[3].length;
    const next = text.slice(0, start) + option.insert + " " + text.slice(caret);
    placing.current = start + option.insert.length + 1;
    setText(next);
    setActive(0);
  }

  // Once the chosen text is committed to the box, put the caret after it (before the next key).
  useLayoutEffect(() => {
    const position = placing.current;
    if (position === null || !el || el.value !== text) return;
    placing.current = null;
    el.focus();
    el.setSelectionRange(position, position);
    redraw((n) => n + 1);
  }, [text]);

  function onKey(event) {
    if (!open) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      setActive((at + (event.key === "ArrowDown" ? 1 : options.length - 1)) % options.length);
      return true;
    }
    if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
      event.preventDefault();
      choose(options[at]);
      return true;
    }
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      setDismissed(key);
      return true;
    }
    return false;
  }

  // A textarea keeps its textbox role (a combobox role is not allowed on it), with the
  // attributes a textbox may carry for a list of suggestions.
  const props = {
    "aria-autocomplete": "list",
    "aria-haspopup": "listbox",
    "aria-controls": listId,
    "aria-activedescendant": open ? `${listId}-${at}` : null,
    "data-completing": open ? "true" : "false",
  };
  const list = open
    ? html`<ul class="completions" id=${listId} role="listbox" aria-label=${match[2] === "#" ? "Channels" : "People and agents"}>
        ${options.map((option, i) => html`<li key=${option.id} id=${`${listId}-${i}`} role="option"
          aria-selected=${i === at ? "true" : "false"} class=${i === at ? "active" : ""}
          onMouseDown=${(e) => (e.preventDefault(), choose(option))}>
          <span class="label">${option.label}</span> <span class="meta">${option.detail}</span>
        </li>`)}
      </ul>`
    : html`<ul class="completions" id=${listId} role="listbox" hidden></ul>`;
  return { props, onKey, list };
}
