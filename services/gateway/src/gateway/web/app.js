// seoblog's web app: vanilla JS, no CDN. API data is only ever written with textContent;
// the post's HTML (sanitised by the generator) is shown in a sandboxed iframe.
"use strict";

const $ = (id) => document.getElementById(id);
const FINAL = ["completed", "failed", "cancelled"];
const ACTIVE = ["queued", "crawling", "translating", "generating"];
const STEPS = ["queued", "crawling", "translating", "generating", "completed"];
const STEP_LABEL = { queued: "Queued", crawling: "Crawl", translating: "Translate", generating: "Write", completed: "Done" };

// The generator's checks (services/generator/src/generator/seo.py): weight, group, how to fix.
const CHECKS = {
  keyword_in_title: [12, "title", "Title contains the main keyword",
    "Put the main keyword in the title, ideally near the start."],
  title_length_ok: [8, "title", "Title is 50–60 characters",
    "Rewrite the title to 50–60 characters so search results show it whole."],
  keyword_in_meta: [8, "title", "Meta description contains the main keyword",
    "Mention the main keyword once in the meta description; search engines bold it."],
  meta_length_ok: [8, "title", "Meta description is 150–160 characters",
    "Write a 150–160 character summary that makes people click; shorter wastes space, longer is cut."],
  keyword_in_slug: [6, "title", "Slug contains the main keyword",
    "Use a short slug made of the keyword, hyphenated (e.g. water-plumes-europa)."],
  keyword_in_first_paragraph: [8, "content", "Main keyword in the first paragraph",
    "Open with a paragraph (not a heading or list) that uses the main keyword in its first sentences."],
  keyword_density_ok: [8, "content", "Keyword density 0.5–2.5 %",
    "Below: use the keyword where it reads naturally (intro, a heading, the conclusion). Above: replace repeats with synonyms or pronouns."],
  length_ok: [10, "content", "Length within 25 % of the target",
    "Expand thin sections with examples and details, or cut repetition; if the source is short, ask for a shorter post."],
  keyword_in_heading: [8, "structure", "Main keyword in an H2–H6 heading",
    "Use the main keyword (or a close variant) in at least one H2 or H3 heading."],
  heading_structure_ok: [10, "structure", "Heading structure",
    "Keep the title as the only H1, use at least two H2 sections, and do not skip levels (H2 then H3)."],
  readability_ok: [7, "structure", "Sentences average 25 words or fewer",
    "Split long sentences, one idea each; prefer active voice and plain words."],
  originality: [7, "originality", "Less than 50 % copied from the source",
    "Rewrite in your own words: summarise, restructure and add your view instead of copying the source's sentences."],
};
const GROUPS = [
  ["title", "Title & meta"],
  ["content", "Content & keywords"],
  ["structure", "Structure & readability"],
  ["originality", "Originality"],
];
// Which of the report's reasons belongs to which check (the reasons carry the measured values).
const REASON_OF = [
  ["keyword_in_title", /is not in the title/],
  ["keyword_in_first_paragraph", /first paragraph|does not open with a paragraph/],
  ["keyword_in_heading", /in no H2/],
  ["keyword_in_slug", /^slug "/],
  ["keyword_in_meta", /is not in the meta description/],
  ["keyword_density_ok", /^keyword density/],
  ["length_ok", /^post has \d+ words/],
  ["title_length_ok", /^title is \d+ characters/],
  ["meta_length_ok", /^meta description is \d+ characters/],
  ["heading_structure_ok", /H1 heading|H2 heading|heading level skips/],
  ["readability_ok", /average sentence length|no prose sentences/],
  ["originality", /^originality/],
];
// Headings the writers give the takeaways section (services/generator offline.py _FRAMING).
const TAKEAWAY_HEADINGS = ["key takeaways", "das wichtigste in kürze", "à retenir", "puntos clave",
  "punti chiave", "pontos-chave", "belangrijkste punten", "najważniejsze wnioski", "главное",
  "головне", "要点"];
const LANGUAGES = ["en", "ko", "ja", "zh", "zh-TW", "es", "fr", "de", "it", "pt", "pt-BR", "nl",
  "pl", "ru", "uk", "tr", "ar", "he", "fa", "hi", "bn", "ur", "id", "ms", "vi", "th", "fil", "sv",
  "no", "da", "fi", "cs", "sk", "hu", "ro", "bg", "el", "hr", "sr", "sl", "et", "lv", "lt", "sw"];
const LIMITS = { title: [50, 60], slug: [1, 60], meta: [150, 160] };

const names = (() => {
  try { return new Intl.DisplayNames(["en"], { type: "language", fallback: "none" }); } catch { return null; }
})();

function languageName(code) {
  if (!/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$/.test(code)) return null;
  if (!names) return LANGUAGES.includes(code) ? code : null;
  try { return names.of(code) || null; } catch { return null; }
}

function languageLabel(code) {
  const name = code && languageName(code);
  return name ? `${name} (${code})` : code || "?";
}

// --- API -------------------------------------------------------------------------------------

const state = { key: sessionStorage.getItem("seoblog-key") || localStorage.getItem("seoblog-key") || "" };

class ApiError extends Error {
  constructor(status, code, message) { super(code ? `${code}: ${message}` : message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.key) headers.Authorization = "Bearer " + state.key;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "network", "the gateway did not answer (" + err.message + ")");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = data.error || {};
    throw new ApiError(response.status, e.code || String(response.status), e.message || response.statusText);
  }
  return data;
}

