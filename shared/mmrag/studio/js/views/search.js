// Search by text, by picture, or both (modality weights and fusion strategy), with filters; each result shows its
// highlighted text, pictures, page, and its component scores in words. #/search?similar=<kind>:<id> is "more like
// this" (POST /search/similar).
import * as api from "../api.js";
import { h, clear, errorBox, fileToBase64, highlighted, picturePicker, thumb, titleOf } from "../dom.js";
import { percent, t } from "../i18n.js";

const TYPES = ["text", "image", "pdf", "mixed"];
const SCORE_ORDER = ["lexical", "dense", "clip", "clip_text", "image", "text", "rerank", "fused"];

// What a result card needs, from the one result shape of the four search endpoints (item_id, item_type,
// chunk_id | image_id, page_number, component scores; pictures with image_url, thumbnail_url, caption).
function normalise(r) {
  const meta = r.metadata || {};
  const type = r.item_type || r.result_type;
  const isImage = type === "image";
  const s = r.scores || {};
  const components = { ...(s.components || s) };
  for (const k of ["text_similarity", "image_similarity", "combined_score", "rerank_score"]) delete components[k];
  const rerank = r.rerank_score ?? s.rerank_score ?? components.rerank;
  if (rerank != null) components.rerank = rerank;
  const images = r.content?.images?.length ? r.content.images : r.thumbnail_url || r.image_url ? [r] : [];
  const id = r.item_id || r.result_id || r.chunk_id || r.image_id;
  return {
    id,
    document_id: r.document_id || meta.document_id,
    title: meta.title,
    page: r.page_number ?? r.position?.page_number ?? meta.page_number,
    chunk_id: isImage ? null : r.chunk_id || (type === "chunk" ? id : null),
    image_id: r.image_id || (isImage ? id : null),
    highlight: r.highlight?.content,
    text: typeof r.content === "string" ? r.content : r.content?.text || r.caption,
    images,
    score: rerank ?? r.similarity_score ?? s.combined_score,
    scores: components,
    similar: type === "document" ? ["document", r.document_id] : [isImage ? "image" : "chunk", id],
  };
}

function scoreExplanation(scores, rrf) {
  const keys = SCORE_ORDER.filter((k) => scores[k] != null);
  if (!keys.length) return null;
  return h(
    "details",
    { class: "why" },
    h("summary", {}, t("score.explain")),
    h(
      "ul",
      {},
      keys.map((k) => {
        if (rrf && k === "fused") return h("li", { class: "score score-fused" }, t("score.fused_rrf", { v: Number(scores[k]).toFixed(4) }));
        const v = Math.max(0, Math.min(1, Number(scores[k])));
        const meter = h("meter", { min: 0, max: 1, value: v.toFixed(3), "aria-hidden": "true" });
        return h("li", { class: `score score-${k}` }, meter, " ", t(`score.${k}`, { p: percent(scores[k]) }));
      }),
      scores.bm25 != null ? h("li", { class: "score" }, t("score.bm25", { v: Number(scores.bm25).toFixed(3) })) : null,
    ),
  );
}

function resultHref(r) {
  const p = new URLSearchParams();
  if (r.page != null) p.set("page", r.page);
  if (r.image_id) p.set("image", r.image_id);
  else if (r.chunk_id) p.set("chunk", r.chunk_id);
  const q = p.toString();
  return `#/doc/${encodeURIComponent(r.document_id)}${q ? `?${q}` : ""}`;
}

