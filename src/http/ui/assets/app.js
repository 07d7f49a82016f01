// The console's shell: login and logout, and the hash routes (#/dashboard, #/keys, …) that
// pick the page shown.

import { api, loggedIn, whenUnauthorized } from "./api.js";
import * as pages from "./pages.js";

const PAGES = {
  dashboard: pages.dashboard,
  keys: pages.keys,
  providers: pages.providers,
  upstreams: pages.upstreams,
  logs: pages.logs,
};

const byId = (id) => document.getElementById(id);

function showLogin(message) {
  byId("top").hidden = true;
  byId("page").replaceChildren();
  byId("login").hidden = false;
  const error = byId("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  byId("password").focus();
}

async function route() {
  if (!loggedIn()) {
    showLogin();
    return;
  }
  byId("login").hidden = true;
  byId("top").hidden = false;
  const name = location.hash.replace(/^#\/?/, "") || "dashboard";
  const page = PAGES[name] ? name : "dashboard";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${link(page)} · llmgate`;
  const root = byId("page");
  root.dataset.page = page;
  await PAGES[page](root);
  root.dataset.ready = page;
}

function link(page) {
  const anchor = document.querySelector(`nav a[data-page="${page}"]`);
  return anchor ? anchor.textContent : page;
}

async function login(event) {
  event.preventDefault();
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    await api("POST", "/admin/session", { password: byId("password").value });
    byId("password").value = "";
    if (!location.hash) location.hash = "#/dashboard";
    await route();
    byId("view").focus();
  } catch (error) {
    showLogin(error.message);
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  try {
    await api("DELETE", "/admin/session");
  } finally {
    showLogin("You are logged out.");
  }
}

// Ends every admin token (every browser's session and every API token), then this one's cookies.
async function logoutAll() {
  try {
    await api("POST", "/admin/logout-all");
    await api("DELETE", "/admin/session");
    showLogin("Every admin session and token has ended.");
  } catch (error) {
    showLogin(error.message);
  }
}

whenUnauthorized(() => showLogin("Your session has ended. Log in again."));
byId("login-form").addEventListener("submit", login);
byId("logout").addEventListener("click", logout);
byId("logout-all").addEventListener("click", logoutAll);
window.addEventListener("hashchange", () => route());
route();
