/* Small progressive enhancements for the dashboard shell; every page works without them. */
(function () {
  "use strict";
  // Close an open dropdown (the store switcher is a <details>) when clicking elsewhere or on Escape.
  function closeAll(except) {
    Array.prototype.forEach.call(document.querySelectorAll("details.dropdown[open]"), function (d) {
      if (d !== except) { d.removeAttribute("open"); }
    });
  }
  document.addEventListener("click", function (event) {
    var inside = event.target.closest ? event.target.closest("details.dropdown") : null;
    closeAll(inside);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closeAll(null); }
  });
  // A <select data-autosubmit> submits its form when changed (no inline handlers: the CSP forbids them).
  document.addEventListener("change", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-autosubmit") && event.target.form) {
      event.target.form.submit();
    }
  });
  // Ask before destructive actions (revoke a key, remove a member).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
})();
