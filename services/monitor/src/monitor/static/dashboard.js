// The monitor's live page: one snapshot from /v1/dashboard, then one per push over
// server-sent events (/v1/dashboard/stream), drawn with Chart.js. The latest snapshot is kept
// in window.__dashboard (and the charts' data in Chart.getChart) for people and tests.
"use strict";

(function () {
  const SPANS = ["queue", "crawl", "translate", "generate", "end_to_end"];
  const COLORS = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#57606a",
    "#116329", "#953800", "#0550ae"];
  const OUTCOME_COLORS = { completed: "#1a7f37", failed: "#cf222e", cancelled: "#8c959f" };
  const charts = {};
  let paused = false;
  let pending = null;

  const $ = (id) => document.getElementById(id);
  const hhmm = (iso) => new Date(iso).toISOString().slice(11, 16);
  const hhmmss = (iso) => new Date(iso).toISOString().slice(11, 19);

  function chart(id, type, options) {
    const style = getComputedStyle(document.documentElement);
    Chart.defaults.color = style.getPropertyValue("--muted").trim() || "#57606a";
    Chart.defaults.borderColor = style.getPropertyValue("--line").trim() || "#d0d7de";
    charts[id] = new Chart($(id), {
      type,
      data: { labels: [], datasets: [] },
      options: Object.assign({
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: { y: { beginAtZero: true } },
      }, options),
    });
    return charts[id];
  }

  function setup() {
    chart("throughput", "bar", { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true,
      ticks: { precision: 0 } } } });
    chart("latency", "line", { spanGaps: true, scales: { y: { beginAtZero: true,
      title: { display: true, text: "seconds" } } } });
    chart("failures", "bar", { indexAxis: "y", plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } });
    chart("lag", "line", { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });
    chart("cost", "bar", { plugins: { legend: { display: false } } });
  }

  function describe(id, text) {
    $(id).setAttribute("aria-label", text);
  }

  function sum(list) {
    return list.reduce((a, b) => a + (b || 0), 0);
  }

  function draw(snap) {
    window.__dashboard = snap;
    document.body.dataset.generatedAt = snap.generated_at;
    const labels = snap.minutes.map(hhmm);

    const t = charts.throughput;
    t.data.labels = labels;
    t.data.datasets = Object.keys(snap.throughput).map((outcome) => ({
      label: outcome, data: snap.throughput[outcome], backgroundColor: OUTCOME_COLORS[outcome],
    }));
    t.update();
    describe("throughput", Object.keys(snap.throughput).map((o) =>
      `${sum(snap.throughput[o])} ${o}`).join(", ") + ` in the last ${labels.length} minutes`);

    const l = charts.latency;
    l.data.labels = labels;
    l.data.datasets = [];
    SPANS.forEach((span, i) => {
      const q = snap.latency_s[span];
      if (!q || q.p95.every((v) => v === null)) return;
      l.data.datasets.push({ label: `${span} p50`, data: q.p50, borderColor: COLORS[i],
        backgroundColor: COLORS[i], pointRadius: 2 });
      l.data.datasets.push({ label: `${span} p95`, data: q.p95, borderColor: COLORS[i],
        backgroundColor: COLORS[i], borderDash: [5, 4], pointRadius: 2 });
    });
    l.update();
    describe("latency", l.data.datasets.length ? l.data.datasets.filter((d) => d.label.endsWith("p95"))
      .map((d) => `${d.label} latest ${[...d.data].reverse().find((v) => v !== null)} s`).join(", ")
      : "no stage finished in this period");

    const f = charts.failures;
    const codes = Object.keys(snap.failures);
    f.data.labels = codes;
    f.data.datasets = [{ label: "failed jobs", data: codes.map((c) => snap.failures[c]),
      backgroundColor: "#cf222e" }];
    f.update();
    describe("failures", codes.length ? codes.map((c) => `${c}: ${snap.failures[c]}`).join(", ")
      : "no failures in this period");

    const g = charts.lag;
    const consumers = Object.keys(snap.lag.pending);
    g.data.labels = snap.lag.at.map(hhmmss);
    g.data.datasets = consumers.map((name, i) => ({ label: name, data: snap.lag.pending[name],
      borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
      pointRadius: 1 }));
    g.update();
    describe("lag", consumers.length ? consumers.map((n) =>
      `${n}: ${snap.lag.pending[n][snap.lag.pending[n].length - 1]}`).join(", ") : "no consumers");

    const c = charts.cost;
    c.data.labels = labels;
    c.data.datasets = [{ label: "USD", data: snap.cost.usd, backgroundColor: "#8250df" }];
    c.update();
    const hours = snap.cost.window_s / 3600;
    $("cost-window").textContent = `· ${snap.cost.window_usd.toFixed(2)} USD in the last ` +
      `${hours >= 1 ? hours + " h" : snap.cost.window_s + " s"} (budget ${snap.cost.budget_usd.toFixed(2)})`;
    describe("cost", `${sum(snap.cost.usd).toFixed(4)} USD in the last ${labels.length} minutes`);

    const jobs = $("jobs");
    jobs.replaceChildren(...Object.keys(snap.jobs).map((state) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = state;
      dd.textContent = String(snap.jobs[state]);
      dd.dataset.state = state;
      div.append(dt, dd);
      return div;
    }));

    const alerts = $("alerts");
    if (!snap.alerts.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "none";
      alerts.replaceChildren(li);
    } else {
      alerts.replaceChildren(...snap.alerts.map((a) => {
        const li = document.createElement("li");
        const b = document.createElement("b");
        li.className = a.severity;
        li.dataset.alert = a.alert;
        b.textContent = `${a.alert} (${a.severity})`;
        li.append(b, document.createTextNode(`${a.summary} · since ${hhmmss(a.fired_at)}`));
        return li;
      }));
    }
  }

  function show(snap) {
    if (paused) { pending = snap; return; }
    draw(snap);
  }

  function connect() {
    const source = new EventSource("/v1/dashboard/stream");
    source.addEventListener("snapshot", (e) => {
      if (!paused) $("status").textContent = "live";
      show(JSON.parse(e.data));
    });
    source.onerror = () => { if (!paused) $("status").textContent = "reconnecting…"; };
  }

  function start() {
    setup();
    $("pause").addEventListener("click", () => {
      paused = !paused;
      $("pause").setAttribute("aria-pressed", String(paused));
      $("pause").textContent = paused ? "Resume updates" : "Pause updates";
      $("status").textContent = paused ? "paused" : "live";
      if (!paused && pending) { draw(pending); pending = null; }
    });
    fetch("/v1/dashboard").then((r) => r.json()).then(show).catch(() => {
      $("status").textContent = "no data";
    }).finally(connect);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
