// Upload: several files at once (drag-and-drop or the picker) or a URL, each with its own progress and outcome.
// Files go as multipart; above DIRECT_BYTES the AWS deployment's presigned S3 upload is used (API Gateway caps a
// request at 10 MB), and where that is not offered (mmrag serve answers 503) multipart again.
import * as api from "../api.js";
import { h, clear, onDrop, statusBadge } from "../dom.js";
import { t } from "../i18n.js";
import { progressLine } from "./progress.js";

const DIRECT_BYTES = 4 * 1024 * 1024;
const TYPES_BY_EXT = {
  pdf: "pdf",
  docx: "mixed",
  pptx: "mixed",
  txt: "text",
  md: "text",
  markdown: "text",
  html: "text",
  htm: "text",
  csv: "text",
  json: "text",
  png: "image",
  jpg: "image",
  jpeg: "image",
  webp: "image",
  gif: "image",
  bmp: "image",
  tif: "image",
  tiff: "image",
};

export function documentTypeFor(name, mime = "") {
  const ext = String(name).toLowerCase().split(/[?#]/)[0].split(".").pop();
  if (TYPES_BY_EXT[ext]) return TYPES_BY_EXT[ext];
  if (mime.startsWith("image/")) return "image";
  if (mime === "application/pdf") return "pdf";
  if (mime.startsWith("text/")) return "text";
  return null;
}

function check(id, label, checked) {
  return h("div", { class: "check" }, h("input", { type: "checkbox", id, checked }), " ", h("label", { for: id }, label));
}

function number(id, label, value, min, max) {
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { type: "number", id, value, min, max }));
}

