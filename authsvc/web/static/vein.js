// Palm-vein step of the logon page: take a challenge from the server, ask the terminal agent
// on this machine to capture a palm bound to it, hand the signed capture back to the server.
// The server decides; this only carries.
(function () {
  "use strict";
  const button = document.getElementById("vein-go");
  const failure = document.getElementById("vein-error");
  if (!button) { return; }
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const messages = JSON.parse(button.dataset.messages);
  function show(code) {
    failure.textContent = messages[code] || messages.logon_failed;
    failure.hidden = false;
    button.disabled = false;
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
  button.addEventListener("click", async function () {
    failure.hidden = true;
    button.disabled = true;
    const server = { "X-CSRFToken": csrf };
    const made = await post(button.dataset.challenge, {}, server).catch(() => null);
    if (!made || !made.ok) { show("logon_failed"); return; }
    let taken;
    try {
      taken = await post(made.body.agent_url.replace(/\/$/, "") + "/capture",
        { challenge: made.body.challenge, purpose: "verify" });
    } catch (e) { show("vein_agent_unreachable"); return; }
    if (!taken.ok) { show(taken.body.error); return; }
    const done = await post(button.dataset.verify,
      { challenge_id: made.body.challenge_id, capture: taken.body.capture }, server).catch(() => null);
    if (!done || !done.ok) { show("logon_failed"); return; }
    window.location.assign(done.body.next);
  });
})();
