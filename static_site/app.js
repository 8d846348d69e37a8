// The sign-in page: Google Identity Services' code model in popup mode, then one POST of the
// one-time code to the exchange function, which keeps the user's offline access server-side.
//
// Everything environment-specific comes from config.js (window.APP_CONFIG), written by `make dev`
// or Terraform. The page goes through these phases, and always says which one it is in:
//   loading → signed_out → waiting (Google's window is open) → finishing (POST) → signed_in
// with `error` (plus what to do next) whenever an attempt fails.

import { describe, isSignInScope, normalise, parse } from "./scopes.js";

const EXCHANGE_TIMEOUT_MS = 30000;

const $ = (id) => document.getElementById(id);
const ui = {
  card: $("card"),
  status: $("status-text"),
  spinner: $("spinner"),
  alert: $("alert"),
  alertTitle: $("alert-title"),
  alertText: $("alert-text"),
  signin: $("signin"),
  signinButton: $("signin-button"),
  signinHint: $("signin-hint"),
  account: $("account"),
  avatar: $("avatar"),
  initials: $("avatar-initials"),
  name: $("account-name"),
  email: $("account-email"),
  offline: $("offline"),
  permissions: $("permissions"),
  identityPermissions: $("identity-permissions"),
  missing: $("missing"),
  missingText: $("missing-text"),
  grantButton: $("grant-button"),
  switchButton: $("switch-button"),
  signoutButton: $("signout-button"),
};

// What the user sees after each kind of failure: a title and the next step.
const ERRORS = {
  config_missing: ["This page isn't configured",
    "config.js is missing or incomplete: run make dev, or deploy the site with Terraform."],
  gis_unavailable: ["Google sign-in couldn't load",
    "Check your connection or any content blocker, then click Sign in with Google to try again."],
  popup_failed_to_open: ["The Google window didn't open",
    "Your browser blocked the pop-up. Allow pop-ups for this site, then click Sign in with Google again."],
  popup_closed: ["The Google window was closed",
    "Sign-in stopped before you finished. Click Sign in with Google when you're ready to try again."],
  access_denied: ["You didn't give access",
    "This app can't sign you in without your permission. Click Sign in with Google and choose Allow to continue."],
  state_mismatch: ["Sign-in couldn't be verified",
    "Google's answer didn't match this sign-in attempt, so it was ignored. Please try again."],
  google_error: ["Google couldn't complete the sign-in", "Please try again."],
  code_rejected: ["Google didn't accept this sign-in",
    "The one-time code expired or was already used. Sign in again to get a new one."],
  service_unavailable: ["The sign-in service is unavailable",
    "We couldn't reach the server, or it is busy. Wait a moment, then try again."],
  upstream_invalid: ["Google's answer couldn't be checked",
    "The server couldn't verify Google's answer. Wait a moment, then try again."],
  domain_not_allowed: ["This account can't be used here",
    "Sign in with an account from an allowed organisation."],
  refused: ["The server refused the sign-in",
    "Reload the page and try again. If it keeps happening, contact the site's owner."],
};

const state = {
  phase: "loading",
  result: null, // the exchange function's last successful answer
  attempt: null, // { id, state, kind } of the attempt in progress
  error: null, // { title, text }
  selectAccountNext: false,
  gisReady: false,
};
let attempts = 0;

const config = readConfig();

function readConfig() {
  const c = window.APP_CONFIG;
  const ok = c && ["clientId", "exchangeUrl", "scopes", "gisScriptUrl"].every(
    (key) => typeof c[key] === "string" && c[key].trim() !== "");
  return ok ? c : null;
}

// ---- Rendering --------------------------------------------------------------------------

const STATUS = {
  loading: () => "Loading Google sign-in…",
  signed_out: () => "You're signed out.",
  waiting: () => "Waiting for Google… Finish signing in in the Google window.",
  finishing: () => "Finishing sign-in…",
  signed_in: () => `You're signed in as ${state.result.user.email || state.result.user.name}.`,
  error: () => (["config_missing", "gis_unavailable"].includes(state.error?.kind)
    ? "Sign-in isn't available." : "Sign-in didn't finish."),
};

