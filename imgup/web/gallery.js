// imgup gallery: the page of `imgup gallery`. Plain JavaScript, no build step, no library.
//
// It gets the API's URL and key from the local server that served it (config.json, which that
// server gives only to this page), then talks to the deployed API itself:
//   GET /images?limit=&cursor=   the grid, newest first, page by page as you scroll
//   POST /uploads                presign a batch (POST /upload on an API without it)
//   PUT uploadUrl                the bytes, straight to storage, with exactly uploadHeaders
//   POST /uploads/complete       verify and list the stored files
//   GET, DELETE /images/{id}     a fresh link; delete
//   POST /images/{id}/tags       set and remove tags
// Every string from the API or a file name is shown as text (textContent), never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PUT_WORKERS = 4;
  const COMPLETE_AFTER_MS = 100;
  const RETRIES = 3;
  const AUTO_PAGES_WITHOUT_MATCH = 5;

  const state = {
    config: null,
    images: [], // shown, newest first
    byId: new Map(),
    cursor: null,
    done: false,
    loading: false,
    generation: 0, // bumps when the filters change: late pages of an old listing are dropped
    emptyPages: 0,
    viewerIndex: -1,
    opener: null,
    batchRoutes: true,
  };

  // --- small helpers -------------------------------------------------------------------------

  function formatSize(bytes) {
    // As the CLI writes sizes (imgup.backend.rules.format_size): binary units, one decimal.
    for (const [unit, factor] of [["MiB", 1024 * 1024], ["KiB", 1024]]) {
      if (bytes >= factor) {
        return `${(bytes / factor).toFixed(1).replace(/\.0$/, "")} ${unit}`;
      }
    }
    return bytes === 1 ? "1 byte" : `${bytes} bytes`;
  }

  function formatDate(stamp) {
    const moment = new Date(stamp);
    if (Number.isNaN(moment.getTime())) return stamp || "";
    return moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function typeLabel(type) {
    const found = (state.config?.types || []).find((t) => t.type === type);
    return found ? found.label : type || "?";
  }

  function announce(text) {
    const region = $("announce");
    region.textContent = "";
    window.setTimeout(() => { region.textContent = text; }, 50);
  }

  function alertBox(container, text, onRetry) {
    // role=alert on the message: a screen reader announces it as it appears (without the buttons).
    const box = document.createElement("div");
    box.className = "alert";
    const message = document.createElement("p");
    message.setAttribute("role", "alert");
    message.textContent = text;
    box.append(message);
    if (onRetry) {
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "button";
      retry.textContent = "Try again";
      retry.addEventListener("click", onRetry);
      box.append(retry);
    }
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "button icon";
    dismiss.setAttribute("aria-label", "Dismiss");
    dismiss.textContent = "✕";
    dismiss.addEventListener("click", () => box.remove());
    box.append(dismiss);
    container.append(box);
    return box;
  }

  const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

  // --- the API -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, routeMissing = false) {
      super(message);
      this.status = status;
      this.routeMissing = routeMissing;
    }
  }

  async function api(method, path, body, { retries = RETRIES } = {}) {
    const cfg = state.config;
    const headers = { "x-api-key": cfg.apiKey, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch(cfg.apiUrl + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          mode: "cors",
          credentials: "omit",
          cache: "no-store",
        });
      } catch (failure) {
        if (attempt < retries) { await sleep(250 * 2 ** attempt); continue; }
        throw new ApiError(`Cannot reach the API at ${cfg.apiUrl} (no answer, or its CORS answer was refused).`, 0);
      }
      if ([429, 500, 502, 503, 504].includes(response.status) && attempt < retries) {
        const after = Number(response.headers.get("retry-after"));
        await sleep(after > 0 ? Math.min(after, 30) * 1000 : 250 * 2 ** attempt);
        continue;
      }
      let data = null;
      try { data = await response.json(); } catch { data = null; }
      if (response.ok && data && typeof data === "object") return data;
      const said = data && typeof data === "object" ? String(data.error || data.message || "") : "";
      if (response.status === 403 && said.includes("Missing Authentication Token")) {
        throw new ApiError(`The API has no route ${method} ${path.split("?")[0]}.`, 403, true);
      }
      if (response.status === 403 && (said === "" || said === "Forbidden")) {
        throw new ApiError("The API refused the API key (403 Forbidden). Run `imgup deploy` again, then restart `imgup gallery`.", 403);
      }
      throw new ApiError(said || `The API answered HTTP ${response.status}.`, response.status);
    }
  }

  // --- tags ------------------------------------------------------------------------------------
  // The API's tag rules (imgup.backend.rules), with the limits the deployment gives in config.json.

  const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]/;

  function checkTag(rawKey, value) {
    const rules = state.config.tags;
    const key = rawKey.toLowerCase();
    if (!key || key.length > rules.maxKeyChars || !new RegExp(`^(?:${rules.keyPattern})$`).test(key)) {
      throw new Error(`Invalid tag key '${rawKey}': a key is 1 to ${rules.maxKeyChars} letters, digits, '_', '.', ':' or '-', starting with a letter or a digit.`);
    }
    if (value === undefined) return [key, undefined];
    if ([...value].length > rules.maxValueChars) throw new Error(`The value of tag '${key}' must be at most ${rules.maxValueChars} characters.`);
    if (CONTROL.test(value)) throw new Error(`The value of tag '${key}' must not contain control characters.`);
    if (value !== value.trim()) throw new Error(`The value of tag '${key}' must not start or end with a blank.`);
    return [key, value];
  }

  function parsePair(text, valueNeeded = true) {
    const at = text.indexOf("=");
    if (at < 0) {
      if (valueNeeded) throw new Error(`A tag is KEY=VALUE, not '${text}'.`);
      return checkTag(text, undefined);
    }
    return checkTag(text.slice(0, at).trim(), text.slice(at + 1).trim());
  }

  function parseTagList(text) {
    // "k=v, k2=v2": the upload area's tags (a value cannot hold a comma there).
    const tags = {};
    for (const pair of text.split(",").map((p) => p.trim()).filter(Boolean)) {
      const [key, value] = parsePair(pair);
      if (key in tags) throw new Error(`Tag key '${key}' is given twice (keys ignore case).`);
      tags[key] = value;
    }
    if (Object.keys(tags).length > state.config.tags.maxTags) {
      throw new Error(`An image has at most ${state.config.tags.maxTags} tags.`);
    }
    return tags;
  }

  function tagText(key, value) {
    return `${key}=${value}`;
  }

  // --- filters ---------------------------------------------------------------------------------

  function filters() {
    let tag = null;
    const typed = $("filter-tag").value.trim();
    if (typed) {
      try { tag = parsePair(typed, false); } catch { tag = ["", ""]; } // matches nothing
    }
    return { name: $("filter-name").value.trim(), type: $("filter-type").value, tag };
  }

  function nameGlob(text) {
    // A glob when it has * or ?, else "contains"; case matters, as the API's name filter says.
    return /[*?]/.test(text) ? text : `*${text}*`;
  }

  function namePattern(text) {
    if (!text) return null;
    const source = nameGlob(text).replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp(`^${source}$`);
  }

  function matches(image) {
    const wanted = filters();
    const pattern = namePattern(wanted.name);
    if (pattern && !pattern.test(image.fileName || "")) return false;
    if (wanted.type && image.fileType !== wanted.type) return false;
    if (wanted.tag) {
      const [key, value] = wanted.tag;
      const tags = image.tags || {};
      if (!(key in tags) || (value !== undefined && tags[key] !== value)) return false;
    }
    return true;
  }

  function listQuery() {
    const params = new URLSearchParams({ limit: String(state.config.pageSize) });
    if (state.cursor) params.set("cursor", state.cursor);
    const wanted = filters();
    if (wanted.name) params.set("name", nameGlob(wanted.name));
    if (wanted.type) params.set("type", wanted.type);
    if (wanted.tag && wanted.tag[0]) {
      params.set("tag", wanted.tag[1] === undefined ? wanted.tag[0] : tagText(...wanted.tag));
    }
    return `/images?${params}`;
  }

  // --- the grid ----------------------------------------------------------------------------------

  function setState(kind, text, onRetry) {
    const box = $("state");
    box.replaceChildren();
    box.dataset.kind = kind;
    if (!text) return;
    if (kind === "error") {
      alertBox(box, text, onRetry);
      return;
    }
    const line = document.createElement("p");
    line.className = kind === "loading" ? "loading" : "empty";
    line.textContent = text;
    box.append(line);
  }

  function updateCount() {
    const shown = state.images.length;
    $("count").textContent = shown ? `(${shown}${state.done ? "" : "+"})` : "";
  }

  function tileFor(image) {
    const tile = $("tile-template").content.firstElementChild.cloneNode(true);
    tile.dataset.id = image.imageId;
    const button = tile.querySelector(".tile-open");
    const img = tile.querySelector("img");
    img.alt = image.fileName;
    if (image.width && image.height) {
      img.width = image.width;
      img.height = image.height;
    }
    img.src = image.thumbnailUrl || image.fileUrl;
    img.addEventListener("error", () => refreshLink(image, img), { once: true });
    tile.querySelector(".tile-name").textContent = image.fileName;
    tile.querySelector(".tile-name").title = image.fileName;
    const badge = tile.querySelector(".badge");
    badge.textContent = typeLabel(image.fileType);
    badge.dataset.type = typeLabel(image.fileType).toLowerCase();
    tile.querySelector(".tile-size").textContent = formatSize(image.fileSize);
    const date = tile.querySelector(".tile-date");
    date.textContent = formatDate(image.uploadedAt);
    button.setAttribute(
      "aria-label",
      `${image.fileName}, ${typeLabel(image.fileType)}, ${formatSize(image.fileSize)}, ${formatDate(image.uploadedAt)}`,
    );
    fillTileTags(tile, image);
    button.addEventListener("click", () => openViewer(state.images.indexOf(state.byId.get(image.imageId)), button));
    return tile;
  }

  function fillTileTags(tile, image) {
    const box = tile.querySelector(".tile-tags");
    const entries = Object.entries(image.tags || {}).sort(([a], [b]) => a.localeCompare(b));
    box.replaceChildren(...entries.slice(0, 3).map(([key, value]) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = tagText(key, value);
      return chip;
    }));
    if (entries.length > 3) {
      const more = document.createElement("span");
      more.className = "chip";
      more.textContent = `+${entries.length - 3}`;
      box.append(more);
    }
    const button = tile.querySelector(".tile-open");
    const label = (button.getAttribute("aria-label") || "").replace(/, tags: .*$/, "");
    button.setAttribute("aria-label", entries.length
      ? `${label}, tags: ${entries.map(([k, v]) => tagText(k, v)).join(", ")}` : label);
  }

  async function awaitThumbnail(image, delays = [1000, 2000, 4000, 8000]) {
    // The server makes a thumbnail after completion (asynchronously): ask again for a while.
    for (const delay of delays) {
      await sleep(delay);
      if (!state.byId.has(image.imageId)) return;
      try {
        const fresh = await api("GET", `/images/${encodeURIComponent(image.imageId)}`, undefined, { retries: 0 });
        if (fresh.thumbnailUrl) {
          Object.assign(image, fresh);
          const img = $("grid").querySelector(`[data-id="${CSS.escape(image.imageId)}"] img`);
          if (img) img.src = image.thumbnailUrl;
          return;
        }
      } catch {
        return;
      }
    }
  }

  async function refreshLink(image, img) {
    // Presigned links expire (one hour): ask for a fresh one once.
    try {
      const fresh = await api("GET", `/images/${encodeURIComponent(image.imageId)}`);
      Object.assign(image, fresh);
      img.src = image.thumbnailUrl || image.fileUrl;
    } catch {
      img.classList.add("broken");
    }
  }

  function addImages(images, { atTop = false } = {}) {
    const grid = $("grid");
    const fresh = images.filter((image) => image && image.imageId && !state.byId.has(image.imageId));
    for (const image of fresh) state.byId.set(image.imageId, image);
    if (atTop) {
      if (state.viewerIndex >= 0) state.viewerIndex += fresh.length; // the viewer keeps its image
      state.images.unshift(...fresh);
      grid.prepend(...fresh.map(tileFor));
    } else {
      state.images.push(...fresh);
      grid.append(...fresh.map(tileFor));
    }
    updateCount();
    if (state.images.length) setState("idle", "");
    return fresh.length;
  }

  function removeImage(imageId) {
    const index = state.images.findIndex((image) => image.imageId === imageId);
    if (index < 0) return;
    state.images.splice(index, 1);
    state.byId.delete(imageId);
    $("grid").querySelector(`[data-id="${CSS.escape(imageId)}"]`)?.remove();
    updateCount();
    if (!state.images.length && state.done) showEmpty();
  }

  function showEmpty() {
    const wanted = filters();
    setState("empty", wanted.name || wanted.type || wanted.tag
      ? "No images match these filters."
      : "No images yet. Drop some above, or choose them with the button.");
  }

  async function loadMore() {
    if (state.loading || state.done || !state.config) return;
    state.loading = true;
    const generation = state.generation;
    $("load-more").hidden = true;
    if (!state.images.length) setState("loading", "Loading images…");
    else $("grid").setAttribute("aria-busy", "true");
    try {
      const page = await api("GET", listQuery());
      if (generation !== state.generation) return;
      state.cursor = page.nextCursor || null;
      state.done = !state.cursor;
      const added = addImages((page.images || []).filter(matches));
      state.emptyPages = added ? 0 : state.emptyPages + 1;
      if (!state.images.length && state.done) showEmpty();
    } catch (error) {
      if (generation !== state.generation) return;
      setState("error", `The gallery could not be loaded: ${error.message}`, () => { setState("idle", ""); loadMore(); });
      state.loading = false;
      return;
    } finally {
      if (generation === state.generation) {
        state.loading = false;
        $("grid").removeAttribute("aria-busy");
      }
    }
    updateCount();
    $("load-more").hidden = state.done;
    // Keep filling while the end of the grid is in view (and the filters keep finding images).
    if (!state.done && sentinelVisible() && state.emptyPages < AUTO_PAGES_WITHOUT_MATCH) {
      window.setTimeout(loadMore, 0);
    }
  }

  function sentinelVisible() {
    const box = $("sentinel").getBoundingClientRect();
    return box.top < window.innerHeight + 600;
  }

  function reload() {
    state.generation += 1;
    state.images = [];
    state.byId.clear();
    state.cursor = null;
    state.done = false;
    state.loading = false;
    state.emptyPages = 0;
    $("grid").replaceChildren();
    updateCount();
    loadMore();
  }

  // --- uploads -------------------------------------------------------------------------------------

  function sniffType(head) {
    // The magic bytes of each allowed type, as the deployment's rules give them (config.json).
    for (const entry of state.config.types) {
      for (const parts of entry.signatures) {
        const all = parts.every(([offset, hex]) => {
          for (let i = 0; i < hex.length / 2; i++) {
            if (head[offset + i] !== parseInt(hex.slice(2 * i, 2 * i + 2), 16)) return false;
          }
          return true;
        });
        if (all) return entry.type;
      }
    }
    return null;
  }

  async function checkFile(file) {
    // The CLI's checks before any request (imgup.uploads.inspect_file), as far as a browser can.
    const cfg = state.config;
    if (file.size === 0) return { error: "is empty." };
    if (file.size > cfg.maxUploadBytes) {
      const limit = formatSize(cfg.maxUploadBytes);
      const size = formatSize(file.size) === limit ? `${file.size.toLocaleString("en")} bytes` : formatSize(file.size);
      return { error: `${size} exceeds the limit (${limit}).` };
    }
    if ([...file.name].length > cfg.maxFileNameChars || /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(file.name)) {
      return { error: `cannot be uploaded under this name (at most ${cfg.maxFileNameChars} characters, no control characters); rename it.` };
    }
    let head;
    try {
      head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
    } catch {
      return { error: "cannot be read." };
    }
    const type = sniffType(head);
    if (!type) return { error: "is not a JPEG, PNG, GIF or WebP image (by its content)." };
    return { type };
  }

  async function sha256Hex(file) {
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  function uploadRow(file) {
    const row = document.createElement("li");
    row.className = "upload-item";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = Math.max(file.size, 1);
    bar.value = 0;
    bar.setAttribute("aria-label", `Upload of ${file.name}`);
    const status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = "Waiting";
    row.append(name, bar, status);
    $("upload-list").prepend(row);
    return {
      row,
      progress(sent) { bar.value = Math.min(sent, bar.max); },
      status(text, kind = "") {
        status.textContent = text;
        row.dataset.state = kind;
      },
      done(text = "Uploaded") {
        bar.value = bar.max;
        this.status(text, "done");
        window.setTimeout(() => row.remove(), 4000);
      },
      failed(message) {
        bar.remove();
        this.status("Failed", "failed");
        uploadError(`${file.name}: ${message}`);
      },
    };
  }

  function uploadError(text) {
    alertBox($("upload-errors"), text);
  }

  function describePutFailure(xhr) {
    if (xhr.status === 0) return "the upload to storage failed (no answer, or its CORS answer was refused).";
    const text = xhr.responseText || "";
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
    const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
    return `storage refused the upload (HTTP ${xhr.status}${code ? `, ${code}` : ""}${message ? `: ${message}` : ""}).`;
  }

  function put(grant, file, onProgress) {
    // XMLHttpRequest rather than fetch: it reports upload progress. Every header of
    // uploadHeaders is sent, except Content-Length, which a browser sets itself (from the body).
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", grant.uploadUrl);
      for (const [name, value] of Object.entries(grant.uploadHeaders || {})) {
        if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
      }
      xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
      xhr.addEventListener("load", () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(describePutFailure(xhr))));
      xhr.addEventListener("error", () => reject(describePutFailure(xhr)));
      xhr.addEventListener("abort", () => reject("the upload was stopped."));
      xhr.send(file);
    });
  }

  async function presign(items) {
    // One grant or refusal per item, in order: POST /uploads in batches, else POST /upload each.
    const bodies = items.map((item) => uploadBody(item));
    const grants = [];
    for (let start = 0; start < bodies.length; start += state.config.maxBatch) {
      const chunk = bodies.slice(start, start + state.config.maxBatch);
      if (state.batchRoutes) {
        try {
          const answer = await api("POST", "/uploads", { files: chunk });
          grants.push(...answer.uploads);
          continue;
        } catch (error) {
          if (!error.routeMissing) throw error;
          state.batchRoutes = false;
        }
      }
      for (const body of chunk) {
        try {
          grants.push(await api("POST", "/upload", body));
        } catch (error) {
          grants.push({ error: error.message, status: error.status });
        }
      }
    }
    return grants.map((grant) => ({ ...grant, grantedAt: Date.now() }));
  }

  function uploadBody(item) {
    const body = { fileName: item.file.name, fileType: item.type, fileSize: item.file.size, sha256: item.sha256 };
    if (item.tags && Object.keys(item.tags).length) body.tags = item.tags;
    return body;
  }

  async function freshGrant(item) {
    return { ...(await api("POST", "/upload", uploadBody(item))), grantedAt: Date.now() };
  }

  function completer() {
    // Completes the stored files together, a moment after the first of them (one request).
    let waiting = [];
    let timer = null;
    async function flush() {
      const batch = waiting;
      waiting = [];
      timer = null;
      const ids = batch.map((entry) => entry.imageId);
      let answers;
      try {
        if (state.batchRoutes) {
          answers = (await api("POST", "/uploads/complete", { imageIds: ids })).images;
        }
      } catch (error) {
        if (!error.routeMissing) {
          for (const entry of batch) entry.reject(error.message);
          return;
        }
        state.batchRoutes = false;
      }
      if (!answers) {
        answers = [];
        for (const id of ids) {
          try {
            answers.push({ ...(await api("POST", `/images/${id}/complete`)), status: "ready" });
          } catch (error) {
            answers.push({ imageId: id, error: error.message });
          }
        }
      }
      batch.forEach((entry, index) => {
        const answer = answers[index] || {};
        if (answer.status === "ready") entry.resolve(answer);
        else entry.reject(answer.error || "it could not be completed.");
      });
    }
    return (imageId) => new Promise((resolve, reject) => {
      waiting.push({ imageId, resolve, reject });
      if (waiting.length >= state.config.maxBatch) { window.clearTimeout(timer); flush(); }
      else if (!timer) timer = window.setTimeout(flush, COMPLETE_AFTER_MS);
    });
  }

  async function uploadFiles(files) {
    if (!state.config || !files.length) return;
    let tags;
    try {
      tags = parseTagList($("upload-tags").value);
    } catch (error) {
      uploadError(`Tags for new uploads: ${error.message} Nothing was uploaded.`);
      $("upload-tags").focus();
      return;
    }
    const items = files.map((file) => ({ file, tags, row: uploadRow(file) }));
    for (const item of items) item.row.status("Checking");
    const checks = await Promise.all(items.map((item) => checkFile(item.file)));
    const good = [];
    items.forEach((item, index) => {
      if (checks[index].error) item.row.failed(checks[index].error);
      else { item.type = checks[index].type; good.push(item); }
    });
    if (!good.length) return;
    for (const item of good) {
      item.row.status("Hashing");
      item.sha256 = await sha256Hex(item.file);
      item.row.status("Waiting");
    }
    let grants;
    try {
      grants = await presign(good);
    } catch (error) {
      for (const item of good) item.row.failed(error.message);
      return;
    }
    const complete = completer();
    const queue = good.map((item, index) => ({ ...item, grant: grants[index] }));
    let uploaded = 0;
    let already = 0;
    async function worker() {
      for (let item = queue.shift(); item; item = queue.shift()) {
        try {
          if (item.grant.error) throw item.grant.error;
          if (item.grant.duplicate) {
            // The gallery has these bytes already (same SHA-256): that image is the result.
            item.row.done("Already in the gallery");
            already += 1;
            const image = { ...item.grant };
            delete image.index;
            if (matches(image)) addImages([image], { atTop: true });
            continue;
          }
          if (Date.now() > item.grant.grantedAt + (Number(item.grant.expiresIn || 300) - 5) * 1000) {
            item.grant = await freshGrant(item);
          }
          item.row.status("Uploading", "active");
          await put(item.grant, item.file, (sent) => item.row.progress(sent));
          item.row.status("Verifying", "active");
          const image = await complete(item.grant.imageId);
          item.row.done();
          uploaded += 1;
          if (matches(image)) {
            addImages([image], { atTop: true });
            awaitThumbnail(image);
          }
        } catch (failure) {
          item.row.failed(typeof failure === "string" ? failure : failure.message || String(failure));
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(PUT_WORKERS, queue.length) }, worker));
    announce(`Uploaded ${uploaded} of ${files.length} file${files.length === 1 ? "" : "s"}`
      + (already ? `; ${already} ${already === 1 ? "was" : "were"} in the gallery already.` : "."));
    if (state.images.length) setState("idle", "");
  }

  function wireUploads() {
    const input = $("file-input");
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = "";
      uploadFiles(files);
    });
    const zone = $("drop-zone");
    for (const name of ["dragenter", "dragover"]) {
      zone.addEventListener(name, (event) => {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    }
    for (const name of ["dragleave", "drop"]) {
      zone.addEventListener(name, () => zone.classList.remove("dragging"));
    }
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      uploadFiles([...(event.dataTransfer?.files || [])]);
    });
    // A file dropped elsewhere on the page must not replace the page with the image.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
  }

  // --- the viewer ------------------------------------------------------------------------------

  function detail(list, term, value) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }

  function showInViewer(index) {
    const image = state.images[index];
    if (!image) return;
    state.viewerIndex = index;
    $("viewer-title").textContent = image.fileName;
    const img = $("viewer-image");
    img.alt = image.fileName;
    img.src = image.fileUrl;
    $("viewer-position").textContent = `Image ${index + 1} of ${state.images.length}${state.done ? "" : "+"}`;
    const list = $("viewer-details");
    list.replaceChildren();
    detail(list, "Type", typeLabel(image.fileType));
    detail(list, "Size", `${formatSize(image.fileSize)} (${image.fileSize.toLocaleString()} bytes)`);
    if (image.width && image.height) detail(list, "Dimensions", `${image.width} × ${image.height} px`);
    detail(list, "Uploaded", formatDate(image.uploadedAt));
    if (image.sha256) detail(list, "SHA-256", image.sha256);
    detail(list, "Id", image.imageId);
    showViewerTags(image);
    $("viewer-open").href = image.fileUrl;
    $("viewer-prev").disabled = index === 0;
    $("viewer-next").disabled = index === state.images.length - 1 && state.done;
    $("viewer-confirm").hidden = true;
    $("viewer-error").replaceChildren();
  }

  function showViewerTags(image) {
    const list = $("viewer-tag-list");
    const entries = Object.entries(image.tags || {}).sort(([a], [b]) => a.localeCompare(b));
    if (!entries.length) {
      const none = document.createElement("li");
      none.className = "none";
      none.textContent = "No tags yet.";
      list.replaceChildren(none);
      return;
    }
    list.replaceChildren(...entries.map(([key, value]) => {
      const item = document.createElement("li");
      const text = document.createElement("span");
      text.textContent = tagText(key, value);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "✕";
      remove.setAttribute("aria-label", `Remove tag ${tagText(key, value)}`);
      remove.addEventListener("click", () => changeTags(image, { remove: [key] }));
      item.append(text, remove);
      return item;
    }));
  }

  async function changeTags(image, change) {
    $("viewer-error").replaceChildren();
    try {
      const fresh = await api("POST", `/images/${encodeURIComponent(image.imageId)}/tags`, change, { retries: 1 });
      image.tags = fresh.tags || {};
    } catch (error) {
      alertBox($("viewer-error"), `The tags of ${image.fileName} were not changed: ${error.message}`);
      return false;
    }
    const tile = $("grid").querySelector(`[data-id="${CSS.escape(image.imageId)}"]`);
    if (tile) fillTileTags(tile, image);
    if (state.images[state.viewerIndex] === image) showViewerTags(image);
    announce(`Tags of ${image.fileName}: ${Object.entries(image.tags).map(([k, v]) => tagText(k, v)).join(", ") || "none"}`);
    return true;
  }

  function openViewer(index, opener) {
    if (index < 0) return;
    state.opener = opener || null;
    showInViewer(index);
    const dialog = $("viewer");
    if (!dialog.open) dialog.showModal();
    $("viewer-close").focus();
  }

  async function step(delta) {
    let index = state.viewerIndex + delta;
    if (index < 0) return;
    if (index >= state.images.length) {
      if (state.done) return;
      await loadMore();
      if (index >= state.images.length) return;
    }
    showInViewer(index);
    announce(`${state.images[index].fileName}, image ${index + 1}`);
  }

  function closeViewer() {
    const dialog = $("viewer");
    if (dialog.open) dialog.close();
  }

  async function download(image) {
    // A link's download attribute is ignored across origins: fetch the bytes (the bucket's CORS
    // rule allows GET), then save them under the image's name. Else open the link.
    try {
      const response = await fetch(image.fileUrl, { mode: "cors", credentials: "omit" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = image.fileName;
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10000);
      announce(`Downloading ${image.fileName}`);
    } catch {
      window.open(image.fileUrl, "_blank", "noopener");
    }
  }

  async function deleteShown() {
    const image = state.images[state.viewerIndex];
    if (!image) return;
    const button = $("viewer-confirm-delete");
    button.disabled = true;
    try {
      await api("DELETE", `/images/${encodeURIComponent(image.imageId)}`, undefined, { retries: 1 });
    } catch (error) {
      if (error.status !== 404) {
        button.disabled = false;
        $("viewer-error").replaceChildren();
        alertBox($("viewer-error"), `${image.fileName} was not deleted: ${error.message}`);
        return;
      }
    }
    button.disabled = false;
    const index = state.viewerIndex;
    removeImage(image.imageId);
    announce(`Deleted ${image.fileName}`);
    if (!state.images.length) {
      state.opener = null;
      closeViewer();
      $("gallery-heading").focus();
      return;
    }
    state.opener = null;
    showInViewer(Math.min(index, state.images.length - 1));
    $("viewer-close").focus();
  }

  function wireViewer() {
    const dialog = $("viewer");
    $("viewer-close").addEventListener("click", closeViewer);
    $("viewer-prev").addEventListener("click", () => step(-1));
    $("viewer-next").addEventListener("click", () => step(1));
    $("viewer-download").addEventListener("click", () => download(state.images[state.viewerIndex]));
    $("viewer-delete").addEventListener("click", () => {
      const image = state.images[state.viewerIndex];
      $("viewer-confirm-text").textContent = `Delete ${image.fileName}? It cannot be undone.`;
      $("viewer-confirm").hidden = false;
      $("viewer-confirm-cancel").focus();
    });
    $("viewer-confirm-cancel").addEventListener("click", () => {
      $("viewer-confirm").hidden = true;
      $("viewer-delete").focus();
    });
    $("viewer-confirm-delete").addEventListener("click", deleteShown);
    $("viewer-tag-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const image = state.images[state.viewerIndex];
      const input = $("viewer-tag-input");
      if (!image || !input.value.trim()) return;
      let pair;
      try {
        pair = parsePair(input.value.trim());
      } catch (error) {
        $("viewer-error").replaceChildren();
        alertBox($("viewer-error"), error.message);
        return;
      }
      if (await changeTags(image, { set: { [pair[0]]: pair[1] } })) input.value = "";
    });
    dialog.addEventListener("keydown", (event) => {
      if (event.target instanceof HTMLInputElement) return;
      if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
      if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
    });
    // A click on the backdrop (outside the panel and the picture) closes the viewer.
    dialog.addEventListener("click", (event) => { if (event.target === dialog) closeViewer(); });
    dialog.addEventListener("close", () => {
      const id = state.images[state.viewerIndex]?.imageId;
      const tile = id && $("grid").querySelector(`[data-id="${CSS.escape(id)}"] .tile-open`);
      (tile || state.opener)?.focus();
      state.viewerIndex = -1;
      $("viewer-image").removeAttribute("src");
    });
  }

  // --- start ---------------------------------------------------------------------------------------

  function wireFilters() {
    const select = $("filter-type");
    for (const entry of state.config.types) {
      const option = document.createElement("option");
      option.value = entry.type;
      option.textContent = entry.label;
      select.append(option);
    }
    let timer = null;
    const changed = () => { window.clearTimeout(timer); timer = window.setTimeout(reload, 250); };
    $("filter-name").addEventListener("input", changed);
    $("filter-tag").addEventListener("input", changed);
    select.addEventListener("change", reload);
    $("filters").addEventListener("submit", (event) => { event.preventDefault(); reload(); });
    $("filter-clear").addEventListener("click", () => {
      $("filter-name").value = "";
      $("filter-tag").value = "";
      select.value = "";
      reload();
    });
  }

  async function start() {
    let config;
    try {
      const response = await fetch("config.json", { credentials: "same-origin", cache: "no-store" });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      config = body;
    } catch (error) {
      setState("error", `This page cannot reach its deployment: ${error.message}`, () => location.reload());
      return;
    }
    state.config = config;
    $("deployment").textContent = `${config.stackName} · ${config.target === "local" ? "local stack" : `AWS ${config.region}`}`;
    $("size-limit").textContent = formatSize(config.maxUploadBytes);
    wireUploads();
    wireFilters();
    wireViewer();
    $("load-more").addEventListener("click", loadMore);
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting)) loadMore();
      }, { rootMargin: "600px" }).observe($("sentinel"));
    }
    loadMore();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
