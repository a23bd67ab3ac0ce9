// Draws every <canvas data-chart="ID"> from the JSON config in <script id="ID"> (json_script).
(function () {
  "use strict";
  var palette = ["#2957d8", "#c0392b", "#b7791f", "#1e8e3e", "#7b3fb8", "#0f8b8d", "#6b7280"];

  function draw() {
    if (typeof window.Chart === "undefined") return;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.getAttribute("data-chart"));
      if (!source || canvas.dataset.drawn) return;
      var config = JSON.parse(source.textContent);
      (config.data.datasets || []).forEach(function (ds, i) {
        if (!ds.backgroundColor) ds.backgroundColor = config.type === "doughnut" ? palette : palette[i % palette.length];
      });
      config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false}, config.options || {});
      new window.Chart(canvas, config);
      canvas.dataset.drawn = "1";
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
