// The studio's shell: sign-in, the header (tenant, language, sign out), the navigation and the hash router.
import * as api from "./api.js";
import { h, clear, errorBox } from "./dom.js";
import { LANGUAGES, lang, setLang, onLangChange, t } from "./i18n.js";
import * as library from "./views/library.js";
import * as upload from "./views/upload.js";
import * as documentView from "./views/document.js";
import * as search from "./views/search.js";
import * as ask from "./views/ask.js";
import * as chat from "./views/chat.js";

const VIEWS = { library, upload, doc: documentView, search, ask, chat };
const NAV = ["library", "upload", "search", "ask", "chat"];

const app = document.getElementById("app");
export const session = { tenant: null, models: null };
let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const [name, ...rest] = path.split("/");
  return { name: VIEWS[name] ? name : "library", args: rest.map(decodeURIComponent), params: new URLSearchParams(query) };
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// Who the key belongs to and what the server offers; servers without GET /me still accept a key that lists documents.
async function whoAmI(key) {
  try {
    return await api.get("me", undefined, { key });
  } catch (e) {
    if (e.status !== 404) throw e;
    await api.get("documents", { page_size: 1 }, { key });
    return { tenant: null, answer: null };
  }
}

function signInScreen(message) {
  if (cleanup) cleanup();
  cleanup = null;
  const input = h("input", { id: "key", type: "password", autocomplete: "current-password", required: true, spellcheck: "false" });
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" }, message ? h("span", { class: "error" }, message) : "");
  const button = h("button", { type: "submit" }, t("auth.submit"));
  const form = h(
    "form",
    { class: "card signin", onsubmit: submit },
    h("h1", {}, t("auth.title")),
    h("p", {}, t("auth.intro")),
    h("label", { for: "key" }, t("auth.key")),
    input,
    button,
    status,
  );
  async function submit(e) {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    clear(status, t("auth.checking"));
    try {
      const me = await whoAmI(key);
      api.setApiKey(key);
      signedIn(me);
    } catch (err) {
      button.disabled = false;
      clear(status, h("span", { class: "error", role: "alert" }, t("auth.refused", { detail: err.message })));
      input.select();
    }
  }
  clear(app, header(false), h("main", { id: "main", class: "center" }, form));
  input.focus();
}

function languagePicker() {
  const select = h(
    "select",
    { id: "lang", onchange: (e) => setLang(e.target.value) },
    Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, selected: code === lang() }, name)),
  );
  return h("div", { class: "lang" }, h("label", { for: "lang", class: "visually-hidden" }, t("lang.label")), select);
}

function header(signedInNow) {
  const current = parseHash().name;
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "skip", href: "#main", onclick: (e) => { e.preventDefault(); document.getElementById("main")?.focus(); } }, t("app.skip")),
    h("span", { class: "brand" }, h("img", { src: "studio/favicon.svg", alt: "", width: 24, height: 24 }), t("app.title")),
    signedInNow
      ? h(
          "nav",
          { "aria-label": t("nav.main") },
          h("ul", {}, NAV.map((name) => h("li", {}, h("a", { href: `#/${name}`, "aria-current": name === current || (name === "library" && current === "doc") ? "page" : null }, t(`nav.${name}`))))),
        )
      : h("span", { class: "spacer" }),
    h(
      "div",
      { class: "who" },
      signedInNow && session.tenant ? h("span", { class: "tenant", id: "tenant" }, t("auth.tenant", { tenant: session.tenant })) : null,
      languagePicker(),
      signedInNow ? h("button", { type: "button", class: "secondary", id: "signout", onclick: signOut }, t("auth.signout")) : null,
    ),
  );
}

function signedIn(me) {
  session.tenant = me.tenant;
  session.models = me.answer || null;
  if (!location.hash || location.hash === "#") location.hash = "#/library";
  route();
}

function signOut() {
  api.setApiKey(null);
  session.tenant = null;
  session.models = null;
  history.replaceState(null, "", location.pathname);
  signInScreen();
}

async function route() {
  if (!api.apiKey()) return signInScreen();
  if (cleanup) cleanup();
  cleanup = null;
  const { name, args, params } = parseHash();
  const main = h("main", { id: "main", tabindex: "-1" });
  clear(app, header(true), main);
  document.title = `${t(`nav.${name === "doc" ? "library" : name}`)} · ${t("app.title")}`;
  try {
    cleanup = (await VIEWS[name].render(main, { args, params, session, go })) || null;
  } catch (err) {
    if (err.status !== 401) main.append(errorBox(err));
  }
}

api.whenUnauthorized((err) => {
  api.setApiKey(null);
  signInScreen(err ? t("auth.refused", { detail: err.message }) : "");
});
window.addEventListener("hashchange", () => {
  if (location.hash !== "#main") route();
});
onLangChange(() => (api.apiKey() ? route() : signInScreen()));

async function start() {
  const key = api.apiKey();
  if (!key) return signInScreen();
  try {
    signedIn(await whoAmI(key));
  } catch (err) {
    api.setApiKey(null);
    signInScreen(err.status === 401 ? t("auth.refused", { detail: err.message }) : err.message);
  }
}

start();
