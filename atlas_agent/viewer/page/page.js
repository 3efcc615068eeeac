// The page of `atlas html`: renders the embedded runs. Every text from a run goes in as a text node,
// never as HTML. The address's hash says what is shown (#run=0&instance=ID), so Back works and a view
// can be linked.
"use strict";

const DATA = JSON.parse(document.getElementById("atlas-data").textContent);
const RUNS = DATA.runs;
const OUTCOMES = ["resolved", "unresolved", "error", "empty_patch", "not_graded"];
const COLLAPSED_LINES = 3;
const ERROR_CHARS = 60;
let current = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function byId(id) { return document.getElementById(id); }
function words(value) { return String(value).replace(/_/g, " "); }
function cost(usd) { return usd ? "$" + usd.toFixed(4) : "-"; }
function tokens(n) { return n < 1000 ? String(n) : n < 1e6 ? (n / 1000).toFixed(1) + "k" : (n / 1e6).toFixed(2) + "M"; }
function seconds(s) {
  if (!s) return "-";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.round(s / 60);
  return m < 60 ? m + " min" : Math.floor(m / 60) + " h " + (m % 60) + " min";
}
function patchSize(p) {
  if (!p.files.length && !p.added && !p.removed) return "empty";
  return `+${p.added} -${p.removed} (${p.files.length} file${p.files.length === 1 ? "" : "s"})`;
}
function stopReason(item) {
  return item.stop_reason || (item.state === "unfinished" || item.state === "error" ? item.state : "-");
}
function stopText(item) {
  const cause = item.state === "error" && !item.stop_reason && item.error ? item.error.split("\n")[0] : "";
  return stopReason(item) + (cause ? ": " + (cause.length > ERROR_CHARS ? cause.slice(0, ERROR_CHARS - 3) + "..." : cause) : "");
}
function badge(outcome) { return el("span", { class: "badge " + outcome, text: words(outcome) }); }
function flags(item) {
  const found = [];
  if (item.tampering.length) found.push("tamper: " + item.tamper_action);
  if (item.flaky) found.push("flaky");
  if (item.failure_kind) found.push(item.failure_kind + " failure");
  if (item.damaged.length) found.push("damaged");
  return found;
}
function flagBadges(item) { return flags(item).map((flag) => el("span", { class: "badge flag", text: flag })); }
function collapsed(text) {
  const lines = text.replace(/\n+$/, "").split("\n");
  if (lines.length <= 2 * COLLAPSED_LINES + 1) return lines.join("\n");
  const hidden = lines.length - 2 * COLLAPSED_LINES;
  return [...lines.slice(0, COLLAPSED_LINES), `... ${hidden} more lines ...`, ...lines.slice(-COLLAPSED_LINES)].join("\n");
}
function argumentsText(args) {
  const keys = Object.keys(args);
  if (keys.length === 1 && keys[0] === "command" && typeof args.command === "string") return "$ " + args.command.trimEnd();
  return keys.map((key) => key + "=" + (typeof args[key] === "string" ? args[key] : JSON.stringify(args[key]))).join("\n");
}
function fillSelect(select, label, values) {
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "all " + label }));
  for (const value of values) select.append(el("option", { value: value, text: words(value) }));
  select.value = values.includes(chosen) ? chosen : "";
}
function distinct(values) { return [...new Set(values.filter((v) => v !== null && v !== ""))].sort(); }

// ---- overview
function renderRunChoice() {
  const select = byId("run-select");
  RUNS.forEach((page, index) => select.append(el("option", { value: String(index), text: page.run.run_id })));
  byId("run-choice").hidden = RUNS.length < 2;
  select.addEventListener("change", () => { location.hash = "run=" + select.value; });
}