function keyQuery(prefix) {
  return state.key ? prefix + "api_key=" + encodeURIComponent(state.key) : "";
}

// --- small DOM helpers (textContent only) ------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function show(node, on) { node.classList.toggle("hidden", !on); }

function banner(message) {
  $("banner").textContent = message || "";
  show($("banner"), !!message);
}

function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function keywordsOf(text) { return text.split(",").map((k) => k.trim()).filter(Boolean); }

// --- routing ---------------------------------------------------------------------------------

const views = ["write", "job", "jobs", "posts", "post", "experiments"];
let leave = null;

let routed = false;

function route() {
  if (leave) { leave(); leave = null; }
  // After the first view, move focus to the new view so keyboard and screen-reader users land in it.
  if (routed) $("main").focus({ preventScroll: true });
  routed = true;
  banner("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  let view = "write";
  if (parts[0] === "jobs") view = parts[1] ? "job" : "jobs";
  else if (parts[0] === "posts") view = parts[1] ? "post" : "posts";
  else if (parts[0] === "experiments") view = "experiments";
  for (const v of views) show($("view-" + v), v === view);
  for (const [nav, on] of [["nav-write", view === "write"], ["nav-jobs", view === "jobs" || view === "job"],
    ["nav-posts", view === "posts" || view === "post"], ["nav-experiments", view === "experiments"]]) {
    if (on) $(nav).setAttribute("aria-current", "page"); else $(nav).removeAttribute("aria-current");
  }
  if (view === "job") openJob(parts[1]);
  else if (view === "jobs") openJobs();
  else if (view === "posts") openPosts();
  else if (view === "post") openPost(parts[1]);
  else if (view === "experiments") openExperiments(parts[1]);
}

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

// --- language inputs -------------------------------------------------------------------------

function fillLanguages() {
  const list = $("languages");
  for (const code of LANGUAGES) list.append(el("option", { value: code, label: languageName(code) || code }));
}

function bindLanguage(input, output) {
  const check = () => {
    const code = input.value.trim();
    const name = code ? languageName(code) : null;
    input.setCustomValidity(name ? "" : "Choose a language from the list, or an ISO 639 code such as ko or pt-BR.");
    output.textContent = name ? name : code ? "Unknown language code" : "";
    output.classList.toggle("bad", !name);
  };
  input.addEventListener("input", check);
  check();
}

// --- write -----------------------------------------------------------------------------------

function specFromForm() {
  return {
    url: $("url").value.trim(),
    keywords: keywordsOf($("keywords").value),
    target_language: $("language").value.trim(),
    length: parseInt($("length").value, 10) || 800,
    priority: $("priority").value,
  };
}

async function submit(body, button, errorBox) {
  show(errorBox, false);
  button.disabled = true;
  try {
    const job = await api("POST", "/v1/jobs", body);
    jobCache.set(job.id, job);
    go("#/jobs/" + encodeURIComponent(job.id));
  } catch (err) {
    errorBox.textContent = err.message;
    show(errorBox, true);
  } finally {
    button.disabled = false;
  }
}

function requestOf(job) {
  const s = job.spec;
  const body = { url: s.url, keywords: s.keywords, target_language: s.target_language, length: s.length, priority: s.priority };
  if (job.callback_url) body.callback_url = job.callback_url;
  if (job.callback_url && job.callback_events) body.callback_events = job.callback_events;
  return body;
}

// --- one job ---------------------------------------------------------------------------------

const jobCache = new Map();
let current = null;

function percentOf(job) {
  if (job.state === "completed") return 100;
  const index = STEPS.indexOf(job.state);
  const p = job.progress;
  const within = p && ["crawling", "translating", "generating"].includes(job.state) ? p.percent / 100 : 0;
  if (index < 0) { // failed or cancelled: where it stopped
    const reached = lastActive(job);
    return Math.round(((Math.max(0, STEPS.indexOf(reached)) + 0.5) / 4) * 100);
  }
  return Math.min(99, Math.round(((index + within) / 4) * 100));
}

function lastActive(job) {
  const seen = (job.history || []).map((h) => h.state).filter((s) => ACTIVE.includes(s));
  return seen.length ? seen[seen.length - 1] : "queued";
}

function renderJob(job) {
  current = job;
  jobCache.set(job.id, job);
  const failed = job.state === "failed", cancelled = job.state === "cancelled", done = job.state === "completed";
  $("job-id").textContent = job.id;
  $("job-url").textContent = job.spec.url;
  $("job-url").href = job.spec.url;
  $("state").textContent = job.state;
  $("state").className = "badge state-" + job.state;
  const p = job.progress;
  $("stage").textContent = p && ACTIVE.includes(job.state) && (p.percent || p.message) ? `${p.percent}% ${p.message || ""}`.trim() : "";
  const start = new Date(job.created_at), end = FINAL.includes(job.state) ? new Date(job.updated_at) : new Date();
  $("job-elapsed").textContent = isNaN(start) ? "" : "· " + duration(end - start);

  const stopped = failed || cancelled ? lastActive(job) : null;
  const at = STEPS.indexOf(stopped || job.state);
  $("steps").replaceChildren(...STEPS.map((s, i) => {
    let cls = i < at ? "done" : i === at ? "now" : "todo";
    if (done) cls = "done";
    if (stopped && i === at) cls = failed ? "fail" : "stop";
    const li = el("li", { class: cls, text: STEP_LABEL[s] });
    if (i === at && !done) li.setAttribute("aria-current", "step");
    return li;
  }));

  const percent = percentOf(job);
  const bar = $("bar");
  bar.className = "bar" + (failed ? " failed" : cancelled ? " cancelled" : done ? " complete" : "");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", failed ? "failed" : cancelled ? "cancelled" : percent + "%");
  bar.firstElementChild.style.width = percent + "%";
  $("live").textContent = `${job.state}${$("stage").textContent ? ", " + $("stage").textContent : ""}`;

  $("history").replaceChildren(...(job.history || []).map((h) => el("li", { text: `${h.state} · ${new Date(h.at).toLocaleTimeString()}` })));

  show($("error"), !!job.error);
  if (job.error) {
    $("error-code").textContent = job.error.code;
    $("error-message").textContent = job.error.message;
    $("error-stage").textContent = job.error.stage ? " at " + job.error.stage : "";
    $("error-retryable").textContent = job.error.retryable ? "This error is temporary: retrying should work." : "";
  }
  show($("cancel"), ACTIVE.includes(job.state));
  show($("retry"), failed || cancelled);
  show($("open-post"), done && !!job.post_id);
  if (job.post_id) $("open-post").href = "#/posts/" + encodeURIComponent(job.post_id);
  const again = $("again-form");
  if (FINAL.includes(job.state) && again.classList.contains("hidden")) {
    $("again-keywords").value = (job.spec.keywords || []).join(", ");
    $("again-language").value = job.spec.target_language;
    $("again-language").dispatchEvent(new Event("input"));
  }
  show(again, FINAL.includes(job.state));
}

function openJob(id) {
  show($("again-form"), false);
  const cached = jobCache.get(id);
  if (cached) renderJob(cached);
  else { $("job-id").textContent = id; $("state").textContent = "loading"; }
  let source = null, timer = null, closed = false;
  const connect = () => {
    source = new EventSource("/v1/jobs/" + encodeURIComponent(id) + "/events" + keyQuery("?"));
    source.addEventListener("job", (e) => renderJob(JSON.parse(e.data)));
    source.addEventListener("end", () => source.close());
    source.onerror = async () => {
      if (closed || source.readyState !== EventSource.CLOSED) return;
      try { renderJob(await api("GET", "/v1/jobs/" + encodeURIComponent(id))); } // why it closed
      catch (err) { banner(err.message); }
    };
  };
  connect();
  timer = setInterval(() => { if (current && current.id === id && ACTIVE.includes(current.state)) renderJob(current); }, 1000);
  leave = () => { closed = true; if (source) source.close(); clearInterval(timer); };
}

// --- jobs list, live over one WebSocket ----------------------------------------------------------

const jobsView = { filter: "", q: "", cursor: null, rows: new Map(), socket: null };

function jobRow(job) {
  const percent = percentOf(job);
  const cls = job.state === "failed" ? " failed" : job.state === "cancelled" ? " cancelled" : job.state === "completed" ? " complete" : "";
  const bar = el("div", { class: "bar small" + cls, role: "progressbar", "aria-label": "progress", "aria-valuemin": 0,
    "aria-valuemax": 100, "aria-valuenow": percent, "aria-valuetext": FINAL.includes(job.state) && job.state !== "completed" ? job.state : percent + "%" }, el("span"));
  bar.firstElementChild.style.width = percent + "%";
  const title = job.post ? job.post.title : job.spec.url;
  const actions = el("div", { class: "row-actions" });
  if (ACTIVE.includes(job.state)) actions.append(el("button", { type: "button", class: "danger", text: "Cancel", onclick: () => cancel(job.id) }));
  if (job.state === "failed" || job.state === "cancelled") actions.append(el("button", { type: "button", class: "primary", text: "Retry", onclick: (e) => submit(requestOf(job), e.target, $("banner")) }));
  if (job.post_id) actions.append(el("a", { class: "button", href: "#/posts/" + encodeURIComponent(job.post_id), text: "Post" }));
  const li = el("li", { class: "item job-item", "data-id": job.id, "data-state": job.state },
    el("div", { class: "item-head" },
      el("span", { class: "badge state-" + job.state, text: job.state }),
      el("a", { class: "item-title", href: "#/jobs/" + encodeURIComponent(job.id), text: title })),
    el("div", { class: "item-meta muted", text: [languageLabel(job.spec.target_language), (job.spec.keywords || []).join(", "), when(job.created_at), job.post ? usageLine(job.post) : ""].filter(Boolean).join(" · ") }),
    job.error ? el("div", { class: "item-error", text: `${job.error.code}: ${job.error.message}` }) : null,
    bar, actions);
  return li;
}

function usageLine(summary) {
  const u = summary.usage || {};
  const tokens = (u.prompt_tokens || 0) + (u.completion_tokens || 0);
  return `SEO ${summary.seo.score} · ${tokens.toLocaleString("en")} tokens · $${(u.cost_usd || 0).toFixed(4)}`;
}

function matches(job) {
  const f = jobsView.filter;
  return !f || (f === "active" ? ACTIVE.includes(job.state) : job.state === f);
}

function putJob(job) {
  jobCache.set(job.id, job);
  const old = jobsView.rows.get(job.id);
  if (!old) return;
  const row = jobRow(job);
  // keep focus on the row's button if it had it
  const focused = old.contains(document.activeElement);
  old.replaceWith(row);
  jobsView.rows.set(job.id, row);
  if (focused) (row.querySelector("button, a") || row).focus();
  $("jobs-live").textContent = `Job ${job.id.slice(0, 8)} is ${job.state}`;
}

function follow(ids) {
  const s = jobsView.socket;
  if (s && s.readyState === WebSocket.OPEN && ids.length) s.send(JSON.stringify({ follow: ids }));
}

function openSocket() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${proto}//${location.host}/v1/jobs/live${keyQuery("?")}`);
  jobsView.socket = socket;
  socket.onopen = () => follow([...jobsView.rows.keys()].filter((id) => ACTIVE.includes((jobCache.get(id) || {}).state)));
  socket.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === "job") putJob(msg.job);
  };
  socket.onclose = (e) => {
    if (jobsView.socket !== socket) return;
    jobsView.socket = null;
    if (e.code === 4401 || e.code === 4403) { banner("Live updates: " + (e.reason || "not allowed") + " (set an API key)"); return; }
    setTimeout(() => { if (!jobsView.socket && !$("view-jobs").classList.contains("hidden")) openSocket(); }, 2000);
  };
}

