// Live refresh of the overview: fetch the server-rendered fragment (same templates, escaped
// there) and swap it in. No framework, no CDN; the page works without it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var state = document.getElementById("refresh-state");
  function refresh() {
    // Not while hidden, and not under a keyboard user's focus (swapping would drop it).
    if (document.hidden || live.contains(document.activeElement)) { return; }
    fetch(live.getAttribute("data-live"), {credentials: "same-origin"})
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) { live.innerHTML = html; if (state) { state.textContent = ""; } })
      .catch(function () { if (state) { state.textContent = "(refresh failed; retrying)"; } });
  }
  setInterval(refresh, 5000);
}());
