/* The visual condition builder of rule segments (templates/analytics/segment_form.html).
 *
 * Progressive enhancement over the form's JSON textarea (name="rules"), which stays the one thing the
 * form posts: the builder writes the JSON it produces into it, and JSON typed there (the "Advanced"
 * view) is read back into the builder. Grammar: analytics/rules_builder.py. Labels, operators, ranges,
 * the store's categories and brands come from the #builder-config JSON the view renders; every text
 * shown is translated there. DOM is built with textContent only (names come from merchants' catalogs).
 */
(function () {
  "use strict";
  var form = document.getElementById("rule-form");
  var configEl = document.getElementById("builder-config");
  if (!form || !configEl) { return; }
  var config = JSON.parse(configEl.textContent);
  var T = config.text;
  var area = form.querySelector("textarea[name=rules]");
  var mount = document.getElementById("builder");
  var advanced = document.getElementById("advanced-json");
  var jsonError = document.getElementById("json-error");
  var out = document.getElementById("audience-size");
  var err = document.getElementById("audience-error");
  var note = document.getElementById("audience-note");
  var check = document.getElementById("audience-check");
  var token = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var FIELDS = {};
  config.fields.forEach(function (f) { FIELDS[f.field] = f; });
  var MAX_DEPTH = 5;
  var root = null, pending = null, seq = 0;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function datalist(id, values) {
    var list = el("datalist", {id: id});
    values.forEach(function (v) { list.appendChild(el("option", {value: v})); });
    document.body.appendChild(list);
  }
  datalist("seg-categories", config.categories);
  datalist("seg-brands", config.brands);
  Object.keys(config.values).forEach(function (f) { datalist("seg-values-" + f, config.values[f]); });

  // --- model <-> JSON ------------------------------------------------------------------------------
  function NotRepresentable() {}
  function group(mode, children, negate) { return {type: "group", mode: mode, negate: !!negate, children: children}; }
  function text(v) { return v === undefined || v === null ? "" : (typeof v === "string" ? v : JSON.stringify(v)); }
  function newCondition(field) {
    var f = FIELDS[field || "monetary"];
    return {type: "cond", field: f.field, op: f.ops[0].op, value: "", value2: "", key: "", category: "", days: "30"};
  }
  function fromJSON(node, depth) {
    if (!node || typeof node !== "object" || Array.isArray(node) || depth > MAX_DEPTH) { throw new NotRepresentable(); }
    var keys = Object.keys(node);
    if (keys.length === 1 && (keys[0] === "all" || keys[0] === "any")) {
      if (!Array.isArray(node[keys[0]])) { throw new NotRepresentable(); }
      return group(keys[0], node[keys[0]].map(function (c) { return fromJSON(c, depth + 1); }));
    }
    if (keys.length === 1 && keys[0] === "not") {
      var inner = fromJSON(node.not, depth + 1);
      if (inner.type === "group" && !inner.negate) { inner.negate = true; return inner; }
      return group("all", [inner], true);
    }
    var f = FIELDS[node.field];
    if (!f) { throw new NotRepresentable(); }
    var c = newCondition(f.field);
    if (f.kind === "behaviour") {
      c.category = text(node.category);
      c.days = node.within_days === undefined ? "30" : text(node.within_days);
      return c;
    }
    if (node.op !== undefined) { c.op = text(node.op); }
    if (!f.ops.some(function (o) { return o.op === c.op; })) { throw new NotRepresentable(); }
    if (f.kind === "category_affinity" || f.kind === "brand_affinity") { c.key = text(node.key); }
    if (c.op === "between" && Array.isArray(node.value)) {
      c.value = text(node.value[0]); c.value2 = text(node.value[1]);
    } else if ((c.op === "in" || c.op === "not_in") && Array.isArray(node.value)) {
      c.value = node.value.map(text).join(", ");
    } else {
      c.value = text(node.value);
    }
    return c;
  }
  function num(s) {
    var t = String(s).trim();
    if (t === "") { return null; }
    var n = Number(t);
    return isNaN(n) ? t : n;  // a word stays a word: the server names the field and the wrong type
  }
  function join(path, key) { return path ? path + "." + key : key; }
  function toJSON(node, path) {
    if (node.type === "group") {
      var base = node.negate ? join(path, "not") : path;
      var body = {};
      body[node.mode] = node.children.map(function (child, i) { return toJSON(child, join(base, node.mode) + "[" + i + "]"); });
      return node.negate ? {not: body} : body;
    }
    node.path = path;
    var f = FIELDS[node.field];
    if (f.kind === "behaviour") {
      var days = num(node.days);
      return {field: f.field, category: node.category, within_days: days === null ? 30 : days};
    }
    var cond = {field: f.field};
    if (f.kind === "category_affinity" || f.kind === "brand_affinity") { cond.key = node.key; }
    cond.op = node.op;
    if (node.op === "between") {
      cond.value = [num(node.value), num(node.value2)];
    } else if (node.op === "in" || node.op === "not_in") {
      cond.value = node.value.split(",").map(function (v) { return v.trim(); }).filter(function (v) { return v !== ""; });
    } else if (f.kind === "number" || f.kind.indexOf("affinity") > 0) {
      cond.value = num(node.value);
    } else {
      cond.value = node.value;
    }
    return cond;
  }
  function conditions(node, acc) {
    if (node.type === "cond") { acc.push(node); } else { node.children.forEach(function (c) { conditions(c, acc); }); }
    return acc;
  }
  function incomplete(node) {
    if (node.type === "group") { return node.children.length === 0 || node.children.some(incomplete); }
    var f = FIELDS[node.field];
    if (f.kind === "behaviour") { return node.category.trim() === ""; }
    if ((f.kind === "category_affinity" || f.kind === "brand_affinity") && node.key.trim() === "") { return true; }
    if (node.op === "between" && String(node.value2).trim() === "") { return true; }
    return String(node.value).trim() === "";
  }

  // --- rendering ------------------------------------------------------------------------------------
  function fieldSelect(c) {
    var select = el("select", {"class": "seg-field", "aria-label": T.field});
    var groups = {};
    config.fields.forEach(function (f) {
      if (!groups[f.group]) { groups[f.group] = el("optgroup", {label: f.group}); select.appendChild(groups[f.group]); }
      groups[f.group].appendChild(el("option", {value: f.field}, f.label));
    });
    select.value = c.field;
    select.addEventListener("change", function () {
      var fresh = newCondition(select.value);
      Object.keys(fresh).forEach(function (k) { c[k] = fresh[k]; });
      render(); changed();
    });
    return select;
  }
  function input(c, prop, attrs, label) {
    var box = el("input", attrs);
    box.setAttribute("aria-label", label);
    box.value = c[prop];
    box.addEventListener("input", function () { c[prop] = box.value; changed(); });
    return box;
  }
  function numberAttrs(f, cls) {
    var attrs = {type: "number", "class": "seg-value " + (cls || ""), inputmode: "decimal"};
    if (f.min !== undefined) { attrs.min = String(f.min); attrs.max = String(f.max); attrs.step = f.step; }
    return attrs;
  }
  function renderCondition(c) {
    var f = FIELDS[c.field];
    var row = el("div", {"class": "seg-cond"});
    row.appendChild(fieldSelect(c));
    if (f.kind === "category_affinity" || f.kind === "brand_affinity") {
      var isCat = f.kind === "category_affinity";
      row.appendChild(input(c, "key", {type: "text", "class": "seg-pick", list: isCat ? "seg-categories" : "seg-brands",
        placeholder: isCat ? T.pick_category : T.pick_brand, autocomplete: "off"}, isCat ? T.category : T.brand));
    }
    if (f.kind === "behaviour") {
      row.appendChild(input(c, "category", {type: "text", "class": "seg-pick", list: "seg-categories",
        placeholder: T.pick_category, autocomplete: "off"}, T.category));
      row.appendChild(el("span", {"class": "seg-word"}, f.ops[0].label));
      row.appendChild(input(c, "days", {type: "number", "class": "seg-value seg-days", min: "1", max: "3650", step: "1"}, T.days));
      row.appendChild(el("span", {"class": "seg-word"}, T.days));
      row.appendChild(el("span", {"class": "muted small seg-hint"}, T.subtree));
    } else {
      var op = el("select", {"class": "seg-op", "aria-label": T.operator});
      f.ops.forEach(function (o) { op.appendChild(el("option", {value: o.op}, o.label)); });
      op.value = c.op;
      op.addEventListener("change", function () { c.op = op.value; render(); changed(); });
      row.appendChild(op);
      var list = c.op === "in" || c.op === "not_in";
      if (f.kind === "number" || f.kind === "category_affinity" || f.kind === "brand_affinity") {
        row.appendChild(input(c, "value", numberAttrs(f), T.value));
        if (c.op === "between") {
          row.appendChild(el("span", {"class": "seg-word"}, T.and));
          row.appendChild(input(c, "value2", numberAttrs(f), T.value));
        }
        if (f.kind === "category_affinity") { row.appendChild(el("span", {"class": "muted small seg-hint"}, T.exact)); }
      } else if (f.kind === "choice" && !list) {
        var choice = el("select", {"class": "seg-value", "aria-label": T.value});
        choice.appendChild(el("option", {value: ""}, "—"));
        f.choices.forEach(function (ch) { choice.appendChild(el("option", {value: ch.value}, ch.label)); });
        choice.value = c.value;
        choice.addEventListener("change", function () { c.value = choice.value; changed(); });
        row.appendChild(choice);
      } else {
        var attrs = {type: "text", "class": "seg-value seg-text", autocomplete: "off"};
        if (config.values[f.field]) { attrs.list = "seg-values-" + f.field; }
        if (list) { attrs.placeholder = T.list_hint; }
        row.appendChild(input(c, "value", attrs, T.value));
      }
    }
    var remove = el("button", {type: "button", "class": "btn btn-ghost btn-sm seg-remove"}, T.remove);
    remove.addEventListener("click", function () { c.parent.children.splice(c.parent.children.indexOf(c), 1); render(); changed(); });
    row.appendChild(remove);
    c.errorEl = el("div", {"class": "field-error seg-error", role: "alert"});
    row.appendChild(c.errorEl);
    c.rowEl = row;
    return row;
  }
  function renderGroup(g, depth) {
    var box = el("div", {"class": "seg-group" + (g.negate ? " seg-negated" : ""), "data-depth": String(depth)});
    var head = el("div", {"class": "seg-group-head"});
    head.appendChild(el("span", {"class": "seg-word"}, T.match));
    var mode = el("select", {"class": "seg-mode", "aria-label": T.match});
    mode.appendChild(el("option", {value: "all"}, T.all));
    mode.appendChild(el("option", {value: "any"}, T.any));
    mode.value = g.mode;
    mode.addEventListener("change", function () { g.mode = mode.value; changed(); });
    head.appendChild(mode);
    var notLabel = el("label", {"class": "check seg-not"});
    var not = el("input", {type: "checkbox"});
    not.checked = g.negate;
    not.addEventListener("change", function () { g.negate = not.checked; box.classList.toggle("seg-negated", g.negate); changed(); });
    notLabel.appendChild(not);
    notLabel.appendChild(el("span", {}, T.exclude));
    head.appendChild(notLabel);
    if (depth > 0) {
      var drop = el("button", {type: "button", "class": "btn btn-ghost btn-sm seg-remove-group"}, T.remove_group);
      drop.addEventListener("click", function () { g.parent.children.splice(g.parent.children.indexOf(g), 1); render(); changed(); });
      head.appendChild(drop);
    }
    box.appendChild(head);
    var kids = el("div", {"class": "seg-children"});
    g.children.forEach(function (child) {
      child.parent = g;
      kids.appendChild(child.type === "group" ? renderGroup(child, depth + 1) : renderCondition(child));
    });
    box.appendChild(kids);
    var actions = el("div", {"class": "seg-group-actions"});
    var add = el("button", {type: "button", "class": "btn btn-ghost btn-sm seg-add"}, "+ " + T.add);
    add.addEventListener("click", function () { g.children.push(newCondition()); render(); changed(); });
    actions.appendChild(add);
    if (depth < MAX_DEPTH - 1) {
      var addGroup = el("button", {type: "button", "class": "btn btn-ghost btn-sm seg-add-group"}, "+ " + T.add_group);
      addGroup.addEventListener("click", function () { g.children.push(group("any", [newCondition()])); render(); changed(); });
      actions.appendChild(addGroup);
    }
    box.appendChild(actions);
    return box;
  }
  function render() {
    mount.textContent = "";
    if (root) { mount.appendChild(renderGroup(root, 0)); }
  }

  // --- errors and the live audience -----------------------------------------------------------------
  function clearErrors() {
    if (!root) { return; }
    conditions(root, []).forEach(function (c) { if (c.errorEl) { c.errorEl.textContent = ""; c.rowEl.classList.remove("seg-cond-error"); } });
  }
  function markError(path, message) {
    if (!root || !path) { return false; }
    toJSON(root, "");
    var best = null;
    conditions(root, []).forEach(function (c) {
      var p = c.path;
      if (path === p || path.indexOf(p + ".") === 0 || path.indexOf(p + "[") === 0) {
        if (!best || p.length > best.path.length) { best = c; }
      }
    });
    if (!best) { return false; }
    best.errorEl.textContent = message;
    best.rowEl.classList.add("seg-cond-error");
    return true;
  }
  function update() {
    var tree;
    clearErrors();
    if (root) {
      if (incomplete(root)) { out.textContent = "–"; err.textContent = root.children.length ? T.incomplete : T.empty; note.textContent = ""; return; }
      tree = toJSON(root, "");
    } else {
      // JSON the builder cannot show (typed in the Advanced view) still gets its audience.
      try { tree = JSON.parse(area.value); } catch (e) { out.textContent = "–"; err.textContent = ""; return; }
    }
    var mine = ++seq;
    out.textContent = "…";
    fetch(form.dataset.audienceUrl, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": token}, body: JSON.stringify({rules: tree})})
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (mine !== seq) { return; }  // an older answer arriving after a newer request
        out.textContent = d.ok ? d.display : "–";
        note.textContent = d.note || "";
        err.textContent = d.ok ? "" : (markError(d.path, d.error) ? "" : d.error);
        out.setAttribute("data-state", d.ok ? "ok" : "error");
      });
  }
  function changed() {
    area.value = JSON.stringify(toJSON(root, ""), null, 2);
    jsonError.textContent = "";
    clearErrors();
    clearTimeout(pending);
    // With differential privacy on, every new condition tree spends ε: only the button asks.
    if (check) { out.textContent = "–"; note.textContent = T.stale; return; }
    pending = setTimeout(update, 300);
  }
  function load(raw) {
    var tree;
    try { tree = JSON.parse(raw); } catch (e) {
      jsonError.textContent = T.bad_json.replace("%(err)s", e.message);
      return false;
    }
    try {
      var parsed = fromJSON(tree, 0);
      root = parsed.type === "group" ? parsed : group("all", [parsed]);
    } catch (e) {
      if (!(e instanceof NotRepresentable)) { throw e; }
      jsonError.textContent = T.not_builder;
      return false;
    }
    jsonError.textContent = "";
    render();
    return true;
  }

  area.addEventListener("input", function () {
    root = null;
    mount.textContent = "";
    mount.classList.toggle("seg-stale", !load(area.value));
    clearTimeout(pending);
    if (check) { out.textContent = "–"; note.textContent = T.stale; return; }
    pending = setTimeout(update, 300);
  });
  if (check) { check.addEventListener("click", update); }

  mount.hidden = false;
  var loaded = load(area.value);
  if (loaded) { advanced.removeAttribute("open"); } else { mount.classList.add("seg-stale"); }
  var serverPath = form.dataset.errorPath;
  if (check) {
    out.textContent = "–";
    if (serverPath) { markError(serverPath, form.dataset.errorMessage || ""); }
  } else {
    update();  // marks the condition again when the server finds the same error
  }
})();
