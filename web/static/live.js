// Vouchers arrive while the page is open: the server pushes each new one
// (Server-Sent Events) and it is added to the list without a reload.
(function () {
  var list = document.getElementById('vouchers');
  if (!list || !window.EventSource) return;
  // The list carries its language's texts: data-t-title ("Voucher #{}"), data-t-line
  // ("{value} FARE at {operator}"); the server sends the state already in that language.
  var title = list.getAttribute('data-t-title') || 'Voucher #{}';
  var line = list.getAttribute('data-t-line') || '{value} FARE at {operator}';
  var events = new EventSource('/api/events');
  events.addEventListener('voucher', function (e) {
    var v = JSON.parse(e.data);
    if (list.querySelector('[data-voucher="' + v.id + '"]')) return;
    var li = document.createElement('li');
    li.className = 'voucher new';
    li.setAttribute('data-voucher', v.id);
    var a = document.createElement('a');
    a.href = '/vouchers/' + v.id;
    var strong = document.createElement('strong');
    strong.textContent = title.replace('{}', function () { return String(v.id); });
    a.appendChild(strong);
    li.appendChild(a);
    var detail = line
      .replace('{value}', function () { return v.value; })
      .replace('{operator}', function () { return v.operator; });
    li.appendChild(document.createTextNode(' · ' + detail + ' · ' + v.state));
    list.appendChild(li);
    var none = document.getElementById('no-vouchers');
    if (none) none.remove();
  });
})();

// A voucher's page: its code is signed for a time window, so the QR image is fetched afresh
// every 30 s (no page reload, which would move a screen reader's place).
(function () {
  var img = document.getElementById('voucher-qr');
  if (!img) return;
  var base = img.getAttribute('src').split('?')[0];
  setInterval(function () {
    if (document.visibilityState === 'visible') img.src = base + '?at=' + Date.now();
  }, 30000);
})();

// The top-up page while Stripe confirms and the FARE is minted: the status and the balance
// are brought up to date in place (#topup-status is a live region) until the top-up is done.
(function () {
  var status = document.getElementById('topup-status');
  if (!status || status.getAttribute('data-status') === 'complete' || !window.DOMParser) return;
  var timer = setInterval(function () {
    fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } })
      .then(function (r) {
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var page = new DOMParser().parseFromString(html, 'text/html');
        var fresh = page.getElementById('topup-status');
        if (!fresh) return;
        ['topup-heading', 'topup-balance'].forEach(function (id) {
          var mine = document.getElementById(id);
          var theirs = page.getElementById(id);
          if (mine && theirs) mine.textContent = theirs.textContent;
        });
        if (fresh.textContent !== status.textContent) status.textContent = fresh.textContent;
        status.setAttribute('data-status', fresh.getAttribute('data-status'));
        if (fresh.getAttribute('data-status') === 'complete') clearInterval(timer);
      })
      .catch(function () {});
  }, 1000);
})();
