/*!
 * shop_recs storefront widget: recommendations on any page, with a publishable key. No dependencies.
 *
 * Embed (the dashboard shows this snippet, filled in, when you create a publishable key):
 *
 *   <div data-shop-recs
 *        data-api="https://recs.example.com/api/v1"   API base URL (required)
 *        data-key="pk_1a2b3c4d_..."                   a *publishable* key (required; never an sr_ secret key)
 *        data-customer="c-42"                         the shop's customer id, or the session id of an
 *                                                     anonymous visitor (required)
 *        data-placement="home"                        where the list is shown (optional)
 *        data-n="8"                                   how many items, 1..100 (optional, default 8)
 *        data-link="/products/{sku}"                  card link; {sku} is replaced (optional)
 *        data-currency="EUR"></div>                   price currency for formatting (optional; default: the item's)
 *   <script src="https://recs.example.com/static/shop_recs/widget.js" async></script>
 *
 * The page's origin must be one of the key's allowed origins (dashboard, API keys), or the browser
 * blocks the call (CORS) and the container stays empty. Containers added later: ShopRecs.render(el).
 *
 * What it does: GET {api}/recommendations/customer/{customer}?n=&placement= and renders one card per
 * item (image and link when there are any; title; price), with DOM APIs and textContent only, never
 * innerHTML, so product data cannot inject markup. The server records the served list (the
 * impression the feedback loop counts, under the answer's list_id) when it answers; on rendering the
 * widget fires a "shoprecs:impression" DOM event on the container ({listId, placement, skus}) for the
 * shop's own analytics. A click on a card sends a "click" event (POST {api}/events, with
 * context.list_id and placement, so it is attributed to that list) and then follows the link.
 * Styling: the classes shop-recs-list, shop-recs-card, shop-recs-image, shop-recs-title, shop-recs-price.
 */
(function () {
  "use strict";

  var CLICK_WAIT_MS = 800; // the longest a click waits for its event to be sent before navigating

  function api(el, path, options) {
    var base = (el.getAttribute("data-api") || "").replace(/\/+$/, "");
    var headers = { Authorization: "Bearer " + el.getAttribute("data-key") };
    if (options && options.body) headers["Content-Type"] = "application/json";
    return fetch(base + path, {
      method: (options && options.method) || "GET",
      headers: headers,
      body: options && options.body,
      mode: "cors",
      credentials: "omit",
    }).then(function (response) {
      if (!response.ok) throw new Error("shop_recs: " + path + " answered " + response.status);
      return response.json();
    });
  }

  // Only http(s) URLs become links or images: a "javascript:" URL in the data must stay inert.
  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      var url = new URL(value, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function formatPrice(price, currency) {
    var number = typeof price === "number" ? price : parseFloat(price);
    if (price === null || price === undefined || isNaN(number)) return "";
    if (currency) {
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency: currency }).format(number);
      } catch (e) {
        /* an unknown currency code: plain number below */
      }
    }
    return number.toFixed(2);
  }

  function sendClick(el, state, sku) {
    var body = {
      customer: el.getAttribute("data-customer"),
      type: "click",
      sku: sku,
      timestamp: new Date().toISOString(),
      context: { list_id: state.listId, placement: state.placement, source: "widget" },
    };
    return api(el, "/events", { method: "POST", body: JSON.stringify(body) });
  }

  function card(el, state, item) {
    var li = document.createElement("li");
    li.className = "shop-recs-card";
    li.setAttribute("data-sku", item.sku);
    var template = el.getAttribute("data-link");
    var href = safeUrl(item.url || (template ? template.split("{sku}").join(encodeURIComponent(item.sku)) : ""));
    var box = li;
    if (href) {
      box = document.createElement("a");
      box.href = href;
      li.appendChild(box);
    }
    var image = safeUrl(item.image_url);
    if (image) {
      var img = document.createElement("img");
      img.className = "shop-recs-image";
      img.src = image;
      img.alt = item.title || "";
      img.loading = "lazy";
      box.appendChild(img);
    }
    var title = document.createElement("span");
    title.className = "shop-recs-title";
    title.textContent = item.title || item.sku;
    box.appendChild(title);
    // data-currency, when set, wins; otherwise the item's own currency (every served item has one).
    var priceText = formatPrice(item.price, el.getAttribute("data-currency") || item.currency);
    if (priceText) {
      var price = document.createElement("span");
      price.className = "shop-recs-price";
      price.textContent = priceText;
      box.appendChild(price);
    }
    li.addEventListener("click", function (event) {
      var sent = sendClick(el, state, item.sku).catch(function (error) {
        if (window.console) console.warn(error);
      });
      // A plain left click on a link waits (briefly) for the event; a new-tab click needs no wait.
      if (!href || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) {
        return;
      }
      event.preventDefault();
      var go = function () {
        window.location.assign(href);
      };
      var timer = setTimeout(go, CLICK_WAIT_MS);
      sent.then(function () {
        clearTimeout(timer);
        go();
      });
    });
    return li;
  }

  function render(el) {
    if (el.getAttribute("data-shop-recs-state")) return Promise.resolve();
    el.setAttribute("data-shop-recs-state", "loading");
    var customer = el.getAttribute("data-customer");
    var placement = el.getAttribute("data-placement") || "";
    var n = parseInt(el.getAttribute("data-n") || "8", 10);
    var query = "?n=" + (n >= 1 && n <= 100 ? n : 8) + (placement ? "&placement=" + encodeURIComponent(placement) : "");
    return api(el, "/recommendations/customer/" + encodeURIComponent(customer || "") + query)
      .then(function (data) {
        var state = { listId: data.list_id || null, placement: data.placement || placement };
        var list = document.createElement("ul");
        list.className = "shop-recs-list";
        (data.items || []).forEach(function (item) {
          list.appendChild(card(el, state, item));
        });
        while (el.firstChild) el.removeChild(el.firstChild);
        el.appendChild(list);
        el.setAttribute("data-shop-recs-state", "rendered");
        if (state.listId) el.setAttribute("data-list-id", state.listId);
        el.dispatchEvent(
          new CustomEvent("shoprecs:impression", {
            bubbles: true,
            detail: {
              listId: state.listId,
              placement: state.placement,
              skus: (data.items || []).map(function (item) {
                return item.sku;
              }),
            },
          })
        );
      })
      .catch(function (error) {
        el.setAttribute("data-shop-recs-state", "failed");
        if (window.console) console.warn("shop_recs widget: no recommendations shown:", error);
      });
  }

  function renderAll() {
    var nodes = document.querySelectorAll("[data-shop-recs]");
    for (var i = 0; i < nodes.length; i++) render(nodes[i]);
  }

  window.ShopRecs = { render: render, renderAll: renderAll };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", renderAll);
  else renderAll();
})();
