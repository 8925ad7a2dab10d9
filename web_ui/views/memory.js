// Memory (issue 12, docs/memory.md): the review queue (a candidate with its source in context,
// approve / edit then approve / reject / merge, driven by the keyboard: j/k move, a approves,
// e edits, r rejects, m merges), memories with their revisions and rollback, policies per
// organisation, team and channel, a person's consent and "what Spacechat remembers about me",
// and semantic and hybrid search.
import { useEffect, useRef, useState } from "../deps.js";
import { get, post, del, patch, request } from "../api.js";
import * as state from "../state.js";
import { navigate, messagePath } from "../router.js";
import { refusal } from "../interactions.js";
import { ask } from "./dialogs.js";
import { NeedsScope } from "./dashboard.js";
import { html, ErrorNote, fullTime } from "./ui.js";

const put = async (path, json) => (await request("PUT", path, { json })).data;
const SOURCES = ["agent", "message", "interaction", "task"];
const METADATA = ["role", "team", "channel", "device"];

/** A line diff of two texts as rows of [sign, line] (what an edit changes, shown before approval). */
export function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  const rows = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      rows.push([" ", a[i]]);
      i++;
      j++;
    } else {
      if (i < a.length) rows.push(["-", a[i++]]);
      if (j < b.length) rows.push(["+", b[j++]]);
    }
  }
  return rows;
}

function Diff({ rows, label }) {
  return html`<pre class="memory-diff" aria-label=${label}>${rows.map(
    ([sign, line]) => html`<span class=${sign === "+" ? "ins" : sign === "-" ? "del" : "same"}>${sign} ${line}\n</span>`,
  )}</pre>`;
}

function Tabs({ tab }) {
  const item = (name, href, label) =>
    html`<a href=${href} class=${"tab" + (tab === name ? " current" : "")} aria-current=${tab === name ? "page" : null}>${label}</a>`;
  return html`<nav class="memory-tabs" aria-label="Memory">
    ${item("queue", "/memory", "Review queue")} ${item("memories", "/memory/memories", "Memories")}
    ${item("policies", "/memory/policies", "Policies")}
  </nav>`;
}

export function MemoryView({ tab, memoryId }) {
  if (!state.can("memory:review")) return html`<${NeedsScope} scope="memory:review" />`;
  const body =
    tab === "memory" ? html`<${MemoryPage} memoryId=${memoryId} />`
    : tab === "memories" ? html`<${MemoryList} />`
    : tab === "policies" ? html`<${Policies} />`
    : html`<${Queue} />`;
  return html`<section class="view memory-view" aria-labelledby="view-title">
    <header class="view-head"><h1 id="view-title" class="view-title">Memory</h1><${Tabs} tab=${tab === "memory" ? "memories" : tab} /></header>
    <div class="memory-body">${body}</div>
  </section>`;
}

// --- the review queue --------------------------------------------------------------------------

function Queue() {
  const [items, setItems] = useState(null);
  const [total, setTotal] = useState(0);
  const [index, setIndex] = useState(0);
  const [error, setError] = useState(null);
  const root = useRef(null);
  const load = () =>
    get("/v1/memory/candidates?limit=200").then((d) => {
      setItems(d.candidates);
      setTotal(d.total);
      setIndex((i) => Math.min(i, Math.max(d.candidates.length - 1, 0)));
    }, setError);
  useEffect(() => {
    load();
  }, []);
  const current = items && items[index];
  function onKey(event) {
    if (event.target.closest("textarea, input, select, dialog")) return;
    if (event.key === "j") setIndex((i) => Math.min(i + 1, (items || []).length - 1));
    else if (event.key === "k") setIndex((i) => Math.max(i - 1, 0));
    else return;
    event.preventDefault();
  }
  return html`<div class="memory-queue" ref=${root} onKeyDown=${onKey}>
    <${ErrorNote} error=${error} onRetry=${load} />
    <p class="meta" role="status">${items === null ? "Loading…" : `${total} waiting for review`}</p>
    <p class="meta keys">Keys: <kbd>j</kbd>/<kbd>k</kbd> next and previous, <kbd>a</kbd> approve, <kbd>e</kbd> edit, <kbd>r</kbd> reject, <kbd>m</kbd> merge.</p>
    ${items && items.length > 0 && html`<div class="queue-split">
      <ul class="candidate-list" aria-label="Candidates">
        ${items.map(
          (c, i) => html`<li key=${c.id}>
            <button type="button" class=${"candidate-item" + (i === index ? " current" : "")} aria-current=${i === index ? "true" : null}
              data-candidate-id=${c.id} onClick=${() => setIndex(i)}>
              <span class="chip">${c.memory_type}</span> ${c.content.slice(0, 90)}
              ${c.group_id && html` <span class="tag" title="says nearly the same as others">similar</span>`}
            </button>
          </li>`,
        )}
      </ul>
      ${current && html`<${Candidate} key=${current.id} candidate=${current} onDecided=${load} />`}
    </div>`}
    ${items && items.length === 0 && html`<p class="empty">Nothing waits for review.</p>`}
  </div>`;
}

