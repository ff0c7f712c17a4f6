/* Agent console sign-in: a link of the form /console#token=... signs in without the token
 * ever reaching a server. Browsers never send the fragment, so it stays out of access logs
 * and proxies' logs; this script takes it out of the address bar (and so out of the history),
 * puts it in the sign-in form, which carries the page's CSRF token, and submits it. The
 * token is only ever used on this page, where nobody is signed in: a link cannot switch an
 * agent who is already signed in to another account.
 */
(() => {
  "use strict";

  const params = new URLSearchParams(window.location.hash.slice(1));
  const token = params.get("token");
  if (window.location.hash) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  const form = document.querySelector('[data-testid="login-form"]');
  const field = form && form.querySelector('input[name="token"]');
  const refused = document.querySelector('[data-testid="login-error"]');
  if (!token || !field || refused) return;
  field.value = token;
  if (form.requestSubmit) form.requestSubmit(); else form.submit();
})();
