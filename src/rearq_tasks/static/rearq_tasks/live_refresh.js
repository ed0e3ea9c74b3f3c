/*
 * Live refresh of an admin page (the TaskLog changelist, the dashboard), in place.
 *
 * Every 2, 5 or 15 s (or never) the page's own URL is fetched and only its live regions
 * (elements matching the control's data-live-regions selectors) are swapped, so there is no
 * full-page flicker and the scroll position stays. The choice is remembered per page in
 * localStorage. Nothing is fetched while the tab is hidden (Page Visibility API); showing it
 * again refreshes at once. Charts (Chart.js canvases drawn by Unfold) get their new data
 * instead of being redrawn. The changelist is not refreshed while rows are selected, so an
 * action about to be run is never applied to rows that moved.
 */
(function () {
  "use strict";

  var CHOICES = ["0", "2", "5", "15"];

  function start(root) {
    var key = "rearq_tasks.live." + root.getAttribute("data-live-refresh");
    var select = root.querySelector("select");
    var status = root.querySelector("[data-live-status]");
    var regions = root.getAttribute("data-live-regions").split(",");
    var timer = null;
    var busy = false;

    function say(text) {
      if (status) status.textContent = text;
    }

    function seconds() {
      return parseInt(select.value, 10) || 0;
    }

    function schedule() {
      window.clearTimeout(timer);
      timer = null;
      if (seconds() > 0 && !document.hidden) {
        timer = window.setTimeout(tick, seconds() * 1000);
      }
    }

    function selectedRows() {
      return document.querySelector("#result_list input.action-select:checked") !== null;
    }

    function swapCharts(doc) {
      if (!window.Chart || !window.Chart.getChart) return;
      var fresh = doc.querySelectorAll("canvas.chart");
      document.querySelectorAll("canvas.chart").forEach(function (canvas, index) {
        var chart = window.Chart.getChart(canvas);
        var next = fresh[index];
        if (!chart || !next || !next.getAttribute("data-value")) return;
        var data = JSON.parse(next.getAttribute("data-value"));
        chart.data.labels = data.labels;
        (data.datasets || []).forEach(function (dataset, i) {
          if (chart.data.datasets[i]) chart.data.datasets[i].data = dataset.data;
        });
        chart.update("none");
      });
    }

    function swap(doc) {
      regions.forEach(function (selector) {
        var fresh = doc.querySelectorAll(selector);
        document.querySelectorAll(selector).forEach(function (node, index) {
          if (fresh[index]) node.replaceWith(document.importNode(fresh[index], true));
        });
      });
      swapCharts(doc);
    }

    function tick() {
      if (busy || document.hidden || seconds() === 0) return;
      if (selectedRows()) {
        say(root.getAttribute("data-paused-text"));
        schedule();
        return;
      }
      busy = true;
      fetch(window.location.href, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "X-Requested-With": "XMLHttpRequest" },
      })
        .then(function (response) {
          if (!response.ok || response.redirected) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var x = window.scrollX;
          var y = window.scrollY;
          swap(doc);
          window.scrollTo(x, y);
          root.setAttribute("data-live-updated", String(Date.now()));
          say(root.getAttribute("data-updated-text") + " " + new Date().toLocaleTimeString());
        })
        .catch(function () {
          say(root.getAttribute("data-failed-text"));
        })
        .then(function () {
          busy = false;
          schedule();
        });
    }

    var stored = null;
    try {
      stored = window.localStorage.getItem(key);
    } catch (e) {
      stored = null; // storage disabled: the choice lasts for this page only
    }
    if (CHOICES.indexOf(stored) >= 0) select.value = stored;

    select.addEventListener("change", function () {
      try {
        window.localStorage.setItem(key, select.value);
      } catch (e) {
        /* not remembered */
      }
      say("");
      schedule();
    });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        window.clearTimeout(timer);
        timer = null;
      } else if (seconds() > 0) {
        tick();
      }
    });
    schedule();
  }

  function init() {
    document.querySelectorAll("[data-live-refresh]").forEach(start);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