async function loadJobs(more) {
  const params = new URLSearchParams({ limit: "20" });
  const f = jobsView.filter;
  for (const s of f === "active" ? ACTIVE : f ? [f] : []) params.append("state", s);
  if (jobsView.q) params.set("q", jobsView.q);
  if (more && jobsView.cursor) params.set("cursor", jobsView.cursor);
  try {
    const page = await api("GET", "/v1/jobs?" + params);
    if (!more) { $("job-list").replaceChildren(); jobsView.rows.clear(); }
    for (const job of page.data) {
      jobCache.set(job.id, job);
      const row = jobRow(job);
      jobsView.rows.set(job.id, row);
      $("job-list").append(row);
    }
    jobsView.cursor = page.next_cursor;
    show($("jobs-more"), !!page.next_cursor);
    show($("jobs-empty"), jobsView.rows.size === 0);
    $("jobs-empty").firstChild.textContent = f || jobsView.q ? "No jobs match. " : "No jobs yet. ";
    follow(page.data.filter((j) => ACTIVE.includes(j.state)).map((j) => j.id));
  } catch (err) { banner(err.message); }
}

// Jobs submitted elsewhere (the CLI, another tab) join the top of the list: a light look at the
// first page every few seconds; the WebSocket then follows them.
async function newJobs() {
  const params = new URLSearchParams({ limit: "20" });
  const f = jobsView.filter;
  for (const s of f === "active" ? ACTIVE : f ? [f] : []) params.append("state", s);
  if (jobsView.q) params.set("q", jobsView.q);
  let page;
  try { page = await api("GET", "/v1/jobs?" + params); } catch { return; }
  const fresh = page.data.filter((j) => !jobsView.rows.has(j.id));
  const list = $("job-list");
  for (const job of fresh.reverse()) {
    jobCache.set(job.id, job);
    const row = jobRow(job);
    jobsView.rows.set(job.id, row);
    list.prepend(row);
  }
  if (fresh.length) {
    show($("jobs-empty"), false);
    follow(fresh.filter((j) => ACTIVE.includes(j.state)).map((j) => j.id));
    $("jobs-live").textContent = `${fresh.length} new job${fresh.length === 1 ? "" : "s"}`;
  }
}

