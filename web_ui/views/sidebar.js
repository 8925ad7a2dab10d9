// The sidebar: organisation, teams, and their channels grouped by category with unread counts and
// private-channel markers; a filter (Ctrl+K); tasks, incidents (with the open count) and the
// dashboard (with the instance's health) for those who may see them; the signed-in person with
// Settings and Sign out.
import { useState, useRef } from "../deps.js";
import * as state from "../state.js";
import { channelPath, navigate, tasksPath } from "../router.js";
import { signOut } from "../actions.js";
import { healthStatus, openIncidents } from "../ops.js";
import { html, Icon } from "./ui.js";
import { openCreateChannel } from "./dialogs.js";

const CONNECTION = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

export function ConnectionBadge() {
  const value = state.connection.value;
  return html`<div class=${"connection " + value} data-state=${value} role="status" aria-live="polite">
    <span class="dot" aria-hidden="true"></span><span class="label">${CONNECTION[value]}</span>
  </div>`;
}

function unreadLabel(count, cap) {
  if (!count) return null;
  return count >= cap ? `${cap - 1}+` : String(count);
}

export function Sidebar({ currentChannelId }) {
  const [filter, setFilter] = useState("");
  const filterInput = useRef(null);
  const list = state.channelList.value;
  const teams = state.teams.value;
  const cap = state.unreadCap.value;
  const me = state.me.value;
  const needle = filter.trim().toLowerCase();
  const shown = needle ? list.filter((c) => c.name.includes(needle) || (c.topic || "").toLowerCase().includes(needle)) : list;
  const multipleTeams = teams.length > 1;

  function channelLink(channel) {
    const unread = unreadLabel(channel.unread_count, cap);
    const current = channel.id === currentChannelId;
    return html`<li key=${channel.id}>
      <a
        href=${channelPath(channel.id)}
        class=${"channel-link" + (current ? " current" : "") + (unread ? " unread" : "")}
        data-channel-id=${channel.id}
        data-channel-name=${channel.name}
        aria-current=${current ? "page" : null}
        onClick=${() => (state.drawerOpen.value = false)}
      >
        <${Icon} name=${channel.private ? "lock" : "hash"} label=${channel.private ? "private" : null} />
        <span class="channel-name">${channel.name}</span>
        ${unread && html`<span class="badge" aria-label=${unread + " unread"}>${unread}</span>`}
      </a>
    </li>`;
  }

  function categories(channels, prefix) {
    return state.CATEGORIES.map((category) => {
      const inCategory = channels.filter((c) => (c.category || "departments") === category);
      if (!inCategory.length) return null;
      const id = `cat-${prefix}-${category}`;
      return html`<div class="category" role="group" aria-labelledby=${id} key=${category}>
        <h3 class="category-name" id=${id}>${category}</h3>
        <ul class="channels">${inCategory.map(channelLink)}</ul>
      </div>`;
    });
  }

  return html`<nav id="sidebar" class=${"sidebar" + (state.drawerOpen.value ? " open" : "")} aria-label="Channels">
    <div class="sidebar-head">
      <div class="org-name" title=${state.org.value ? state.org.value.name : ""}>${state.org.value ? state.org.value.name : ""}</div>
      <${ConnectionBadge} />
    </div>
    <div class="sidebar-tools">
      <input
        ref=${filterInput}
        id="channel-filter"
        type="search"
        placeholder="Jump to… (Ctrl+K)"
        aria-label="Filter channels"
        value=${filter}
        onInput=${(e) => setFilter(e.currentTarget.value)}
        onKeyDown=${(e) => {
          if (e.key === "Enter") {
            const first = e.currentTarget.closest("nav").querySelector(".channel-link");
            if (first) first.click();
            setFilter("");
          } else if (e.key === "Escape") setFilter("");
        }}
      />
      ${state.can("channels:manage") &&
      html`<button type="button" class="icon-button" aria-label="Create a channel" onClick=${openCreateChannel}>
        <${Icon} name="plus" />
      </button>`}
    </div>
    <${NavLinks} />
    <div class="sidebar-scroll">
      ${multipleTeams
        ? teams.map((team) => {
            const ofTeam = shown.filter((c) => c.team_id === team.id);
            if (!ofTeam.length && needle) return null;
            return html`<section class="team" key=${team.id} aria-labelledby=${"team-" + team.id}>
              <h2 class="team-name" id=${"team-" + team.id}>${team.name}</h2>
              ${ofTeam.length ? categories(ofTeam, team.id) : html`<p class="team-empty">No channels yet.</p>`}
            </section>`;
          })
        : html`<section class="team" aria-label=${teams[0] ? teams[0].name : "Channels"}>
            ${teams[0] && html`<h2 class="team-name">${teams[0].name}</h2>`}
            ${categories(shown, "all")}
          </section>`}
      ${needle && !shown.length && html`<p class="empty">No channel matches.</p>`}
    </div>
    <div class="sidebar-foot">
      <span class="me" title=${me ? me.user.email : ""}>${me ? me.user.name : ""}</span>
      <a class="icon-button" href="/settings" aria-label="Settings and devices" onClick=${() => (state.drawerOpen.value = false)}>
        <${Icon} name="gear" />
      </a>
      <button type="button" class="small secondary" onClick=${() => signOut().finally(() => navigate("/login", { replace: true }))}>Sign out</button>
    </div>
  </nav>`;
}

const HEALTH_LABEL = { ok: "all healthy", degraded: "degraded", down: "something is down" };

function NavLinks() {
  const route = state.route.value.name;
  const close = () => (state.drawerOpen.value = false);
  const link = (href, names, icon, label, extra = null, data = {}) => html`<li>
    <a href=${href} class=${"nav-link" + (names.includes(route) ? " current" : "")}
      aria-current=${names.includes(route) ? "page" : null} onClick=${close} ...${data}>
      <${Icon} name=${icon} /><span class="channel-name">${label}</span>${extra}
    </a>
  </li>`;
  const open = openIncidents.value;
  const health = healthStatus.value;
  const items = [];
  if (state.can("tasks:read")) items.push(link(tasksPath(), ["tasks", "task"], "tasks", "Tasks"));
  if (state.can("incidents:read")) {
    items.push(
      link(
        "/incidents",
        ["incidents"],
        "alert",
        "Incidents",
        open ? html`<span class="badge" aria-label=${open + " open"}>${open}</span>` : null,
        { "data-open-incidents": String(open) },
      ),
    );
  }
  if (state.can("diagnostics:read")) {
    items.push(
      link(
        "/dashboard",
        ["dashboard", "agent"],
        "pulse",
        "Dashboard",
        health ? html`<span class=${"health-dot " + health} role="img" aria-label=${"Health: " + HEALTH_LABEL[health]}></span>` : null,
        { "data-health": health || "unknown" },
      ),
    );
  }
  if (state.can("audit:read")) items.push(link("/audit", ["audit"], "list", "Audit log"));
  if (state.can("memory:review")) items.push(link("/memory", ["memory"], "list", "Memory review"));
  items.push(link("/search", ["search"], "list", "Search"));
  if (!items.length) return null;
  return html`<ul class="nav-links" aria-label="Views">${items}</ul>`;
}
