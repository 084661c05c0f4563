// Passkeys: add one from the account page (#add-passkey), sign in with one from the sign-in
// page (#passkey-signin); a button's data-base names the endpoints (travelers' /passkeys by
// default, staff's /portal/passkeys). The server's options and the browser's answers travel as the
// WebAuthn JSON forms (PublicKeyCredential.parse*OptionsFromJSON / toJSON).
(function () {
  'use strict';
  const note = document.getElementById('passkey-status');
  const say = (text, bad) => {
    if (!note) return;
    note.textContent = text;
    note.className = bad ? 'flash error' : 'flash ok';
  };
  const supported = window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON;

  async function post(path, body) {
    const r = await fetch(path, {
      method: 'POST',
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(json.error || 'the server said ' + r.status);
    return json;
  }

  const add = document.getElementById('add-passkey');
  if (add) {
    add.hidden = !supported;
    add.addEventListener('click', async function () {
      add.disabled = true;
      try {
        const base = add.dataset.base || '/passkeys';
        const options = await post(base + '/register/start');
        const cred = await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey || options),
        });
        await post(base + '/register/finish', cred.toJSON());
        say(add.dataset.done || 'Passkey added.', false);
        setTimeout(() => location.reload(), 800);
      } catch (e) {
        say((add.dataset.failed || 'No passkey was added: ') + e.message, true);
      } finally {
        add.disabled = false;
      }
    });
  }

  const signin = document.getElementById('passkey-signin');
  if (signin) {
    signin.hidden = !supported;
    signin.addEventListener('click', async function () {
      signin.disabled = true;
      try {
        const base = signin.dataset.base || '/passkeys';
        const options = await post(base + '/signin/start');
        const cred = await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey || options),
        });
        const done = await post(base + '/signin/finish', cred.toJSON());
        location.assign(done.to || '/');
      } catch (e) {
        say((signin.dataset.failed || 'Passkey sign-in failed: ') + e.message, true);
        signin.disabled = false;
      }
    });
  }
})();