function openJobs() {
  loadJobs(false);
  openSocket();
  const timer = setInterval(newJobs, 5000);
  leave = () => { clearInterval(timer); const s = jobsView.socket; jobsView.socket = null; if (s) s.close(); };
}

async function cancel(id) {
  try { const job = await api("POST", "/v1/jobs/" + encodeURIComponent(id) + "/cancel"); putJob(job); if (current && current.id === id) renderJob(job); }
  catch (err) { banner(err.message); }
}

// --- posts library -----------------------------------------------------------------------------

const postsView = { q: "", language: "", cursor: null };

function postRow(p) {
  return el("li", { class: "item post-item" },
    el("div", { class: "item-head" },
      el("span", { class: "score-badge " + scoreClass(p.seo_score), text: String(p.seo_score), title: "SEO score" }),
      el("a", { class: "item-title", href: "#/posts/" + encodeURIComponent(p.id), text: p.title })),
    el("div", { class: "item-desc", text: p.meta_description }),
    el("div", { class: "item-meta muted", text: [languageLabel(p.language), p.keywords.join(", "), p.writer, when(p.created_at)].filter(Boolean).join(" · ") }));
}

async function loadPosts(more) {
  const params = new URLSearchParams({ limit: "20" });
  if (postsView.q) params.set("q", postsView.q);
  if (postsView.language) params.set("language", postsView.language);
  if (more && postsView.cursor) params.set("cursor", postsView.cursor);
  try {
    const page = await api("GET", "/v1/posts?" + params);
    if (!more) $("post-list").replaceChildren();
    $("post-list").append(...page.data.map(postRow));
    postsView.cursor = page.next_cursor;
    show($("posts-more"), !!page.next_cursor);
    const n = $("post-list").children.length;
    const where = postsView.language ? ` in ${languageLabel(postsView.language)}` : "";
    $("posts-count").textContent = postsView.q
      ? `${n}${page.next_cursor ? "+" : ""} post${n === 1 ? "" : "s"}${where} match: ${postsView.q}`
      : n ? `${n}${page.next_cursor ? "+" : ""} post${n === 1 ? "" : "s"}${where}, newest first` : `No posts${where} yet.`;
  } catch (err) { banner(err.message); }
}

