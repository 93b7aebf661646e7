/* The experiment builder (templates/experiments/new.html): show the select that matches what a variant
   serves, add and remove variants (2 to 4), keep the split's total in view, and refresh the power
   estimate as the inputs change. Without it the form still works: every variant is posted and the
   server checks everything. */
(function () {
  "use strict";
  var form = document.getElementById("experiment-builder");
  if (!form) { return; }
  var variants = Array.prototype.slice.call(form.querySelectorAll("fieldset.variant"));
  var total = document.getElementById("traffic-total");
  var addButton = document.getElementById("add-variant");
  var MIN = 2;

  function visible() { return variants.filter(function (v) { return !v.hidden; }); }
  function field(v, name) { return v.querySelector("[name$='-" + name + "']"); }

  function showKind(v) {
    var kind = field(v, "kind").value;
    Array.prototype.forEach.call(v.querySelectorAll("[data-show-for]"), function (el) {
      el.hidden = el.getAttribute("data-show-for") !== kind;
    });
  }

  function shares() {
    return visible().map(function (v) { return parseInt(field(v, "traffic").value, 10) || 0; });
  }

  function showTotal() {
    var sum = shares().reduce(function (a, b) { return a + b; }, 0);
    var ok = sum === 100;
    total.textContent = (ok ? total.getAttribute("data-ok-text") : total.getAttribute("data-bad-text")).replace("{total}", sum);
    total.className = "pill " + (ok ? "pill-ok" : "pill-warn");
    addButton.hidden = visible().length >= variants.length;
  }

  var timer = null;
  var pending = null;
  function refreshPower() {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      var params = new URLSearchParams();
      ["placement", "metric", "mde_percent", "alpha", "power"].forEach(function (name) {
        var el = form.elements[name];
        if (el) { params.set(name, el.value); }
      });
      params.set("shares", shares().join(","));
      if (pending) { pending.abort(); }
      pending = new AbortController();
      fetch(form.getAttribute("data-power-url") + "?" + params.toString(), {
        credentials: "same-origin", signal: pending.signal, headers: { "X-Requested-With": "fetch" }
      }).then(function (r) { return r.text(); }).then(function (html) {
        document.getElementById("power-estimate").innerHTML = html;
      }).catch(function () { /* aborted by a newer request, or offline: keep the last estimate */ });
    }, 250);
  }

  function changed() { showTotal(); refreshPower(); }

  addButton.addEventListener("click", function () {
    var next = variants.filter(function (v) { return v.hidden; })[0];
    if (!next) { return; }
    next.hidden = false;
    var n = variants.indexOf(next);
    field(next, "name").value = form.getAttribute("data-variant-label") + " " + String.fromCharCode(65 + n);
    field(next, "kind").value = field(variants[0], "kind").value;
    showKind(next);
    field(next, "name").focus();
    changed();
  });

  form.addEventListener("click", function (event) {
    var button = event.target.closest("[data-remove-variant]");
    if (!button) { return; }
    var v = button.closest("fieldset.variant");
    if (visible().length <= MIN) { return; }
    // An emptied variant is left out by the server (an untouched extra form), so clear every control.
    Array.prototype.forEach.call(v.querySelectorAll("input, select, textarea"), function (el) {
      if (el.tagName === "SELECT") {
        Array.prototype.forEach.call(el.options, function (o) { o.selected = false; });
        if (!el.multiple) { el.selectedIndex = 0; }
      } else { el.value = ""; }
    });
    v.hidden = true;
    addButton.focus();
    changed();
  });

  form.addEventListener("change", function (event) {
    var v = event.target.closest("fieldset.variant");
    if (v && event.target.name && /-kind$/.test(event.target.name)) { showKind(v); }
    changed();
  });
  form.addEventListener("input", function (event) {
    if (event.target.type === "number") { changed(); }
  });

  variants.forEach(showKind);
  showTotal();
})();
