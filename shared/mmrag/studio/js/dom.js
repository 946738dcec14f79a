// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so document content cannot inject markup.
import { t } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const ENTITIES = { "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#x27;": "'", "&#39;": "'" };

function unescape(s) {
  return s.replace(/&(lt|gt|amp|quot|#x27|#39);/g, (m) => ENTITIES[m]);
}

// The API's highlight: HTML-escaped text with matches in <em>…</em>. Rebuilt as nodes; nothing else is markup.
export function highlighted(html) {
  const out = [];
  const parts = String(html || "").split(/(<em>|<\/em>)/);
  let inside = false;
  for (const part of parts) {
    if (part === "<em>") inside = true;
    else if (part === "</em>") inside = false;
    else if (part) out.push(inside ? h("mark", {}, unescape(part)) : unescape(part));
  }
  return out;
}

let liveRegion = null;
export function announce(message, kind = "info") {
  liveRegion = liveRegion || document.getElementById("toast");
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  liveRegion.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, t("common.error", { message: err.message || String(err) }));
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, t(`status.${status}`));
}

export function titleOf(meta, fallback) {
  return (meta && meta.title) || fallback || t("common.untitled");
}

// A modal dialog on the native <dialog> element: focus is trapped and Escape closes it.
export function openDialog(title, body, actions = []) {
  const dlg = h(
    "dialog",
    { class: "dialog", "aria-label": title },
    h("h2", {}, title),
    body,
    h("div", { class: "actions" }, actions, h("button", { type: "button", class: "secondary", onclick: () => dlg.close() }, t("common.close"))),
  );
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

export function viewImage(src, caption) {
  openDialog(caption || t("doc.viewer"), h("figure", { class: "viewer" }, h("img", { src, alt: caption || "" }), caption ? h("figcaption", {}, caption) : null));
}

export function thumb(img, onOpen) {
  const src = img.thumbnail_url || img.image_url || img.url;
  const label = img.caption || t("result.picture");
  return h(
    "button",
    { type: "button", class: "thumb", title: label, "aria-label": label, onclick: onOpen || (() => viewImage(img.image_url || img.url, img.caption)) },
    h("img", { src, alt: label, loading: "lazy" }),
  );
}

// Files the user drops, picks or pastes as a picture: base64 without the data: prefix, as the API takes it.
export function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// Files dropped on `zone` go to handle(files); the zone is marked (class "over") while something is dragged over it.
export function onDrop(zone, handle) {
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    handle([...(e.dataTransfer?.files || [])]);
  });
}

// A picture input: a drop zone with a file picker that also takes a pasted picture. onChange(file|null).
export function picturePicker(id, labelText, onChange) {
  let preview = null;
  const input = h("input", { type: "file", id, accept: "image/*", class: "visually-hidden" });
  const zone = h(
    "div",
    { class: "picture-picker", tabindex: "0", role: "group", "aria-label": labelText },
    h("span", { class: "hint" }, t("search.image.drop")),
    " ",
    h("label", { for: id, class: "linklike" }, t("search.image.pick")),
    input,
  );
  const previewBox = h("div", { class: "picture-preview" });
  const set = (file) => {
    if (preview) URL.revokeObjectURL(preview);
    preview = file ? URL.createObjectURL(file) : null;
    clear(
      previewBox,
      file
        ? [
            h("img", { src: preview, alt: file.name || t("search.image") }),
            h("button", { type: "button", class: "secondary small", onclick: () => set(null) }, t("search.image.clear")),
          ]
        : [],
    );
    if (!file) input.value = "";
    onChange(file);
  };
  input.addEventListener("change", () => input.files[0] && set(input.files[0]));
  onDrop(zone, (files) => {
    const file = files.find((f) => f.type.startsWith("image/"));
    if (file) set(file);
  });
  const paste = (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) {
      e.preventDefault();
      set(file);
    }
  };
  const wrap = h("div", { class: "picture-field" }, zone, previewBox);
  wrap.paste = paste;
  wrap.set = set;
  return wrap;
}