function render() {
  const { phase, result, error } = state;
  const busy = phase === "loading" || phase === "waiting" || phase === "finishing";
  // While Google's window is open the buttons stay usable: if that window got lost behind
  // others, clicking again opens a new attempt (the old one's answer is then ignored).
  const locked = phase === "loading" || phase === "finishing";
  ui.card.dataset.state = phase;
  ui.status.textContent = STATUS[phase]();
  ui.spinner.hidden = !busy;

  ui.alert.hidden = !error;
  if (error) {
    ui.alertTitle.textContent = error.title;
    ui.alertText.textContent = error.text;
  }

  const showAccount = Boolean(result);
  ui.account.hidden = !showAccount;
  ui.signin.hidden = showAccount;
  ui.signinButton.disabled = locked || config === null;
  ui.signinHint.hidden = phase !== "signed_out";
  for (const button of [ui.grantButton, ui.switchButton, ui.signoutButton]) {
    button.disabled = locked;
  }
}

function renderAccount(result) {
  const user = result.user;
  ui.name.textContent = user.name || user.email;
  ui.email.textContent = user.email || "";
  ui.initials.textContent = initials(user.name || user.email || "?");
  ui.avatar.hidden = true;
  ui.initials.hidden = false;
  ui.avatar.removeAttribute("src");
  if (user.picture && /^https?:\/\//.test(user.picture)) {
    ui.avatar.onload = () => { ui.avatar.hidden = false; ui.initials.hidden = true; };
    ui.avatar.onerror = () => { ui.avatar.hidden = true; ui.initials.hidden = false; };
    ui.avatar.src = user.picture;
  }

  ui.offline.className = "offline " + (result.offline_access ? "offline-on" : "offline-off");
  ui.offline.textContent = result.offline_access
    ? "Offline access is on: this app can use the granted permissions below while you're away."
    : "Offline access is off: Google didn't give the server a lasting permission. Remove this " +
      "app in your Google Account settings, then sign in again.";

  const granted = new Set((result.granted_scopes || []).map(normalise));
  const missing = new Set((result.missing_scopes || []).map(normalise));
  const listed = [...new Set([...parse(config.scopes), ...granted])];
  const item = (scope) => permissionItem(scope, granted.has(scope) && !missing.has(scope));
  // What the server may do while the user is away first; name and email (Sign-In) after.
  const offline = listed.filter((scope) => !isSignInScope(scope)).map(item);
  if (offline.length === 0) {
    const none = document.createElement("li");
    none.className = "permission permission-none";
    none.textContent = "None: this app only signs you in.";
    offline.push(none);
  }
  ui.permissions.replaceChildren(...offline);
  ui.identityPermissions.replaceChildren(...listed.filter(isSignInScope).map(item));

  const missingNames = [...missing].map(describe);
  ui.missing.hidden = missingNames.length === 0;
  ui.missingText.textContent = missingNames.length === 0 ? "" :
    `You didn't grant ${missingNames.length === 1 ? "this permission" : "these permissions"}: ` +
    `${missingNames.join("; ")}. The app can't do that part of its work until you do.`;
}

function permissionItem(scope, ok) {
  const item = document.createElement("li");
  item.className = ok ? "permission granted" : "permission refused";
  item.dataset.scope = scope;
  const mark = document.createElement("span");
  mark.className = "permission-mark";
  mark.setAttribute("aria-hidden", "true");
  mark.textContent = ok ? "✓" : "✕";
  const text = document.createElement("span");
  text.className = "permission-text";
  text.textContent = describe(scope);
  const label = document.createElement("span");
  label.className = "permission-state";
  label.textContent = ok ? "Granted" : "Not granted";
  item.append(mark, text, label);
  return item;
}

function initials(text) {
  const words = text.split(/[\s@.]+/).filter(Boolean);
  return (words.slice(0, 2).map((w) => w[0]).join("") || "?").toUpperCase();
}

function setPhase(phase, error = null) {
  state.phase = phase;
  state.error = error;
  render();
}

function fail(kind, detail) {
  const [title, text] = ERRORS[kind] || ERRORS.google_error;
  const error = { kind, title, text: detail ? `${detail} ${text}` : text };
  state.attempt = null;
  // A failed attempt from the signed-in view (grant more, switch account) keeps that view.
  setPhase(state.result ? "signed_in" : "error", error);
  ui.card.dataset.error = kind;
  // Keyboard users land on the button that tries again.
  if (!state.result) ui.signinButton.focus();
  else if (!ui.missing.hidden) ui.grantButton.focus();
  else ui.switchButton.focus();
}

// ---- Google Identity Services ------------------------------------------------------------

