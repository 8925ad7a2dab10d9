"""axe-core on every page the browser tests visit (issue 18): WCAG 2.1 A and AA, light and dark,
desktop and phone width; any violation fails the test.

Every browser context made by `tests.browser.new_context` is audited, so every existing and future
browser test is held to it without asking:

- axe-core (vendored for the tests only into `tests/vendor/axe-core/` by `tests/vendor/axe-core.sh`)
  is installed in every document before the page's own scripts, with a MutationObserver that tells
  when the page has gone quiet. A page of the server that axe is missing from (a failed
  injection) is a finding too (`axe-missing`): it is never passed unchecked.
- **After each navigation** (a page load or an in-app route change), once the page is quiet, axe
  runs in the page's own width, in light and in dark (the colour scheme is switched for the run and
  put back; only colours change, so the test's actions are not disturbed).
- **At the end of the test** (when it closes the context, or else when its browser is closed),
  every page still open is checked in all four: light and dark, at 1280 and at 390 px.

A violation is reported with its rule, impact, the page's address, the scheme and width, when it
was seen, the failing element's selector and HTML, and axe's own summary of what to fix.

For test authors: nothing to call. `Watched.assert_clean()` also waits for the checks started so
far and fails on what they found. A test that needs a colour scheme sets it on its context
(`new_context(browser, color_scheme="dark")`): the checks put back the context's scheme, not one
set later with `page.emulate_media`. A violation in a page you did not write is still yours to fix
(or to report): there is no opt-out.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Error, Page, ViewportSize

AXE_DIR = Path(__file__).parent / "vendor" / "axe-core"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
Scheme = Literal["light", "dark"]
WIDTHS: dict[str, ViewportSize] = {"1280 px": {"width": 1280, "height": 800}, "390 px": {"width": 390, "height": 844}}
QUIET_MS = 250  # no DOM change for this long: the page has settled
SETTLE_MAX_MS = 4000  # a page that never settles (a reply streaming) is checked after this
NODES_SHOWN = 5  # failing elements listed per rule and page

# Installed into every document before the page's own scripts (Playwright's init scripts are not
# subject to the page's CSP). `__a11yQuiet.last` is when the DOM last changed.
INIT_SCRIPT = (
    (AXE_DIR / "axe.min.js").read_text()
    + """
;(() => {
  const quiet = { last: performance.now() };
  Object.defineProperty(window, "__a11yQuiet", { value: quiet });
  new MutationObserver(() => { quiet.last = performance.now(); })
    .observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
})();
"""
)

# Waits until the page is quiet, then runs axe; null for what is not an HTML page of a server,
# and {missing: true} for one axe is not in (its injection failed: the page cannot be checked,
# which must fail the test, never pass it unchecked).
CHECK_SCRIPT = """
async ({ quietMs, maxMs, tags }) => {
  if (!/^https?:$/.test(location.protocol) || document.contentType !== "text/html") return null;
  if (!window.axe || typeof window.axe.run !== "function") return { url: location.href, missing: true, violations: [] };
  const started = performance.now();
  for (;;) {
    const now = performance.now();
    const quiet = window.__a11yQuiet;
    if (document.readyState === "complete" && (!quiet || now - quiet.last >= quietMs)) break;
    if (now - started > maxMs) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const url = location.href; // the page checked (a test may move on while axe runs)
  const result = await window.axe.run(document, {
    runOnly: { type: "tag", values: tags },
    resultTypes: ["violations"],
  });
  return {
    url,
    violations: result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({
        target: n.target.map((t) => (Array.isArray(t) ? t.join(" >>> ") : String(t))).join(" "),
        html: n.html.length > 240 ? n.html.slice(0, 240) + "…" : n.html,
        summary: n.failureSummary || "",
      })),
    })),
  };
}
"""


@dataclass(frozen=True)
class Finding:
    rule: str
    impact: str
    help: str
    help_url: str
    path: str
    scheme: str
    width: str
    when: str
    target: str
    html: str
    summary: str


def other(scheme: Scheme) -> Scheme:
    return "dark" if scheme == "light" else "light"


@dataclass
class PageAudit:
    """The checks of one page, one at a time (axe cannot run twice at once in a page)."""

    page: Page
    scheme: Scheme
    findings: dict[tuple[str, str, str, str, str], Finding]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    navigations: int = 0

    def navigated(self) -> None:
        self.navigations += 1
        task = asyncio.ensure_future(self._after_navigation(self.navigations))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _after_navigation(self, number: int) -> None:
        async with self.lock:
            if number != self.navigations or self.page.is_closed():
                return  # the page moved on before it settled: its next page is checked instead
            with contextlib.suppress(Error):  # closed or navigated away while checking
                width = self.width()
                await self.run(self.scheme, width, "after a navigation")
                try:
                    await self.page.emulate_media(color_scheme=other(self.scheme))
                    await self.run(other(self.scheme), width, "after a navigation")
                finally:
                    await self.page.emulate_media(color_scheme=self.scheme)

    def width(self) -> str:
        size = self.page.viewport_size
        return f"{size['width']} px" if size else "?"

    async def settle(self) -> None:
        """Wait for the checks already started (after the last navigation)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def final(self) -> None:
        """All four: light and dark at desktop and phone width (the test is over)."""
        await self.settle()
        if self.page.is_closed():
            return
        async with self.lock:
            original = self.page.viewport_size
            with contextlib.suppress(Error):
                for width, size in WIDTHS.items():
                    await self.page.set_viewport_size(size)
                    for scheme in (self.scheme, other(self.scheme)):
                        await self.page.emulate_media(color_scheme=scheme)
                        await self.run(scheme, width, "at the end of the test")
                await self.page.emulate_media(color_scheme=self.scheme)
                if original:
                    await self.page.set_viewport_size(original)

    async def run(self, scheme: Scheme, width: str, when: str) -> None:
        result = await self.page.evaluate(CHECK_SCRIPT, {"quietMs": QUIET_MS, "maxMs": SETTLE_MAX_MS, "tags": TAGS})
        if not result:
            return
        path = address(result["url"])
        if result.get("missing"):
            self.findings.setdefault(("axe-missing", "", path, scheme, width), missing(path, scheme, width, when))
        for violation in result["violations"]:
            for node in violation["nodes"]:
                key = (violation["id"], node["target"], path, scheme, width)
                self.findings.setdefault(
                    key,
                    Finding(
                        rule=violation["id"],
                        impact=violation["impact"] or "?",
                        help=violation["help"],
                        help_url=violation["helpUrl"].split("?")[0],
                        path=path,
                        scheme=scheme,
                        width=width,
                        when=when,
                        target=node["target"],
                        html=node["html"],
                        summary=" ".join(node["summary"].split()),
                    ),
                )


