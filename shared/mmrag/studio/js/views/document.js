// One document: its chunks with page numbers, its pictures (caption, OCR text, the text around them), the
// processing stages and their times. #/doc/<id>?page=N or ?image=<id> scrolls to that page or picture.
import * as api from "../api.js";
import { h, clear, announce, errorBox, statusBadge, titleOf, viewImage } from "../dom.js";
import { formatDate, t } from "../i18n.js";
import { progressLine } from "./progress.js";

const STAGES = ["parse", "extract_images", "ocr", "chunk", "embed", "index"];

function stagesTable(processing) {
  const stages = processing?.stages || {};
  const rows = STAGES.filter((s) => stages[s]).map((s) => {
    const st = stages[s];
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, t(`stage.${s}`)),
      h("td", {}, st.status ? statusBadge(st.status === "running" ? "processing" : st.status) : ""),
      h("td", { class: "num" }, st.seconds != null ? t("common.seconds", { s: Number(st.seconds).toFixed(3) }) : t("common.none")),
      h("td", { class: "num" }, st.total != null ? `${st.done ?? 0}/${st.total} ${st.unit || ""}` : ""),
    );
  });
  return h(
    "section",
    { class: "card stages" },
    h("h2", {}, t("doc.stages")),
    processing?.progress ? progressLine(processing.progress) : null,
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("doc.stage")), h("th", { scope: "col" }, t("lib.col.status")), h("th", { scope: "col" }, t("doc.time")), h("th", { scope: "col" }, t("doc.items")))),
      h("tbody", {}, rows),
    ),
    processing?.processing_time != null ? h("p", {}, t("doc.total", { s: Number(processing.processing_time).toFixed(2) })) : null,
  );
}

function chunkItem(c) {
  return h(
    "li",
    { class: "chunk", id: `chunk-${c.chunk_id}`, dataset: { page: c.page_number ?? "" }, tabindex: "-1" },
    h(
      "div",
      { class: "meta" },
      `#${c.chunk_index}`,
      c.page_number != null ? h("span", { class: "page" }, t("result.page", { n: c.page_number })) : null,
      c.source === "ocr" ? h("span", { class: "tag" }, t("doc.source.ocr")) : null,
      h("a", { href: `#/search?similar=chunk:${encodeURIComponent(c.chunk_id)}`, class: "more" }, t("doc.more")),
    ),
    h("p", { class: "content" }, c.content),
  );
}

function pictureItem(img) {
  const related = img.related_text || {};
  return h(
    "li",
    { class: "picture", id: `image-${img.image_id}`, dataset: { page: img.page_number ?? "" }, tabindex: "-1" },
    h(
      "button",
      { type: "button", class: "thumb large", onclick: () => viewImage(img.url, img.caption), "aria-label": img.caption || t("result.picture") },
      h("img", { src: img.thumbnail_url || img.url, alt: img.caption || t("result.picture"), loading: "lazy" }),
    ),
    h(
      "div",
      { class: "picture-text" },
      h("p", { class: "caption" }, img.caption || t("common.none")),
      h("p", { class: "meta" }, img.page_number != null ? t("result.page", { n: img.page_number }) : "", img.size ? ` · ${img.size}` : "", " ", h("a", { href: `#/search?similar=image:${encodeURIComponent(img.image_id)}`, class: "more" }, t("doc.more"))),
      img.ocr_text ? h("details", { open: true }, h("summary", {}, t("doc.ocr")), h("p", {}, img.ocr_text)) : null,
      related.before ? h("details", {}, h("summary", {}, t("doc.before")), h("p", {}, related.before)) : null,
      related.after ? h("details", {}, h("summary", {}, t("doc.after")), h("p", {}, related.after)) : null,
    ),
  );
}

export async function render(main, { args, params }) {
  const id = args[0];
  let alive = true;
  let timer = null;
  const back = h("p", {}, h("a", { href: "#/library" }, `← ${t("doc.back")}`));
  const body = h("div", { class: "doc-body" }, t("common.loading"));
  main.append(back, body);

  async function load(first) {
    let d;
    try {
      d = await api.get(`documents/${encodeURIComponent(id)}`);
    } catch (err) {
      clear(body, errorBox(err));
      return;
    }
    if (!alive) return;
    const title = titleOf(d.metadata, d.document_id);
    document.title = `${title} · ${t("app.title")}`;
    const reprocess = h(
      "button",
      {
        type: "button",
        class: "secondary small",
        onclick: async () => {
          try {
            await api.post(`documents/${encodeURIComponent(id)}/reprocess`, {});
            announce(t("lib.reprocessing"));
            load(false);
          } catch (err) {
            announce(err.message, "error");
          }
        },
      },
      t("lib.reprocess"),
    );
    const err = d.error ? (typeof d.error === "string" ? d.error : d.error.message || d.error.error_detail || JSON.stringify(d.error)) : null;
    clear(
      body,
      h("h1", {}, title, " ", statusBadge(d.status)),
      h(
        "p",
        { class: "meta" },
        t("doc.info", { type: t(`type.${d.document_type}`), size: d.statistics?.file_size || "", date: formatDate(d.created_at) }),
        " · ",
        (d.metadata.tags || []).map((tag) => h("span", { class: "tag" }, tag)),
        d.metadata.category ? h("span", { class: "category" }, d.metadata.category) : null,
        " ",
        h("a", { href: `#/search?similar=document:${encodeURIComponent(id)}`, class: "more" }, t("doc.more")),
        " ",
        d.status === "failed" || d.status === "completed" ? reprocess : null,
      ),
      err ? h("p", { class: "error", role: "alert" }, t("doc.error", { message: err })) : null,
      d.summary ? h("section", { class: "card" }, h("h2", {}, t("doc.summary")), h("p", {}, d.summary)) : null,
      stagesTable(d.processing),
      h(
        "div",
        { class: "doc-columns" },
        h("section", { class: "chunks" }, h("h2", {}, t("doc.chunks", { n: (d.chunks || []).length })), h("ol", { class: "chunk-list" }, (d.chunks || []).map(chunkItem))),
        h("section", { class: "pictures" }, h("h2", {}, t("doc.pictures", { n: (d.images || []).length })), h("ul", { class: "picture-list" }, (d.images || []).map(pictureItem))),
      ),
    );
    if (first) focusTarget();
    if (d.status === "processing") timer = setTimeout(() => load(false), 1200);
  }

  function focusTarget() {
    const image = params.get("image");
    const chunk = params.get("chunk");
    const page = params.get("page");
    let target = null;
    if (image) target = body.querySelector(`#image-${CSS.escape(image)}`);
    if (!target && chunk) target = body.querySelector(`#chunk-${CSS.escape(chunk)}`);
    if (!target && page) target = body.querySelector(`.chunk[data-page="${CSS.escape(page)}"], .picture[data-page="${CSS.escape(page)}"]`);
    if (page) body.querySelectorAll(`[data-page="${CSS.escape(page)}"]`).forEach((el) => el.classList.add("target"));
    if (target) {
      target.classList.add("target");
      target.scrollIntoView({ block: "center" });
      target.focus({ preventScroll: true });
    }
  }

  await load(true);
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}
