// Ask: one question (optionally with a picture), the answer streamed token by token from POST /qa/ask-stream.
import * as api from "../api.js";
import { h, fileToBase64, picturePicker } from "../dom.js";
import { t } from "../i18n.js";
import { answerView, modelPicker } from "./answer.js";

export async function render(main, { session }) {
  let picture = null;
  let controller = null;
  const question = h("textarea", { id: "question", rows: 3, required: true });
  const picker = picturePicker("ask-image", t("ask.image"), (file) => (picture = file));
  const model = modelPicker("model", session.models);
  const mode = h("select", { id: "ask-mode" }, ["text", "multimodal", "image"].map((m) => h("option", { value: m }, t(`ask.mode.${m}`))));
  const submit = h("button", { type: "submit", id: "ask-submit" }, t("ask.submit"));
  const stop = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => controller?.abort() }, t("ask.stop"));
  const answers = h("div", { class: "answers", id: "answers" });
  const field = (label, control) => h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  const form = h(
    "form",
    { class: "card ask-form", onsubmit: ask },
    field(t("ask.question"), question),
    h("div", { class: "field" }, h("span", { class: "label" }, t("ask.image")), picker),
    h("div", { class: "row" }, field(t("ask.model"), model), field(t("ask.mode"), mode)),
    h("div", { class: "row" }, submit, stop),
  );
  main.append(h("h1", {}, t("ask.title")), h("p", {}, t("ask.intro")), form, answers);
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  const onPaste = (e) => picker.paste(e);
  question.addEventListener("paste", onPaste);
  question.focus();

  async function ask(e) {
    e.preventDefault();
    const text = question.value.trim();
    if (!text) return;
    const view = answerView();
    answers.prepend(h("section", { class: "qa" }, h("h2", { class: "question" }, text), view.root));
    view.status(t("ask.searching"));
    const body = {
      question: text,
      retrieval_config: { search_mode: mode.value },
      generation_config: { stream: true, ...(model.value ? { model: model.value } : {}) },
      options: { include_sources: true, include_images: true },
    };
    if (picture) body.question_image = await fileToBase64(picture);
    controller = new AbortController();
    submit.disabled = true;
    stop.hidden = false;
    let sources = [];
    let images = [];
    let usedModel = null;
    try {
      await api.askStream(
        body,
        (event) => {
          const d = event.data || {};
          if (event.type === "retrieval_complete") view.status(t("ask.found", { n: d.retrieved_count ?? 0, m: d.retrieved_images ?? 0 }));
          else if (event.type === "generation_start") usedModel = d.model;
          else if (event.type === "content_chunk") view.append(d.text || "");
          else if (event.type === "sources") {
            sources = d.sources || [];
            images = d.retrieved_images || [];
            view.sources(sources, images);
          } else if (event.type === "complete") {
            if (d.answer) view.setText(d.answer);
            view.status("");
            view.done({ ...d, model: usedModel });
          } else if (event.type === "error") {
            view.status(h("span", { class: "error", role: "alert" }, t("ask.failed", { message: d.message || d.error_code })));
          }
        },
        controller.signal,
      );
    } catch (err) {
      view.status(err.name === "AbortError" ? t("ask.stopped") : h("span", { class: "error", role: "alert" }, t("ask.failed", { message: err.message })));
    } finally {
      submit.disabled = false;
      stop.hidden = true;
      controller = null;
    }
  }

  return () => controller?.abort();
}
