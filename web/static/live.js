// Vouchers arrive while the page is open: the server pushes each new one
// (Server-Sent Events) and it is added to the list without a reload.
(function () {
  var list = document.getElementById('vouchers');
  if (!list || !window.EventSource) return;
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
    strong.textContent = 'Voucher #' + v.id;
    a.appendChild(strong);
    li.appendChild(a);
    li.appendChild(document.createTextNode(' · ' + v.value + ' FARE at ' + v.operator + ' · ' + v.state));
    list.appendChild(li);
    var none = document.getElementById('no-vouchers');
    if (none) none.remove();
  });
})();
