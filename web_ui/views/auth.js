// Signing in: the one-time setup link (creates the owner), login, and invitation links.
// The token from a link's #fragment never reaches a server log: the page reads it, posts it,
// and removes it from the address bar.
import { useState, useEffect } from "../deps.js";
import { signIn, lookupInvitation } from "../actions.js";
import { get } from "../api.js";
import { html } from "./ui.js";

function Field({ label, name, type = "text", autocomplete, value, readOnly, minLength, required = true }) {
  return html`<label>${label}
    <input name=${name} type=${type} autocomplete=${autocomplete} value=${value} readOnly=${readOnly}
      minLength=${minLength} required=${required} />
  </label>`;
}

/** A new password, asked twice, the same way wherever one is chosen (setup, invitations, the
 * profile): `checkNewPassword(form)` throws when the two differ. */
export function NewPassword({ label = "Password (at least 10 characters)" }) {
  return html`<${Field} label=${label} name="password" type="password" autocomplete="new-password" minLength="10" />
    <${Field} label="Repeat the password" name="confirm" type="password" autocomplete="new-password" minLength="10" />`;
}

export function checkNewPassword(form) {
  if (form.password !== form.confirm) throw new Error("The passwords do not match.");
}

function Card({ title, intro, children }) {
  return html`<main id="main" class="auth">
    <div class="auth-card">
      <img class="logo" src="/icons/icon.svg" alt="" width="48" height="48" />
      <h1>${title}</h1>
      ${intro && html`<p class="intro">${intro}</p>`}
      ${children}
    </div>
  </main>`;
}

function useSubmit(action) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const form = Object.fromEntries(new FormData(event.currentTarget));
    setBusy(true);
    setError(null);
    try {
      await action(form);
    } catch (failure) {
      const wait = failure.headers && failure.headers.get("Retry-After");
      setError(wait ? `${failure.message} Try again in ${Math.ceil(Number(wait) / 60)} min.` : failure.message);
      setBusy(false);
    }
  }
  return { error, busy, submit };
}

function scrubFragment() {
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
}

export function SetupView({ token, onSignedIn }) {
  const [kept] = useState(token);
  useEffect(scrubFragment, []);
  const { error, busy, submit } = useSubmit(async (form) => {
    checkNewPassword(form);
    await signIn("/v1/auth/setup", { token: kept, email: form.email, name: form.name, password: form.password });
    await onSignedIn("/");
  });
  if (!kept) {
    return html`<${Card} title="Set up Spacechat" intro="Open the setup link that spacechat serve printed; it carries a one-time token." />`;
  }
  return html`<${Card} title="Create the owner account" intro="This link works once. The account you create here owns the organisation.">
    <form class="form" onSubmit=${submit}>
      <${Field} label="Your name" name="name" autocomplete="name" />
      <${Field} label="Email" name="email" type="email" autocomplete="email" />
      <${NewPassword} />
      ${error && html`<p class="form-error" role="alert">${error}</p>`}
      <button type="submit" disabled=${busy}>Create account</button>
    </form>
  <//>`;
}

const ownPage = (next) => (next && next.startsWith("/") && !next.startsWith("//") ? next : "/");

export function LoginView({ next, onSignedIn }) {
  const { error, busy, submit } = useSubmit(async (form) => {
    await signIn("/v1/auth/login", { email: form.email, password: form.password });
    await onSignedIn(ownPage(next));
  });
  return html`<${Card} title="Sign in to Spacechat">
    <form class="form" onSubmit=${submit}>
      <${Field} label="Email" name="email" type="email" autocomplete="username" />
      <${Field} label="Password" name="password" type="password" autocomplete="current-password" />
      ${error && html`<p class="form-error" role="alert">${error}</p>`}
      <button type="submit" disabled=${busy}>Sign in</button>
    </form>
    <${SingleSignOn} next=${ownPage(next)} />
  <//>`;
}

/** "Sign in with SSO": one link per organisation that has an identity provider (docs/sso.md).
 * A plain link, not a fetch: the browser itself goes to the provider and comes back signed in. */
function SingleSignOn({ next }) {
  const [offered, setOffered] = useState([]);
  useEffect(() => {
    get("/v1/auth/sso").then((data) => setOffered(data.providers), () => setOffered([]));
  }, []);
  if (!offered.length) return null;
  const query = next === "/" ? "" : `?next=${encodeURIComponent(next)}`;
  return html`<div class="sso">
    ${offered.map((p) => html`<a class="sso-button" href=${p.login_url + query}>
      Sign in with SSO${offered.length > 1 ? ` (${p.org_name})` : ""}</a>`)}
  </div>`;
}

export function InviteView({ token, onSignedIn }) {
  const [kept] = useState(token);
  const [offer, setOffer] = useState(null);
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    scrubFragment();
    if (!kept) return;
    lookupInvitation(kept).then(setOffer, (failure) => setProblem(failure.message));
  }, []);
  const { error, busy, submit } = useSubmit(async (form) => {
    checkNewPassword(form);
    await signIn("/v1/auth/invitations/accept", { token: kept, email: form.email, name: form.name, password: form.password });
    await onSignedIn("/");
  });
  if (!kept || problem) {
    return html`<${Card} title="Invitation" intro=${problem || "This invitation link is incomplete."}>
      <p><a href="/login">Sign in</a> if you already have an account.</p>
    <//>`;
  }
  if (!offer) return html`<${Card} title="Invitation" intro="Checking the invitation…" />`;
  return html`<${Card} title=${"Join " + offer.org.name} intro=${`You are invited as ${offer.role}.`}>
    <form class="form" onSubmit=${submit}>
      <${Field} label="Your name" name="name" autocomplete="name" />
      <${Field} label="Email" name="email" type="email" autocomplete="email" value=${offer.email || undefined} readOnly=${Boolean(offer.email)} />
      <${NewPassword} />
      ${error && html`<p class="form-error" role="alert">${error}</p>`}
      <button type="submit" disabled=${busy}>Join</button>
    </form>
  <//>`;
}
