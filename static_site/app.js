// The sign-in page: Google Identity Services' code model in popup mode, one POST of the one-time
// code to the exchange function, and the user's account afterwards, from the account API. The
// sign-in itself (Google's script, the popup, the state, the exchange, the account API) is the
// embeddable module offline-access.js; this file is the page around it.
//
// Everything environment-specific comes from config.js (window.APP_CONFIG), written by `make dev`
// or Terraform, including the app's branding. With `accountApiUrl` (the page's own origin, as
// Firebase Hosting serves it) the page keeps a session: on load it asks /api/me, so a returning
// user sees their account at once; before each code request it gets a `state` from
// /api/sign-in-attempts, which the exchange checks against this browser's cookie. Without it
// (an app on another origin) the page checks its own random `state` and keeps nothing.
//
// Phases, always named in the status line:
//   loading → signed_out | signed_in → waiting (Google's window is open) → finishing (POST)
//   → signed_in; disconnecting → disconnected; `error` (plus what to do next) when an attempt
//   fails from the signed-out view. A failure from the signed-in view keeps that view.

import { OfflineAccess, readConfig } from "./offline-access.js";
import { describe, isSignInScope, normalise, parse } from "./scopes.js";

const $ = (id) => document.getElementById(id);
const ui = {
  card: $("card"), title: $("title"), lede: $("lede"), logo: $("brand-logo"),
  status: $("status-text"), spinner: $("spinner"),
  alert: $("alert"), alertTitle: $("alert-title"), alertText: $("alert-text"),
  disconnected: $("disconnected"), disconnectedTitle: $("disconnected-title"),
  disconnectedText: $("disconnected-text"), removedList: $("removed-list"),
  signin: $("signin"), signinButton: $("signin-button"), signinHint: $("signin-hint"),
  account: $("account"), avatar: $("avatar"), initials: $("avatar-initials"),
  name: $("account-name"), email: $("account-email"), emailNote: $("email-note"),
  securityNotice: $("security-notice"), securityNoticeTitle: $("security-notice-title"),
  securityNoticeText: $("security-notice-text"), securityNoticeLink: $("security-notice-link"),
  securityNoticeButton: $("security-notice-button"),
  reconnect: $("reconnect"), reconnectTitle: $("reconnect-title"),
  reconnectReason: $("reconnect-reason"), reconnectButton: $("reconnect-button"),
  offline: $("offline"), permissions: $("permissions"), identityPermissions: $("identity-permissions"),
  offlineTitle: $("offline-title"), identityTitle: $("identity-title"),
  missing: $("missing"), missingText: $("missing-text"), grantButton: $("grant-button"),
  lastRun: $("last-run"), lastRunText: $("last-run-text"), lastRunTasks: $("last-run-tasks"),
  switchButton: $("switch-button"), signoutButton: $("signout-button"),
  disconnectButton: $("disconnect-button"), endAccess: $("end-access"),
  endAccessText: $("end-access-text"),
  footerText: $("footer-text"), brandLinks: $("brand-links"),
  privacyLink: $("privacy-link"), termsLink: $("terms-link"), supportLink: $("support-link"),
  dialog: $("disconnect-dialog"), dialogTitle: $("dialog-title"), dialogText: $("dialog-text"),
  dialogList: $("dialog-list"), dialogCancel: $("disconnect-cancel"),
  dialogConfirm: $("disconnect-confirm"),
};

const config = readConfig();
const app = (config && config.appName) || "this app";
const sessions = Boolean(config && config.accountApiUrl);
// The sign-in: Google's window, the exchange and the account API (null without config.js).
const oa = config ? new OfflineAccess(config) : null;

// The button each kind of attempt starts from: error texts name the one the user can see.
const BUTTONS = {
  sign_in: "Sign in with Google",
  grant: "Grant missing permissions",
  reconnect: "Reconnect",
  switch: "Use another account",
};

