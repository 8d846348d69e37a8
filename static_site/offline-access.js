// offline-access.js: the sign-in of an offline-access deployment, as a module any page can use.
//
//   import { signIn, status, reconnect, disconnect } from "/offline-access.js";
//   const account = await signIn({ scopes: "openid email https://www.googleapis.com/auth/drive.appdata" });
//
// No framework, no inline script or style, no eval: it runs under the sign-in page's strict
// Content-Security-Policy (script-src 'self' plus Google's sign-in origin). It loads Google
// Identity Services' code model, asks Google for a one-time code in a popup, and sends it to
// the exchange; with `accountApiUrl` (the page's own origin, as Firebase Hosting serves it) it
// keeps a session in the __session cookie: `status()` asks /api/me, each code request carries a
// `state` from /api/sign-in-attempts, and `disconnect()` ends the account. Without it (a page
// on another origin) it checks its own random `state` and keeps nothing.
//
// The settings come from `window.APP_CONFIG` (config.js, written by `make dev` or Terraform)
// or from `new OfflineAccess({clientId, exchangeUrl, accountApiUrl, scopes, gisScriptUrl})`.
// Call `signIn` from a click handler: browsers open popups only for a user gesture.
//
// Failures reject with a `SignInError` whose `kind` says what happened:
//   popup_failed_to_open, popup_closed, access_denied, google_error, state_mismatch,
//   code_rejected, domain_not_allowed, upstream_invalid, service_unavailable, refused,
//   gis_unavailable, gis_loaded (Google's script was still loading: click again),
//   superseded (a newer sign-in started: ignore this one).

const REQUEST_TIMEOUT_MS = 30000;
// An attempt is asked for ahead of the click (the popup must open inside the click handler);
// one that expires within this margin is replaced first.
const ATTEMPT_MARGIN_MS = 60000;
const REQUIRED = ["clientId", "exchangeUrl", "scopes", "gisScriptUrl"];

export class SignInError extends Error {
  constructor(kind, { detail = "", status = 0 } = {}) {
    super(detail || kind);
    this.name = "SignInError";
    this.kind = kind;
    this.detail = detail;
    this.status = status;
  }
}

/** The configuration of `window.APP_CONFIG`, or null when it is missing or incomplete. */
export function readConfig(source = window.APP_CONFIG) {
  const ok = source && REQUIRED.every((key) => typeof source[key] === "string" && source[key].trim() !== "");
  return ok ? source : null;
}

