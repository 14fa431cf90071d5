// Palm-vein registration pages (registrant and console): follow the session's state, take a
// still image of the photo ID with the browser camera, and read the palm through the terminal
// agent for an enrolment. The server decides everything; this only carries.
(function () {
  "use strict";
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const box = document.getElementById("registration");
  if (!box) { return; }
  const messages = JSON.parse(box.dataset.messages || "{}");
  const failure = document.getElementById("registration-error");
  function show(code, message) {
    failure.textContent = message || messages[code] || messages.request_invalid;
    failure.hidden = false;
    document.querySelectorAll("button[data-busy]").forEach(function (b) {
      b.disabled = false; delete b.dataset.busy;
    });
  }
  function busy(button) { failure.hidden = true; button.disabled = true; button.dataset.busy = "1"; }
  async function send(url, body, type, server) {
    const headers = { "Content-Type": type || "application/json" };
    if (server !== false) { headers["X-CSRFToken"] = csrf; }
    const resp = await fetch(url, {
      method: "POST", credentials: server === false ? "omit" : "same-origin", headers: headers,
      body: type ? body : JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    return { ok: resp.ok, status: resp.status, body: data };
  }

  // 1. the session's state: reload the page when it moves on (the other party acted)
  if (box.dataset.poll) {
    const every = Number(box.dataset.every || 2000);
    const tick = async function () {
      try {
        const resp = await fetch(box.dataset.poll, { credentials: "same-origin" });
        const data = await resp.json();
        if (!resp.ok || data.state !== box.dataset.state) { window.location.reload(); return; }
      } catch (e) { /* the next tick tries again */ }
      window.setTimeout(tick, every);
    };
    window.setTimeout(tick, every);
  }

  // 2. the photo ID, held up to the camera: one still image, sent once
  const start = document.getElementById("camera-start");
  const take = document.getElementById("id-capture");
  const video = document.getElementById("camera");
  if (start && take && video) {
    start.addEventListener("click", async function () {
      failure.hidden = true;
      try {
        video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
        await video.play();
        take.disabled = false;
      } catch (e) { show("camera_unavailable"); }
    });
    take.addEventListener("click", async function () {
      busy(take);
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth || 640;
      canvas.height = video.videoHeight || 480;
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      const blob = await new Promise(function (done) { canvas.toBlob(done, "image/jpeg", 0.9); });
      if (!blob) { show("registration_image_invalid"); return; }
      const sent = await send(take.dataset.upload, blob, "image/jpeg").catch(() => null);
      if (!sent || !sent.ok) { show(sent && sent.body.error, sent && sent.body.message); return; }
      video.srcObject.getTracks().forEach(function (t) { t.stop(); });
      window.location.reload();
    });
  }

  // 3. the palm: one challenge per sample from the server, each read by the agent
  const enrol = document.getElementById("vein-enrol");
  if (enrol && enrol.dataset.form) {
    document.getElementById(enrol.dataset.form).addEventListener("submit", function (e) {
      e.preventDefault();
    });
  }
  if (enrol) {
    enrol.addEventListener("click", async function () {
      busy(enrol);
      const form = enrol.dataset.form ? document.getElementById(enrol.dataset.form) : null;
      const fields = form ? Object.fromEntries(new FormData(form)) : {};
      delete fields.csrf_token;
      if (form && !form.reportValidity()) { show("request_invalid"); return; }
      const made = await send(enrol.dataset.challenges, fields).catch(() => null);
      if (!made || !made.ok) { show(made && made.body.error, made && made.body.message); return; }
      const origins = made.body.origins;
      if (Array.isArray(origins) && origins.length && origins.indexOf(location.origin) < 0) {
        // opened at an address the terminal agent does not answer (127.0.0.1 for localhost)
        show("agent_wrong_address", (messages.agent_wrong_address || "")
          .replace("{url}", origins[0] + location.pathname + location.search));
        return;
      }
      const agent = made.body.agent_url.replace(/\/$/, "") + "/capture";
      const captures = [];
      for (const c of made.body.challenges) {
        let taken;
        try {
          taken = await send(agent, { challenge: c.challenge, purpose: "enrol" }, null, false);
        } catch (e) { show("vein_agent_unreachable"); return; }
        if (!taken.ok) { show(taken.body.error); return; }
        captures.push({ challenge_id: c.id, capture: taken.body.capture });
      }
      const done = await send(enrol.dataset.enrol, Object.assign({}, fields, { captures: captures }))
        .catch(() => null);
      if (!done || !done.ok) { show(done && done.body.error, done && done.body.message); return; }
      window.location.assign(done.body.next);
    });
  }
})();