function Candidate({ candidate, onDecided }) {
  const [detail, setDetail] = useState(null);
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(candidate.content);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const box = useRef(null);
  const panel = useRef(null);
  useEffect(() => {
    get(`/v1/memory/candidates/${encodeURIComponent(candidate.id)}`).then(setDetail, setError);
    panel.current && panel.current.focus();
  }, [candidate.id]);
  useEffect(() => {
    if (editing && box.current) box.current.focus();
  }, [editing]);
  async function decide(action, body = {}) {
    setBusy(true);
    setError(null);
    try {
      await post(`/v1/memory/candidates/${encodeURIComponent(candidate.id)}/${action}`, body);
      state.announce(action === "approve" ? "Approved." : action === "reject" ? "Rejected." : "Merged.");
      onDecided();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }
  const approve = () => decide("approve", editing && text !== candidate.content ? { content: text } : {});
  async function reject() {
    const reason = await ask({ title: "Reject this candidate?", input: { label: "Reason", minLength: 1 }, confirmLabel: "Reject" });
    if (reason) decide("reject", { reason });
  }
  async function merge(memoryId) {
    const target = memoryId || (detail && detail.similar[0] && detail.similar[0].memory.id);
    if (!target) {
      setError(new Error("no similar memory to merge into"));
      return;
    }
    decide("merge", editing ? { memory_id: target, content: text } : { memory_id: target });
  }
  function onKey(event) {
    const typing = event.target.closest("textarea, input");
    if (typing) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) (event.preventDefault(), approve());
      if (event.key === "Escape") (event.preventDefault(), setEditing(false), setText(candidate.content), panel.current.focus());
      return;
    }
    const keys = { a: approve, e: () => setEditing(true), r: reject, m: () => merge() };
    if (keys[event.key] && !busy) {
      event.preventDefault();
      keys[event.key]();
    }
  }
  const author = (m) => state.displayName(m.author);
  const diff = lineDiff(candidate.content, text);
  return html`<article class="candidate panel" tabindex="-1" ref=${panel} onKeyDown=${onKey} aria-labelledby="candidate-title" data-candidate-id=${candidate.id}>
    <h2 id="candidate-title">Candidate · ${candidate.source}${candidate.agent_id ? ` for ${candidate.agent_id}` : ""}</h2>
    <p class="meta">
      ${candidate.memory_type} · importance ${candidate.importance}
      ${candidate.subject_id && ` · about ${state.displayName({ kind: "user", id: candidate.subject_id })}`}
      · <time datetime=${candidate.created_at}>${fullTime(candidate.created_at)}</time>
    </p>
    ${editing
      ? html`<label class="block">Memory text
          <textarea ref=${box} rows="4" value=${text} onInput=${(e) => setText(e.currentTarget.value)}></textarea>
        </label>
        ${text !== candidate.content && html`<${Diff} rows=${diff} label="Your edit" />`}`
      : html`<blockquote class="candidate-content">${candidate.content}</blockquote>`}
    <div class="actions">
      <button type="button" disabled=${busy || !text.trim()} onClick=${approve}>${editing ? "Approve edited" : "Approve"}</button>
      ${!editing && html`<button type="button" class="secondary" onClick=${() => setEditing(true)}>Edit</button>`}
      <button type="button" class="secondary" disabled=${busy} onClick=${reject}>Reject</button>
    </div>
    <${ErrorNote} error=${error && { message: refusal(error) || error.message }} />
    ${detail && detail.context.length > 0 && html`<section aria-label="Source in context" class="source-context">
      <h3>Source in context</h3>
      <ol>${detail.context.map(
        (m) => html`<li key=${m.id} class=${m.id === candidate.source_message_id ? "source" : ""}>
          <strong>${author(m)}</strong>: ${m.text} ${m.id === candidate.source_message_id && html`<span class="tag">source</span>`}
          <a href=${messagePath(m.thread_id, m.id)} class="meta">open</a>
        </li>`,
      )}</ol>
    </section>`}
    ${detail && detail.similar.length > 0 && html`<section aria-label="Similar memories" class="similar">
      <h3>Similar memories (merge into one)</h3>
      <ul>${detail.similar.map(
        (s) => html`<li key=${s.memory.id}>${s.memory.content}
          <button type="button" class="small secondary" disabled=${busy} onClick=${() => merge(s.memory.id)}>Merge here</button></li>`,
      )}</ul>
    </section>`}
  </article>`;
}

