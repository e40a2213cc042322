"use strict";
// genpipe's web page. One page serves the form (/) and each request
// (/requests/{id}): the request's id lives in the address, so a reload, a
// bookmark or a shared link shows the request again, live.

const $ = (id) => document.getElementById(id);

// limits are the server's, rendered into the page (api/page.go): the form
// checks a request against them before it uploads anything.
const limits = (() => {
  const d = document.body.dataset;
  return {
    maxUploadBytes: Number(d.maxUploadBytes), minSide: Number(d.minImageSide), maxSide: Number(d.maxImageSide),
    maxDescription: Number(d.maxDescription), maxTitle: Number(d.maxTitle), contentTypes: d.contentTypes.split(" "),
  };
})();

const order = ["received", "checking", "generating", "done"];
const finalStatuses = ["done", "rejected", "failed", "canceled", "expired"];
const unreachable = "Can't reach genpipe. Check your connection and try again.";

// genpipeEvents are the stream's events the page took, in order, and
// genpipeStreams the connections it opened: a record to look at (the
// browser test checks that a reconnect loses and repeats nothing).
window.genpipeEvents = [];
window.genpipeStreams = 0;

let styles = [];
let current = null; // the request shown: {id, style, title}

// With API keys on, every /v1/ call carries the key the user typed in; a
// 401 asks for one. Without keys (the default) none is ever asked for.
function auth() {
  const key = sessionStorage.getItem("genpipe-api-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// ProblemError is an API error answer (problem+json), in words a person
// reads, with its code and status for the code that handles it.
class ProblemError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function sentence(text) {
  text = String(text || "").trim();
  if (!text) return "";
  text = text[0].toUpperCase() + text.slice(1);
  return /[.!?…]$/.test(text) ? text : text + ".";
}

// readable turns a problem+json answer into a sentence for a person: the
// codes that a person cannot act on by their detail get a text of their own.
function readable(status, problem) {
  const detail = problem.detail || "";
  switch (problem.code) {
    case "unauthorized": return "This service needs an API key: enter yours above.";
    case "forbidden": return `Not allowed with this API key. ${sentence(detail)}`;
    case "not_found": return "There is no such request here. The link may be wrong, or the request was made with another API key.";
    case "too_large": return `The image is too large. ${sentence(detail)}`;
    case "too_many_requests": return "genpipe is busy right now. Please try again in a minute.";
    case "unavailable": return "genpipe cannot reach one of its services just now. Please try again in a minute.";
    case "internal": return "Something went wrong inside genpipe. Please try again; if it happens again, tell whoever runs this service.";
    case "conflict": return sentence(detail);
  }
  if (/contentType must be/.test(detail)) return "The image must be a PNG or JPEG file.";
  if (detail) return sentence(detail);
  return `genpipe answered ${status}. Please try again.`;
}

async function fail(res) {
  const problem = await res.json().catch(() => ({}));
  if (res.status === 401) $("key-form").hidden = false;
  return new ProblemError(readable(res.status, problem), res.status, problem.code || "");
}

// api calls the API; a network failure becomes a readable error.
async function api(method, path, body, headers = {}) {
  let res;
  try {
    res = await fetch(path, {
      method, headers: { "Content-Type": "application/json", ...auth(), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ProblemError(unreachable, 0, "network");
  }
  if (!res.ok) throw await fail(res);
  return res.json();
}

async function loadStyles() {
  styles = await api("GET", "/v1/styles");
  const select = $("style");
  select.replaceChildren(...styles.map(s => new Option(s.name, s.id)));
  showStyleHint();
}
function showStyleHint() {
  const s = styles.find(s => s.id === $("style").value);
  $("style-hint").textContent = s ? s.description : "";
}

// say shows text in the status region (aria-live): errors are marked by a
// sign and a word, not by colour alone.
function say(text, isError = false) {
  $("message").textContent = isError && text ? `Error: ${text}` : text;
  $("message").className = isError ? "error" : "";
}
function sayForm(text, isError = false) {
  $("form-message").textContent = isError && text ? `Error: ${text}` : text;
  $("form-message").className = isError ? "error" : "";
}

// Progress: reached is the furthest step the request reached, so a request
// that ends rejected, failed, canceled or expired shows how far it got: the
// step it stopped at is marked with ✗ and its final status.
let reached = -1;
const stepText = { done: ["✓", "done"], current: ["●", "in progress"], bad: ["✗", ""], todo: ["○", "not reached"] };
function mark(status) {
  if (!status) reached = -1;
  reached = Math.max(reached, order.indexOf(status));
  const bad = finalStatuses.includes(status) && status !== "done";
  // The step that was under way when the request ended: checking or
  // generating, or checking when it ended before any AI work.
  const badAt = bad ? Math.max(reached, 1) : -1;
  for (const li of $("steps").children) {
    const i = order.indexOf(li.dataset.status);
    let state = "todo";
    if (i === badAt) state = "bad";
    else if (reached >= 0 && i <= reached) state = (i === reached && !finalStatuses.includes(status)) ? "current" : "done";
    li.className = state === "current" ? "done current" : (state === "todo" ? "" : state);
    li.querySelector(".icon").textContent = stepText[state][0];
    li.querySelector(".name").textContent = state === "bad" ? `${li.dataset.status}: ${status}` : li.dataset.status;
    li.querySelector(".state").textContent = state === "bad" ? "" : `, ${stepText[state][1]}`;
    if (state === "current") li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
  }
  // A request that has not ended may be canceled.
  $("cancel").hidden = !current || !status || finalStatuses.includes(status);
  document.body.dataset.status = status;
}

// estimate shows when the request is predicted to start and be ready, as
// the API answered it, until the request ends.
function estimate(view) {
  const at = (t) => new Date(t).toLocaleTimeString();
  const start = view.estimatedStartAt, done = view.estimatedDoneAt;
  $("estimate").hidden = !(start && done) || finalStatuses.includes(view.status);
  if (start && done) $("estimate").textContent = `Expected to start about ${at(start)} and be ready about ${at(done)}.`;
}

const statusText = {
  received: "Received: your request is queued for the AI.",
  checking: "Checking your image…",
  generating: "Making your slide…",
  done: "Your slide is ready.",
  canceled: "You canceled this request: no slide will be made.",
};
function describe(ev) {
  if (statusText[ev.status]) return [statusText[ev.status], false];
  const why = ev.error ? ` ${sentence(ev.error)}` : "";
  if (ev.status === "rejected") return [`The image was not accepted.${why}`, true];
  if (ev.status === "expired") return [`The AI could not start on it in time, so it expired and costs nothing.${why}`, true];
  if (ev.status === "failed") return [`The slide could not be made.${why}`, true];
  return [`Status: ${ev.status}…`, false];
}

// fileName is what a download of the request's file is saved as.
// ext may carry a slide's number ("2.png" for the second slide's PNG).
function fileName(ext) {
  const style = current && current.style ? `-${current.style}` : "";
  return `genpipe-${current ? current.id : "slide"}${style}.${ext}`;
}

function show(ev) {
  mark(ev.status);
  const [text, isError] = describe(ev);
  say(text, isError);
  if (finalStatuses.includes(ev.status)) {
    $("estimate").hidden = true;
    remember({ id: ev.id, status: ev.status });
  }
  if (ev.status === "done" && ev.result) {
    const r = ev.result;
    // A long description continues on further slides: one PNG each, all of
    // them in the PDF and the PowerPoint.
    const pngs = r.pngUrls && r.pngUrls.length ? r.pngUrls : [r.pngUrl];
    const links = pngs.length === 1 ? [["png", "png", pngs[0], "PNG"]] :
      pngs.map((url, i) => [i ? `png${i + 1}` : "png", i ? `${i + 1}.png` : "png", url, `PNG of slide ${i + 1} of ${pngs.length}`]);
    links.push(["pdf", "pdf", r.pdfUrl, "PDF"], ["pptx", "pptx", r.pptxUrl, "PowerPoint"]);
    $("links").replaceChildren(...links.map(([id, ext, url, label]) => {
      const a = document.createElement("a");
      a.id = id; a.href = url; a.download = fileName(ext); a.textContent = `Download ${label}`;
      a.addEventListener("click", download);
      return a;
    }));
    $("slide").alt = `Your slide${current && current.title ? `: ${current.title}` : ""}`;
    $("slide").src = r.pngUrl;
    $("preview").hidden = false;
    $("preview").scrollIntoView({ block: "nearest" }); // the slide, in view
  }
  if (isError) $("message").scrollIntoView({ block: "nearest" });
}

// download saves a result under the request's name. The links point at the
// object store, another origin, where browsers ignore the download
// attribute: the page fetches the file (the store allows it, CORS) and
// saves it from memory; if that fails the link opens as it is.
async function download(e) {
  const a = e.currentTarget;
  e.preventDefault();
  try {
    const res = await fetch(a.href);
    if (!res.ok) throw new Error(String(res.status));
    const url = URL.createObjectURL(await res.blob());
    const save = document.createElement("a");
    save.href = url; save.download = a.download;
    document.body.append(save); save.click(); save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    window.location.href = a.href;
  }
}

const sleep = (ms) => new Promise(r => setTimeout(r, ms));

// backoff is the wait before reconnect attempt n (1, 2, …): doubling from
// half a second to 15 s, with jitter so that many pages do not return at once.
function backoff(n) {
  const base = Math.min(15000, 500 * 2 ** (n - 1));
  return base / 2 + Math.random() * base / 2;
}

// watch follows the request's SSE stream until its final status. It reads
// the stream with fetch rather than EventSource, which cannot send an
// Authorization header. Whenever the connection drops, or the server ends a
// long stream, it reconnects by itself, with backoff, and sends the id of
// the last event it got (Last-Event-ID): the server resends only what
// followed it, so no event is lost and none comes twice. It stops only at
// the final status or an answer that retrying cannot change (404, 401).
async function watch(id) {
  let lastId = "", lastEv = null, failures = 0;
  const over = () => !current || current.id !== id || (lastEv && finalStatuses.includes(lastEv.status));
  while (!over()) {
    if (failures > 0) {
      say("Can't reach genpipe — retrying…", true);
      await sleep(backoff(failures));
    }
    const headers = lastId ? { ...auth(), "Last-Event-ID": lastId } : auth();
    let res = null;
    try {
      window.genpipeStreams++;
      res = await fetch(`/v1/requests/${encodeURIComponent(id)}/events`, { headers });
    } catch (err) { // the network: try again
    }
    if (res && !res.ok) {
      if (res.status !== 429 && res.status < 500) {
        say((await fail(res)).message, true);
        return;
      }
      res = null; // busy or unavailable: try again
    }
    if (!res) { failures++; continue; }
    if (failures > 0) { // connected again: the status, not "retrying"
      if (lastEv) show(lastEv); else say("Connected: waiting for the status…");
      failures = 0;
    }
    let broken = false;
    try {
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, "\n");
        for (let i; (i = buf.indexOf("\n\n")) >= 0; buf = buf.slice(i + 2)) {
          const lines = buf.slice(0, i).split("\n");
          const data = lines.filter(l => l.startsWith("data:")).map(l => l.slice(5).trimStart()).join("\n");
          const evId = lines.find(l => l.startsWith("id:"));
          if (!data) continue;
          const ev = JSON.parse(data);
          if (evId) lastId = evId.slice(3).trim();
          window.genpipeEvents.push({ id: lastId, status: ev.status });
          lastEv = ev;
          show(ev);
        }
      }
    } catch (err) { // the connection dropped
      broken = true;
    }
    if (over()) break;
    // A stream the server ended (they do after a while) resumes at once; a
    // broken one after the backoff.
    if (broken) failures = 1; else await sleep(500);
  }
}

// Recent requests of this browser, newest first, in localStorage: at most
// maxRecent, each {id, style, title, at, status}.
const maxRecent = 10, recentKey = "genpipe-recent";
function recent() {
  try {
    const list = JSON.parse(localStorage.getItem(recentKey) || "[]");
    return Array.isArray(list) ? list.filter(r => r && typeof r.id === "string").slice(0, maxRecent) : [];
  } catch (err) {
    return [];
  }
}
function remember(entry) {
  const list = recent();
  const old = list.find(r => r.id === entry.id);
  const next = [{ ...old, ...entry }, ...list.filter(r => r.id !== entry.id)];
  next.sort((a, b) => (b.at || "").localeCompare(a.at || ""));
  try { localStorage.setItem(recentKey, JSON.stringify(next.slice(0, maxRecent))); } catch (err) { /* full or off */ }
  showRecent();
}
function forget(id) {
  try { localStorage.setItem(recentKey, JSON.stringify(recent().filter(r => r.id !== id))); } catch (err) { /* off */ }
  showRecent();
}
const statusSign = { done: "✓", rejected: "✗", failed: "✗", canceled: "✗", expired: "✗" };
function showRecent() {
  const list = recent();
  $("recent").hidden = list.length === 0;
  $("recent-list").replaceChildren(...list.map(r => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `/requests/${encodeURIComponent(r.id)}`;
    a.textContent = r.title || r.id;
    if (current && current.id === r.id) a.setAttribute("aria-current", "page");
    const status = document.createElement("span");
    status.textContent = `${statusSign[r.status] || "●"} ${r.status || "in progress"}`;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = r.at ? new Date(r.at).toLocaleString() : "";
    li.append(a, status, when);
    return li;
  }));
}

// openRequest shows request id: the page of /requests/{id}. The stream
// replays the request's whole history, so the steps show how far it got.
async function openRequest(id, known) {
  current = { id, style: known?.style || "", title: known?.title || "" };
  window.genpipeEvents = [];
  document.title = `genpipe — request ${id}`;
  $("page-title").textContent = "Your slide";
  $("lead").hidden = true;
  $("form").hidden = true;
  $("status").hidden = false; $("preview").hidden = true; $("estimate").hidden = true;
  $("request-id").textContent = id;
  mark("");
  showRecent();
  if (!known) {
    say("Loading the request…");
    try {
      const view = await api("GET", `/v1/requests/${encodeURIComponent(id)}`);
      current.style = view.style;
      current.title = view.title || (view.description || "").trim().split("\n")[0].slice(0, 80);
      remember({ id, style: view.style, title: current.title, at: view.createdAt, status: view.status });
      estimate(view);
    } catch (err) {
      say(err.message, true);
      if (err.code === "not_found") forget(id);
      if (err.status === 401) pendingOpen = id;
      return;
    }
  }
  watch(id);
}
let pendingOpen = "";

// requestFromURL is the id of /requests/{id}, or "".
function requestFromURL() {
  const m = location.pathname.match(/^\/requests\/([^/]+)$/);
  return m ? decodeURIComponent(m[1]) : "";
}

// fieldError shows (or clears, with "") the complaint about one field.
function fieldError(field, text) {
  const el = $(`${field}-error`);
  el.textContent = text; el.hidden = !text;
  if (text) $(field).setAttribute("aria-invalid", "true"); else $(field).removeAttribute("aria-invalid");
}

function megabytes(n) {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(n % (1 << 20) ? 1 : 0)} MB` : `${Math.ceil(n / 1024)} KB`;
}

// imageSize decodes the picked file to read its width and height.
async function imageSize(file) {
  const url = URL.createObjectURL(file);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return { width: img.naturalWidth, height: img.naturalHeight };
  } finally {
    URL.revokeObjectURL(url);
  }
}

// checkImage returns what is wrong with the picked image, or "".
async function checkImage(file) {
  if (!file) return "Choose an image: a PNG or JPEG file.";
  if (!limits.contentTypes.includes(file.type)) return `"${file.name}" is not a PNG or JPEG image.`;
  if (file.size === 0) return `"${file.name}" is empty.`;
  if (file.size > limits.maxUploadBytes) return `The image is ${megabytes(file.size)}; the most is ${megabytes(limits.maxUploadBytes)}.`;
  let size;
  try {
    size = await imageSize(file);
  } catch (err) {
    return `"${file.name}" could not be read as an image.`;
  }
  const { minSide: lo, maxSide: hi } = limits;
  if (size.width < lo || size.height < lo) return `The image is ${size.width}×${size.height} pixels; it must be at least ${lo}×${lo}.`;
  if (size.width > hi || size.height > hi) return `The image is ${size.width}×${size.height} pixels; it must be at most ${hi}×${hi}.`;
  return "";
}

const visible = (s) => /[\p{L}\p{N}\p{P}\p{S}]/u.test(s);

// checkForm checks every field before anything is uploaded, shows each
// complaint by its field, and focuses the first field with one.
async function checkForm() {
  const description = $("description").value.trim(), title = $("title").value.trim();
  const complaints = {
    image: await checkImage($("image").files[0]),
    title: [...title].length > limits.maxTitle ? `The title is ${[...title].length} characters; the most is ${limits.maxTitle}.` :
      (title && !visible(title) ? "The title has no visible character: leave it empty to use the description's first line." : ""),
    description: !visible(description) ? "Describe your slide." :
      ([...description].length > limits.maxDescription ? `The description is ${[...description].length} characters; the most is ${limits.maxDescription}.` : ""),
  };
  let first = "";
  for (const [field, text] of Object.entries(complaints)) {
    fieldError(field, text);
    if (text && !first) first = field;
  }
  if (first) $(first).focus();
  return !first;
}

$("form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("submit").disabled = true;
  sayForm("");
  try {
    if (!await checkForm()) {
      sayForm("Please correct the fields marked above.", true);
      return;
    }
    const file = $("image").files[0];
    sayForm("Uploading the image…");
    const upload = await api("POST", "/v1/uploads", { contentType: file.type, contentLength: file.size });
    // The URL is signed for the file's size: the browser sends its
    // Content-Length itself, and scripts may not set that header.
    const { "Content-Length": _, ...headers } = upload.headers;
    let put;
    try {
      put = await fetch(upload.uploadUrl, { method: "PUT", headers, body: file });
    } catch (err) {
      throw new ProblemError("Can't reach genpipe's file store to upload the image. Please try again.", 0, "network");
    }
    if (!put.ok) throw new ProblemError(`The image could not be uploaded (the file store answered ${put.status}). Please try again.`, put.status, "upload");
    const ask = {
      objectId: upload.objectId, style: $("style").value,
      title: $("title").value, description: $("description").value,
    };
    if ($("max-wait").value) ask.maxWaitSeconds = Number($("max-wait").value);
    sayForm("Sending your request…");
    const accepted = await api("POST", "/v1/requests", ask,
      { "Idempotency-Key": crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) });
    const title = ask.title.trim() || ask.description.trim().split("\n")[0].slice(0, 80);
    remember({ id: accepted.id, style: ask.style, title, at: new Date().toISOString(), status: accepted.status });
    history.pushState({ id: accepted.id }, "", `/requests/${encodeURIComponent(accepted.id)}`);
    sayForm("");
    openRequest(accepted.id, { style: ask.style, title });
    document.body.dataset.requestId = accepted.id;
    mark(accepted.status);
    say(accepted.message);
    estimate(accepted);
    $("status-heading").focus();
    $("status").scrollIntoView({ block: "start" });
  } catch (err) {
    sayForm(err.message, true);
    $("form-message").scrollIntoView({ block: "nearest" });
  } finally {
    $("submit").disabled = false;
  }
});

// Checking the image as soon as it is picked says at once what is wrong.
$("image").addEventListener("change", async () => {
  const file = $("image").files[0];
  fieldError("image", file ? await checkImage(file) : "");
});

// Cancel asks the API to cancel the request; the answer (and the stream)
// shows it canceled. A request that ended meanwhile answers 409, shown as
// it is.
$("cancel").addEventListener("click", async () => {
  if (!current) return;
  $("cancel").disabled = true;
  try {
    show(await api("DELETE", `/v1/requests/${encodeURIComponent(current.id)}`));
  } catch (err) {
    say(err.message, true);
  } finally {
    $("cancel").disabled = false;
  }
});
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("genpipe-api-key", $("api-key").value.trim());
  $("key-form").hidden = true;
  say(""); sayForm("");
  loadStyles().catch(err => sayForm(`Could not load the styles. ${err.message}`, true));
  if (pendingOpen) { const id = pendingOpen; pendingOpen = ""; openRequest(id); }
});
$("forget-recent").addEventListener("click", () => {
  try { localStorage.removeItem(recentKey); } catch (err) { /* off */ }
  showRecent();
});
// The usage panel reads the caller's paid AI calls of today (UTC) when it
// is opened.
async function loadUsage() {
  const u = await api("GET", "/v1/usage");
  const stages = Object.entries(u.totals || {});
  $("usage-text").textContent = stages.length === 0 ? "No AI calls today." :
    stages.map(([stage, s]) => `${stage}: ${s.calls} call${s.calls === 1 ? "" : "s"}, ${s.aiSeconds.toFixed(1)} AI-seconds`).join(" · ");
}
$("usage").addEventListener("toggle", () => {
  if ($("usage").open) loadUsage().catch(err => { $("usage-text").textContent = `Could not load usage. ${err.message}`; });
});
$("style").addEventListener("change", showStyleHint);
// Back and forward move between the form and a request's page.
window.addEventListener("popstate", () => location.reload());

$("max-size").textContent = megabytes(limits.maxUploadBytes);
loadStyles().catch(err => sayForm(`Could not load the styles. ${err.message}`, true));
showRecent();
const opened = requestFromURL();
if (opened) {
  document.body.dataset.requestId = opened;
  openRequest(opened);
}
