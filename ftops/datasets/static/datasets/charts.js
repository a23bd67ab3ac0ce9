// Quality-report charts for a dataset version (data from the json_script "dataset-charts").
(function () {
  "use strict";
  function draw() {
    var node = document.getElementById("dataset-charts");
    if (!node || typeof Chart === "undefined") { return; }
    var data = JSON.parse(node.textContent);
    // One colour per meaning on every chart of every page: the palette is defined once, as CSS
    // custom properties in ftops.css (the split swatches in the tables use the same ones). A split
    // keeps its colour everywhere, a source too, and no colour means two things.
    var css = window.getComputedStyle(document.documentElement);
    function palette(name) { return css.getPropertyValue("--" + name).trim() || "#6b7280"; }
    var colors = {};
    ["train", "validation", "test", "holdout"].forEach(function (s) { colors[s] = palette("split-" + s); });
    function sourceColor(source) { return palette("source-" + source); }
    var edgeColor = palette("edge-case");
    // Horizontal bar charts get a row of height per tool so every tool name is printed.
    function fitRows(canvas, n) {
      var box = canvas.parentElement;
      if (box) box.style.height = Math.max(260, 22 * n + 60) + "px";
    }
    var toolTicks = { autoSkip: false, font: { size: 12 } };
    var perTool = document.getElementById("chart-per-tool");
    if (perTool) {
      fitRows(perTool, data.tools.length);
      new Chart(perTool, {
        type: "bar",
        data: { labels: data.tools, datasets: Object.keys(data.splits).map(function (s) {
          return { label: s, data: data.splits[s], backgroundColor: colors[s] };
        }) },
        options: { indexAxis: "y", responsive: true, maintainAspectRatio: false,
                   scales: { x: { stacked: true }, y: { stacked: true, ticks: toolTicks } } }
      });
    }
    var sources = document.getElementById("chart-sources");
    if (sources) {
      new Chart(sources, {
        type: "doughnut",
        data: { labels: Object.keys(data.source_mix),
                datasets: [{ data: Object.values(data.source_mix),
                             backgroundColor: Object.keys(data.source_mix).map(sourceColor) }] },
        options: { responsive: true, maintainAspectRatio: false }
      });
    }
    var test = document.getElementById("chart-test");
    if (test) {
      new Chart(test, {
        type: "bar",
        data: { labels: Object.keys(data.test_dimensions),
                datasets: [{ label: "test examples", data: Object.values(data.test_dimensions), backgroundColor: colors.test }] },
        options: { responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } }
      });
    }
    var edge = document.getElementById("chart-edge");
    if (edge) {
      fitRows(edge, data.tools.length);
      new Chart(edge, {
        type: "bar",
        data: { labels: data.tools, datasets: [{ label: "edge-case share", data: data.edge, backgroundColor: edgeColor }] },
        options: { indexAxis: "y", responsive: true, maintainAspectRatio: false,
                   scales: { x: { min: 0, max: 1 }, y: { ticks: toolTicks } }, plugins: { legend: { display: false } } }
      });
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