// --- memories and their revisions -----------------------------------------------------------------

function MemoryList() {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    get("/v1/memories?limit=200").then((d) => setList(d.memories), setError);
  }, []);
  return html`<section class="panel" aria-labelledby="memories-title">
    <h2 id="memories-title">Memories</h2>
    <${ErrorNote} error=${error} />
    ${list === null ? html`<p class="meta">Loading…</p>` : list.length === 0 ? html`<p class="empty">No memories yet.</p>`
      : html`<table class="data-table memories">
        <thead><tr><th scope="col">Memory</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Agent</th><th scope="col">Changed</th></tr></thead>
        <tbody>${list.map((m) => html`<tr key=${m.id} data-memory-id=${m.id}>
          <th scope="row"><a href=${"/memory/m/" + encodeURIComponent(m.id)}>${m.status === "deleted" ? "(deleted)" : m.content.slice(0, 120)}</a></th>
          <td>${m.memory_type}</td><td><span class=${"chip memory-status " + m.status}>${m.status}</span></td>
          <td>${m.agent_id || "—"} ${m.agent_id && html`<span class="meta">(${m.delivery})</span>`}</td>
          <td>${fullTime(m.updated_at)}</td>
        </tr>`)}</tbody>
      </table>`}
  </section>`;
}

function MemoryPage({ memoryId }) {
  const [editing, setEditing] = useState(false);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const load = () => get(`/v1/memories/${encodeURIComponent(memoryId)}`).then(setData, setError);
  useEffect(() => {
    load();
  }, [memoryId]);
  async function act(fn) {
    setError(null);
    try {
      await fn();
      load();
    } catch (failure) {
      setError(failure);
    }
  }
  if (!data) return html`<${ErrorNote} error=${error} />${!error && html`<p class="meta">Loading…</p>`}`;
  const { memory, revisions } = data;
  const live = memory.status !== "deleted";
  function save(event) {
    event.preventDefault();
    const content = String(new FormData(event.currentTarget).get("content") || "");
    act(() => patch(`/v1/memories/${encodeURIComponent(memory.id)}`, { content })).then(() => setEditing(false));
  }
  async function remove() {
    const sure = await ask({ title: "Delete this memory?", text: "Its text is removed everywhere; a tombstone stays.", confirmLabel: "Delete", danger: true });
    if (sure) act(() => del(`/v1/memories/${encodeURIComponent(memory.id)}`));
  }
  return html`<article class="panel memory-page" aria-labelledby="memory-title" data-memory-id=${memory.id}>
    <h2 id="memory-title">${live ? memory.content : "Deleted memory"}</h2>
    <p class="meta"><span class=${"chip memory-status " + memory.status}>${memory.status}</span> · ${memory.memory_type}
      · revision ${memory.revision}${memory.agent_id ? ` · ${memory.agent_id}: ${memory.delivery}` : ""}
      ${memory.superseded_by && html` · superseded by <a href=${"/memory/m/" + encodeURIComponent(memory.superseded_by)}>a newer memory</a>`}</p>
    <${ErrorNote} error=${error} />
    ${live && editing && html`<form class="form" onSubmit=${save}>
      <label>Memory text <textarea name="content" rows="3" required>${memory.content}</textarea></label>
      <div class="actions"><button type="submit">Save</button>
        <button type="button" class="secondary" onClick=${() => setEditing(false)}>Cancel</button></div>
    </form>`}
    ${live && !editing && html`<div class="actions">
      <button type="button" class="secondary" onClick=${() => setEditing(true)}>Edit</button>
      <button type="button" class="secondary danger" onClick=${remove}>Delete</button>
    </div>`}
    <h3>Revisions</h3>
    <ol class="revisions">${revisions.map((r) => html`<li key=${r.revision} data-revision=${r.revision}>
      <strong>${r.revision}. ${r.action.replace("_", " ")}</strong> by ${state.displayName(r.actor)} · ${fullTime(r.created_at)}
      <div>${r.content}</div>
      ${live && r.revision < memory.revision && r.action !== "deleted" && html`<button type="button" class="small secondary"
        onClick=${() => act(() => post(`/v1/memories/${encodeURIComponent(memory.id)}/rollback`, { revision: r.revision }))}>Roll back to this</button>`}
    </li>`)}</ol>
  </article>`;
}

