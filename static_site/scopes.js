// Human-readable names for OAuth scopes, worded like Google's consent screen.
//
// Google answers with full scope URLs (`email` becomes .../auth/userinfo.email, and `openid` is
// added), so both spellings map to the same entry.

const AUTH = "https://www.googleapis.com/auth/";

const NAMES = new Map([
  ["openid", "Associate you with your personal info on Google"],
  ["email", "See your primary Google Account email address"],
  ["profile", "See your personal info, including any personal info you've made publicly available"],
  [AUTH + "userinfo.email", "See your primary Google Account email address"],
  [AUTH + "userinfo.profile", "See your personal info, including any personal info you've made publicly available"],
  [AUTH + "drive.appdata", "Store its own app data in your Google Drive"],
  [AUTH + "drive.file", "See, edit, create and delete only the Google Drive files you use with this app"],
  [AUTH + "drive.readonly", "See and download all your Google Drive files"],
  [AUTH + "drive", "See, edit, create and delete all of your Google Drive files"],
  [AUTH + "calendar.readonly", "See and download any calendar you can access using Google Calendar"],
  [AUTH + "calendar.events", "View and edit events on all your calendars"],
  [AUTH + "gmail.readonly", "View your email messages and settings"],
  [AUTH + "tasks", "Create, edit, organise and delete all your tasks"],
]);

const ALIASES = new Map([
  ["email", AUTH + "userinfo.email"],
  ["profile", AUTH + "userinfo.profile"],
]);

const SIGN_IN_SCOPES = new Set(["openid", AUTH + "userinfo.email", AUTH + "userinfo.profile"]);

/** The canonical spelling Google uses in its answers. */
export function normalise(scope) {
  return ALIASES.get(scope) || scope;
}

/** A sentence naming what the scope lets the app do. */
export function describe(scope) {
  return NAMES.get(scope) || NAMES.get(normalise(scope)) || scope;
}

/** True for the Sign-In scopes (openid, email, profile), which Google grants as a whole. */
export function isSignInScope(scope) {
  return SIGN_IN_SCOPES.has(normalise(scope));
}

/** Space-separated scope string → unique canonical scopes, in order. */
export function parse(scopes) {
  const seen = new Set();
  for (const item of String(scopes || "").split(/\s+/)) {
    if (item) seen.add(normalise(item));
  }
  return [...seen];
}
