// evoforge web UI: live progress of a job page over server-sent events (no framework, no build step).
(function () {
  "use strict";
  var page = document.getElementById("job");
  if (!page || page.dataset.done === "true" || !window.EventSource) return;
  var id = page.dataset.job;
  var source = new EventSource("/api/jobs/" + encodeURIComponent(id) + "/events");
  function set(elementId, text) {
    var el = document.getElementById(elementId);
    if (el) el.textContent = text;  // textContent: never parsed as HTML
  }
  source.addEventListener("progress", function (event) {
    var p = JSON.parse(event.data);
    var bar = document.getElementById("progress-bar");
    if (bar) bar.style.width = Math.max(0, Math.min(100, Number(p.percent) || 0)) + "%";
    set("job-status", p.status);
    set("finished", p.finished);
    set("accepted", p.counts.accepted);
    set("rejected", p.counts.rejected);
    set("cache-hits", p.cache_hits);
    if (p.best_so_far !== null) set("best-so-far", Number(p.best_so_far).toPrecision(4));
  });
  source.addEventListener("end", function () {
    source.close();
    window.location.reload();  // the finished page carries the charts, leaderboard and lineage
  });
  source.onerror = function () { source.close(); setTimeout(function () { window.location.reload(); }, 3000); };
})();