// --- policies ---------------------------------------------------------------------------------------

function PolicyForm({ scopeType, scopeId, label, current }) {
  const [saved, setSaved] = useState(null);
  const [error, setError] = useState(null);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = {};
    if (form.get("ingestion")) body.ingestion = form.get("ingestion");
    if (form.get("granularity")) body.granularity = form.get("granularity");
    if (form.get("set_sources")) body.sources = SOURCES.filter((s) => form.get("source_" + s));
    if (form.get("set_metadata")) body.metadata = METADATA.filter((s) => form.get("meta_" + s));
    const days = String(form.get("retention_days") || "").trim();
    if (days) body.retention_days = Number(days);
    if (form.get("consent_default")) body.consent_default = form.get("consent_default");
    try {
      await put(`/v1/memory/policies/${scopeType}/${encodeURIComponent(scopeId)}`, body);
      setSaved(`Saved for ${label}.`);
      setError(null);
    } catch (failure) {
      setError(failure);
    }
  }
  const s = current || {};
  const id = (name) => `${scopeType}-${scopeId}-${name}`;
  return html`<form class="form policy-form" onSubmit=${submit} aria-label=${"Memory policy for " + label}>
    <h3>${label}</h3>
    <label for=${id("ingestion")}>Ingestion</label>
    <select id=${id("ingestion")} name="ingestion" value=${s.ingestion || ""}>
      <option value="">inherit</option><option value="off">off</option><option value="review">review</option><option value="auto">auto</option>
    </select>
    <fieldset><legend>Sources</legend>
      <label><input type="checkbox" name="set_sources" checked=${Boolean(s.sources)} /> set here</label>
      ${SOURCES.map((src) => html`<label><input type="checkbox" name=${"source_" + src} checked=${(s.sources || []).includes(src)} /> ${src}</label>`)}
    </fieldset>
    <label for=${id("granularity")}>Granularity</label>
    <select id=${id("granularity")} name="granularity" value=${s.granularity || ""}>
      <option value="">inherit</option><option value="fact">a fact per message</option><option value="thread">a summary per thread</option>
    </select>
    <fieldset><legend>Metadata kept</legend>
      <label><input type="checkbox" name="set_metadata" checked=${Boolean(s.metadata)} /> set here</label>
      ${METADATA.map((m) => html`<label><input type="checkbox" name=${"meta_" + m} checked=${(s.metadata || []).includes(m)} /> ${m}</label>`)}
    </fieldset>
    <label for=${id("retention")}>Retention in days (empty: inherit)</label>
    <input id=${id("retention")} name="retention_days" type="number" min="1" max="3650" value=${s.retention_days || ""} />
    <label for=${id("consent")}>Default consent</label>
    <select id=${id("consent")} name="consent_default" value=${s.consent_default || ""}>
      <option value="">inherit</option><option value="in">opted in</option><option value="out">opted out</option>
    </select>
    <button type="submit">Save</button>
    ${saved && html`<p class="meta" role="status">${saved}</p>`}
    <${ErrorNote} error=${error} />
  </form>`;
}

function Policies() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    get("/v1/memory/policies").then(setData, setError);
  }, []);
  if (!data) return html`<${ErrorNote} error=${error} />`;
  const level = (type, id) => (data.levels.find((l) => l.scope_type === type && l.scope_id === id) || {}).settings;
  const org = state.org.value;
  return html`<section class="panel" aria-labelledby="policies-title">
    <h2 id="policies-title">Memory policies</h2>
    <p class="meta">The nearest level that sets a key wins: channel, then team, then organisation. In force for the organisation:
      ${Object.entries(data.effective).map(([k, v]) => html` <span class="chip">${k}: ${Array.isArray(v) ? v.join(", ") || "none" : v ?? "forever"}</span>`)}</p>
    ${org && html`<${PolicyForm} scopeType="org" scopeId=${org.id} label=${"Organisation " + org.name} current=${level("org", org.id)} />`}
    ${state.teams.value.map((t) => html`<${PolicyForm} key=${t.id} scopeType="team" scopeId=${t.id} label=${"Team " + t.name} current=${level("team", t.id)} />`)}
    ${state.channelList.value.map((c) => html`<${PolicyForm} key=${c.id} scopeType="channel" scopeId=${c.id} label=${"#" + c.name} current=${level("channel", c.id)} />`)}
  </section>`;
}

