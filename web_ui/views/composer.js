// The message box: Enter sends, Shift+Enter breaks the line; files by the button, paste or drop
// are uploaded at once and attached to the next send. Sending is optimistic (outbox.js).
import { useState, useRef, useEffect } from "../deps.js";
import { uploadFile } from "../actions.js";
import { send } from "../outbox.js";
import { typed, stoppedTyping } from "../presence.js";
import { html, Icon, size } from "./ui.js";
import { useCompletion } from "./autocomplete.js";
import { CardMakerButton, CardMakerDialog } from "./cardmaker.js";
import { RecordButton } from "./voice.js";

let uploadSeq = 0;

export function Composer({ channelId, threadId = null, placeholder, label, onSent, autoFocus = false }) {
  const [text, setText] = useState("");
  const [uploads, setUploads] = useState([]); // {id, file, status, attachment, error}
  const area = useRef(null);
  const picker = useRef(null);
  const draftKey = `draft:${threadId || "c:" + channelId}`;

  useEffect(() => {
    const saved = sessionStorage.getItem(draftKey) || "";
    setText(saved);
    setUploads([]);
    if (autoFocus && area.current && matchMedia("(min-width: 720px)").matches) area.current.focus();
  }, [draftKey]);

  useEffect(() => {
    const el = area.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = Math.min(el.scrollHeight, 240) + "px";
  }, [text]);

  function change(value, typing = true) {
    setText(value);
    if (typing) typed(channelId, threadId, value);
    if (value) sessionStorage.setItem(draftKey, value);
    else sessionStorage.removeItem(draftKey);
  }

  function addFiles(files) {
    for (const file of files) {
      const item = { id: ++uploadSeq, file, status: "uploading", attachment: null, error: null };
      setUploads((list) => [...list, item]);
      uploadFile(file).then(
        (attachment) => setUploads((list) => list.map((u) => (u.id === item.id ? { ...u, status: "done", attachment } : u))),
        (error) => setUploads((list) => list.map((u) => (u.id === item.id ? { ...u, status: "failed", error: error.message } : u))),
      );
    }
  }

  const completion = useCompletion({ id: `composer-${threadId || channelId}`, text, setText: change, area });
  const busy = uploads.some((u) => u.status === "uploading");
  const ready = uploads.filter((u) => u.status === "done");

  function submit(event) {
    if (event) event.preventDefault();
    const body = text.trim() ? text : "";
    if ((!body && !ready.length) || busy) return;
    const sending = send({ channelId, threadId, text: body, attachments: ready.map((u) => u.attachment) });
    stoppedTyping(channelId, threadId);
    change("", false);
    setUploads([]);
    if (onSent) onSent(sending);
  }

  function keyDown(event) {
    if (completion.onKey(event)) return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape") {
      event.currentTarget.blur();
    }
  }

  function paste(event) {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (files.length) {
      event.preventDefault();
      addFiles(files);
    }
  }

  function drop(event) {
    const files = [...(event.dataTransfer ? event.dataTransfer.files : [])];
    if (files.length) {
      event.preventDefault();
      addFiles(files);
    }
  }

  return html`<form class="composer" onSubmit=${submit} onDrop=${drop} onDragOver=${(e) => e.preventDefault()}>
    ${uploads.length > 0 &&
    html`<ul class="uploads" aria-label="Files to send">
      ${uploads.map(
        (u) => html`<li key=${u.id} class=${"upload " + u.status} data-upload=${u.status}>
          <span class="filename">${u.file.name}</span>
          <span class="meta">${u.status === "uploading" ? "uploading…" : u.status === "failed" ? u.error : size(u.file.size)}</span>
          <button type="button" class="icon-button" aria-label=${"Remove " + u.file.name}
            onClick=${() => setUploads((list) => list.filter((x) => x.id !== u.id))}><${Icon} name="close" /></button>
        </li>`,
      )}
    </ul>`}
    <div class="composer-row">
      <button type="button" class="icon-button" aria-label="Attach files" onClick=${() => picker.current.click()}>
        <${Icon} name="clip" />
      </button>
      <${CardMakerButton} channelId=${channelId} threadId=${threadId} />
      <input ref=${picker} type="file" multiple hidden onChange=${(e) => { addFiles([...e.currentTarget.files]); e.currentTarget.value = ""; }} />
      <textarea
        ref=${area}
        rows="1"
        class="composer-input"
        ...${completion.props}
        aria-label=${label}
        placeholder=${placeholder}
        value=${text}
        onInput=${(e) => change(e.currentTarget.value)}
        onKeyDown=${keyDown}
        onPaste=${paste}
      ></textarea>
      ${completion.list}
      <${RecordButton} channelId=${channelId} threadId=${threadId} onSent=${onSent} />
      <button type="submit" class="icon-button send" aria-label="Send" disabled=${busy || (!text.trim() && !ready.length)}>
        <${Icon} name="send" />
      </button>
    </div>
  </form>
  <${CardMakerDialog} />`;
}
