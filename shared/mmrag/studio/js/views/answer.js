// An answer as the Ask and Chat screens show it: the text with [n] citations linked to their sources, the sources
// (title, page, snippet, a link to the document at that page) and the retrieved pictures beside the text.
import { h, clear, thumb, titleOf } from "../dom.js";
import { percent, t } from "../i18n.js";

let counter = 0;

function sourceHref(s) {
  const p = new URLSearchParams();
  const page = s.metadata?.page ?? s.page;
  if (page != null) p.set("page", page);
  if (s.type === "image" || String(s.source_id).startsWith("img_")) p.set("image", s.source_id);
  else if (s.source_id) p.set("chunk", s.source_id);
  return `#/doc/${encodeURIComponent(s.document_id)}?${p}`;
}

export function answerView() {
  const uid = `a${++counter}`;
  const text = h("div", { class: "answer-text", "aria-live": "polite" });
  const status = h("p", { class: "status", role: "status" });
  const meta = h("p", { class: "meta" });
  const sourcesBox = h("section", { class: "sources", hidden: true });
  const picturesBox = h("aside", { class: "answer-pictures", hidden: true });
  const root = h("article", { class: "answer card" }, h("div", { class: "answer-main" }, status, text, meta, sourcesBox), picturesBox);
  let raw = "";
  let numbers = new Map();

  function paint() {
    const parts = [];
    const re = /\[(\d+)\]/g;
    let last = 0;
    let m;
    while ((m = re.exec(raw))) {
      parts.push(raw.slice(last, m.index));
      const n = Number(m[1]);
      const s = numbers.get(n);
      parts.push(
        s
          ? h("a", { href: `#${uid}-src-${n}`, class: "cite", title: titleOf(s.metadata, s.document_id), onclick: (e) => { e.preventDefault(); root.querySelector(`#${uid}-src-${n}`)?.focus(); } }, `[${n}]`)
          : h("span", { class: "cite" }, `[${n}]`),
      );
      last = re.lastIndex;
    }
    parts.push(raw.slice(last));
    clear(text, raw.split(/\n{2,}/).length > 1 ? splitParagraphs(parts) : h("p", {}, parts));
  }

  return {
    root,
    status(message) {
      clear(status, message || "");
    },
    append(piece) {
      raw += piece;
      paint();
    },
    setText(full) {
      raw = full;
      paint();
    },
    sources(sources = [], images = []) {
      numbers = new Map(sources.map((s, i) => [s.number ?? i + 1, s]));
      sourcesBox.hidden = !sources.length;
      clear(
        sourcesBox,
        h("h3", {}, t("ask.sources")),
        h(
          "ol",
          {},
          sources.map((s, i) => {
            const n = s.number ?? i + 1;
            const page = s.metadata?.page;
            return h(
              "li",
              { id: `${uid}-src-${n}`, tabindex: "-1", value: n, class: "source" },
              h("a", { href: sourceHref(s) }, titleOf(s.metadata, s.document_id)),
              page != null ? h("span", { class: "page" }, t("result.page", { n: page })) : null,
              h("span", { class: "score-total" }, percent(s.relevance_score)),
              h("p", { class: "snippet" }, String(s.content || "").slice(0, 280)),
            );
          }),
        ),
      );
      picturesBox.hidden = !images.length;
      clear(
        picturesBox,
        h("h3", {}, t("ask.pictures")),
        images.map((img) => ({ ...img, page: img.page_number ?? img.page })).map((img) =>
          h(
            "figure",
            {},
            thumb(img),
            h("figcaption", {}, img.caption || "", " ", h("a", { href: sourceHref({ ...img, type: "image", source_id: img.image_id, metadata: { page: img.page } }) }, img.page != null ? t("result.page", { n: img.page }) : t("search.open"))),
          ),
        ),
      );
      paint();
    },
    done(info) {
      const bits = [];
      if (info.confidence_score != null) bits.push(t("ask.confidence", { p: percent(info.confidence_score) }));
      if (info.model) bits.push(t("ask.model.used", { model: info.model }));
      clear(meta, bits.join(" · "));
    },
  };
}

function splitParagraphs(parts) {
  const out = [];
  let current = [];
  for (const part of parts) {
    if (typeof part !== "string") {
      current.push(part);
      continue;
    }
    const pieces = part.split(/\n{2,}/);
    pieces.forEach((piece, i) => {
      if (i > 0) {
        out.push(h("p", {}, current));
        current = [];
      }
      if (piece) current.push(piece);
    });
  }
  out.push(h("p", {}, current));
  return out;
}

// The model picker: the providers and models the server offers (GET /me), the server's default first.
export function modelPicker(id, models) {
  const select = h("select", { id });
  select.append(h("option", { value: "" }, models?.default_model ? `${models.default_model} ★` : "—"));
  for (const p of models?.providers || []) {
    select.append(h("optgroup", { label: p.provider }, (p.models || []).map((m) => h("option", { value: m }, m))));
  }
  return select;
}
