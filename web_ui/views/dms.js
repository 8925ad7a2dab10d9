// Direct conversations (`/dms`): the ones I am in, and starting one with people or agents.
import { useEffect, useState } from "../deps.js";
import * as state from "../state.js";
import { loadDms, openDm, channelLabel } from "../chat.js";
import { navigate, channelPath } from "../router.js";
import { html, shortTime } from "./ui.js";

export const dmList = () =>
  [...state.channels.value.values()].filter((c) => c.kind === "dm").sort((a, b) => (b.last_seq || 0) - (a.last_seq || 0));

export function DmsView() {
  const [chosen, setChosen] = useState([]);
  const [error, setError] = useState(null);
  useEffect(() => {
    loadDms().catch((failure) => setError(failure.message));
  }, []);
  const me = state.myId();
  const people = [...state.users.value.values()].filter((u) => u.id !== me && !u.deactivated);
  const dms = dmList();
  async function start(event) {
    event.preventDefault();
    try {
      const dm = await openDm(chosen);
      navigate(channelPath(dm.id));
    } catch (failure) {
      setError(failure.message);
    }
  }
  return html`<section class="view dms-view" aria-labelledby="view-title">
    <header class="view-head"><h1 id="view-title" class="view-title">Direct messages</h1></header>
    <div class="scroller">
      <ul class="dm-list" aria-label="Your direct conversations">
        ${dms.map((dm) => html`<li key=${dm.id}>
          <a class="channel-link" href=${channelPath(dm.id)} data-dm-id=${dm.id}>
            <span class="channel-name">${channelLabel(dm)}</span>
            ${dm.unread_count > 0 && html`<span class="badge" aria-label=${dm.unread_count + " unread"}>${dm.unread_count}</span>`}
            <span class="meta">${dm.last_seq ? "" : shortTime(dm.created_at)}</span>
          </a>
        </li>`)}
      </ul>
      ${!dms.length && html`<p class="empty">No direct conversations yet.</p>`}
      <form class="form new-dm" onSubmit=${start}>
        <fieldset>
          <legend>Start a conversation with</legend>
          ${people.map((u) => html`<label class="check" key=${u.id}>
            <input type="checkbox" name="member" value=${u.id} checked=${chosen.includes(u.id)}
              onChange=${(e) => setChosen(e.currentTarget.checked ? [...chosen, u.id] : chosen.filter((id) => id !== u.id))} />
            ${u.name}${u.kind === "agent" ? " (agent)" : ""}
          </label>`)}
        </fieldset>
        ${error && html`<p class="form-error" role="alert">${error}</p>`}
        <div class="actions"><button type="submit" disabled=${!chosen.length}>Open conversation</button></div>
      </form>
    </div>
  </section>`;
}
