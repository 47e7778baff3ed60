// gatekeeper's browser client: the signed-in user's CLIENT_SIDE flags, with no flicker and no build step.
//
// The page carries the flags it was rendered with (gk.bootstrap() in the template writes them as JSON in
// <script type="application/json" id="gatekeeper-bootstrap">), so they are known before any request.
// templates/gatekeeper/client.html writes that element and then loads this file; include it, then:
//
//   gatekeeper.ff("NEW_CHECKOUT", "ON")     // true when this user gets ON
//   gatekeeper.value("WELCOME_MESSAGE")     // the value of the variant this user gets
//   gatekeeper.variant("NEW_CHECKOUT")      // the variant's name
//   gatekeeper.onChange(function (flags) { ... })   // after a refresh changed these flags (their keys)
//   gatekeeper.refresh()                    // ask the OFREP bulk endpoint again (304 when nothing changed)
//
// A flag the page was not given (not CLIENT_SIDE, or unknown) is undefined: ff() is false, value() undefined.
(function () {
  "use strict";

  var element = document.getElementById("gatekeeper-bootstrap");
  var state = { url: null, etag: null, flags: {} };
  var listeners = [];

  function index(list) {
    var flags = {};
    (list || []).forEach(function (item) {
      if (item && typeof item.key === "string" && !item.errorCode) {
        flags[item.key] = item;
      }
    });
    return flags;
  }

  if (element) {
    try {
      var data = JSON.parse(element.textContent);
      state.url = data.url;
      state.etag = data.etag;
      state.flags = index(data.flags);
    } catch (error) {
      // A page whose bootstrap cannot be read still works: every flag is unknown until a refresh.
      if (window.console) {
        window.console.error("gatekeeper: unreadable bootstrap", error);
      }
    }
  }

  function same(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function refresh() {
    if (!state.url) {
      return Promise.resolve([]);
    }
    var headers = { "Content-Type": "application/json" };
    if (state.etag) {
      headers["If-None-Match"] = '"' + state.etag + '"';
    }
    return fetch(state.url, {
      method: "POST",
      credentials: "same-origin",
      headers: headers,
      body: JSON.stringify({ context: {} }),
    }).then(function (response) {
      if (response.status === 304) {
        return [];
      }
      if (!response.ok) {
        throw new Error("gatekeeper: refresh answered " + response.status);
      }
      var etag = (response.headers.get("ETag") || "").replace(/^W\//, "").replace(/"/g, "");
      return response.json().then(function (body) {
        var flags = index(body.flags);
        var changed = Object.keys(Object.assign({}, state.flags, flags)).filter(function (key) {
          return !same(state.flags[key], flags[key]);
        });
        state.flags = flags;
        state.etag = etag || null;
        if (changed.length) {
          listeners.slice().forEach(function (listener) {
            listener(changed);
          });
        }
        return changed;
      });
    });
  }

  window.gatekeeper = {
    ff: function (flag, variant) {
      var item = state.flags[flag];
      return Boolean(item) && item.variant === variant;
    },
    variant: function (flag) {
      var item = state.flags[flag];
      return item ? item.variant : undefined;
    },
    value: function (flag) {
      var item = state.flags[flag];
      return item ? item.value : undefined;
    },
    flags: function () {
      return Object.keys(state.flags);
    },
    onChange: function (listener) {
      listeners.push(listener);
      return function () {
        listeners = listeners.filter(function (other) {
          return other !== listener;
        });
      };
    },
    refresh: refresh,
  };
})();
