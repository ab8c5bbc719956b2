// The Docstore admin console: a single page at /admin, routed by the URL's hash.

import { DocstoreError } from "../../sdk/typescript/src/index.js";
import { api, client, type User } from "./api.js";
import { collectionPage, collectionsPage, documentPage, newDocumentPage } from "./data.js";
import { button, fill, field, h, link } from "./dom.js";
import { mailPage, overviewPage, userPage, usersPage } from "./people.js";
import { alertBox, act, leave, main, page } from "./ui.js";

const SECTIONS: [string, string][] = [
  ["Overview", "#/"],
  ["Collections", "#/collections"],
  ["Users", "#/users"],
  ["Mail", "#/mail"],
];

let me: User | null = null;

function shell(): void {
  const nav = document.getElementById("nav") as HTMLElement;
  const who = document.getElementById("who") as HTMLElement;
  if (!me) {
    fill(nav);
    fill(who);
    return;
  }
  fill(
    nav,
    h(
      "ul",
      {},
      SECTIONS.map(([label, href]) => h("li", {}, link(label, href))),
    ),
  );
  fill(
    who,
    h("span", {}, me.email),
    button("Sign out", () => void client.auth.signOut()),
  );
  markCurrent();
}

function markCurrent(): void {
  const here = location.hash || "#/";
  for (const a of document.querySelectorAll<HTMLAnchorElement>("#nav a")) {
    const href = a.getAttribute("href") ?? "";
    const current = href === "#/" ? here === "#/" : here.startsWith(href);
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function signInPage(reason?: string): void {
  leave();
  const email = h("input", { type: "email", autocomplete: "username", required: true });
  const password = h("input", {
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const alert = alertBox();
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", "aria-label": "Sign in" },
    field("Email", email),
    field("Password", password),
    alert.element,
    submit,
  );
  page("Sign in to the console", reason ? h("p", { class: "notice" }, reason) : "", form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(submit, alert, async () => {
      const result = await client.auth.signIn({ email: email.value, password: password.value });
      if ("mfa" in result) secondFactorPage(result.mfa.mfaToken);
      else await start();
    });
  });
  email.focus();
}

function secondFactorPage(mfaToken: string): void {
  const code = h("input", {
    inputmode: "numeric",
    autocomplete: "one-time-code",
    required: true,
  });
  const recovery = h("input", { type: "checkbox" });
  const alert = alertBox();
  const submit = h("button", { type: "submit" }, "Verify");
  const form = h(
    "form",
    { class: "card narrow", "aria-label": "Two-step sign-in" },
    field("Code from your authenticator app", code),
    h("div", { class: "check" }, recovery, h("label", {}, "This is a recovery code")),
    alert.element,
    submit,
  );
  recovery.id = "recovery";
  (form.querySelector(".check label") as HTMLLabelElement).htmlFor = "recovery";
  page("Two-step sign-in", form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(submit, alert, async () => {
      await client.auth.verify(
        mfaToken,
        recovery.checked ? { recovery_code: code.value.trim() } : { code: code.value.trim() },
      );
      await start();
    });
  });
  code.focus();
}

async function route(): Promise<void> {
  leave();
  markCurrent();
  try {
    const parts = (location.hash.replace(/^#\/?/, "") || "").split("/").map(decodeURIComponent);
    const [section, name, kind, id] = parts;
    if (!section) await overviewPage();
    else if (section === "collections" && !name) await collectionsPage();
    else if (section === "collections" && name && kind === "new") await newDocumentPage(name);
    else if (section === "collections" && name && kind === "documents" && id)
      await documentPage(name, id);
    else if (section === "collections" && name) await collectionPage(name, kind ?? "documents");
    else if (section === "users" && name) await userPage(name);
    else if (section === "users") await usersPage();
    else if (section === "mail") await mailPage();
    else page("Not found", h("p", {}, "There is no such page in the console."));
  } catch (error) {
    if (error instanceof DocstoreError && error.status === 401) {
      signInPage("Your session has ended: sign in again.");
      return;
    }
    const alert = alertBox();
    page("Something went wrong", alert.element);
    alert.show(error);
  }
}

/** Signed in (a session is stored): check it is an admin's, then show the page asked for. */
async function start(): Promise<void> {
  try {
    me = await api.me();
  } catch (error) {
    me = null;
    shell();
    if (error instanceof DocstoreError && error.status === 401) signInPage();
    else signInPage(error instanceof Error ? error.message : String(error));
    return;
  }
  if (me.role !== "admin") {
    me = null;
    await client.auth.signOut();
    signInPage("The console is for admins; this account is not one.");
    return;
  }
  try {
    await api.stats(); // admin rights, as the server sees this session
  } catch (error) {
    me = null;
    await client.auth.signOut();
    signInPage(
      error instanceof DocstoreError && error.code === "mfa_setup_required"
        ? "This server gives admin rights only to sessions signed in with a second factor " +
            "(ADMIN_MFA_REQUIRED). Turn on two-step sign-in for this account (POST " +
            "/v1/users/me/mfa/totp), then sign in here again."
        : `The console could not start: ${error instanceof Error ? error.message : error}`,
    );
    return;
  }
  shell();
  await route();
}

client.auth.onAuthStateChange((event) => {
  if (event === "SIGNED_OUT") {
    me = null;
    shell();
    signInPage();
  }
});
window.addEventListener("hashchange", () => {
  if (me) void route();
});

// The skip link moves the focus; following "#main" would be a navigation to no page.
document.querySelector(".skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  main().focus();
});

async function boot(): Promise<void> {
  fill(main(), h("p", {}, "Loading…"));
  if (await client.auth.session()) await start();
  else signInPage();
}

void boot();
