// Your profile (/profile): your picture, the name people see, and your password (PATCH /v1/me).
// A new picture is uploaded like any file, then named as yours; people see it (and a new name)
// live, through member.updated.
import { useState } from "../deps.js";
import { patch } from "../api.js";
import * as state from "../state.js";
import { uploadFile } from "../actions.js";
import { html, ErrorNote } from "./ui.js";
import { NewPassword, checkNewPassword } from "./auth.js";

const PICTURE_TYPES = "image/png,image/jpeg,image/gif,image/webp";

/** Someone's picture, or their initials. */
export function Avatar({ user, size = 24 }) {
  if (!user) return null;
  if (user.avatar_url) {
    return html`<img class="avatar" src=${user.avatar_url} alt="" width=${size} height=${size} loading="lazy" decoding="async" />`;
  }
  const initials = (user.name || "?").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
  // The initials are drawn by CSS (attr()), so they never join the text around them.
  return html`<span class="avatar initials" aria-hidden="true" data-initials=${initials}
    style=${{ width: size + "px", height: size + "px", fontSize: Math.round(size * 0.42) + "px" }}></span>`;
}

function applyMe(user) {
  state.me.value = { ...state.me.value, user };
  const next = new Map(state.users.value);
  next.set(user.id, user);
  state.users.value = next;
}

function useSave() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  async function save(change, said) {
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await change();
      setDone(said);
      state.announce(said);
      return true;
    } catch (failure) {
      setError(failure);
      return false;
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, done, save };
}

function Picture({ user }) {
  const { busy, error, done, save } = useSave();
  const choose = (event) => {
    const file = event.currentTarget.files[0];
    event.currentTarget.value = "";
    if (!file) return;
    save(async () => {
      const attachment = await uploadFile(file);
      applyMe((await patch("/v1/me", { avatar_id: attachment.id })).user);
    }, "Your picture is saved.");
  };
  const remove = () => save(async () => applyMe((await patch("/v1/me", { avatar_id: null })).user), "Your picture is removed.");
  return html`<section class="panel" aria-labelledby="picture-title">
    <h2 id="picture-title">Picture</h2>
    <div class="profile-picture"><${Avatar} user=${user} size=${72} /></div>
    <label class="file-button">Choose a picture (PNG, JPEG, GIF or WebP, up to 2 MB)
      <input type="file" accept=${PICTURE_TYPES} disabled=${busy} onChange=${choose} />
    </label>
    ${user.avatar_url && html`<button type="button" class="small secondary" disabled=${busy} onClick=${remove}>Remove the picture</button>`}
    <${ErrorNote} error=${error} />
    ${done && html`<p class="meta saved">${done}</p>`}
  </section>`;
}

function DisplayName({ user }) {
  const { busy, error, done, save } = useSave();
  const submit = (event) => {
    event.preventDefault();
    const name = String(new FormData(event.currentTarget).get("name") || "").trim();
    save(async () => applyMe((await patch("/v1/me", { name })).user), `Your name is now ${name}.`);
  };
  return html`<section class="panel" aria-labelledby="name-title">
    <h2 id="name-title">Display name</h2>
    <form class="form inline" onSubmit=${submit}>
      <label>Name <input name="name" required maxLength="80" autocomplete="name" defaultValue=${user.name} /></label>
      <button type="submit" disabled=${busy}>Save</button>
    </form>
    <${ErrorNote} error=${error} />
    ${done && html`<p class="meta saved">${done}</p>`}
  </section>`;
}

function Password() {
  const { busy, error, done, save } = useSave();
  const submit = (event) => {
    event.preventDefault();
    const element = event.currentTarget;
    const form = Object.fromEntries(new FormData(element));
    save(async () => {
      checkNewPassword(form);
      await patch("/v1/me", { current_password: form.current, password: form.password });
      element.reset();
    }, "Your password is changed. Your other devices were signed out.");
  };
  return html`<section class="panel" aria-labelledby="password-title">
    <h2 id="password-title">Password</h2>
    <form class="form" onSubmit=${submit}>
      <label>Current password <input name="current" type="password" required autocomplete="current-password" /></label>
      <${NewPassword} label="New password (at least 10 characters)" />
      <button type="submit" disabled=${busy}>Change the password</button>
    </form>
    <${ErrorNote} error=${error} />
    ${done && html`<p class="meta saved">${done}</p>`}
  </section>`;
}

export function ProfileView() {
  const user = state.me.value.user;
  return html`<section class="view settings-view" aria-labelledby="view-title">
    <header class="view-head"><h1 id="view-title" class="view-title">Your profile</h1></header>
    <div class="settings-body">
      <${Picture} user=${user} />
      <${DisplayName} user=${user} />
      <${Password} />
    </div>
  </section>`;
}
