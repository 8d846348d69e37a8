/*
 * Local Google Identity Services: the subset of https://accounts.google.com/gsi/client that the
 * code model (popup UX) uses, served by the local Google so pages run with no Google account.
 *
 *   google.accounts.oauth2.initCodeClient(config) -> { requestCode() }
 *   google.accounts.oauth2.hasGrantedAllScopes(response, ...scopes)
 *   google.accounts.oauth2.hasGrantedAnyScope(response, ...scopes)
 *   google.accounts.oauth2.revoke(token, done)
 *
 * requestCode() opens the consent popup at /o/oauth2/v2/auth with redirect_uri = this page's
 * origin. The popup answers with postMessage to exactly that origin; this script accepts only
 * messages from the local Google's origin and from its own popup.
 */
(function () {
  "use strict";

  var BASE = __LOCAL_GOOGLE_BASE__;
  var GOOGLE_ORIGIN = new URL(BASE).origin;
  var MESSAGE_TYPE = "local-google/code-response";
  var CLOSED_POLL_MS = 300;
  // postMessage and the popup closing race: the answer crosses processes and can land after
  // "closed" is seen, by more than half a second on a loaded machine. Wait this long for it.
  var CLOSED_GRACE_MS = 1500;
  var ALIASES = {
    email: "https://www.googleapis.com/auth/userinfo.email",
    profile: "https://www.googleapis.com/auth/userinfo.profile"
  };

  function normaliseScope(scope) {
    return ALIASES[scope] || scope;
  }

  function splitScopes(value) {
    return String(value || "").split(" ").filter(function (s) { return s; });
  }

  function nonOAuthError(config, type, message) {
    var error = new Error(message);
    error.type = type;
    if (typeof config.error_callback === "function") {
      config.error_callback({ type: type, message: message, stack: error.stack });
    } else {
      console.error("[local GIS] " + message);
    }
  }

  function CodeClient(config) {
    this._config = config;
    this._popup = null;
    this._cleanup = null;
  }

  CodeClient.prototype.requestCode = function () {
    var config = this._config;
    if (this._cleanup) {
      this._cleanup();
    }
    var params = new URLSearchParams();
    params.set("gsiwebsdk", "3");
    params.set("client_id", config.client_id);
    params.set("scope", config.scope);
    params.set("redirect_uri", window.location.origin);
    params.set("response_type", "code");
    params.set("include_granted_scopes", String(config.include_granted_scopes !== false));
    params.set("enable_granular_consent", String(config.enable_granular_consent !== false));
    params.set("access_type", "offline");
    if (config.select_account) {
      params.set("prompt", "select_account");
    }
    if (config.login_hint) {
      params.set("login_hint", config.login_hint);
    }
    if (config.hd) {
      params.set("hd", config.hd);
    }
    if (config.state !== undefined && config.state !== null) {
      params.set("state", config.state);
    }

    var width = 500;
    var height = 640;
    var left = Math.max(0, (window.screenX || 0) + ((window.outerWidth || width) - width) / 2);
    var top = Math.max(0, (window.screenY || 0) + ((window.outerHeight || height) - height) / 2);
    var popup = window.open(
      BASE + "/o/oauth2/v2/auth?" + params.toString(),
      "g_local_google_code",
      "width=" + width + ",height=" + height + ",left=" + left + ",top=" + top
    );
    if (!popup) {
      nonOAuthError(config, "popup_failed_to_open", "Failed to open popup window");
      return;
    }
    this._popup = popup;

    var finished = false;
    var pollTimer = null;
    var graceTimer = null;
    var self = this;

    function finish() {
      finished = true;
      window.removeEventListener("message", onMessage);
      clearInterval(pollTimer);
      clearTimeout(graceTimer);
      self._cleanup = null;
      self._popup = null;
    }

    function onMessage(event) {
      if (finished || event.origin !== GOOGLE_ORIGIN || event.source !== popup) {
        return;
      }
      var data = event.data;
      if (!data || data.type !== MESSAGE_TYPE || typeof data.response !== "object") {
        return;
      }
      finish();
      if (typeof config.callback === "function") {
        config.callback(data.response);
      } else {
        console.error("[local GIS] initCodeClient needs a callback in popup mode");
      }
    }

    window.addEventListener("message", onMessage);
    pollTimer = setInterval(function () {
      if (finished || !popup.closed) {
        return;
      }
      clearInterval(pollTimer);
      graceTimer = setTimeout(function () {
        if (!finished) {
          finish();
          nonOAuthError(config, "popup_closed", "Popup window closed");
        }
      }, CLOSED_GRACE_MS);
    }, CLOSED_POLL_MS);
    this._cleanup = finish;
  };

  function initCodeClient(config) {
    if (!config || !config.client_id) {
      throw new Error("Missing required parameter client_id.");
    }
    if (!config.scope) {
      throw new Error("Missing required parameter scope.");
    }
    if (config.ux_mode && config.ux_mode !== "popup") {
      throw new Error("The local Google only implements ux_mode 'popup'.");
    }
    return new CodeClient(config);
  }

  function grantedSet(response) {
    var granted = {};
    splitScopes(response && response.scope).forEach(function (s) {
      granted[normaliseScope(s)] = true;
    });
    return granted;
  }

  function hasGrantedAllScopes(response) {
    var granted = grantedSet(response);
    var wanted = Array.prototype.slice.call(arguments, 1);
    return wanted.length > 0 && wanted.every(function (s) { return granted[normaliseScope(s)]; });
  }

  function hasGrantedAnyScope(response) {
    var granted = grantedSet(response);
    var wanted = Array.prototype.slice.call(arguments, 1);
    return wanted.some(function (s) { return granted[normaliseScope(s)]; });
  }

  function revoke(token, done) {
    fetch(BASE + "/revoke?token=" + encodeURIComponent(token), { method: "POST" })
      .then(function (r) {
        return r.text().then(function (text) {
          var body = {};
          try { body = text ? JSON.parse(text) : {}; } catch (e) { body = {}; }
          return { successful: r.ok, error: body.error, error_description: body.error_description };
        });
      })
      .catch(function (e) { return { successful: false, error: "network_error", error_description: String(e) }; })
      .then(function (result) { if (typeof done === "function") { done(result); } });
  }

  window.google = window.google || {};
  window.google.accounts = window.google.accounts || {};
  window.google.accounts.oauth2 = {
    initCodeClient: initCodeClient,
    hasGrantedAllScopes: hasGrantedAllScopes,
    hasGrantedAnyScope: hasGrantedAnyScope,
    revoke: revoke
  };

  if (typeof window.onGoogleLibraryLoad === "function") {
    window.onGoogleLibraryLoad();
  }
})();
