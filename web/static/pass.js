// Rotates the QR pass and lets the demo present it to a simulated gate: the
// gate receives the very PNG shown on screen and decodes it like a camera would.
(function () {
  const img = document.getElementById('qr');
  const out = document.getElementById('verdict');
  const base = img.getAttribute('src');
  setInterval(function () { img.src = base + '?t=' + Date.now(); }, 4000);
  document.querySelectorAll('.gate-btn').forEach(function (b) {
    b.addEventListener('click', async function () {
      out.textContent = 'Scanning…';
      out.className = '';
      const png = await (await fetch(img.src)).blob();
      // An on-board validator names the run its vehicle is working (its AVL unit would).
      const run = document.querySelector('.run[data-for="' + b.dataset.gate + '"]');
      const query = run && run.value ? '?trip=' + encodeURIComponent(run.value) : '';
      const r = await fetch('/gates/' + b.dataset.gate + '/scan' + query, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
      const v = await r.json();
      out.textContent = v.open ? 'OPEN' + (v.rides_left != null ? ' · rides left ' + v.rides_left : '') : 'DENY · ' + (v.reason || v.error);
      out.className = v.open ? 'open' : 'deny';
    });
  });
})();
