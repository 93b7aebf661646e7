/* Draw every plotly figure on the page from its embedded JSON (see analytics/charts.py).
 * A chart container names the id of a <script type="application/json"> produced by json_script. */
(function () {
  "use strict";
  var CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function drawAll() {
    if (!window.Plotly) { return; }
    var nodes = document.querySelectorAll("[data-figure]");
    Array.prototype.forEach.call(nodes, function (el) {
      var source = document.getElementById(el.getAttribute("data-figure"));
      if (!source) { return; }
      var figure = JSON.parse(source.textContent);
      var layout = figure.layout || {};
      layout.autosize = true;
      delete layout.width;
      window.Plotly.newPlot(el, figure.data || [], layout, CONFIG);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
