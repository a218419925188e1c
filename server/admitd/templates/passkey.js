// admitd step-up: passkey (WebAuthn) verification and registration.
// Served as a file so the page's CSP can forbid inline script.
"use strict";
(() => {
  const base = "/.admitd/step-up/passkey";
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
  const status = document.getElementById("status");

  function say(message) {
    status.textContent = message;
    status.hidden = false;
  }

  async function call(method, url, body) {
    const headers = { "X-CSRF-Token": meta("admitd-csrf"), Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const reply = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await reply.json().catch(() => ({}));
    if (!reply.ok) throw new Error(data?.error?.message || `Request failed (${reply.status}).`);
    return data;
  }

  async function verify() {
    const options = await call("GET", `${base}/options`);
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
    const result = await call("POST", `${base}/verify`, {
      credential: credential.toJSON(),
      return_to: meta("admitd-return-to"),
    });
    window.location.assign(result.location);  // a same-host path chosen by admitd
  }

  async function register() {
    const options = await call("GET", `${base}/register/options`);
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    });
    const result = await call("POST", `${base}/register`, {
      credential: credential.toJSON(),
      return_to: meta("admitd-return-to"),
      reason: meta("admitd-reason"),
    });
    // The step-up page again: it confirms the new passkey and shows the next step.
    window.location.assign(result.location);
  }

  function wire(id, action) {
    const button = document.getElementById(id);
    if (!button) return;
    button.hidden = false;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await action();
      } catch (error) {
        say(error.name === "NotAllowedError"
          ? "The passkey request was cancelled or timed out. Try again."
          : error.message);
      } finally {
        button.disabled = false;
      }
    });
  }

  if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
    wire("passkey-verify", verify);
    wire("passkey-register", register);
  } else if (document.querySelector("#passkey-verify, #passkey-register")) {
    say("This browser cannot use passkeys here. Use your authenticator app code instead.");
  }
})();