// What the user sees after each kind of failure: a title and a sentence; `retry` names the
// button of the view they are on.
const ERRORS = {
  config_missing: () => ["This page isn't configured",
    "config.js is missing or incomplete: run make dev, or deploy the site with Terraform."],
  gis_unavailable: (retry) => ["Google sign-in couldn't load",
    `Check your connection or any content blocker, then click ${retry} to try again.`],
  popup_failed_to_open: (retry) => ["The Google window didn't open",
    `Your browser blocked the pop-up. Allow pop-ups for this site, then click ${retry} again.`],
  popup_closed: (retry) => ["The Google window was closed",
    `Nothing changed. Click ${retry} when you're ready to try again.`],
  access_denied: (retry) => ["You didn't give access",
    `${cap(app)} can't work with your Google Account without your permission. ` +
    `Click ${retry} and choose Allow to continue.`],
  state_mismatch: (retry) => ["Sign-in couldn't be verified",
    `Google's answer didn't match this sign-in attempt, so it was ignored. Click ${retry} to try again.`],
  google_error: (retry) => ["Google couldn't complete the sign-in", `Click ${retry} to try again.`],
  code_rejected: (retry) => ["Google didn't accept this sign-in",
    `The one-time code expired or was already used. Sign in again: click ${retry}.`],
  service_unavailable: (retry) => ["The sign-in service is unavailable",
    `We couldn't reach the server, or it is busy. Wait a moment, then click ${retry} to try again.`],
  upstream_invalid: (retry) => ["Google's answer couldn't be checked",
    `The server couldn't verify Google's answer. Wait a moment, then click ${retry} to try again.`],
  domain_not_allowed: (retry) => ["This account can't be used here",
    `Sign in with an account from an allowed organisation: click ${retry}.`],
  refused: () => ["The server refused the sign-in",
    "Reload the page and try again. If it keeps happening, contact the site's owner."],
  account_unavailable: () => ["Your account couldn't be checked",
    "The server didn't answer. You may still be signed in: reload the page in a moment."],
  disconnect_failed: () => ["Disconnect didn't go through",
    "The server couldn't be reached, and nothing was changed. Click Disconnect to try again."],
};
// Failures that change nothing for a signed-in user: a notice, not an alarm.
const NOTICES = new Set(["popup_closed", "access_denied"]);

const state = {
  phase: "loading",
  result: null, // the signed-in answer (exchange or /api/me)
  attempt: null, // { kind } of the attempt in progress
  error: null, // { kind, title, text, notice }
  wasDisconnected: false, // the disconnected panel stays until the next sign-in
  selectAccountNext: false,
};