function renderSummary(run) {
  const resolved = run.instances.filter((i) => i.outcome === "resolved").length;
  const usd = run.instances.reduce((sum, i) => sum + i.usage.cost_usd, 0);
  const summary = byId("run-summary");
  summary.replaceChildren(
    el("b", { text: run.run_id }), ` · ${run.model} · ${run.dataset} · scaffold ${run.scaffold} · `,
    el("b", { text: `${resolved} / ${run.instances.length} resolved` }),
    ` · $${usd.toFixed(4)}` + (run.graded ? "" : " · not graded (atlas eval grades it)"),
  );
  byId("run-damage").replaceChildren(...run.damaged.map((d) => el("li", { text: `damaged: ${d.file}: ${d.problem}` })));
}

function renderFilters(run) {
  const items = run.instances;
  fillSelect(byId("filter-outcome"), "outcomes", OUTCOMES.filter((o) => items.some((i) => i.outcome === o)));
  fillSelect(byId("filter-repo"), "repositories", distinct(items.map((i) => i.repo)));
  const difficulties = distinct(items.map((i) => i.difficulty));
  fillSelect(byId("filter-difficulty"), "difficulties", difficulties);
  byId("difficulty-filter").hidden = difficulties.length === 0;
  fillSelect(byId("filter-stop"), "stop reasons", distinct(items.map(stopReason)));
}

function matches(item) {
  const wanted = (id) => byId(id).value;
  const text = byId("filter-text").value.trim().toLowerCase();
  return (!wanted("filter-outcome") || item.outcome === wanted("filter-outcome"))
    && (!wanted("filter-repo") || item.repo === wanted("filter-repo"))
    && (!wanted("filter-difficulty") || item.difficulty === wanted("filter-difficulty"))
    && (!wanted("filter-stop") || stopReason(item) === wanted("filter-stop"))
    && (!text || item.instance_id.toLowerCase().includes(text));
}

function renderTable() {
  const run = RUNS[current].run;
  const hasDifficulty = run.instances.some((i) => i.difficulty);
  const heads = ["instance", "repository", hasDifficulty ? "difficulty" : null, "outcome", "stop reason", "steps",
    "cost", "tokens", "time", "patch", "flags"].filter((h) => h !== null);
  byId("instances").tHead.replaceChildren(el("tr", {}, ...heads.map((h) => el("th", { text: h }))));
  const shown = run.instances.filter(matches);
  byId("instances").tBodies[0].replaceChildren(...shown.map((item) => {
    const row = el("tr", { class: "instance-row", "data-instance": item.instance_id, "data-outcome": item.outcome },
      el("td", {}, el("a", { href: link(current, item.instance_id), text: item.instance_id })),
      el("td", { text: item.repo }),
      hasDifficulty ? el("td", { text: item.difficulty || "" }) : null,
      el("td", {}, badge(item.outcome)),
      el("td", { text: stopText(item) }),
      el("td", { class: "num", text: String(item.steps) }),
      el("td", { class: "num", text: cost(item.usage.cost_usd) }),
      el("td", { class: "num", text: tokens(item.usage.input_tokens + item.usage.output_tokens) }),
      el("td", { class: "num", text: seconds(item.duration_s) }),
      el("td", { text: patchSize(item.patch) }),
      el("td", {}, ...flagBadges(item)));
    row.addEventListener("click", () => { location.hash = link(current, item.instance_id).slice(1); });
    return row;
  }));
  byId("shown-count").textContent = `${shown.length} of ${run.instances.length} instances`;
}

function renderMatrix() {
  if (RUNS.length < 2) return;
  byId("matrix-section").hidden = false;
  const ids = distinct(RUNS.flatMap((page) => page.run.instances.map((i) => i.instance_id)));
  byId("matrix").tHead.replaceChildren(el("tr", {}, el("th", { text: "instance" }),
    ...RUNS.map((page) => el("th", { text: page.run.run_id }))));
  byId("matrix").tBodies[0].replaceChildren(...ids.map((id) => el("tr", {}, el("td", { text: id }),
    ...RUNS.map((page, index) => {
      const item = page.run.instances.find((i) => i.instance_id === id);
      return el("td", {}, item ? el("a", { href: link(index, id) }, badge(item.outcome)) : "-");
    }))));
}