export async function render(main) {
  let alive = true;
  const timers = new Set();
  const picker = h("input", { type: "file", id: "files", multiple: true, class: "visually-hidden" });
  const zone = h(
    "div",
    { class: "dropzone", id: "dropzone", tabindex: "0", role: "button", "aria-describedby": "drop-hint" },
    h("p", { id: "drop-hint" }, t("up.drop"), " ", h("label", { for: "files", class: "linklike" }, t("up.pick"))),
    picker,
  );
  const urlInput = h("input", { type: "url", id: "upload-url", placeholder: "https://", inputmode: "url" });
  const urlForm = h(
    "form",
    {
      class: "inline",
      onsubmit: (e) => {
        e.preventDefault();
        const value = urlInput.value.trim();
        if (!value) return;
        queueUrl(value);
        urlInput.value = "";
      },
    },
    h("label", { for: "upload-url" }, t("up.url")),
    urlInput,
    h("button", { type: "submit", class: "secondary" }, t("up.url.add")),
  );
  const advanced = h(
    "details",
    { class: "advanced" },
    h("summary", {}, t("up.advanced")),
    h(
      "div",
      { class: "grid" },
      h("div", { class: "field" }, h("label", { for: "up-category" }, t("up.meta.category")), h("input", { id: "up-category" })),
      h("div", { class: "field" }, h("label", { for: "up-tags" }, t("up.meta.tags")), h("input", { id: "up-tags" })),
      number("up-chunk", t("up.opt.chunk_size"), 200, 20, 4000),
      number("up-overlap", t("up.opt.overlap"), 30, 0, 1000),
      check("up-ocr", t("up.opt.enable_ocr"), true),
      check("up-images", t("up.opt.extract_images"), true),
      check("up-summary", t("up.opt.generate_summary"), true),
    ),
  );
  const list = h("ul", { class: "uploads", id: "uploads", "aria-live": "polite" });
  main.append(h("h1", {}, t("up.title")), zone, urlForm, advanced, h("h2", { class: "visually-hidden" }, t("up.list")), list);

  const options = () => {
    const val = (id) => main.querySelector(`#${id}`);
    const tags = val("up-tags").value.split(",").map((s) => s.trim()).filter(Boolean);
    const metadata = {};
    if (val("up-category").value.trim()) metadata.category = val("up-category").value.trim();
    if (tags.length) metadata.tags = tags;
    return {
      metadata,
      processing_options: {
        chunk_size: Number(val("up-chunk").value) || 200,
        overlap: Number(val("up-overlap").value) || 0,
        enable_ocr: val("up-ocr").checked,
        extract_images: val("up-images").checked,
        generate_summary: val("up-summary").checked,
      },
    };
  };

  onDrop(zone, (files) => files.forEach(queueFile));
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      picker.click();
    }
  });
  picker.addEventListener("change", () => {
    [...picker.files].forEach(queueFile);
    picker.value = "";
  });

  function item(name) {
    const state = h("span", { class: "state" }, statusBadge("queued"));
    const detail = h("span", { class: "detail" });
    const li = h("li", { class: "upload" }, h("span", { class: "name" }, name), state, detail);
    list.prepend(li);
    return {
      set(status, extra) {
        li.dataset.status = status;
        clear(state, statusBadge(status));
        clear(detail, extra || "");
      },
    };
  }

  async function queueFile(file) {
    const row = item(file.name);
    const type = documentTypeFor(file.name, file.type); // null: the server tells the type from the bytes
    const { metadata, processing_options } = options();
    metadata.title = metadata.title || file.name;
    const bar = h("progress", { max: 100, value: 0, "aria-label": file.name });
    row.set("uploading", bar);
    try {
      if (file.size > DIRECT_BYTES && (await direct(file, type, metadata, processing_options, bar))) {
        return row.set("processing", t("up.sent"));
      }
      const form = new FormData();
      form.append("file", file, file.name);
      if (type) form.append("document_type", type);
      form.append("metadata", JSON.stringify(metadata));
      form.append("processing_options", JSON.stringify(processing_options));
      const result = await api.uploadWithProgress(form, (share) => (bar.value = Math.round(share * 100)));
      follow(row, result);
    } catch (err) {
      row.set("failed", err.message);
    }
  }

  // The presigned S3 upload of the AWS deployment; false where the server does not offer it.
  async function direct(file, type, metadata, processing_options, bar) {
    let signed;
    try {
      signed = await api.post("documents/upload-url", {
        file_name: file.name,
        size: file.size,
        content_type: file.type || "application/octet-stream",
        ...(type ? { document_type: type } : {}),
        metadata,
        processing_options,
      });
    } catch (err) {
      if (err.status === 503 || err.status === 404) return false;
      throw err;
    }
    await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(signed.method || "PUT", signed.upload_url);
      for (const [k, v] of Object.entries(signed.headers || {})) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => e.lengthComputable && (bar.value = Math.round((e.loaded / e.total) * 100));
      xhr.onload = () => (xhr.status < 300 ? resolve() : reject(new Error(`S3 ${xhr.status}`)));
      xhr.onerror = () => reject(new Error("network error"));
      xhr.send(file);
    });
    return true;
  }

  async function queueUrl(address) {
    const row = item(address);
    const type = documentTypeFor(address);
    const { metadata, processing_options } = options();
    row.set("uploading");
    try {
      const body = { file: address, metadata, processing_options, ...(type ? { document_type: type } : {}) };
      follow(row, await api.post("documents/upload", body));
    } catch (err) {
      row.set("failed", err.message);
    }
  }

  function follow(row, result) {
    const id = result.document_id;
    const open = () => h("a", { href: `#/doc/${encodeURIComponent(id)}`, class: "open" }, t("up.open"));
    const duplicate = result.deduplicated ? `${t("up.duplicate")} · ` : "";
    const show = (d) => {
      if (d.status === "processing") row.set("processing", [progressLine(d.processing?.progress)]);
      else if (d.status === "failed") row.set("failed", [d.error?.message || d.error || "", " ", open()]);
      else row.set(d.status, [duplicate, t("up.counts", { c: d.chunks_count ?? 0, p: d.images_count ?? 0 }), " ", open()]);
    };
    show(result);
    if (result.status !== "processing") return;
    const tick = async () => {
      if (!alive) return;
      try {
        const d = await api.get(`documents/${encodeURIComponent(id)}`);
        show(d);
        if (d.status !== "processing") return;
      } catch {
        /* try again */
      }
      timers.add(setTimeout(tick, 1000));
    };
    timers.add(setTimeout(tick, 500));
  }

  return () => {
    alive = false;
    for (const timer of timers) clearTimeout(timer);
  };
}
