// The Print button of printable pages (operator statements). A script file rather than an
// onclick attribute: the Content Security Policy (script-src 'self') runs no inline script.
'use strict';
for (const button of document.querySelectorAll('button[data-print]')) {
  button.addEventListener('click', () => window.print());
}