function link(runIndex, instanceId) {
  return "#run=" + runIndex + (instanceId ? "&instance=" + encodeURIComponent(instanceId) : "");
}

// ---- one instance
function renderDetail(item, detail) {
  const run = RUNS[current].run;
  byId("detail-title").textContent = `${item.instance_id}  ·  ${run.run_id}`;
  byId("detail-badges").replaceChildren(badge(item.outcome), ...flagBadges(item));
  const usage = item.usage;
  const facts = [
    ["repository", item.repo + (item.difficulty ? ` (difficulty ${item.difficulty})` : "")],
    ["model", run.model],
    ["stop reason", [stopReason(item), item.stop_detail].filter(Boolean).join(": ")],
    ["steps", `${item.steps} in ${seconds(item.duration_s)}`],
    ["usage", `${usage.input_tokens} in / ${usage.output_tokens} out tokens, ${cost(usage.cost_usd)}`],
    ["patch", patchSize(item.patch) + (item.patch.files.length ? ": " + item.patch.files.join(", ") : "")],
    item.error ? ["error", item.error] : null,
    item.failure_kind ? ["grading failure", `${item.failure_kind}: ${item.failure_reason || ""}`] : null,
    item.verdicts.length ? ["verdicts", item.verdicts.join(", ")] : null,
    ...item.tampering.map((edit) => ["tamper " + item.tamper_action, `${edit.path}: ${edit.reason}`]),
  ].filter(Boolean);
  byId("detail-facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]));
  renderOtherRuns(item.instance_id);
  byId("detail-damage").replaceChildren(...[...item.damaged, ...detail.damaged]
    .map((d) => el("li", { text: `damaged: ${d.file}: ${d.problem}` })));
  renderTests(item, detail);
  renderDiff(detail.patch);
  byId("issue").querySelector("pre").textContent = detail.instance_prompt || "(not recorded)";
  byId("choice").textContent = detail.choice ? "choice: " + detail.choice : "";
  byId("timeline").replaceChildren(...detail.steps.map(renderStep));
  if (!detail.steps.length) byId("timeline").append(el("li", { class: "muted", text: "no steps recorded" }));
}

function renderOtherRuns(instanceId) {
  const others = RUNS.map((page, index) => [page, index]).filter(([, index]) => index !== current)
    .map(([page, index]) => [page.run.instances.find((i) => i.instance_id === instanceId), page, index])
    .filter(([item]) => item);
  byId("other-runs").replaceChildren(...(others.length ? ["in other runs: "] : []), ...others.map(([item, page, index]) =>
    el("a", { href: link(index, instanceId) }, page.run.run_id + " ", badge(item.outcome))));
}

function renderTests(item, detail) {
  const grading = item.grading;
  const box = byId("tests");
  if (!grading) {
    box.replaceChildren(el("p", { class: "muted", text: "no test results: " + words(item.outcome) }));
    return;
  }
  const group = (title, tests) => el("div", { class: "tests-group" },
    el("b", { text: `${title}: ${tests.passed.length} of ${tests.passed.length + tests.failed.length} passed` }),
    el("ul", {}, ...tests.failed.map((name) => el("li", { class: "test fail", text: name })),
      ...tests.passed.map((name) => el("li", { class: "test pass", text: name }))));
  box.replaceChildren(
    el("p", { class: "muted", text: `patch applied: ${grading.patch_applied ? "yes" : "no"} · logs: ${grading.log_dir}` }),
    group("FAIL_TO_PASS", grading.fail_to_pass), group("PASS_TO_PASS", grading.pass_to_pass),
    detail.test_output_tail ? el("details", {}, el("summary", { text: "end of the test output" }),
      el("pre", { text: detail.test_output_tail })) : null);
}

function renderDiff(patch) {
  const box = byId("diff");
  if (!patch.trim()) { box.replaceChildren(el("span", { class: "muted", text: "(empty patch)" })); return; }
  const kind = (line) => line.startsWith("diff --git") ? "file" : line.startsWith("@@") ? "hunk"
    : line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
  box.replaceChildren(...patch.replace(/\n$/, "").split("\n").map((line) => {
    const cls = kind(line);
    return cls ? el("span", { class: cls, text: line }) : line + "\n";
  }));
}

function renderStep(step) {
  const head = [step.part, step.replayed ? "replayed from the parent run" : "", step.latency_s ? `model ${step.latency_s.toFixed(1)} s` : "",
    step.usage.input_tokens || step.usage.output_tokens ? `${step.usage.input_tokens} in / ${step.usage.output_tokens} out` : "",
    step.usage.cost_usd ? cost(step.usage.cost_usd) : "", step.retries ? `${step.retries} retries` : ""].filter(Boolean);
  return el("li", { class: "step", id: "step-" + step.number },
    el("div", { class: "step-head", text: "step " + step.number }, el("span", { class: "muted", text: head.join(" · ") })),
    step.thought ? el("div", { class: "thought", text: step.thought }) : null,
    ...step.calls.map((call) => el("div", { class: "call" }, el("span", { class: "tool", text: call.tool }),
      Object.keys(call.arguments).length ? el("pre", { text: argumentsText(call.arguments) }) : null)),
    ...step.results.map(renderObservation),
    step.error ? el("div", { class: "note", text: "error: " + step.error }) : null,
    step.nudge ? el("div", { class: "note", text: "nudge: " + step.nudge }) : null);
}

function renderObservation(result) {
  const status = (result.exit_code === null ? "done" : "exit " + result.exit_code) + (result.timed_out ? " (timed out)" : "")
    + ` · ${result.duration_s.toFixed(1)} s` + (result.shortened ? " · the model saw it shortened" : "");
  const lines = result.output ? result.output.replace(/\n+$/, "").split("\n").length : 0;
  return el("details", { class: "obs" },
    el("summary", {}, `${result.tool}: ${status} · ${lines} line${lines === 1 ? "" : "s"}`,
      lines ? el("pre", { text: collapsed(result.output) }) : null),
    el("pre", { text: result.output || "(no output)" }));
}

// ---- what the address asks for
function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  const index = Number(params.get("run") || 0);
  const runChanged = index !== current || !byId("instances").tBodies[0].children.length;
  current = RUNS[index] ? index : 0;
  byId("run-select").value = String(current);
  if (runChanged) {
    renderSummary(RUNS[current].run);
    renderFilters(RUNS[current].run);
  }
  const instanceId = params.get("instance");
  const item = instanceId && RUNS[current].run.instances.find((i) => i.instance_id === instanceId);
  byId("detail").hidden = !item;
  byId("overview").hidden = Boolean(item);
  byId("matrix-section").hidden = Boolean(item) || RUNS.length < 2;
  const comparison = byId("comparison");
  if (comparison) comparison.hidden = Boolean(item);
  if (item) {
    renderDetail(item, RUNS[current].details[instanceId]);
    window.scrollTo(0, 0);
  } else {
    renderTable();
  }
}

byId("generated").textContent = `written ${DATA.generated_at} by Atlas ${DATA.atlas_version}`;
byId("back").addEventListener("click", (event) => { event.preventDefault(); location.hash = link(current).slice(1); });
for (const id of ["filter-outcome", "filter-repo", "filter-difficulty", "filter-stop"]) {
  byId(id).addEventListener("change", renderTable);
}
byId("filter-text").addEventListener("input", renderTable);
renderRunChoice();
renderMatrix();
route();
window.addEventListener("hashchange", route);
