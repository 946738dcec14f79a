// Library: the contract's document list with filters, keyword, sort and paging; live progress; edit; delete.
import * as api from "../api.js";
import { h, clear, announce, errorBox, openDialog, statusBadge, titleOf } from "../dom.js";
import { formatDate, t } from "../i18n.js";
import { progressLine } from "./progress.js";

const TYPES = ["text", "image", "pdf", "mixed"];
const PAGE_SIZE = 20;

function field(id, label, control) {
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

function select(name, value, options) {
  return h("select", { name }, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export async function render(main, { params, go }) {
  const q = {
    keyword: params.get("keyword") || "",
    document_type: params.get("document_type") || "",
    category: params.get("category") || "",
    tags: params.get("tags") || "",
    sort_by: params.get("sort_by") || "created_at",
    order: params.get("order") || "desc",
    page: Number(params.get("page") || 1),
  };
  const toHash = (over) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...q, ...over })) if (v && !(k === "page" && v === 1)) p.set(k, v);
    const s = p.toString();
    return `#/library${s ? `?${s}` : ""}`;
  };
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      onsubmit: (e) => {
        e.preventDefault();
        const f = new FormData(form);
        go(toHash({ ...Object.fromEntries(f.entries()), page: 1 }));
      },
    },
    field("f-keyword", t("lib.filter.keyword"), h("input", { name: "keyword", type: "search", value: q.keyword })),
    field("f-type", t("lib.filter.type"), select("document_type", q.document_type, [["", t("lib.any")], ...TYPES.map((v) => [v, t(`type.${v}`)])])),
    field("f-category", t("lib.filter.category"), h("input", { name: "category", value: q.category })),
    field("f-tags", t("lib.filter.tags"), h("input", { name: "tags", value: q.tags })),
    field("f-sort", t("lib.filter.sort"), select("sort_by", q.sort_by, ["created_at", "updated_at", "title"].map((v) => [v, t(`lib.sort.${v}`)]))),
    field("f-order", t("lib.filter.order"), select("order", q.order, ["desc", "asc"].map((v) => [v, t(`lib.order.${v}`)]))),
    h("button", { type: "submit" }, t("lib.filter.apply")),
  );
  const body = h("div", { class: "library-body", "aria-live": "polite" }, t("common.loading"));
  main.append(h("h1", {}, t("lib.title")), form, body);

  const timers = new Set();
  let alive = true;
  let data;
  try {
    data = await api.get("documents", { ...q, page_size: PAGE_SIZE });
  } catch (err) {
    clear(body, errorBox(err));
    return () => {};
  }
  if (!data.documents.length) {
    clear(body, h("p", { class: "empty" }, t("lib.empty")));
    return () => {};
  }

  const rows = data.documents.map((doc) => row(doc));
  const pages = Math.max(1, Math.ceil(data.total / data.page_size));
  clear(
    body,
    h(
      "table",
      { class: "docs" },
      h("thead", {}, h("tr", {}, ["title", "type", "status", "counts", "tags", "created", "actions"].map((c) => h("th", { scope: "col" }, t(`lib.col.${c}`))))),
      h("tbody", {}, rows),
    ),
    h(
      "nav",
      { class: "pager", "aria-label": t("common.pageof", { page: q.page, pages, total: data.total }) },
      h("a", { href: toHash({ page: q.page - 1 }), class: "button secondary", "aria-disabled": q.page <= 1 ? "true" : null, hidden: q.page <= 1 }, t("common.prev")),
      h("span", {}, t("common.pageof", { page: q.page, pages, total: data.total })),
      h("a", { href: toHash({ page: q.page + 1 }), class: "button secondary", hidden: q.page >= pages }, t("common.next")),
    ),
  );

  function row(doc) {
    const status = h("td", { class: "status-cell" }, statusBadge(doc.status));
    const title = titleOf(doc.metadata, doc.document_id);
    const tr = h(
      "tr",
      { dataset: { id: doc.document_id } },
      h("td", { "data-label": t("lib.col.title") }, h("a", { href: `#/doc/${encodeURIComponent(doc.document_id)}` }, title)),
      h("td", { "data-label": t("lib.col.type") }, t(`type.${doc.document_type}`)),
      status,
      h("td", { "data-label": t("lib.col.counts"), class: "counts" }, `${doc.chunks_count ?? 0} / ${doc.images_count ?? 0}`),
      h(
        "td",
        { "data-label": t("lib.col.tags") },
        (doc.metadata.tags || []).map((tag) => h("span", { class: "tag" }, tag)),
        doc.metadata.category ? h("span", { class: "category" }, doc.metadata.category) : null,
      ),
      h("td", { "data-label": t("lib.col.created") }, formatDate(doc.created_at)),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", class: "secondary small", onclick: () => edit(doc), "aria-label": `${t("lib.edit")}: ${title}` }, t("lib.edit")),
        h("button", { type: "button", class: "danger small", onclick: () => remove(doc), "aria-label": `${t("common.delete")}: ${title}` }, t("common.delete")),
      ),
    );
    status.setAttribute("data-label", t("lib.col.status"));
    if (doc.status === "processing") watch(doc.document_id, status, tr);
    return tr;
  }

  function watch(id, cell, tr) {
    const tick = async () => {
      if (!alive) return;
      try {
        const d = await api.get(`documents/${encodeURIComponent(id)}`);
        clear(cell, statusBadge(d.status), d.status === "processing" ? progressLine(d.processing?.progress) : null);
        tr.querySelector(".counts").textContent = `${d.chunks_count ?? 0} / ${d.images_count ?? 0}`;
        if (d.status !== "processing") return;
      } catch {
        /* try again */
      }
      const timer = setTimeout(tick, 1200);
      timers.add(timer);
    };
    tick();
  }

  function edit(doc) {
    const m = doc.metadata || {};
    const inputs = {
      title: h("input", { id: "m-title", value: m.title || "" }),
      category: h("input", { id: "m-category", value: m.category || "" }),
      tags: h("input", { id: "m-tags", value: (m.tags || []).join(", ") }),
      author: h("input", { id: "m-author", value: m.author || "" }),
    };
    const save = h("button", { type: "submit", form: "meta-form" }, t("common.save"));
    const formEl = h(
      "form",
      {
        id: "meta-form",
        class: "stack",
        onsubmit: async (e) => {
          e.preventDefault();
          const metadata = {
            title: inputs.title.value.trim(),
            category: inputs.category.value.trim(),
            tags: inputs.tags.value.split(",").map((s) => s.trim()).filter(Boolean),
            author: inputs.author.value.trim(),
          };
          try {
            await api.put(`documents/${encodeURIComponent(doc.document_id)}/metadata`, { metadata });
            dlg.close();
            announce(t("lib.edit.saved"));
            go(location.hash);
          } catch (err) {
            formEl.append(errorBox(err));
          }
        },
      },
      Object.entries(inputs).map(([k, input]) => h("div", { class: "field" }, h("label", { for: input.id }, t(`lib.edit.f.${k}`)), input)),
    );
    const dlg = openDialog(t("lib.edit.title"), formEl, [save]);
    inputs.title.focus();
  }

  function remove(doc) {
    const related = h("input", { type: "checkbox", id: "del-related", checked: doc.status !== "archived" });
    const confirm = h(
      "button",
      {
        type: "button",
        class: "danger",
        id: "confirm-delete",
        onclick: async () => {
          try {
            await api.del(`documents/${encodeURIComponent(doc.document_id)}`, { delete_related: related.checked ? "true" : "false" });
            dlg.close();
            announce(related.checked ? t("lib.deleted") : t("lib.archived"));
            go(location.hash);
          } catch (err) {
            dlg.append(errorBox(err));
          }
        },
      },
      t("common.delete"),
    );
    const dlg = openDialog(
      t("lib.delete.title", { title: titleOf(doc.metadata, doc.document_id) }),
      h("p", { class: "check" }, related, " ", h("label", { for: "del-related" }, t("lib.delete.related"))),
      [confirm],
    );
    confirm.focus();
  }

  return () => {
    alive = false;
    for (const timer of timers) clearTimeout(timer);
  };
}