function openPosts() { $("posts-q").value = postsView.q; loadPosts(false); }

// --- one post ----------------------------------------------------------------------------------

let post = null;
let sourceOf = null; // the id of the post whose source the Source tab shows (loadSource)

function scoreClass(score) { return score >= 90 ? "good" : score >= 70 ? "fair" : "poor"; }

function reasonsByCheck(report) {
  const byCheck = {}, notes = [];
  for (const reason of report.reasons || []) {
    const hit = REASON_OF.find(([name, re]) => re.test(reason) && report.checks[name] === false && !byCheck[name]);
    if (hit) byCheck[hit[0]] = reason; else notes.push(reason);
  }
  return { byCheck, notes };
}

function renderReport(report) {
  $("seo-score").textContent = String(report.score);
  $("seo-score").className = "score " + scoreClass(report.score);
  const { byCheck, notes } = reasonsByCheck(report);
  const subs = [], items = [];
  for (const [group, label] of GROUPS) {
    const order = Object.keys(CHECKS);
    const rank = (n) => (report.checks[n] ? 100 : 0) + (order.includes(n) ? order.indexOf(n) : 99);
    const names = Object.keys(report.checks).filter((n) => (CHECKS[n] || [0, "content"])[1] === group)
      .sort((a, b) => rank(a) - rank(b)); // failed first, then in the generator's order
    if (!names.length) continue;
    const weight = (n) => (CHECKS[n] || [1])[0];
    const total = names.reduce((a, n) => a + weight(n), 0);
    const got = names.filter((n) => report.checks[n]).reduce((a, n) => a + weight(n), 0);
    const sub = Math.round((100 * got) / total);
    const meter = el("div", { class: "bar small " + (sub >= 90 ? "complete" : sub >= 50 ? "" : "failed"), role: "img", "aria-label": `${label}: ${sub} of 100` }, el("span"));
    meter.firstElementChild.style.width = sub + "%";
    subs.push(el("li", { "data-group": group }, el("span", { class: "sub-label", text: label }), el("span", { class: "sub-value", text: `${sub}` }), meter));
    items.push(el("li", { class: "group-head", text: label }));
    for (const name of names) {
      const ok = report.checks[name];
      const known = CHECKS[name];
      items.push(el("li", { class: "check " + (ok ? "pass" : "fail"), "data-check": name },
        el("span", { class: "mark", "aria-hidden": "true", text: ok ? "✓" : "✗" }),
        el("div", {},
          el("div", { class: "check-name" }, el("span", { class: "sr-only", text: ok ? "Passed: " : "Failed: " }), known ? known[2] : name.replace(/_/g, " ")),
          ok ? null : el("div", { class: "check-reason", text: byCheck[name] || "failed" }),
          ok || !known ? null : el("div", { class: "check-fix" }, el("strong", { text: "How to fix: " }), known[3]))));
    }
  }
  $("sub-scores").replaceChildren(...subs);
  $("checks").replaceChildren(...items);
  $("seo-notes").replaceChildren(...notes.map((n) => el("li", { text: n })));
}

