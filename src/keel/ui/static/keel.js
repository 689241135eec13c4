// keel's charts: metric histories drawn with the vendored uPlot. The data is in JSON <script> blocks
// the server rendered (never executed, so the page's Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  var PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                 "#9c755f", "#bab0ac"];

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function size(el) {
    return { width: Math.max(el.clientWidth, 320), height: 220 };
  }

  function plot(el, data, series) {
    var dims = size(el);
    var opts = {
      width: dims.width, height: dims.height,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { size: 60 }],
      series: [{ label: "step" }].concat(series),
      legend: { show: true },
      cursor: { drag: { x: true, y: false } }
    };
    var chart = new uPlot(opts, data, el);
    window.addEventListener("resize", function () { chart.setSize(size(el)); });
    el.setAttribute("data-drawn", "1");
  }

  function metricCharts() {
    var histories = readJson("metric-histories");
    if (!histories) { return; }
    document.querySelectorAll('[data-chart="metric"]').forEach(function (el) {
      var h = histories[el.getAttribute("data-key")];
      if (!h) { return; }
      plot(el, h, [{ label: el.getAttribute("data-key"), stroke: PALETTE[0], width: 2, points: { show: h[0].length < 60 } }]);
    });
  }

  function overlayCharts() {
    var steps = readJson("overlay-histories");
    if (!steps) { return; }
    document.querySelectorAll('[data-chart="overlay"]').forEach(function (el) {
      var entry = steps[el.getAttribute("data-key")];
      if (!entry) { return; }
      var tables = [], series = [];
      entry.series.forEach(function (s, i) {
        if (!s) { return; }
        tables.push(s);
        series.push({ label: entry.runs[i], stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true });
      });
      if (!tables.length) { return; }
      plot(el, uPlot.join(tables), series);
    });
  }

  function start() {
    if (typeof uPlot === "undefined") { return; }
    metricCharts();
    overlayCharts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