function resultCard(r, rank, rrf) {
  const href = resultHref(r);
  return h(
    "li",
    { class: "result card" },
    r.images.length ? h("div", { class: "result-images" }, r.images.slice(0, 3).map((img) => thumb(img))) : null,
    h(
      "div",
      { class: "result-main" },
      h(
        "h3",
        {},
        h("a", { href, class: "result-link" }, `${rank}. ${titleOf({ title: r.title }, r.document_id)}`),
        r.page != null ? h("span", { class: "page" }, t("result.page", { n: r.page })) : null,
        r.image_id && !r.chunk_id ? h("span", { class: "tag" }, t("result.picture")) : null,
      ),
      h("p", { class: "snippet" }, r.highlight ? highlighted(r.highlight) : r.text || ""),
      h(
        "div",
        { class: "result-foot" },
        h("span", { class: "score-total" }, t("score.total", { v: rrf && r.scores.rerank == null ? Number(r.score).toFixed(4) : percent(r.score) })),
        h("a", { href, class: "button secondary small" }, t("search.open")),
        h("a", { href: `#/search?similar=${r.similar[0]}:${encodeURIComponent(r.similar[1])}`, class: "button secondary small" }, t("search.more")),
      ),
      scoreExplanation(r.scores, rrf),
    ),
  );
}

