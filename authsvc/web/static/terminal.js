// Terminal step of the logon page (R12): take a challenge from the server, ask the terminal
// agent on this machine to sign it with the terminal's device key, hand the proof back to the
// server. It runs by itself when the page opens; the button tries again after a failure.
// The server decides; this only carries.
(function () {
  "use strict";
  const button = document.getElementById("terminal-go");
  const failure = document.getElementById("terminal-error");
  if (!button) { return; }
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const messages = JSON.parse(button.dataset.messages);
  function show(code, url) {
    failure.textContent = (messages[code] || messages.logon_failed).replace("{url}", url || "");
    failure.hidden = false;
    button.hidden = false;
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
    return { ok: resp.ok, body: data };
  }
  async function prove() {
    failure.hidden = true;
    button.disabled = true;
    const server = { "X-CSRFToken": csrf };
    const made = await post(button.dataset.challenge, {}, server).catch(() => null);
    if (!made || !made.ok) { show("logon_failed"); return; }
    const elsewhere = wrongAddress(made.body.origins);
    if (elsewhere) { show("agent_wrong_address", elsewhere); return; }
    let signed;
    try {
      signed = await post(made.body.agent_url.replace(/\/$/, "") + "/attest",
        { challenge: made.body.challenge });
    } catch (e) { show("terminal_agent_unreachable"); return; }
    if (!signed.ok) { show("logon_failed"); return; }
    const done = await post(button.dataset.verify,
      { challenge_id: made.body.challenge_id, proof: signed.body.proof }, server).catch(() => null);
    if (!done || !done.ok) { show("logon_failed"); return; }
    window.location.assign(done.body.next);
  }
  button.addEventListener("click", prove);
  prove();
})();
