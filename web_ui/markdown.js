// Message text to safe HTML: Markdown (marked) with raw HTML shown as text, code highlighted
// (highlight.js), then sanitized (DOMPurify) with an allow-list, so nothing in a message can run
// or load. Links open in a new tab with rel="noopener noreferrer". Results are cached by text.
import { Marked, DOMPurify, hljs } from "./deps.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

const mention = {
  name: "mention",
  level: "inline",
  start(src) {
    const match = /(^|[^\w@])@[a-z0-9]/i.exec(src);
    return match ? match.index + match[1].length : undefined;
  },
  tokenizer(src) {
    const match = /^@([a-z0-9][a-z0-9_-]{0,39})/i.exec(src);
    return match ? { type: "mention", raw: match[0], name: match[1] } : undefined;
  },
  renderer(token) {
    return `<span class="mention">@${escapeHtml(token.name)}</span>`;
  },
};

const marked = new Marked({ gfm: true, breaks: true, async: false });
marked.use({
  extensions: [mention],
  renderer: {
    // Raw HTML in a message is text, never markup (as Zulip and Slack do).
    html(token) {
      return escapeHtml(token.text);
    },
    code(token) {
      const lang = (token.lang || "").split(/\s/)[0].toLowerCase();
      let body;
      try {
        // Only a named language is highlighted: guessing one (highlightAuto) runs every grammar,
        // 180 ms the first time, and GitHub does not guess either.
        body =
          lang && hljs.getLanguage(lang)
            ? hljs.highlight(token.text, { language: lang, ignoreIllegals: true }).value
            : escapeHtml(token.text);
      } catch {
        body = escapeHtml(token.text);
      }
      return `<pre class="code"><code class="hljs${lang ? " language-" + escapeHtml(lang) : ""}">${body}</code></pre>\n`;
    },
    // Pictures from elsewhere would be blocked by the CSP: show them as links.
    image(token) {
      return `<a href="${escapeHtml(token.href)}">${escapeHtml(token.text || token.href)}</a>`;
    },
  },
});

const PURIFY = {
  ALLOWED_TAGS: [
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li",
    "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ],
  ALLOWED_ATTR: ["href", "title", "class", "start", "align"],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|\/(?!\/)|#)/i,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") || "";
    if (/^(https?:|mailto:)/i.test(href)) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  }
  if (node.hasAttribute("class")) {
    const safe = node
      .getAttribute("class")
      .split(/\s+/)
      .filter((c) => /^(hljs[\w-]*|language-[\w+#-]+|mention|code)$/.test(c));
    if (safe.length) node.setAttribute("class", safe.join(" "));
    else node.removeAttribute("class");
  }
});

export function sanitize(html) {
  return DOMPurify.sanitize(html, PURIFY);
}

/** Parse a sample while the app waits for the network: marked compiles its rules on first use
 * (~25 ms), which would otherwise land on the first thread's render. */
export function warmUp() {
  marked.parse("**warm** _up_ `code` [link](https://example.com) @someone\n- a\n1. b\n> c");
}

// Text with no character Markdown gives a meaning to (emphasis, code, links, lists, headings,
// quotes, tables, HTML, entities, autolinks, mentions, escapes), not starting like a list item or
// an indented code block, and with no www. autolink.
const PROSE = /^(?![\s\d]*[.)]\s)(?! {4}|\t)(?!.*www\.)[^*_`~[\]()<>#|!&@:\\\n=+-]*$/i;

const cache = new Map();
const CACHE_SIZE = 3000;

/** Render messages' Markdown into the cache in idle time (a page that just loaded, nearest the
 * view first), so scrolling onto them finds it done. */
const queue = [];
let scheduled = false;
const idle = window.requestIdleCallback || ((callback) => setTimeout(() => callback({ timeRemaining: () => 8 }), 16));

export function prerender(messages) {
  for (const message of messages) if (message.text) queue.push(message);
  if (!scheduled && queue.length) {
    scheduled = true;
    idle(drain);
  }
}

function drain(deadline) {
  while (queue.length && deadline.timeRemaining() > 2) {
    const message = queue.pop();
    render(message.text, message.format);
  }
  scheduled = queue.length > 0;
  if (scheduled) idle(drain);
}

/** Safe HTML for a message's text (format "markdown" or "plain"). */
export function render(text, format = "markdown") {
  const key = format + "\u0000" + text;
  let html = cache.get(key);
  if (html !== undefined) return html;
  if (format === "plain" || PROSE.test(text)) {
    // Nothing Markdown would change (most chat lines): escaped text, no parse, no sanitizer.
    html = `<p>${escapeHtml(text).replace(/\n/g, "<br>")}</p>`;
  } else {
    html = sanitize(marked.parse(text));
  }
  if (text.length < 50_000) {
    cache.set(key, html);
    if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value);
  }
  return html;
}
