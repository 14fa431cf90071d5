// Palm-vein step of the logon page: take a challenge from the server, ask the terminal agent
// on this machine to capture a palm bound to it, hand the signed capture back to the server.
// The server decides; this only carries. Opened from the second-factor page's palm link
// (data-start), it reads at once: one press of 「手のひら静脈で確認する」; the button tries again.
(function () {
  "use strict";
  const button = document.getElementById("vein-go");
  const failure = document.getElementById("vein-error");
  if (!button) { return; }
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const messages = JSON.parse(button.dataset.messages);
  function show(code, url) {
    failure.textContent = (messages[code] || messages.logon_failed).replace("{url}", url || "");
    failure.hidden = false;
    button.disabled = false;
  }
  // The page opened at an address the terminal agent does not answer (127.0.0.1 for
  // localhost, say): the address to use instead, this page's path on it; else null.
  function wrongAddress(origins) {
    if (!Array.isArray(origins) || !origins.length || origins.indexOf(location.origin) >= 0) {
      return null;
    }
    return origins[0] + location.pathname + location.search;
  }
  async function post(url, body, headers) {
    const resp = await fetch(url, {
      method: "POST", credentials: headers ? "same-origin" : "omit",
      headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    return { ok: resp.ok, status: resp.status, body: data };
  }
  async function read() {
    failure.hidden = true;
    button.disabled = true;
    const server = { "X-CSRFToken": csrf };
    const made = await post(button.dataset.challenge, {}, server).catch(() => null);
    if (!made || !made.ok) { show("logon_failed"); return; }
    const elsewhere = wrongAddress(made.body.origins);
    if (elsewhere) { show("agent_wrong_address", elsewhere); return; }
    let taken;
    try {
      taken = await post(made.body.agent_url.replace(/\/$/, "") + "/capture",
        { challenge: made.body.challenge, purpose: "verify" });
    } catch (e) { show("vein_agent_unreachable"); return; }
    if (!taken.ok) { show(taken.body.error); return; }
    const done = await post(button.dataset.verify,
      { challenge_id: made.body.challenge_id, capture: taken.body.capture }, server).catch(() => null);
    if (!done || !done.ok) { show(done && done.status === 401 ? "vein_read_again" : "logon_failed"); return; }
    window.location.assign(done.body.next);
  }
  button.addEventListener("click", read);
  if (button.dataset.start) { read(); }
})();