function counter(node, value, [low, high], what) {
  const n = [...value].length;
  const ok = n >= low && n <= high;
  node.replaceChildren(el("span", { class: "count " + (ok ? "ok" : n > high ? "over" : "under"), text: `${n} / ${high}` }),
    el("span", { class: "muted", text: ok ? " · good" : n > high ? ` · too long: search results cut ${what} after about ${high}` : ` · short: aim for ${low}–${high}` }));
}

function cut(text, max) {
  const chars = [...text];
  return chars.length > max ? chars.slice(0, max - 1).join("").replace(/\s+\S*$/, "") + " …" : text;
}

function structure(html) {
  // DOMParser documents never run scripts or load anything: read the headings and JSON-LD.
  const doc = new DOMParser().parseFromString(html, "text/html");
  const ld = [...doc.querySelectorAll('script[type="application/ld+json"]')].map((s) => {
    try { return JSON.parse(s.textContent); } catch { return null; }
  }).filter(Boolean);
  const outline = [...doc.querySelectorAll("h2, h3")].map((h) => [h.tagName.toLowerCase(), h.textContent.trim()]);
  // The takeaways: the section under a known heading, else the last H2 section that is one list.
  const items = (list) => [...list.querySelectorAll("li")].map((li) => li.textContent.trim());
  let takeaways = [];
  for (const h of doc.querySelectorAll("h2")) {
    const list = h.nextElementSibling;
    const only = list && /^(UL|OL)$/.test(list.tagName) && (!list.nextElementSibling || /^(H[12]|SCRIPT)$/.test(list.nextElementSibling.tagName));
    if (TAKEAWAY_HEADINGS.includes(h.textContent.trim().toLowerCase()) && list && /^(UL|OL)$/.test(list.tagName)) { takeaways = items(list); break; }
    if (only) takeaways = items(list);
  }
  const faqPage = ld.find((d) => d["@type"] === "FAQPage");
  const faq = faqPage ? (faqPage.mainEntity || []).map((q) => [q.name, (q.acceptedAnswer || {}).text || ""]) : [];
  return { ld, outline, takeaways, faq };
}

function renderPost(p) {
  post = p;
  $("post-title").textContent = p.title;
  $("post-meta").replaceChildren(
    el("span", { class: "score-badge " + scoreClass(p.seo.score), text: `SEO ${p.seo.score}/100` }), " ",
    el("span", { text: `${languageLabel(p.language)} · ${p.writer} · ${when(p.created_at)}` }));
  const requested = p.requested_language;
  show($("post-language"), !!requested && requested !== p.language);
  if (requested && requested !== p.language) {
    $("post-language").textContent = `Requested ${languageLabel(requested)}, written in ${languageLabel(p.language)}: ` +
      (p.writer === "offline" ? "the offline writer keeps the article's language (configure an LLM to translate)." : "the writer could not write in the requested language.");
  }
  $("post-job").href = "#/jobs/" + encodeURIComponent(p.job_id);
  $("post-markdown").textContent = `# ${p.title}\n\n${p.markdown}`;
  const lang = /^[A-Za-z0-9-]+$/.test(p.language) ? p.language : "en";
  $("post-rendered").srcdoc = `<!doctype html><html lang="${lang}"><meta charset="utf-8"><link rel="stylesheet" href="${location.origin}/web/post.css"><h1>${escapeHtml(p.title)}</h1>${p.html}`;
  $("source-url").textContent = p.source_url;
  $("source-url").href = p.source_url;
  sourceOf = null; // the crawled article: read when the Source tab opens (loadSource)
  show($("source-text-box"), false);
  show($("source-none"), true);
  $("source-none").textContent = "Open this tab to read the crawled article beside the post.";

  renderReport(p.seo);

  const info = structure(p.html);
  // Where the post will live: the reader's blog (unknown here) with the post's slug.
  $("snippet-url").replaceChildren(el("span", { class: "s-site", text: "yourblog.example" }), ` › ${p.slug}`);
  $("snippet-title-text").textContent = cut(p.title, LIMITS.title[1]);
  $("snippet-desc").textContent = cut(p.meta_description, LIMITS.meta[1]);
  counter($("count-title"), p.title, LIMITS.title, "titles");
  counter($("count-slug"), p.slug, LIMITS.slug, "URLs");
  $("count-slug").prepend(el("code", { text: p.slug }), " ");
  counter($("count-meta"), p.meta_description, LIMITS.meta, "descriptions");

  $("outline").replaceChildren(...(info.outline.length ? info.outline.map(([tag, text]) => el("li", { class: tag, text: `${tag.toUpperCase()} ${text}` })) : [el("li", { class: "muted", text: "No H2/H3 headings." })]));
  show($("takeaways-box"), info.takeaways.length > 0);
  $("takeaways").replaceChildren(...info.takeaways.map((t) => el("li", { text: t })));
  show($("faq-box"), info.faq.length > 0);
  $("faq").replaceChildren(...info.faq.flatMap(([q, a]) => [el("dt", { text: q }), el("dd", { text: a })]));
  $("jsonld").textContent = info.ld.length ? info.ld.map((d) => JSON.stringify(d, null, 2)).join("\n\n") : "No JSON-LD in this post.";

  const u = p.usage || {};
  const cost = typeof u.cost_usd === "number" ? "$" + u.cost_usd.toFixed(4) : "–";
  $("usage").replaceChildren(...[["Prompt tokens", u.prompt_tokens], ["Completion tokens", u.completion_tokens],
    ["LLM calls", u.calls], ["Cost", cost]].flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v ?? 0) })]));
  if (u.unconfirmed_calls) $("usage").append(el("dt", { text: "Unconfirmed calls" }), el("dd", { text: String(u.unconfirmed_calls) }));
}

