// What a message row offers beyond reading it: Stop on a streaming agent reply (the author of the
// message that started it, or an operator), and "Open incident from this" on any message for
// those with incidents:manage (the message is pinned to the new incident's timeline).
import { useState } from "../deps.js";
import * as state from "../state.js";
import { stopReply, openIncident } from "../agentops.js";
import { navigate } from "../router.js";
import { ask } from "./dialogs.js";
import { html } from "./ui.js";

export function StopButton({ message }) {
  const [busy, setBusy] = useState(false);
  async function stop() {
    setBusy(true);
    try {
      await stopReply(message.id);
      state.announce("The reply was stopped");
    } catch (error) {
      state.announce(`Could not stop the reply: ${error.message}`);
      setBusy(false);
    }
  }
  return html`<button type="button" class="small secondary stop-reply" data-action="stop-reply" disabled=${busy} onClick=${stop}>
    ${busy ? "Stopping…" : "Stop"}
  </button>`;
}

export function OpenIncidentButton({ message }) {
  if (!state.can("incidents:manage")) return null;
  async function open() {
    const excerpt = (message.text || "").split("\n")[0].slice(0, 80);
    const title = await ask({
      title: "Open an incident from this message",
      text: "The message is pinned to the incident's timeline, and its thread is told.",
      input: { label: "Incident title", minLength: 3, maxLength: 300, placeholder: excerpt || "What is wrong?" },
      confirmLabel: "Open incident",
    });
    if (!title) return;
    try {
      const incident = await openIncident({ title, messageId: message.id });
      state.announce(`Incident #${incident.number} opened`);
      navigate(`/incidents?open=${encodeURIComponent(incident.id)}`);
    } catch (error) {
      state.announce(`Could not open the incident: ${error.message}`);
    }
  }
  return html`<button type="button" class="small secondary open-incident" data-action="open-incident" onClick=${open}
    aria-label="Open incident from this message">Open incident</button>`;
}