function cap(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// ---- Branding ---------------------------------------------------------------------------

function applyBranding() {
  document.title = config ? `Sign in · ${app}` : "Sign in";
  ui.title.textContent = config ? cap(app) : "Sign in";
  ui.lede.textContent = `Sign in with your Google Account so ${app} can work with your data ` +
    "while you're away.";
  if (config?.logoUrl) {
    ui.logo.src = config.logoUrl;
    ui.logo.alt = "";
    ui.logo.hidden = false;
  }
  const links = [[ui.privacyLink, config?.privacyPolicyUrl], [ui.termsLink, config?.termsUrl],
    [ui.supportLink, config?.supportUrl]];
  for (const [link, url] of links) {
    const ok = typeof url === "string" && /^(https:\/\/|mailto:|\/)/.test(url);
    link.hidden = !ok;
    if (ok) link.href = url;
  }
  ui.brandLinks.hidden = links.every(([link]) => link.hidden);
  const google = document.createElement("a");
  google.href = "https://myaccount.google.com/connections";
  google.rel = "noopener noreferrer";
  google.target = "_blank";
  google.textContent = "Google Account settings";
  ui.footerText.replaceChildren(
    `${cap(app)} keeps a sealed copy of the permission you give. ` +
    (sessions ? "To end it, choose Disconnect while signed in, or remove it in your " :
      "You can remove it at any time in your "),
    google, ".");
}

// ---- Rendering --------------------------------------------------------------------------

function who() {
  const user = state.result?.user || {};
  return user.email || user.name || "your Google Account";
}

const STATUS = {
  loading: () => "Loading…",
  signed_out: () => "You're signed out.",
  waiting: () => "Waiting for Google: continue in the Google window.",
  finishing: () => "Finishing sign-in…",
  signed_in: () => `You're signed in as ${who()}.`,
  disconnecting: () => "Disconnecting…",
  disconnected: () => "You're signed out.",
  error: () => (["config_missing", "gis_unavailable"].includes(state.error?.kind)
    ? "Sign-in isn't available." : "Sign-in didn't finish."),
};

function render() {
  const { phase, result, error } = state;
  const busy = ["loading", "waiting", "finishing", "disconnecting"].includes(phase);
  // While Google's window is open the buttons stay usable: if that window got lost behind
  // others, clicking again opens a new attempt (the old one's answer is then ignored).
  const locked = ["loading", "finishing", "disconnecting"].includes(phase);
  ui.card.dataset.state = phase;
  ui.status.textContent = STATUS[phase]();
  ui.spinner.hidden = !busy;

  ui.alert.hidden = !error;
  ui.alert.classList.toggle("alert-notice", Boolean(error?.notice));
  if (error) {
    ui.alertTitle.textContent = error.title;
    ui.alertText.textContent = error.text;
  }

  const showAccount = Boolean(result);
  ui.account.hidden = !showAccount;
  ui.signin.hidden = showAccount;
  ui.disconnected.hidden = !(state.wasDisconnected && !result);
  ui.signinButton.disabled = locked || config === null;
  ui.signinHint.hidden = phase !== "signed_out" && phase !== "disconnected";
  for (const button of [ui.grantButton, ui.switchButton, ui.signoutButton, ui.reconnectButton,
    ui.securityNoticeButton, ui.disconnectButton]) {
    button.disabled = locked;
  }
}

function renderAccount(result) {
  const user = result.user;
  const account = result.account || {};
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
  ui.emailNote.hidden = !(user.email && user.email_verified === false);
  ui.emailNote.textContent = ui.emailNote.hidden ? "" :
    `Google hasn't verified the email address ${user.email}. ${cap(app)} knows you by your ` +
    "Google Account, not by this address.";

  const granted = new Set((result.granted_scopes || []).map(normalise));
  const missing = new Set((result.missing_scopes || []).map(normalise));
  const listed = [...new Set([...parse(config.scopes), ...granted])];
  const offlineScopes = listed.filter((scope) => !isSignInScope(scope));
  const grantedOffline = offlineScopes.filter((scope) => granted.has(scope) && !missing.has(scope));

  // What Google's security events flagged: a disabled account (status `suspended`: the app
  // stopped, nothing to reconnect), or a password Google asks the user to change.
  const status = account.status || (result.offline_access ? "active" : "no_offline_access");
  const suspended = status === "suspended";
  renderSecurityNotice(account.security_notice);

  // Reconnect: the grant died (needs_reauth), or Google never gave a lasting one.
  const lost = status === "needs_reauth";
  const never = !lost && !suspended && !result.offline_access;
  ui.reconnect.hidden = !(lost || never);
  ui.reconnectTitle.textContent = lost ? `${cap(app)} lost access to your Google Account.` :
    `${cap(app)} has no lasting access to your Google Account.`;
  ui.reconnectReason.textContent = account.reauth_message ||
    (never ? "Google didn't give a lasting permission when you signed in." : "");

  ui.offline.hidden = lost || never || suspended;
  ui.offline.className = "offline " + (grantedOffline.length ? "offline-on" : "offline-off");
  ui.offline.textContent = grantedOffline.length
    ? `Offline access is on: ${app} can use the granted permissions below while you're away.`
    : `You're signed in, but you didn't give ${app} any permission to use while you're away.`;

  const item = (scope) => permissionItem(scope, granted.has(scope) && !missing.has(scope));
  // What the server may do while the user is away first; name and email (Sign-In) after.
  const offline = offlineScopes.map(item);
  if (offline.length === 0) {
    const none = document.createElement("li");
    none.className = "permission permission-none";
    none.textContent = `None: ${app} only signs you in.`;
    offline.push(none);
  }
  ui.permissions.replaceChildren(...offline);
  ui.identityPermissions.replaceChildren(...listed.filter(isSignInScope).map(item));
  // A lost grant gives nothing: the lists come back with the next consent.
  for (const part of [ui.offlineTitle, ui.permissions, ui.identityTitle, ui.identityPermissions]) {
    part.hidden = lost;
  }

  const missingNames = [...missing].map(describe);
  ui.missing.hidden = lost || never || missingNames.length === 0;
  ui.missingText.textContent = missingNames.length === 0 ? "" :
    `You didn't grant ${missingNames.length === 1 ? "this permission" : "these permissions"}: ` +
    `${missingNames.join("; ")}. ${cap(app)} can't do that part of its work until you do.`;

  renderLastRun(account, status);
  ui.endAccess.hidden = !sessions;
  ui.endAccessText.textContent = `Done with ${app}? Disconnect ends its access to your Google ` +
    "Account and deletes what it stored about you.";
}

const SECURITY_LINKS = {
  account_disabled: "How to ask Google to restore your account",
  credential_change_required: "Change your password in your Google Account",
};

function renderSecurityNotice(notice) {
  ui.securityNotice.hidden = !notice;
  ui.securityNoticeButton.hidden = !notice || notice.kind !== "credential_change_required";
  if (!notice) return;
  ui.securityNoticeTitle.textContent = notice.title;
  // The server's sentence says "the app": the page names it, as everywhere else.
  ui.securityNoticeText.textContent = notice.message.replace(/\b([Tt])he app\b/g,
    (_, t) => (t === "T" ? cap(app) : app));
  const link = typeof notice.help_url === "string" && notice.help_url.startsWith("https://");
  ui.securityNoticeLink.parentElement.hidden = !link;
  if (link) {
    ui.securityNoticeLink.href = notice.help_url;
    ui.securityNoticeLink.textContent = SECURITY_LINKS[notice.kind] || "Google's help";
  }
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" :
    date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

const TASKS = {
  drive_appdata: (task) => `Looked at its folder in your Google Drive: ${task.files} ` +
    `file${task.files === 1 ? "" : "s"}${task.truncated ? " or more" : ""}.`,
  userinfo: () => "Kept your name, email address and picture up to date.",
};

function renderLastRun(account, status) {
  const run = account.last_run;
  ui.lastRun.hidden = !sessions || status === "no_offline_access";
  if (!run) {
    ui.lastRunText.textContent = account.next_run_at
      ? `Nothing yet: its first run for you is due from ${when(account.next_run_at)}.` : "Nothing yet.";
    ui.lastRunTasks.replaceChildren();
    return;
  }
  const outcome = { succeeded: "everything went well", partial: "some of it didn't work",
    needs_reauth: "it had lost access", deferred: "Google was busy, so it will try again soon" };
  ui.lastRunText.textContent = `Last time, ${when(run.at)}: ${outcome[run.outcome] || run.outcome || "done"}.`;
  const items = Object.entries(run.tasks || {}).map(([name, task]) => {
    const li = document.createElement("li");
    li.dataset.task = name;
    if (task.status === "ok") li.textContent = TASKS[name] ? TASKS[name](task) : `${name}: done.`;
    else if (task.status === "skipped") li.textContent = `${name}: skipped (you didn't give the permission it needs).`;
    else li.textContent = `${name}: didn't work this time.`;
    return li;
  });
  ui.lastRunTasks.replaceChildren(...items);
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

function notice(title, text) {
  return { kind: "notice", title, text, notice: true };
}

function fail(kind, detail) {
  const from = state.attempt?.kind || (state.result ? "switch" : "sign_in");
  const retry = BUTTONS[from] || BUTTONS.sign_in;
  const [title, text] = (ERRORS[kind] || ERRORS.google_error)(retry);
  const error = { kind, title, text: detail ? `${detail} ${text}` : text,
    notice: Boolean(state.result) && NOTICES.has(kind) };
  if (error.notice && from === "grant") {
    error.text = `Your permissions are unchanged. To give the missing ones, click ${retry} and choose Allow.`;
  } else if (error.notice && from === "switch") {
    error.text = `You're still signed in as ${who()}.`;
  }
  state.attempt = null;
  // A failed attempt from the signed-in view (grant more, reconnect, switch) keeps that view.
  setPhase(state.result ? "signed_in" : "error", error);
  ui.card.dataset.error = kind;
  prepareAttempt();
  // Keyboard users land on the button that tries again.
  const again = { grant: ui.grantButton, reconnect: ui.reconnectButton, switch: ui.switchButton };
  (state.result ? again[from] || ui.switchButton : ui.signinButton).focus();
}

// ---- The account API (through offline-access.js) -------------------------------------------

/** Asks the server for the `state` of the next code request, ahead of the click. */
function prepareAttempt() {
  return oa ? oa.prepare() : Promise.resolve(null);
}

/** The signed-in answer of /api/me, or null (signed out); `unavailable` when it didn't answer. */
async function fetchAccount() {
  const answer = await oa.status();
  return { body: answer.account, unavailable: answer.unavailable };
}

function titled([title, text]) {
  return { title, text };
}

function signedIn(body, { focus = true } = {}) {
  state.result = body;
  state.selectAccountNext = false;
  renderAccount(body);
  setPhase("signed_in");
  ui.card.dataset.error = "";
  if (focus) ui.name.focus();
}

// ---- Google's window and the exchange (through offline-access.js) ----------------------------

/** Starts one attempt from a button: Google's window, then the exchange. */
function requestCode(kind) {
  if (!oa.gisReady) setPhase("loading");
  const options = {
    selectAccount: kind === "switch" || (kind === "sign_in" && state.selectAccountNext),
    onOpen: () => {
      state.attempt = { kind };
      ui.card.dataset.error = "";
      setPhase("waiting");
    },
    onFinishing: () => setPhase("finishing"),
  };
  // Grant more and Reconnect ask for the same account again.
  if ((kind === "grant" || kind === "reconnect") && state.result?.user?.email) {
    options.loginHint = state.result.user.email;
  }
  oa.signIn(options).then((body) => {
    state.attempt = null;
    state.wasDisconnected = false;
    signedIn(body);
    prepareAttempt();
  }, (error) => onSignInError(error));
}

function onSignInError(error) {
  switch (error.kind) {
    case "superseded": // an old attempt's late answer
      return;
    case "gis_loaded": // Google's script was still loading: the user clicks again
      setPhase(state.result ? "signed_in" : "signed_out");
      return;
    case "domain_not_allowed":
      state.selectAccountNext = true;
      fail("domain_not_allowed", error.detail);
      return;
    case "refused":
      fail("refused", error.detail || undefined);
      return;
    default:
      fail(error.kind);
  }
}

// ---- Sign-out and disconnect -------------------------------------------------------------

async function signOut() {
  if (sessions) setPhase("loading");
  await oa.signOut();
  state.result = null;
  state.selectAccountNext = true;
  setPhase("signed_out", notice("You're signed out of this page", sessions
    ? `${cap(app)} keeps working for you while you're away. To end that, sign in and choose Disconnect.`
    : `${cap(app)} keeps its access until you remove it in your Google Account settings.`));
  prepareAttempt();
  ui.signinButton.focus();
}

function askDisconnect() {
  ui.dialogTitle.textContent = `Disconnect ${app}?`;
  ui.dialogText.textContent = `${cap(app)} will stop working with your Google Account, revoke ` +
    "the permission you gave it, and delete everything it stored about you:";
  ui.dialogList.replaceChildren(...[
    "your profile: name, email address and picture;",
    "the list of permissions you gave, and the results of its offline work;",
    "your sessions on every device.",
  ].map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  ui.dialog.showModal();
  ui.dialogCancel.focus();
}

async function disconnect() {
  ui.dialog.close();
  setPhase("disconnecting");
  const { status, body } = await oa.disconnect();
  if (status === 200 || status === 202) {
    state.result = null;
    state.selectAccountNext = true;
    state.wasDisconnected = true;
    const done = status === 200;
    ui.disconnectedTitle.textContent = done ? `${cap(app)} is disconnected` :
      `${cap(app)} is disconnecting`;
    ui.disconnectedText.textContent = done
      ? `${cap(app)} no longer has access to your Google Account. What was removed:`
      : `${body?.message || ""} Expected by ${when(body?.completes_by)}. Signing in again before ` +
        "then keeps your account instead.";
    ui.removedList.replaceChildren(...(done ? body?.removed || [] : []).map(
      (text) => Object.assign(document.createElement("li"), { textContent: text })));
    setPhase("disconnected");
    prepareAttempt();
    ui.disconnectedTitle.tabIndex = -1;
    ui.disconnectedTitle.focus();
    return;
  }
  if (status === 401) {
    state.result = null;
    setPhase("signed_out", notice("Your session had ended",
      "Sign in again, then choose Disconnect."));
    prepareAttempt();
    return;
  }
  setPhase("signed_in", { kind: "disconnect_failed", ...titled(ERRORS.disconnect_failed()) });
  ui.disconnectButton.focus();
}

// ---- Wiring -----------------------------------------------------------------------------

ui.signinButton.addEventListener("click", () => requestCode("sign_in"));
ui.grantButton.addEventListener("click", () => requestCode("grant"));
ui.reconnectButton.addEventListener("click", () => requestCode("reconnect"));
// Signing in again answers Google's request for a new password (the notice then goes).
ui.securityNoticeButton.addEventListener("click", () => requestCode("reconnect"));
ui.switchButton.addEventListener("click", () => requestCode("switch"));
ui.signoutButton.addEventListener("click", signOut);
ui.disconnectButton.addEventListener("click", askDisconnect);
ui.dialogCancel.addEventListener("click", () => { ui.dialog.close(); ui.disconnectButton.focus(); });
ui.dialogConfirm.addEventListener("click", disconnect);
ui.name.tabIndex = -1;

async function start() {
  applyBranding();
  if (!config) {
    fail("config_missing");
    ui.signinButton.disabled = true;
    return;
  }
  setPhase("loading");
  // Google's script and the account load side by side.
  const [account, gis] = await Promise.all([sessions ? fetchAccount() : { body: null }, oa.loadGoogle()]);
  if (account.body) {
    signedIn(account.body, { focus: false });
    if (!gis) state.error = { kind: "gis_unavailable", ...titled(ERRORS.gis_unavailable("Reconnect")) };
    render();
  } else if (!gis) {
    fail("gis_unavailable");
    return;
  } else {
    setPhase("signed_out", account.unavailable
      ? { kind: "account_unavailable", ...titled(ERRORS.account_unavailable()) } : null);
  }
  prepareAttempt();
}

start();