// The Source tab: the article the post was written from, as the crawler stored it (read through
// the gateway, GET /v1/posts/{id}/source, once per post; text only).

async function loadSource() {
  const p = post;
  if (!p || sourceOf === p.id) return;
  sourceOf = p.id;
  show($("source-text-box"), false);
  show($("source-none"), true);
  $("source-none").textContent = "Loading the source article…";
  try {
    const s = await api("GET", "/v1/posts/" + encodeURIComponent(p.id) + "/source");
    if (post !== p) return;
    $("source-title").textContent = s.title || "";
    $("source-text").textContent = s.text;
    show($("source-text-box"), true);
    show($("source-none"), false);
  } catch (err) {
    if (post !== p) return;
    sourceOf = err.status === 404 ? p.id : null; // a 503 is tried again on the next visit
    $("source-none").textContent = err.code === "source_not_found"
      ? "The crawler keeps no copy of this article any more: open the link to compare."
      : "The source article could not be loaded (" + err.message + "): open the link to compare.";
  }
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

async function openPost(id) {
  selectTab("tab-rendered", false);
  $("copy-status").textContent = "";
  try { renderPost(await api("GET", "/v1/posts/" + encodeURIComponent(id))); }
  catch (err) { banner(err.message); }
}

function selectTab(id, focus) {
  for (const tab of $("post-tabs").querySelectorAll('[role="tab"]')) {
    const on = tab.id === id;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (id === "tab-source") loadSource();
}

async function copy(text) {
  try { await navigator.clipboard.writeText(text); $("copy-status").textContent = "Copied"; }
  catch (err) { $("copy-status").textContent = "Copy failed: " + err.message; }
}

// --- experiments ---------------------------------------------------------------------------------

async function probeExperiments() {
  try { await api("GET", "/v1/experiments"); $("nav-experiments").hidden = false; }
  catch { $("nav-experiments").hidden = true; }
}

function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits ?? 3)) : String(v);
}

