// The HTTP API client: the key from this tab's sessionStorage in the Authorization header (never in a URL),
// Accept-Language from the chosen language, the {code, message, data} envelope unwrapped, errors thrown as ApiError.
import { acceptLanguage } from "./i18n.js";

const KEY_STORE = "mmrag.key";
// Relative to the page, so that the app works under a path prefix (an API Gateway stage such as /Prod/).
export const API_BASE = new URL("api/v1/", document.baseURI);

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(detail && detail !== message ? `${message} (${detail})` : message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORE);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

function url(path, query) {
  const u = new URL(path.replace(/^\//, ""), API_BASE);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

function headers(extra = {}, key = apiKey()) {
  const h = { "Accept-Language": acceptLanguage(), ...extra };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON: a proxy's page */
  }
  const err = body && body.error ? body.error : {};
  return new ApiError(
    response.status,
    err.error_code || `HTTP_${response.status}`,
    (body && body.message) || response.statusText || `HTTP ${response.status}`,
    err.error_detail,
  );
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export async function request(method, path, { query, json, form, signal, key } = {}) {
  const init = { method, headers: headers({}, key), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "NETWORK", e.message || "network error");
  }
  if (!response.ok) {
    const e = await errorFrom(response);
    if (response.status === 401 && key === undefined) onUnauthorized(e);
    throw e;
  }
  const body = await response.json();
  return body.data;
}

export const get = (path, query, opts = {}) => request("GET", path, { query, ...opts });
export const post = (path, json, opts = {}) => request("POST", path, { json, ...opts });
export const put = (path, json) => request("PUT", path, { json });
export const del = (path, query) => request("DELETE", path, { query });

// An upload with progress events: fetch() cannot report upload progress, XMLHttpRequest can.
export function uploadWithProgress(body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url("documents/upload"));
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    if (!(body instanceof FormData)) xhr.setRequestHeader("Content-Type", "application/json");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, "NETWORK", "network error"));
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        /* handled below */
      }
      if (xhr.status >= 200 && xhr.status < 300 && data) return resolve(data.data);
      const err = (data && data.error) || {};
      if (xhr.status === 401) onUnauthorized();
      reject(new ApiError(xhr.status, err.error_code || `HTTP_${xhr.status}`, (data && data.message) || xhr.statusText, err.error_detail));
    };
    xhr.send(body instanceof FormData ? body : JSON.stringify(body));
  });
}

// POST a question to an SSE endpoint (qa/ask-stream, qa/chat-stream) and call onEvent({type, data}) for each event
// as it arrives. EventSource cannot POST, so this reads the response body with a stream reader and splits it on
// blank lines.
export function askStream(body, onEvent, signal) {
  return postStream("qa/ask-stream", body, onEvent, signal);
}

export function chatStream(body, onEvent, signal) {
  return postStream("qa/chat-stream", body, onEvent, signal);
}

async function postStream(path, body, onEvent, signal) {
  let response;
  try {
    response = await fetch(url(path), {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "NETWORK", e.message || "network error");
  }
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}