function loadGis() {
  setPhase("loading");
  const script = document.createElement("script");
  script.src = config.gisScriptUrl;
  script.async = true;
  script.onload = () => {
    state.gisReady = Boolean(window.google?.accounts?.oauth2?.initCodeClient);
    if (state.gisReady) setPhase("signed_out");
    else fail("gis_unavailable");
  };
  script.onerror = () => {
    script.remove();
    fail("gis_unavailable");
  };
  document.head.append(script);
}

function randomState() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Starts one attempt: a fresh code client (fresh `state`), then Google's window. */
function requestCode(kind) {
  if (!state.gisReady) {
    loadGis();
    return;
  }
  const attempt = { id: ++attempts, state: randomState(), kind };
  const clientConfig = {
    client_id: config.clientId,
    scope: config.scopes,
    ux_mode: "popup",
    include_granted_scopes: true,
    state: attempt.state,
    callback: (response) => onCodeResponse(attempt, response),
    error_callback: (error) => onWindowError(attempt, error),
  };
  if (kind === "switch" || (kind === "sign_in" && state.selectAccountNext)) {
    clientConfig.select_account = true;
  }
  if (kind === "grant" && state.result?.user?.email) {
    clientConfig.login_hint = state.result.user.email;
  }
  state.attempt = attempt;
  ui.card.dataset.error = "";
  setPhase("waiting");
  try {
    // Must run inside the click handler: browsers only open pop-ups for a user gesture.
    window.google.accounts.oauth2.initCodeClient(clientConfig).requestCode();
  } catch (exc) {
    console.error("requestCode failed", exc);
    fail("google_error");
  }
}

function onWindowError(attempt, error) {
  if (state.attempt?.id !== attempt.id) return;
  const type = error?.type;
  fail(type === "popup_failed_to_open" || type === "popup_closed" ? type : "google_error");
}

function onCodeResponse(attempt, response) {
  if (state.attempt?.id !== attempt.id) return; // an old attempt's late answer
  if (response?.error) {
    fail(response.error === "access_denied" ? "access_denied" : "google_error");
    return;
  }
  if (response?.state !== attempt.state) {
    fail("state_mismatch");
    return;
  }
  if (!response?.code) {
    fail("google_error");
    return;
  }
  setPhase("finishing");
  exchange(attempt, response.code);
}

// ---- The exchange function --------------------------------------------------------------

async function exchange(attempt, code) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), EXCHANGE_TIMEOUT_MS);
  let response;
  let body = null;
  try {
    response = await fetch(config.exchangeUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest" },
      body: JSON.stringify({ code, state: attempt.state }),
      credentials: "omit",
      cache: "no-store",
      signal: controller.signal,
    });
    body = await response.json().catch(() => null);
  } catch {
    // Network error, CORS refusal or timeout: the server is out of reach.
    if (state.attempt?.id === attempt.id) fail("service_unavailable");
    return;
  } finally {
    clearTimeout(timer);
  }
  if (state.attempt?.id !== attempt.id) return;

  if (response.ok && body?.status === "signed_in" && body.user) {
    state.attempt = null;
    state.result = body;
    state.selectAccountNext = false;
    renderAccount(body);
    setPhase("signed_in");
    ui.card.dataset.error = "";
    ui.name.focus();
    return;
  }
  const errorCode = body?.error;
  if (errorCode === "code_rejected") fail("code_rejected");
  else if (errorCode === "domain_not_allowed") {
    state.selectAccountNext = true;
    fail("domain_not_allowed", body.message);
  } else if (errorCode === "upstream_invalid") fail("upstream_invalid");
  else if (response.status === 503 || response.status === 502 || response.status === 504 ||
           errorCode === "service_unavailable" || !body) fail("service_unavailable");
  else fail("refused", body?.message);
}

// ---- Wiring -----------------------------------------------------------------------------

ui.signinButton.addEventListener("click", () => requestCode("sign_in"));
ui.grantButton.addEventListener("click", () => requestCode("grant"));
ui.switchButton.addEventListener("click", () => requestCode("switch"));
ui.signoutButton.addEventListener("click", () => {
  state.result = null;
  state.selectAccountNext = true;
  setPhase("signed_out");
  ui.status.textContent = "You're signed out of this page. The server keeps offline access " +
    "until you remove it in your Google Account settings.";
  ui.signinButton.focus();
});
ui.name.tabIndex = -1;

if (config) {
  loadGis();
} else {
  fail("config_missing");
  ui.signinButton.disabled = true;
}
