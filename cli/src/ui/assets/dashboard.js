// The Tideflow dashboard: draws the job's graph, charts and tables from the server-sent events
// of /events (cli/src/ui/server.rs): `graph` first, then one `progress` per report (the last
// minutes' first, then each new one) and `error` when the job fails. Charts are uPlot's.
"use strict";
(function () {
  const HISTORY = 600;
  const $ = (id) => document.getElementById(id);
  const series = {};
  const charts = {};
  const state = { graph: null, last: null, previous: null, snapshots: [], ended: false };

  const CHARTS = [
    { id: "chart-rates", lines: [["input rows/s", "#0969da", "input"], ["processed rows/s", "#cf222e", "processed", [6, 4]]] },
    { id: "chart-lag", lines: [["watermark lag, s", "#8250df", "lag"]] },
    { id: "chart-latency", lines: [["p50", "#1a7f37", "p50"], ["p99", "#bf8700", "p99"]] },
    { id: "chart-late", lines: [["late records", "#cf222e", "late"]] },
    { id: "chart-state", lines: [["state rows", "#0969da", "state"]] },
  ];

  function reset() {
    for (const key of ["t", "input", "processed", "lag", "p50", "p99", "late", "state"]) series[key] = [];
    state.last = state.previous = null;
    state.snapshots = [];
  }

  const number = (n) => (n == null ? "–" : Math.round(n).toLocaleString("en-US"));
  const bytes = (n) => {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  };
  const compact = (n) => {
    if (n == null) return "";
    const abs = Math.abs(n);
    for (const [unit, size] of [["G", 1e9], ["M", 1e6], ["k", 1e3]]) {
      if (abs >= size) return +(n / size).toPrecision(4) + unit;
    }
    return +n.toPrecision(4) + "";
  };
  const time = (ms) => (ms == null ? "–" : new Date(ms).toISOString().replace("T", " ").slice(0, 23));
  const duration = (ms) => {
    if (ms == null) return "–";
    const s = Math.abs(ms) / 1000, sign = ms < 0 ? "-" : "";
    if (s < 1) return sign + Math.round(s * 1000) + " ms";
    if (s < 60) return sign + s.toFixed(1) + " s";
    if (s < 3600) return sign + Math.floor(s / 60) + " m " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
    if (s < 86400) return sign + Math.floor(s / 3600) + " h " + String(Math.floor(s / 60) % 60).padStart(2, "0") + " m";
    return sign + Math.floor(s / 86400).toLocaleString("en-US") + " d " + Math.floor(s / 3600) % 24 + " h";
  };

  /** The figures of the whole job: on process 0 of a cluster, the totals over every process. */
  function figures(report) {
    return report.cluster ? Object.assign({}, report, report.cluster.totals) : report;
  }

  function stateRows(f, name) {
    if (!f.state) return 0;
    if (name) return (f.state[name] || { rows: 0 }).rows;
    return Object.values(f.state).reduce((sum, s) => sum + s.rows, 0);
  }

  /** A counter's rate between the previous report and this one. */
  function rate(field, f, before) {
    if (!before) return null;
    const seconds = (f.timestamp_ms - before.timestamp_ms) / 1000;
    return seconds > 0 ? (f[field] - before[field]) / seconds : null;
  }

  function drawGraph() {
    const list = $("graph");
    list.replaceChildren();
    for (const [i, node] of state.graph.nodes.entries()) {
      const item = document.createElement("li");
      const box = document.createElement("div");
      box.className = "node " + node.kind;
      box.dataset.kind = node.kind;
      box.id = "node-" + i;
      box.title = node.text;
      const kind = document.createElement("div");
      kind.className = "kind";
      kind.textContent = node.kind;
      const text = document.createElement("div");
      text.className = "text";
      text.textContent = node.text;
      const live = document.createElement("div");
      live.className = "live";
      box.append(kind, text, live);
      item.append(box);
      list.append(item);
    }
    $("notes").replaceChildren(...state.graph.notes.map((note) => {
      const item = document.createElement("li");
      item.textContent = note;
      return item;
    }));
    $("title").textContent = state.graph.title;
  }

  /** Each node's live figures: rows in/out per second, state rows and, for windows, the watermark. */
  function updateGraph(f, before) {
    const input = f.input_rows_per_sec, processed = f.processed_rows_per_sec;
    const late = rate("late_rows_routed", f, before);
    const emitted = rate("windows_emitted", f, before);
    const out = rate("output_rows", f, before);
    let flowing = input, lateBranch = false;
    state.graph.nodes.forEach((node, i) => {
      const parts = [];
      switch (node.kind) {
        case "source":
          parts.push("out " + number(input) + "/s");
          flowing = input;
          break;
        case "window":
        case "aggregate":
          parts.push("in " + number(processed) + "/s", "out " + number(emitted) + "/s");
          parts.push("state " + number(stateRows(f, node.state)) + " rows");
          if (node.kind === "window") parts.push("watermark " + time(f.watermark));
          flowing = emitted;
          break;
        case "join":
          parts.push("in " + number(flowing) + "/s", "state " + number(stateRows(f, node.state)) + " rows");
          break;
        case "late":
          // A side output to its own exchange and sink, or records dropped here.
          lateBranch = node.text.startsWith("side output");
          if (lateBranch) flowing = late;
          parts.push("routed " + number(late) + "/s", "dropped " + number(f.late_rows_dropped) + " in all");
          break;
        case "sink":
          parts.push("in " + number(lateBranch ? late : out == null || late == null ? out : out - late) + "/s");
          lateBranch = false;
          break;
        default:
          parts.push("in/out " + number(flowing) + "/s");
      }
      $("node-" + i).querySelector(".live").textContent = parts.join(" · ");
    });
  }

  function updateFigures(report, f) {
    const shown = [
      ["records read", number(f.input_rows)],
      ["input rows/s", number(f.input_rows_per_sec)],
      ["processed rows/s", number(f.processed_rows_per_sec)],
      ["watermark", time(f.watermark)],
      ["lag", duration(f.event_time_lag_ms)],
      ["rows written", number(f.output_rows)],
      ["late records", number(f.late_rows_dropped + f.late_rows_routed)],
      ["bad records skipped", number(f.rows_skipped + f.rows_dead_lettered)],
      ["report", number(report.batch)],
    ];
    $("figures").replaceChildren(...shown.map(([name, value]) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = name;
      dd.textContent = value;
      div.append(dt, dd);
      return div;
    }));
  }

  function chart(spec) {
    if (charts[spec.id]) return charts[spec.id];
    const element = $(spec.id);
    const opts = {
      width: Math.max(300, element.clientWidth - 20),
      height: 190,
      scales: { x: { time: true } },
      axes: [{}, { size: 60, values: (u, values) => values.map(compact) }],
      series: [{}].concat(spec.lines.map(([label, stroke, , dash]) => ({ label, stroke, dash, width: 2, spanGaps: true }))),
    };
    charts[spec.id] = new uPlot(opts, [[]].concat(spec.lines.map(() => [])), element);
    return charts[spec.id];
  }

  function updateCharts() {
    for (const spec of CHARTS) {
      chart(spec).setData([series.t].concat(spec.lines.map(([, , key]) => series[key])));
      const element = $(spec.id);
      element.dataset.points = series.t.length;
      element.dataset.values = JSON.stringify(spec.lines.map(([, , key]) => series[key].slice(-5)));
    }
  }

  function updateSnapshots(f) {
    const snapshot = f.snapshot;
    const known = state.snapshots.length ? state.snapshots[state.snapshots.length - 1].completed : 0;
    if (snapshot && snapshot.completed > known) {
      state.snapshots.push({
        completed: snapshot.completed,
        epoch: snapshot.last_epoch,
        bytes: snapshot.last_bytes,
        duration: snapshot.last_duration_ms,
        at: f.timestamp_ms,
      });
      if (state.snapshots.length > 20) state.snapshots.shift();
    }
    drawSnapshots();
  }

  function drawSnapshots() {
    const now = Date.now();
    $("snapshots-none").hidden = state.snapshots.length > 0;
    $("snapshots").hidden = state.snapshots.length === 0;
    $("snapshots").querySelector("tbody").replaceChildren(...state.snapshots.slice().reverse().map((s) => {
      const row = document.createElement("tr");
      for (const value of [s.epoch == null ? "–" : s.epoch, bytes(s.bytes), s.duration.toFixed(1) + " ms", duration(now - s.at)]) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.append(cell);
      }
      return row;
    }));
  }

  function updateProcesses(report) {
    $("cluster").hidden = !report.cluster;
    if (!report.cluster) return;
    $("processes").querySelector("tbody").replaceChildren(...report.cluster.processes.map((p) => {
      const f = p.figures || {};
      const row = document.createElement("tr");
      const values = [p.process, number(f.input_rows), number(f.input_rows_per_sec), time(f.watermark),
        number(stateRows(f)), p.age_ms == null ? "–" : duration(p.age_ms) + (p.is_final ? " (ended)" : "")];
      for (const value of values) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.append(cell);
      }
      return row;
    }));
  }

  function setStatus(text) {
    $("status").textContent = text;
    $("status").className = "status " + text.split(" ")[0];
  }

  function onProgress(report) {
    const f = figures(report);
    const before = state.last;
    state.previous = before;
    state.last = f;
    series.t.push(f.timestamp_ms / 1000);
    series.input.push(f.input_rows_per_sec);
    series.processed.push(f.processed_rows_per_sec);
    series.lag.push(f.event_time_lag_ms == null ? null : f.event_time_lag_ms / 1000);
    series.p50.push(report.latency_ms ? report.latency_ms.p50 : null);
    series.p99.push(report.latency_ms ? report.latency_ms.p99 : null);
    series.late.push(f.late_rows_dropped + f.late_rows_routed);
    series.state.push(stateRows(f));
    if (series.t.length > HISTORY) for (const key in series) series[key].shift();
    updateFigures(report, f);
    updateGraph(f, before);
    updateSnapshots(f);
    updateProcesses(report);
    if (report.final) {
      state.ended = true;
      setStatus("ended");
    } else if (!state.failed) {
      setStatus("running");
    }
  }

  // Charts are redrawn at most once a frame, after the backlog a page gets first.
  let drawPending = false;
  function redraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      updateCharts();
    });
  }

  reset();
  const events = new EventSource("/events");
  events.addEventListener("graph", (e) => {
    reset();
    state.graph = JSON.parse(e.data);
    drawGraph();
  });
  events.addEventListener("progress", (e) => {
    onProgress(JSON.parse(e.data));
    redraw();
  });
  events.addEventListener("error", (e) => {
    // The job's error (an event named "error" with data), not the connection's.
    if (!e.data) return;
    state.failed = true;
    $("error").hidden = false;
    $("error-message").textContent = JSON.parse(e.data).message;
    setStatus("failed");
  });
  events.onerror = () => {
    if (state.ended || state.failed) {
      events.close();
    } else {
      setStatus("disconnected");
    }
  };
  setInterval(drawSnapshots, 1000);
  window.tideflowDashboard = { series, charts, state };
})();