function metricLabel(m) {
  const text = m.replace(/_usd$/, " ($)").replace(/_s$/, " (s)").replace(/_/g, " ")
    .replace(/\be2e\b/, "end-to-end").replace(/\bseo\b/, "SEO");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function percent(v) { return v === null || v === undefined ? "–" : `${fmt(v, 1)} %`; }

function metricCell(r, control) {
  if (!r) return el("td", { text: "–" });
  const cell = el("td", { class: r.significant ? "significant" : "" }, el("div", { text: `${fmt(r.value)} (n=${r.n})` }));
  if (!control && r.difference !== null && r.difference !== undefined) {
    cell.append(el("div", { class: "muted", text: `Δ ${r.difference >= 0 ? "+" : ""}${fmt(r.difference)} [${fmt(r.ci_low)}, ${fmt(r.ci_high)}] p=${fmt(r.p_value)}` }));
    if (r.significant) cell.append(el("div", { class: "sig", text: "significant" }));
  }
  return cell;
}

async function openExperiments(id) {
  show($("experiment"), !!id);
  show($("experiment-list"), !id);
  $("experiments-title").textContent = "Experiments";
  if (!id) {
    try {
      const list = await api("GET", "/v1/experiments");
      const items = list.items || [];
      $("experiment-list").replaceChildren(...items.map((x) => el("li", { class: "item", "data-id": x.id },
        el("div", { class: "item-head" }, el("span", { class: "badge exp-" + x.status, text: x.status || "" }),
          el("a", { class: "item-title", href: "#/experiments/" + encodeURIComponent(x.id), text: x.id })),
        x.description ? el("div", { class: "item-desc", text: x.description }) : null,
        el("div", { class: "item-meta muted", text: [`control: ${x.control}`, ...(x.variants || []).map((v) => `${v.name} ${percent(v.share)}`)].join(" · ") }))));
      if (!items.length) $("experiment-list").append(el("li", { class: "muted", text: "No experiments yet: create one with POST /v1/experiments." }));
    } catch (err) { banner(err.status === 404 ? "Experiments are not available on this gateway." : err.message); }
    return;
  }
  try {
    const x = await api("GET", "/v1/experiments/" + encodeURIComponent(id));
    $("experiments-title").textContent = "Experiment " + x.id;
    $("experiment-name").textContent = x.description || x.id;
    const report = x.report || { control: x.control, variants: [] };
    $("experiment-meta").textContent = [x.status, x.reason, x.promoted_variant ? "promoted: " + x.promoted_variant : "", "control: " + report.control].filter(Boolean).join(" · ");
    const arms = report.variants;
    const metrics = [...new Set(arms.flatMap((v) => Object.keys(v.metrics || {})))];
    const isControl = (v) => v.variant === report.control;
    const head = el("tr", {}, el("th", { scope: "col", text: "" }), ...arms.map((v) => el("th", { scope: "col", text: v.variant + (isControl(v) ? " (control)" : "") })));
    const rows = [
      ["Share", (v) => el("td", { text: percent(v.share) })],
      ["Jobs", (v) => el("td", { text: fmt(v.jobs) })],
      ["Completed", (v) => el("td", { text: fmt(v.completed) })],
      ["Failed", (v) => el("td", { text: fmt(v.failed) + (Object.keys(v.failures_by_code || {}).length ? " (" + Object.entries(v.failures_by_code).map(([c, n]) => `${c} ${n}`).join(", ") + ")" : "") })],
      ...metrics.map((m) => [metricLabel(m), (v) => metricCell((v.metrics || {})[m], isControl(v))]),
    ].map(([label, cell]) => el("tr", {}, el("th", { scope: "row", text: label }), ...arms.map(cell)));
    $("experiment-table").tHead.replaceChildren(head);
    $("experiment-table").tBodies[0].replaceChildren(...rows);
  } catch (err) { banner(err.message); }
}

// --- wiring ------------------------------------------------------------------------------------

function init() {
  fillLanguages();
  bindLanguage($("language"), $("language-name"));
  bindLanguage($("again-language"), $("again-language-name"));
  $("api-key").value = state.key;
  $("remember-key").checked = !!localStorage.getItem("seoblog-key");
  $("save-key").addEventListener("click", () => {
    state.key = $("api-key").value.trim();
    sessionStorage.setItem("seoblog-key", state.key);
    if ($("remember-key").checked) localStorage.setItem("seoblog-key", state.key); else localStorage.removeItem("seoblog-key");
    $("key-box").open = false;
    probeExperiments();
    route();
  });
  $("api-key").addEventListener("change", () => { state.key = $("api-key").value.trim(); sessionStorage.setItem("seoblog-key", state.key); });

  $("submit-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    submit(specFromForm(), $("submit"), $("form-error"));
  });
  $("cancel").addEventListener("click", () => current && cancel(current.id));
  $("retry").addEventListener("click", () => current && submit(requestOf(current), $("retry"), $("again-error")));
  $("again-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!current) return;
    submit({ ...requestOf(current), keywords: keywordsOf($("again-keywords").value), target_language: $("again-language").value.trim() }, $("again"), $("again-error"));
  });

  $("job-filters").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    for (const other of $("job-filters").querySelectorAll("button")) other.setAttribute("aria-pressed", String(other === b));
    jobsView.filter = b.dataset.filter;
    loadJobs(false);
  });
  $("jobs-search").addEventListener("submit", (e) => { e.preventDefault(); jobsView.q = $("jobs-q").value.trim(); loadJobs(false); });
  $("jobs-more").addEventListener("click", () => loadJobs(true));
  $("posts-search").addEventListener("submit", (e) => {
    e.preventDefault();
    postsView.q = $("posts-q").value.trim();
    const language = $("posts-language").value.trim();
    postsView.language = language && languageName(language) ? language : "";
    loadPosts(false);
  });
  $("posts-more").addEventListener("click", () => loadPosts(true));

  const tabs = [...$("post-tabs").querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab.id, false));
    tab.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(tab);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      selectTab(tabs[(next + tabs.length) % tabs.length].id, true);
    });
  }
  $("copy-markdown").addEventListener("click", () => copy($("post-markdown").textContent));
  $("copy-html").addEventListener("click", () => copy(post ? post.html : ""));

  window.addEventListener("hashchange", route);
  probeExperiments();
  route();
}

document.addEventListener("DOMContentLoaded", init);
