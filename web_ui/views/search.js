// Search (`/search?q=`, or `/` anywhere): a box with the operators explained, the results with
// their highlighted words, and each result a link that opens its thread at the hit.
import { useState, useEffect, useRef } from "../deps.js";
import * as state from "../state.js";
import { searchMessages, channelLabel } from "../chat.js";
import { navigate, messagePath } from "../router.js";
import { html, Spinner, shortTime, fullTime } from "./ui.js";
import { SearchView as MeaningSearch } from "./memory.js";

const HELP = "Words, \"exact phrases\", prefix*, -word to leave out; in:#channel from:@person has:attachment has:card has:link is:unread is:mentioned before:2026-12-01 after:2026-11-01";

function Snippet({ parts }) {
  return html`<span class="snippet">${parts.map((part, i) =>
    part.highlight ? html`<mark key=${i}>${part.text}</mark>` : html`<span key=${i}>${part.text}</span>`,
  )}</span>`;
}

/** Words and operators (`mode=fulltext`, here), or by meaning with memories (memory.js). */
export function SearchView({ q, mode }) {
  if (mode && mode !== "fulltext") return html`<${MeaningSearch} q=${q} mode=${mode} />`;
  return html`<${WordSearch} q=${q} />`;
}

function WordSearch({ q }) {
  const [text, setText] = useState(q || "");
  const [sort, setSort] = useState("relevance");
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const box = useRef(null);

  useEffect(() => {
    setText(q || "");
    if (box.current) box.current.focus();
  }, [q]);

  useEffect(() => {
    if (!q) {
      setAnswer(null);
      return;
    }
    let live = true;
    setBusy(true);
    setError(null);
    searchMessages(q, { sort }).then(
      (found) => live && (setAnswer(found), setBusy(false), state.announce(`${found.results.length}${found.next ? "+" : ""} results`)),
      (failure) => live && (setError(failure.message), setAnswer(null), setBusy(false)),
    );
    return () => (live = false);
  }, [q, sort]);

  async function more() {
    setBusy(true);
    try {
      const next = await searchMessages(q, { sort, cursor: answer.next });
      setAnswer({ ...next, results: answer.results.concat(next.results) });
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  }

  function submit(event) {
    event.preventDefault();
    navigate(`/search?q=${encodeURIComponent(text.trim())}`);
  }

  function keys(event) {
    const links = [...event.currentTarget.querySelectorAll(".result-link")];
    const at = links.indexOf(document.activeElement);
    let next = -1;
    if (event.key === "ArrowDown" || event.key === "j") next = Math.min(links.length - 1, at + 1);
    else if (event.key === "ArrowUp" || event.key === "k") next = Math.max(0, at - 1);
    else return;
    event.preventDefault();
    if (links[next]) links[next].focus();
  }

  const results = answer ? answer.results : [];
  return html`<section class="view search-view" aria-labelledby="view-title">
    <header class="view-head"><h1 id="view-title" class="view-title">Search</h1></header>
    <form class="search-form" role="search" onSubmit=${submit}>
      <label for="search-box" class="sr-only">Search messages</label>
      <input id="search-box" ref=${box} type="search" value=${text} autocomplete="off" placeholder="Search messages…"
        aria-describedby="search-help" onInput=${(e) => setText(e.currentTarget.value)} />
      <label class="sort">Mode
        <select value="fulltext" onChange=${(e) =>
          navigate(`/search?${new URLSearchParams({ q: text.trim(), mode: e.currentTarget.value })}`)}>
          <option value="fulltext">words and operators</option>
          <option value="hybrid">by meaning and keywords</option>
          <option value="semantic">by meaning</option>
        </select>
      </label>
      <label class="sort">Sort
        <select value=${sort} onChange=${(e) => setSort(e.currentTarget.value)}>
          <option value="relevance">Most relevant</option>
          <option value="newest">Newest</option>
        </select>
      </label>
      <button type="submit">Search</button>
      <p id="search-help" class="hint">${HELP}</p>
    </form>
    ${error && html`<p class="form-error" role="alert">${error}</p>`}
    <div class="scroller results" aria-busy=${busy ? "true" : "false"} onKeyDown=${keys}>
      ${busy && !answer && html`<div class="loading-center"><${Spinner} label="Searching" /></div>`}
      ${answer && !results.length && html`<p class="empty">Nothing found for “${q}”.</p>`}
      ${results.length > 0 &&
      html`<ol class="search-results" aria-label=${"Results for " + q}>
        ${results.map((r) => html`<li key=${r.message.id} class="result" data-message-id=${r.message.id}>
          <a class="result-link" href=${messagePath(r.thread.id, r.message.id)}>
            <span class="result-head">
              <span class="author">${state.displayName(r.message.author)}</span>
              <span class="where">${channelLabel(state.channels.value.get(r.channel.id) || { ...r.channel, members: [] })}</span>
              <span class="thread-title">${r.thread.title || "(thread)"}</span>
              <time datetime=${r.message.created_at} title=${fullTime(r.message.created_at)}>${shortTime(r.message.created_at)}</time>
            </span>
            <${Snippet} parts=${r.snippet} />
          </a>
        </li>`)}
      </ol>`}
      ${answer && answer.next && html`<button type="button" class="secondary" disabled=${busy} onClick=${more}>More results</button>`}
    </div>
  </section>`;
}