function randomState() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export class OfflineAccess {
  constructor(config = readConfig()) {
    if (!readConfig(config)) throw new SignInError("config_missing");
    this.config = config;
    this.sessions = Boolean(config.accountApiUrl);
    this.gisReady = false;
    this.account = null; // the last signed-in answer (exchange or /api/me)
    this.next = null; // a server-issued { state, expiresAt } for the next code request
    this.attempts = 0;
    this.current = null; // the attempt in progress: answers of older ones are dropped
    this.pendingAttempt = null;
    this.loadingGis = null;
  }

  async api(path, { method = "GET" } = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(this.config.accountApiUrl.replace(/\/$/, "") + path, {
        method,
        headers: method === "POST" ? { "X-Requested-With": "XMLHttpRequest" } : {},
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
      const body = await response.json().catch(() => null);
      return { status: response.status, body };
    } catch {
      return { status: 0, body: null };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Asks the server for the next sign-in attempt's `state`, ahead of the click. One request at
   * a time: the attempts live in the session cookie, so two answers in flight would each carry
   * a cookie that lacks the other's state, and the cookie that lands last would orphan one.
   */
  prepare() {
    if (!this.pendingAttempt) {
      this.pendingAttempt = this.askForAttempt().finally(() => { this.pendingAttempt = null; });
    }
    return this.pendingAttempt;
  }

  async askForAttempt() {
    if (!this.sessions) return null;
    const { status, body } = await this.api("/sign-in-attempts", { method: "POST" });
    if (status !== 200 || typeof body?.state !== "string") {
      this.next = null;
      return null;
    }
    this.next = { state: body.state, expiresAt: Date.now() + (body.expires_in || 600) * 1000 };
    return this.next;
  }

  /** Loads Google's script once; resolves true when `initCodeClient` is there, false if not. */
  loadGoogle() {
    if (this.gisReady) return Promise.resolve(true);
    if (!this.loadingGis) {
      this.loadingGis = new Promise((resolve) => {
        const script = document.createElement("script");
        script.src = this.config.gisScriptUrl;
        script.async = true;
        script.onload = () => {
          this.gisReady = Boolean(window.google?.accounts?.oauth2?.initCodeClient);
          resolve(this.gisReady);
        };
        script.onerror = () => {
          script.remove();
          resolve(false);
        };
        document.head.append(script);
      }).finally(() => { this.loadingGis = null; });
    }
    return this.loadingGis;
  }

  /**
   * The account: `{ signedIn: true, account }` (the answer of /api/me), or `{ signedIn: false,
   * unavailable }` (unavailable: the server did not answer, the user may still be signed in).
   */
  async status() {
    if (!this.sessions) return { signedIn: Boolean(this.account), account: this.account, unavailable: false };
    const { status, body } = await this.api("/me");
    if (status === 200 && body?.status === "signed_in") {
      this.account = body;
      return { signedIn: true, account: body, unavailable: false };
    }
    if (status === 401) this.account = null;
    return { signedIn: false, account: null, unavailable: status !== 401 };
  }

  /**
   * Google's popup, then the exchange: resolves with the signed-in answer (the shape of
   * /api/me), rejects with a `SignInError`. Options: `scopes` (default: the configured ones),
   * `selectAccount` (let the user pick another account), `loginHint` (the same account
   * again), `onOpen()` (Google's window opened), `onFinishing()` (the code is being sent).
   */
  signIn(options = {}) {
    if (!this.gisReady) {
      return this.loadGoogle().then((ok) => {
        throw new SignInError(ok ? "gis_loaded" : "gis_unavailable");
      });
    }
    return new Promise((resolve, reject) => {
      const open = (state) => this.openGoogle({ ...options, state }, resolve, reject);
      if (!this.sessions) {
        open(randomState());
        return;
      }
      const next = this.next;
      if (next && next.expiresAt - Date.now() > ATTEMPT_MARGIN_MS) {
        this.next = null;
        open(next.state);
        return;
      }
      // Browsers keep a click's permission to open a pop-up for a few seconds: enough to ask.
      this.prepare().then((fresh) => {
        if (!fresh) {
          reject(new SignInError("service_unavailable"));
          return;
        }
        this.next = null;
        open(fresh.state);
      });
    });
  }

  /** `signIn` for the account already known (its email as `login_hint`), after a lost grant. */
  reconnect(options = {}) {
    const email = this.account?.user?.email;
    return this.signIn(email ? { loginHint: email, ...options } : options);
  }

  openGoogle(options, resolve, reject) {
    const attempt = { id: ++this.attempts, state: options.state };
    const clientConfig = {
      client_id: this.config.clientId,
      scope: options.scopes || this.config.scopes,
      ux_mode: "popup",
      include_granted_scopes: true,
      state: attempt.state,
      callback: (response) => this.onCodeResponse(attempt, response, options, resolve, reject),
      error_callback: (error) => {
        if (this.current?.id !== attempt.id) return reject(new SignInError("superseded"));
        this.current = null;
        const type = error?.type;
        reject(new SignInError(type === "popup_failed_to_open" || type === "popup_closed" ? type : "google_error"));
      },
    };
    if (options.selectAccount) clientConfig.select_account = true;
    // GIS's code client has no `prompt` option: Google shows the consent screen because the
    // code model asks for it on each request, and a grant Google no longer holds always needs
    // a new consent.
    if (options.loginHint) clientConfig.login_hint = options.loginHint;
    this.current = attempt;
    options.onOpen?.();
    try {
      // Must run inside the click handler: browsers only open pop-ups for a user gesture.
      window.google.accounts.oauth2.initCodeClient(clientConfig).requestCode();
    } catch (exc) {
      console.error("requestCode failed", exc);
      this.current = null;
      reject(new SignInError("google_error"));
    }
  }

  onCodeResponse(attempt, response, options, resolve, reject) {
    if (this.current?.id !== attempt.id) return reject(new SignInError("superseded"));
    const fail = (kind) => { this.current = null; reject(new SignInError(kind)); };
    if (response?.error) return fail(response.error === "access_denied" ? "access_denied" : "google_error");
    if (response?.state !== attempt.state) return fail("state_mismatch");
    if (!response?.code) return fail("google_error");
    options.onFinishing?.();
    this.exchange(attempt, response.code).then(resolve, reject);
  }

  async exchange(attempt, code) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    let body = null;
    try {
      response = await fetch(this.config.exchangeUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest" },
        body: JSON.stringify({ code, state: attempt.state }),
        // The session cookie goes only to the page's own origin.
        credentials: this.sessions ? "same-origin" : "omit",
        cache: "no-store",
        signal: controller.signal,
      });
      body = await response.json().catch(() => null);
    } catch {
      // Network error, CORS refusal or timeout: the server is out of reach.
      throw this.settle(attempt, new SignInError("service_unavailable"));
    } finally {
      clearTimeout(timer);
    }
    if (this.current?.id !== attempt.id) throw new SignInError("superseded");
    this.current = null;
    if (response.ok && body?.status === "signed_in" && body.user) {
      this.account = body;
      return body;
    }
    const status = response.status;
    const errorCode = body?.error;
    if (["code_rejected", "state_mismatch", "upstream_invalid"].includes(errorCode)) {
      throw new SignInError(errorCode, { status });
    }
    if (errorCode === "domain_not_allowed") throw new SignInError(errorCode, { detail: body.message, status });
    if ([502, 503, 504].includes(status) || errorCode === "service_unavailable" || !body) {
      throw new SignInError("service_unavailable", { status });
    }
    throw new SignInError("refused", { detail: body?.message || "", status });
  }

  settle(attempt, error) {
    if (this.current?.id !== attempt.id) return new SignInError("superseded");
    this.current = null;
    return error;
  }

  /** Ends this browser's session (the app keeps working while the user is away). */
  async signOut() {
    if (this.sessions) await this.api("/sign-out", { method: "POST" });
    this.account = null;
  }

  /**
   * Revokes the grant at Google and deletes the account: `{ status: 200, body }` when done
   * (`body.removed` says what), 202 when the next scheduled run finishes it (`completes_by`),
   * 401 when the session had ended, another status (or 0) when nothing changed.
   */
  async disconnect() {
    const answer = await this.api("/disconnect", { method: "POST" });
    if (answer.status === 200 || answer.status === 202 || answer.status === 401) this.account = null;
    return answer;
  }
}

// The same, on one instance configured by config.js: for pages that embed the sign-in in a
// few lines. Each call also asks for the next attempt's `state`, so the next click opens
// Google's window at once.
let shared = null;

function instance() {
  if (!shared) shared = new OfflineAccess();
  return shared;
}

function thenPrepare(promise) {
  return promise.finally(() => { if (instance().sessions) instance().prepare(); });
}

export function signIn(options = {}) { return thenPrepare(instance().signIn(options)); }
export function reconnect(options = {}) { return thenPrepare(instance().reconnect(options)); }
export function status() {
  const oa = instance();
  return thenPrepare(Promise.all([oa.status(), oa.loadGoogle()]).then(([answer]) => answer));
}
export function disconnect() { return thenPrepare(instance().disconnect()); }
export function signOut() { return thenPrepare(instance().signOut()); }
