// A stand-in for WeCom's JS-SDK (@wecom/jssdk) as far as its login panel
// goes: `ww.createWWLoginPanel` (doc 98478). As the SDK does, it puts an
// iframe of the web login page (here the simulator's, the origin this script
// came from) into `el`, passes `params` as its query plus `version`, sizes it
// by `panel_size`, and calls `onLoginSuccess({code})` / `onLoginFail(err)`
// when the frame posts the SDK's `ww-iframe-handle:call` message (JSON text).
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = new URL(script.src).origin;
  var SIZES = { middle: ["480px", "416px"], small: ["320px", "380px"] };

  function createWWLoginPanel(options) {
    var el = typeof options.el === "string" ? document.querySelector(options.el) : options.el;
    var params = options.params || {};
    var iframe = document.createElement("iframe");
    var size = SIZES[params.panel_size] || SIZES.middle;
    iframe.style.display = "block";
    iframe.style.border = "none";
    iframe.style.width = size[0];
    iframe.style.height = size[1];
    iframe.referrerPolicy = "origin";
    iframe.className = "wecom-login-panel";
    var url = new URL(origin + "/wwlogin/sso/login");
    Object.keys(params).forEach(function (key) {
      url.searchParams.set(key, params[key]);
    });
    url.searchParams.set("version", "stand-in");
    function onMessage(event) {
      if (event.origin !== origin || event.source !== iframe.contentWindow) return;
      var message;
      try {
        message = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
      } catch (e) {
        return;
      }
      if (!message || message.type !== "ww-iframe-handle:call" || !message.args) return;
      var call = message.args;
      var handler = call.type === "call" && options[call.name];
      if (typeof handler === "function") handler(call.payload || call.data);
    }
    window.addEventListener("message", onMessage);
    iframe.src = url.href;
    if (el) el.appendChild(iframe);
    return {
      el: iframe,
      unmount: function () {
        window.removeEventListener("message", onMessage);
        if (iframe.parentNode) iframe.parentNode.removeChild(iframe);
      },
    };
  }

  window.ww = Object.assign(window.ww || {}, {
    SDK_VERSION: "stand-in",
    createWWLoginPanel: createWWLoginPanel,
  });
})();