export async function render(main, { params }) {
  let queryFile = null;
  const results = h("section", { class: "results", "aria-live": "polite", id: "results" });
  const modeSel = h(
    "fieldset",
    { class: "modes" },
    h("legend", {}, t("search.mode")),
    ["text", "image", "both"].map((m) =>
      h("label", { class: "radio" }, h("input", { type: "radio", name: "mode", value: m, checked: m === "text" }), " ", t(`search.mode.${m}`)),
    ),
  );
  const query = h("input", { type: "search", id: "q", name: "q", autocomplete: "off" });
  const target = h(
    "select",
    { id: "target" },
    h("option", { value: "text" }, t("search.target.text")),
    h("option", { value: "image" }, t("search.target.image")),
  );
  const picker = picturePicker("query-image", t("search.image"), (file) => (queryFile = file));
  const weight = h("input", { type: "range", id: "weight", min: 0, max: 100, value: 60, step: 5 });
  const weightOut = h("output", { for: "weight" });
  const showWeight = () => (weightOut.textContent = `${t("search.weight.text", { w: (weight.value / 100).toFixed(2) })} · ${t("search.weight.image", { w: (1 - weight.value / 100).toFixed(2) })}`);
  weight.addEventListener("input", showWeight);
  showWeight();
  const fusion = h("select", { id: "fusion" }, ["weighted_sum", "rrf", "linear_combination"].map((f) => h("option", { value: f }, t(`search.fusion.${f}`))));
  const topK = h("input", { type: "number", id: "top-k", min: 1, max: 100, value: 10 });
  const rerank = h("input", { type: "checkbox", id: "rerank" });
  const types = TYPES.map((ty) => h("input", { type: "checkbox", value: ty, id: `st-${ty}` }));
  const category = h("input", { id: "s-category" });
  const tags = h("input", { id: "s-tags" });
  const from = h("input", { type: "date", id: "s-from" });
  const to = h("input", { type: "date", id: "s-to" });
  const field = (label, control) => h("div", { class: "field" }, h("label", { for: control.id }, label), control);

  const textBox = h("div", { class: "mode-text" }, field(t("search.query"), query), field(t("search.target"), target));
  const imageBox = h("div", { class: "mode-image" }, h("span", { class: "label" }, t("search.image")), picker);
  const bothBox = h("div", { class: "mode-both" }, field(t("search.weights"), weight), weightOut, field(t("search.fusion"), fusion));
  const form = h(
    "form",
    { class: "search-form card", onsubmit: submit },
    modeSel,
    textBox,
    imageBox,
    bothBox,
    h("div", { class: "row" }, field(t("search.top_k"), topK), h("div", { class: "check" }, rerank, " ", h("label", { for: "rerank" }, t("search.rerank")))),
    h(
      "details",
      { class: "filters-box" },
      h("summary", {}, t("search.filters")),
      h(
        "div",
        { class: "grid" },
        h("fieldset", {}, h("legend", {}, t("lib.filter.type")), TYPES.map((ty, i) => h("span", { class: "check" }, types[i], " ", h("label", { for: `st-${ty}` }, t(`type.${ty}`))))),
        field(t("lib.filter.category"), category),
        field(t("lib.filter.tags"), tags),
        field(t("search.from"), from),
        field(t("search.to"), to),
      ),
    ),
    h("button", { type: "submit", id: "search-submit" }, t("search.submit")),
  );
  main.append(h("h1", {}, t("search.title")), form, results);

  const mode = () => form.querySelector("input[name=mode]:checked").value;
  const showMode = () => {
    const m = mode();
    textBox.hidden = m === "image";
    imageBox.hidden = m === "text";
    bothBox.hidden = m !== "both";
    target.parentElement.hidden = m !== "text";
  };
  modeSel.addEventListener("change", showMode);
  showMode();
  const onPaste = (e) => {
    if (mode() === "text") return;
    picker.paste(e);
  };
  document.addEventListener("paste", onPaste);

  function filters() {
    const f = {};
    const chosen = types.filter((c) => c.checked).map((c) => c.value);
    if (chosen.length) f.document_type = chosen;
    if (category.value.trim()) f.category = category.value.trim();
    const tagList = tags.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (tagList.length) f.tags = tagList;
    if (from.value || to.value) f.date_range = { ...(from.value ? { start: from.value } : {}), ...(to.value ? { end: to.value } : {}) };
    return f;
  }

  async function run(label, fn) {
    clear(results, h("p", { class: "status" }, t("common.loading")));
    try {
      const data = await fn();
      const list = (data.results || []).map(normalise);
      clear(
        results,
        label ? h("h2", {}, label) : null,
        h("p", { class: "status", id: "result-count" }, t("search.count", { n: list.length, s: Number(data.search_time ?? 0).toFixed(3) })),
        list.length ? h("ol", { class: "result-list" }, list.map((r, i) => resultCard(r, i + 1, data.fusion_strategy === "rrf"))) : h("p", { class: "empty" }, t("search.none")),
      );
    } catch (err) {
      clear(results, errorBox(err));
    }
  }

  async function submit(e) {
    e.preventDefault();
    const m = mode();
    const text = query.value.trim();
    const k = Math.max(1, Math.min(100, Number(topK.value) || 10));
    if ((m !== "image" && !text && !(m === "both" && queryFile)) || (m === "image" && !queryFile)) {
      clear(results, h("p", { class: "error", role: "alert" }, t("search.need")));
      return;
    }
    const f = filters();
    if (m === "text") {
      // a search by words can be returned to (back from a result) and bookmarked
      const q = new URLSearchParams({ q: text, target: target.value });
      history.replaceState(null, "", `#/search?${q}`);
    }
    if (m === "text" && target.value === "text") {
      return run(null, () => api.post("search/text", { query: text, top_k: k, filters: f, search_options: { rerank: rerank.checked } }));
    }
    if (m === "text") {
      return run(null, () => api.post("search/image", { query_type: "text", query_text: text, top_k: k, filters: f }));
    }
    const image = queryFile ? await fileToBase64(queryFile) : null;
    if (m === "image") {
      return run(null, () => api.post("search/image", { query_type: "image", query_image: image, top_k: k, filters: f }));
    }
    const w = Number(weight.value) / 100;
    const body = {
      query_text: text || null,
      query_image: image,
      top_k: k,
      filters: f,
      modality_weights: { text: w, image: Math.round((1 - w) * 100) / 100 },
      search_options: { fusion_strategy: fusion.value, rerank: rerank.checked },
    };
    return run(null, () => api.post("search/multimodal", body));
  }

  const similar = params.get("similar");
  if (similar) {
    const [kind, ...rest] = similar.split(":");
    const id = rest.join(":");
    run(t("search.similar.to", { what: id }), () => api.post("search/similar", { reference_type: kind, reference_id: id, top_k: 10 }));
  } else if (params.get("q")) {
    query.value = params.get("q");
    if (params.get("target") === "image") target.value = "image";
    form.requestSubmit();
  }
  query.focus();
  return () => document.removeEventListener("paste", onPaste);
}
