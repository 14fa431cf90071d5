// WebAuthn ceremony for the logon pages: ask the server for options, let the browser talk to
// the authenticator, send the result back. The server decides everything; this only carries.
(function () {
  "use strict";
  const button = document.getElementById("webauthn-go");
  const failure = document.getElementById("webauthn-error");
  if (!button) { return; }
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  async function post(url, body) {
    const resp = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {}),
    });
    return { ok: resp.ok, body: await resp.json() };
  }
  button.addEventListener("click", async function () {
    failure.hidden = true;
    button.disabled = true;
    try {
      const opts = await post(button.dataset.options);
      if (!opts.ok) { throw new Error("options"); }
      const register = button.dataset.mode === "register";
      const publicKey = register
        ? PublicKeyCredential.parseCreationOptionsFromJSON(opts.body.publicKey)
        : PublicKeyCredential.parseRequestOptionsFromJSON(opts.body.publicKey);
      const credential = register
        ? await navigator.credentials.create({ publicKey })
        : await navigator.credentials.get({ publicKey });
      const done = await post(button.dataset.verify,
        { challenge_id: opts.body.challenge_id, credential: credential.toJSON() });
      if (!done.ok) { throw new Error("verify"); }
      window.location.assign(done.body.next);
    } catch (e) {
      failure.hidden = false;
      button.disabled = false;
    }
  });
})();
