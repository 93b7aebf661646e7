/* Draw every plotly figure on the page from its embedded JSON (see analytics/charts.py).
 * A chart container names the id of a <script type="application/json"> produced by json_script.
 *
 * For every chart, whatever page it is on:
 * - Chinese pages use plotly's zh-CN locale (dates, weekdays, months, the mode bar), registered
 *   below from plotly.js's own locale file (nothing is loaded from a CDN);
 * - a chart with nothing to draw (no trace has a non-zero value) says "not enough data yet" instead
 *   of drawing empty axes (an empty line chart's axes spanned -1 to 6);
 * - a date axis whose data spans less than two days shows whole days (one day's data read
 *   "23:59:59.9996" on its axis);
 * - screen readers get a text summary (role="img" and an aria-label: each series, its number of
 *   points and its range), since a canvas of bars says nothing to them.
 * The texts come from data attributes of <body> (base.html), translated by Django. */
(function () {
  "use strict";
  var CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var DAY_MS = 86400000;

  function registerChinese() {
    window.Plotly.register({
      moduleType: "locale",
      name: "zh-CN",
      dictionary: {
        "Autoscale": "自动缩放",
        "Box Select": "矩形框选择",
        "Click to enter Colorscale title": "点击输入色阶的标题",
        "Click to enter Plot title": "点击输入图表的标题",
        "Double-click to zoom back out": "双击返回缩放",
        "Download plot as a png": "下载图表为PNG格式",
        "Download plot": "下载图表",
        "Lasso Select": "套索选择",
        "Pan": "平移",
        "Produced with Plotly": "由Plotly生成",
        "Reset axes": "重置轴",
        "Reset view": "重置视图",
        "Show closest data on hover": "悬停时显示最近的数据",
        "Snapshot succeeded": "生成快照成功",
        "Sorry, there was a problem downloading your snapshot!": "抱歉，下载快照出现问题！",
        "Taking snapshot - this may take a few seconds": "正在生成快照 - 可能需要几秒钟",
        "Toggle Spike Lines": "切换显示数据点辅助线",
        "Toggle show closest data on hover": "切换悬停时显示最近的数据",
        "Zoom": "缩放",
        "Zoom in": "放大",
        "Zoom out": "缩小",
        "close:": "关闭：",
        "high:": "最高：",
        "low:": "最低：",
        "open:": "打开：",
        "trace": "数据",
        "max:": "最大：",
        "mean:": "平均：",
        "median:": "中位数：",
        "min:": "最小：",
        "q1:": "第一四分位：",
        "q3:": "第三四分位："
      },
      format: {
        days: ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"],
        shortDays: ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
        months: ["一月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月", "十一月", "十二月"],
        shortMonths: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
        date: "%Y-%m-%d",
        decimal: ".",
        thousands: ","
      }
    });
  }

  function texts() {
    var data = document.body ? document.body.dataset : {};
    return {
      empty: data.chartEmpty || "Not enough data yet.",
      points: data.chartPoints || "points",
      range: data.chartRange || "from {min} to {max}",
      chart: data.chartLabel || "Chart"
    };
  }

  // The numbers a trace draws: y (or z, values); x only when those hold none, as in a horizontal bar or
  // a funnel (numbers on x, labels on y). Dates and labels are strings and never count.
  function values(trace) {
    function numbers(key) {
      var out = [];
      (trace[key] || []).forEach(function (v) {
        (Array.isArray(v) ? v : [v]).forEach(function (w) { if (typeof w === "number" && isFinite(w)) { out.push(w); } });
      });
      return out;
    }
    var keys = ["y", "z", "values", "x"];
    for (var i = 0; i < keys.length; i++) {
      var found = numbers(keys[i]);
      if (found.length) { return found; }
    }
    return [];
  }

  function isEmpty(figure) {
    return !(figure.data || []).some(function (trace) {
      return values(trace).some(function (v) { return v !== 0; });
    });
  }

  function fixShortDateAxis(figure, layout) {
    var xs = [];
    (figure.data || []).forEach(function (trace) {
      (trace.x || []).forEach(function (x) { if (typeof x === "string" && /^\d{4}-\d{2}-\d{2}/.test(x)) { xs.push(Date.parse(x)); } });
    });
    if (!xs.length) { return; }
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    if (hi - lo >= 2 * DAY_MS) { return; }
    layout.xaxis = layout.xaxis || {};
    layout.xaxis.type = "date";
    layout.xaxis.range = [new Date(lo - DAY_MS).toISOString().slice(0, 10), new Date(hi + DAY_MS).toISOString().slice(0, 10)];
    layout.xaxis.dtick = DAY_MS;
    layout.xaxis.tickformat = "%Y-%m-%d";
  }

  function summary(el, figure, t) {
    var card = el.closest(".card");
    var heading = card && card.querySelector("h2, h3");
    var parts = (figure.data || []).map(function (trace) {
      var v = values(trace);
      var text = (trace.name || "") + " " + v.length + " " + t.points;
      if (v.length) {
        var fmt = function (n) { return n.toLocaleString(document.documentElement.lang || undefined); };
        text += ", " + t.range.replace("{min}", fmt(Math.min.apply(null, v))).replace("{max}", fmt(Math.max.apply(null, v)));
      }
      return text.trim();
    });
    return (heading ? heading.textContent.trim() : t.chart) + ": " + parts.join("; ");
  }

  function drawAll() {
    if (!window.Plotly) { return; }
    var chinese = /^zh/i.test(document.documentElement.lang || "");
    if (chinese) { registerChinese(); }
    var config = Object.assign({}, CONFIG, chinese ? { locale: "zh-CN" } : {});
    var t = texts();
    var nodes = document.querySelectorAll("[data-figure]");
    Array.prototype.forEach.call(nodes, function (el) {
      var source = document.getElementById(el.getAttribute("data-figure"));
      if (!source) { return; }
      var figure = JSON.parse(source.textContent);
      if (isEmpty(figure)) {
        var note = document.createElement("p");
        note.className = "muted empty-inline";
        note.setAttribute("data-chart-empty", "");
        note.textContent = t.empty;
        el.replaceWith(note);
        return;
      }
      var layout = figure.layout || {};
      layout.autosize = true;
      layout.separators = layout.separators || ".,";
      delete layout.width;
      fixShortDateAxis(figure, layout);
      el.setAttribute("role", "img");
      el.setAttribute("aria-label", summary(el, figure, t));
      window.Plotly.newPlot(el, figure.data || [], layout, config);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
