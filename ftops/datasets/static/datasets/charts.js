// Quality-report charts for a dataset version (data from the json_script "dataset-charts").
(function () {
  "use strict";
  function draw() {
    var node = document.getElementById("dataset-charts");
    if (!node || typeof Chart === "undefined") { return; }
    var data = JSON.parse(node.textContent);
    var colors = { train: "#2957d8", validation: "#7aa2f7", test: "#1e8e3e", holdout: "#b7791f" };
    var perTool = document.getElementById("chart-per-tool");
    if (perTool) {
      new Chart(perTool, {
        type: "bar",
        data: { labels: data.tools, datasets: Object.keys(data.splits).map(function (s) {
          return { label: s, data: data.splits[s], backgroundColor: colors[s] };
        }) },
        options: { indexAxis: "y", responsive: true, maintainAspectRatio: false,
                   scales: { x: { stacked: true }, y: { stacked: true } } }
      });
    }
    var sources = document.getElementById("chart-sources");
    if (sources) {
      new Chart(sources, {
        type: "doughnut",
        data: { labels: Object.keys(data.source_mix),
                datasets: [{ data: Object.values(data.source_mix),
                             backgroundColor: ["#2957d8", "#1e8e3e", "#b7791f", "#c0392b", "#7aa2f7"] }] },
        options: { responsive: true, maintainAspectRatio: false }
      });
    }
    var test = document.getElementById("chart-test");
    if (test) {
      new Chart(test, {
        type: "bar",
        data: { labels: Object.keys(data.test_dimensions),
                datasets: [{ label: "test examples", data: Object.values(data.test_dimensions), backgroundColor: "#1e8e3e" }] },
        options: { responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } }
      });
    }
    var edge = document.getElementById("chart-edge");
    if (edge) {
      new Chart(edge, {
        type: "bar",
        data: { labels: data.tools, datasets: [{ label: "edge-case share", data: data.edge, backgroundColor: "#b7791f" }] },
        options: { indexAxis: "y", responsive: true, maintainAspectRatio: false,
                   scales: { x: { min: 0, max: 1 } }, plugins: { legend: { display: false } } }
      });
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
