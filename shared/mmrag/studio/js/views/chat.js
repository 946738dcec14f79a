// Chat: multi-turn conversations kept by the server, each reply streamed token by token from POST /qa/chat-stream
// (with a session id; the server saves the turn when the answer completed), the list of sessions (GET /qa/sessions;
// a server without it: the sessions this browser started), resume and delete.
import * as api from "../api.js";
import { h, clear, announce, errorBox, fileToBase64, picturePicker } from "../dom.js";
import { formatDate, t } from "../i18n.js";
import { answerView, modelPicker } from "./answer.js";

const LOCAL = "mmrag.sessions";

function localSessions(tenant) {
  try {
    return JSON.parse(localStorage.getItem(`${LOCAL}.${tenant}`) || "[]");
  } catch {
    return [];
  }
}

function rememberLocal(tenant, id, title) {
  const list = localSessions(tenant).filter((s) => s.session_id !== id);
  list.unshift({ session_id: id, title, updated_at: new Date().toISOString() });
  localStorage.setItem(`${LOCAL}.${tenant}`, JSON.stringify(list.slice(0, 50)));
}

function forgetLocal(tenant, id) {
  localStorage.setItem(`${LOCAL}.${tenant}`, JSON.stringify(localSessions(tenant).filter((s) => s.session_id !== id)));
}

async function listSessions(tenant) {
  try {
    const data = await api.get("qa/sessions");
    return data.sessions || data.items || (Array.isArray(data) ? data : []);
  } catch (err) {
    if (err.status === 404 || err.status === 405) return localSessions(tenant);
    throw err;
  }
}

function newSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `studio_${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export async function render(main, { args, session, go }) {
  const tenant = session.tenant || "default";
  let current = args[0] || null;
  let picture = null;
  let controller = null;
  const sessionsBox = h("ul", { class: "session-list", id: "sessions" });
  const thread = h("div", { class: "thread", id: "thread", "aria-live": "polite" });
  const message = h("textarea", { id: "chat-message", rows: 2, required: true });
  const picker = picturePicker("chat-image", t("ask.image"), (file) => (picture = file));
  const model = modelPicker("chat-model", session.models);
  const send = h("button", { type: "submit", id: "chat-send" }, t("chat.send"));
  const stop = h("button", { type: "button", class: "secondary", id: "chat-stop", hidden: true, onclick: () => controller?.abort() }, t("ask.stop"));
  const form = h(
    "form",
    { class: "composer card", onsubmit: submit },
    h("div", { class: "field" }, h("label", { for: "chat-message" }, t("chat.message")), message),
    h("details", {}, h("summary", {}, t("ask.image")), picker),
    h("div", { class: "row" }, h("div", { class: "field" }, h("label", { for: "chat-model" }, t("ask.model")), model), send, stop),
  );
  main.append(
    h("h1", {}, t("chat.title")),
    h(
      "div",
      { class: "chat-layout" },
      h(
        "aside",
        { class: "sessions card", "aria-labelledby": "sessions-h" },
        h("h2", { id: "sessions-h" }, t("chat.sessions")),
        h("a", { href: "#/chat", class: "button secondary small", id: "chat-new" }, t("chat.new")),
        sessionsBox,
      ),
      h("section", { class: "conversation" }, thread, form),
    ),
  );
  message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  message.addEventListener("paste", (e) => picker.paste(e));

  async function refreshSessions() {
    let list;
    try {
      list = await listSessions(tenant);
    } catch (err) {
      clear(sessionsBox, h("li", {}, errorBox(err)));
      return;
    }
    if (!list.length) return clear(sessionsBox, h("li", { class: "empty" }, t("chat.empty")));
    clear(
      sessionsBox,
      list.map((s) =>
        h(
          "li",
          { class: s.session_id === current ? "active" : "" },
          h(
            "a",
            { href: `#/chat/${encodeURIComponent(s.session_id)}`, "aria-current": s.session_id === current ? "page" : null },
            s.title || s.preview || s.first_question || s.session_id,
          ),
          h("span", { class: "meta" }, s.message_count != null ? `${t("chat.messages", { n: s.message_count })} · ` : "", formatDate(s.updated_at)),
          h(
            "button",
            {
              type: "button",
              class: "danger small",
              "aria-label": `${t("chat.delete")}: ${s.title || s.session_id}`,
              onclick: async () => {
                try {
                  await api.del(`qa/sessions/${encodeURIComponent(s.session_id)}`);
                } catch (err) {
                  if (err.status !== 404) return announce(err.message, "error");
                }
                forgetLocal(tenant, s.session_id);
                announce(t("chat.deleted"));
                if (s.session_id === current) go("#/chat");
                else refreshSessions();
              },
            },
            "×",
          ),
        ),
      ),
    );
  }

  function bubble(role, content) {
    return h("div", { class: `bubble ${role}` }, h("span", { class: "who" }, role === "user" ? t("chat.you") : t("chat.assistant")), h("p", {}, content));
  }

  async function loadThread() {
    clear(thread);
    if (!current) return;
    try {
      const s = await api.get(`qa/sessions/${encodeURIComponent(current)}`);
      for (const m of s.messages || []) {
        if (m.role === "user") thread.append(bubble("user", m.content));
        else {
          const view = answerView();
          view.setText(m.content);
          thread.append(view.root);
        }
      }
    } catch (err) {
      if (err.status !== 404) thread.append(errorBox(err));
    }
  }

  async function submit(e) {
    e.preventDefault();
    const text = message.value.trim();
    if (!text) return;
    const isNew = !current;
    current = current || newSessionId();
    thread.append(bubble("user", text));
    const view = answerView();
    view.status(t("chat.thinking"));
    thread.append(view.root);
    view.root.scrollIntoView({ block: "end" });
    message.value = "";
    send.disabled = true;
    const body = {
      session_id: current,
      question: text,
      retrieval_config: { use_history_context: true },
      generation_config: { stream: true, ...(model.value ? { model: model.value } : {}) },
      options: { include_sources: true, include_images: true, save_session: true },
    };
    if (picture) {
      body.question_image = await fileToBase64(picture);
      picker.set(null);
    }
    controller = new AbortController();
    stop.hidden = false;
    let usedModel = null;
    let saved = false;
    let pieces = 0;
    try {
      await api.chatStream(
        body,
        (event) => {
          const d = event.data || {};
          if (event.type === "retrieval_complete") view.status(t("ask.found", { n: d.retrieved_count ?? 0, m: d.retrieved_images ?? 0 }));
          else if (event.type === "generation_start") usedModel = d.model;
          else if (event.type === "content_chunk") {
            view.append(d.text || "");
            view.root.dataset.pieces = String(++pieces); // how many pieces the reply arrived in
          } else if (event.type === "sources") view.sources(d.sources || [], d.retrieved_images || []);
          else if (event.type === "complete") {
            if (d.answer) view.setText(d.answer);
            view.status("");
            view.done({ ...d, model: usedModel });
            saved = d.session_saved !== false;
            if (d.follow_up_suggestions?.length) suggestions(view, d.follow_up_suggestions);
          } else if (event.type === "error") {
            view.status(h("span", { class: "error", role: "alert" }, t("ask.failed", { message: d.message || d.error_code })));
          }
        },
        controller.signal,
      );
      if (saved) {
        rememberLocal(tenant, current, text.slice(0, 80));
        if (isNew) history.replaceState(null, "", `#/chat/${encodeURIComponent(current)}`);
        refreshSessions();
      }
    } catch (err) {
      view.status(err.name === "AbortError" ? t("ask.stopped") : h("span", { class: "error", role: "alert" }, t("ask.failed", { message: err.message })));
    } finally {
      controller = null;
      stop.hidden = true;
      send.disabled = false;
      message.focus();
    }
  }

  function suggestions(view, questions) {
    view.root.append(
      h(
        "div",
        { class: "suggestions" },
        h("span", {}, t("chat.suggestions")),
        questions.map((s) => h("button", { type: "button", class: "secondary small", onclick: () => { message.value = s; message.focus(); } }, s)),
      ),
    );
  }

  await Promise.all([refreshSessions(), loadThread()]);
  message.focus();
  return () => controller?.abort();
}
