// The request of Google's original sample, without jQuery. Its $.ajax call was:
//   $.ajax({type: 'POST', url: ..., headers: {'X-Requested-With': 'XMLHttpRequest'},
//           contentType: 'application/octet-stream; charset=utf-8',
//           processData: false, data: authResult['code']})
// which is exactly this XMLHttpRequest. The test calls window.sendCodeLikeGoogleSample(code).
"use strict";

window.sendCodeLikeGoogleSample = function (code) {
  return new Promise(function (resolve) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", window.APP_CONFIG.exchangeUrl);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.setRequestHeader("Content-Type", "application/octet-stream; charset=utf-8");
    xhr.onloadend = function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      document.getElementById("status").textContent = "Server answered " + xhr.status + ".";
      document.getElementById("result").textContent = JSON.stringify(body, null, 2);
      resolve({ status: xhr.status, body: body });
    };
    xhr.send(code);
  });
};