def missing(path: str, scheme: str, width: str, when: str) -> Finding:
    """A page axe is not in (the init script did not run, or something removed it): unchecked."""
    return Finding(
        rule="axe-missing",
        impact="unchecked",
        help="axe-core is not in this page, so it could not be checked",
        help_url="tests/a11y.py",
        path=path,
        scheme=scheme,
        width=width,
        when=when,
        target="document",
        html="",
        summary="The accessibility check did not run: see INIT_SCRIPT and tests/browser.py new_context.",
    )


def address(url: str) -> str:
    """The page's path (the test servers' ports differ from run to run)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")


@dataclass
class ContextAudit:
    """Every page of one browser context."""

    context: BrowserContext
    scheme: Scheme
    pages: list[PageAudit] = field(default_factory=list)
    findings: dict[tuple[str, str, str, str, str], Finding] = field(default_factory=dict)
    finished: bool = False

    def watch(self, page: Page) -> None:
        audit = PageAudit(page, self.scheme, self.findings)
        self.pages.append(audit)

        def navigated(frame: Any) -> None:
            if frame == page.main_frame:
                audit.navigated()

        page.on("framenavigated", navigated)

    async def settle(self) -> None:
        for audit in self.pages:
            await audit.settle()

    async def final(self) -> None:
        if self.finished:
            return
        self.finished = True
        for audit in self.pages:
            await audit.final()

    def report(self) -> str:
        return report(list(self.findings.values()))


def report(findings: list[Finding]) -> str:
    """One readable failure message: per rule and page, where, what and how to fix it."""
    if not findings:
        return ""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.rule, finding.path), []).append(finding)
    lines = [f"axe-core found {len(findings)} accessibility violation(s) (WCAG 2.1 A/AA):"]
    for (rule, path), group in sorted(groups.items()):
        first = group[0]
        modes = sorted({f"{f.scheme}, {f.width}" for f in group})
        lines.append(f"- {rule} ({first.impact}) on page {path} [{'; '.join(modes)}; {first.when}]: {first.help}")
        targets: dict[str, Finding] = {}
        for finding in group:
            targets.setdefault(finding.target, finding)
        for target, finding in list(targets.items())[:NODES_SHOWN]:
            lines.append(f"    at {target}: {finding.html}")
            lines.append(f"      {finding.summary}")
        if len(targets) > NODES_SHOWN:
            lines.append(f"    … and {len(targets) - NODES_SHOWN} more element(s)")
        lines.append(f"    rule: {first.help_url}")
    return "\n".join(lines)
