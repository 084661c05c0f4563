// Kippu's service worker: lets a pass page that was opened once open again with no signal.
// Pass pages and the static assets they need are answered from the network when it answers,
// else from the copy kept here; nothing else is cached (account pages, payments, APIs stay
// live-only). Signing out clears the cache (Clear-Site-Data).
'use strict';
const CACHE = 'kippu-pass-v1';
const ASSETS = ['/static/kippu.css', '/static/pass.js', '/static/device.js', '/static/vendor/qrcode-generator.js'];
const PASS_PAGE = /^\/tickets\/\d+\/pass$/;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (!PASS_PAGE.test(url.pathname) && !ASSETS.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((c) => c.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname).then((hit) => hit || Response.error())),
  );
});