// --- a person's own memory ----------------------------------------------------------------------------

export function MyMemory() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const load = () => get("/v1/me/memory").then(setData, setError);
  useEffect(() => {
    load();
  }, []);
  async function choose(consent) {
    try {
      const answer = await put("/v1/me/memory/consent", { consent });
      state.announce(consent === "in" ? "What you say may become memory." : `Opted out; ${answer.withdrawn.length} pending withdrawn.`);
      load();
    } catch (failure) {
      setError(failure);
    }
  }
  async function forget(memory) {
    try {
      await del(`/v1/me/memories/${encodeURIComponent(memory.id)}`);
      load();
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<section class="panel my-memory" aria-labelledby="my-memory-title">
    <h2 id="my-memory-title">Memory</h2>
    <${ErrorNote} error=${error} />
    ${data && html`<div>
      <label class="toggle"><input type="checkbox" checked=${data.consent.effective === "in"}
        onChange=${(e) => choose(e.currentTarget.checked ? "in" : "out")} />
        Agents may remember what I say ${data.consent.consent === null && html`<span class="meta">(the organisation's default)</span>`}</label>
      <h3>What Spacechat remembers about me</h3>
      ${data.memories.length === 0 ? html`<p class="empty">Nothing.</p>` : html`<ul class="my-memories">${data.memories.map(
        (m) => html`<li key=${m.id} data-memory-id=${m.id}>${m.content} <span class="meta">(${m.status})</span>
          <button type="button" class="small secondary" onClick=${() => forget(m)} aria-label=${"Delete memory: " + m.content.slice(0, 60)}>Delete</button></li>`,
      )}</ul>`}
      ${data.pending.length > 0 && html`<p class="meta">${data.pending.length} more wait for review.</p>`}
      <p><a href="/v1/me/export" download>Download my data (zip)</a></p>
    </div>`}
  </section>`;
}

// --- search --------------------------------------------------------------------------------------------

export function SearchView({ q, mode }) {
  const [results, setResults] = useState(null);
  const [error, setError] = useState(null);
  const [note, setNote] = useState(null);
  useEffect(() => {
    if (!q) return;
    setResults(null);
    const params = new URLSearchParams({ q, mode: mode || "hybrid", kinds: "messages,memories" });
    get(`/v1/search?${params}`).then((d) => (setResults(d.results), setNote(d.degraded)), setError);
  }, [q, mode]);
  function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    navigate(`/search?${new URLSearchParams({ q: String(form.get("q") || ""), mode: String(form.get("mode")) })}`);
  }
  return html`<section class="view search-view" aria-labelledby="view-title">
    <header class="view-head"><h1 id="view-title" class="view-title">Search</h1></header>
    <form class="form inline search-form" role="search" onSubmit=${submit}>
      <label>Search messages and memories <input name="q" type="search" value=${q || ""} required maxlength="500" /></label>
      <label>Mode <select name="mode" value=${mode || "hybrid"}>
        <option value="hybrid">by meaning and keywords</option><option value="semantic">by meaning</option>
        <option value="fulltext">words and operators</option>
      </select></label>
      <button type="submit">Search</button>
    </form>
    <${ErrorNote} error=${error} />
    ${note && html`<p class="meta">Search by meaning is off: ${note}</p>`}
    ${q && results === null && !error && html`<p class="meta" role="status">Searching…</p>`}
    ${results && html`<p class="meta" role="status">${results.length} results</p>
      <ol class="search-results">${results.map(
        (r) => html`<li key=${r.id} class="search-result" data-kind=${r.kind}>
          <span class="chip">${r.kind}</span>
          ${r.kind === "message"
            ? html`<a href=${messagePath(r.thread_id, r.id)}>${r.text}</a> <span class="meta">in #${(state.channels.value.get(r.channel_id) || {}).name || "?"}</span>`
            : state.can("memory:review") ? html`<a href=${"/memory/m/" + encodeURIComponent(r.id)}>${r.text}</a>` : html`<span>${r.text}</span>`}
        </li>`,
      )}</ol>`}
  </section>`;
}
