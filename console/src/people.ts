// What the server is doing, accounts, and mail.

import {
  api,
  type ApiKeyRow,
  type MailMessage,
  type MailStatus,
  type Role,
  type SessionRow,
  type User,
} from "./api.js";
import { append, button, fill, field, h, link, select, table, when } from "./dom.js";
import { act, alertBox, current, notify, page, redraw } from "./ui.js";

const enc = encodeURIComponent;

// -- overview ------------------------------------------------------------------------------

// Whether some server process records committed changes (webhook messages, history).
const PUMP_STATES = {
  running: "Recorded",
  stopped: "Stopped: no process records changes",
  never_ran: "Never recorded: start a worker",
} as const;

export async function overviewPage(): Promise<void> {
  const here = current();
  const stats = await api.stats();
  if (!here()) return;
  const ms = (v: number | null) => (v === null ? "—" : `${v} ms`);
  const tiles: [string, string][] = [
    ["Requests", String(stats.requests)],
    ["Client errors (4xx)", String(stats.client_errors)],
    ["Server errors (5xx)", String(stats.server_errors)],
    ["Latency p50", ms(stats.latency_p50_ms)],
    ["Latency p95", ms(stats.latency_p95_ms)],
    ["Latency p99", ms(stats.latency_p99_ms)],
    ["Open event streams", String(stats.realtime_streams)],
    ["Database errors", String(stats.database_errors)],
    ["Mail waiting", String(stats.mail["pending"] ?? 0)],
    ["Mail failed", String(stats.mail["failed"] ?? 0)],
    ["Webhooks and history", PUMP_STATES[stats.change_pump.state]],
    ["Webhook messages waiting", String(stats.webhooks.pending)],
    ["Webhook messages failed", String(stats.webhooks.failed)],
    ["Webhooks held", String(stats.webhooks.held_webhooks)],
  ];
  const alert = alertBox();
  const refresh = button("Refresh", () => void act(refresh, alert, () => redraw(overviewPage)));
  page(
    "Overview",
    alert.element,
    h("p", {}, "Requests since the server started; mail and webhooks as they stand now. ", refresh),
    h(
      "dl",
      { class: "tiles" },
      tiles.map(([label, value]) => h("div", { class: "tile" }, h("dt", {}, label), h("dd", {}, value))),
    ),
    h("h2", {}, "Busiest routes"),
    table(
      "Busiest routes",
      ["Route", "Requests"],
      stats.busiest.map((r) => [h("code", {}, r.route), String(r.requests)]),
    ),
  );
}

// -- users -----------------------------------------------------------------------------------

export async function usersPage(): Promise<void> {
  const q = h("input", { type: "search", autocomplete: "off" });
  const results = h("div");
  const alert = alertBox();
  const submit = h("button", { type: "submit" }, "Search");
  const more = h("button", { type: "button", hidden: true }, "Next page");
  let cursor: string | null = null;
  let asked = ""; // the search the shown pages answer

  async function load(next: boolean): Promise<void> {
    if (!next) {
      cursor = null;
      more.hidden = true;
      asked = q.value.trim();
    }
    const found = await api.users(asked, next ? (cursor ?? undefined) : undefined);
    const shown = table(
      "Accounts",
      ["Email", "Name", "Role", "Verified", "Disabled", "Created"],
      found.items.map((u) => [
        link(u.email, `#/users/${enc(u.id)}`),
        u.name,
        u.role,
        u.email_verified ? "yes" : "no",
        u.disabled ? "disabled" : "no",
        when(u.created_at),
      ]),
    );
    if (next) append(results, [shown]);
    else fill(results, shown);
    cursor = found.next_cursor ?? null;
    more.hidden = !cursor;
  }

  const form = h(
    "form",
    { class: "row filters", role: "search", "aria-label": "Find accounts" },
    field("Email or name", q),
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(submit, alert, () => load(false));
  });
  more.addEventListener("click", () => void act(more, alert, () => load(true)));
  page("Users", form, alert.element, results, more);
  await load(false);
}

export async function userPage(userId: string): Promise<void> {
  const here = current();
  const [user, sessions, keys] = await Promise.all([
    api.user(userId),
    api.sessions(userId),
    api.apiKeys(userId),
  ]);
  if (!here()) return;
  const alert = alertBox();
  const role = select(["user", "admin"], user.role);
  const save = h("button", { type: "submit" }, "Save role");
  const roleForm = h("form", { class: "row", "aria-label": "Role" }, field("Role", role), save);
  roleForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(save, alert, async () => {
      await change({ role: role.value as Role }, `Role is now ${role.value}`);
    });
  });

  async function change(body: Parameters<typeof api.changeUser>[1], message: string) {
    await api.changeUser(userId, body);
    notify(message);
    await redraw(() => userPage(userId));
  }

  const toggle = button(user.disabled ? "Enable account" : "Disable account", () =>
    void act(toggle, alert, () =>
      change(
        { disabled: !user.disabled },
        user.disabled ? "Account enabled" : "Account disabled: its sessions have ended",
      ),
    ),
    { class: user.disabled ? "" : "danger" },
  );
  const verify = user.email_verified
    ? ""
    : button("Mark email verified", () =>
        void act(null, alert, () => change({ email_verified: true }, "Email marked verified")),
      );

  page(
    user.email,
    h("p", {}, link("All users", "#/users")),
    h(
      "dl",
      { class: "meta" },
      ...(
        [
          ["Name", user.name],
          ["Role", user.role],
          ["Email verified", user.email_verified ? "yes" : "no"],
          ["Status", user.disabled ? "disabled" : "active"],
          ["Created", when(user.created_at)],
        ] as [string, string][]
      ).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
    alert.element,
    h("section", { class: "card", "aria-label": "Account" }, roleForm, h("div", { class: "row" }, toggle, verify)),
    sessionsSection(user, sessions, alert),
    keysSection(user, keys, alert),
  );
}

function sessionsSection(
  user: User,
  sessions: SessionRow[],
  alert: ReturnType<typeof alertBox>,
): HTMLElement {
  const all = button("Sign out everywhere", () =>
    void act(all, alert, async () => {
      if (!confirm(`Sign ${user.email} out of every device?`)) return;
      await api.signOutEverywhere(user.id);
      notify("Signed out everywhere");
      await redraw(() => userPage(user.id));
    }),
  );
  return h(
    "section",
    { class: "card", "aria-label": "Sessions" },
    h("h2", {}, "Signed-in devices"),
    table(
      "Sessions",
      ["Signed in", "Last used", "How", "Device", "Address", ""],
      sessions.map((s) => [
        when(s.created_at),
        when(s.last_used_at),
        s.provider ? `${s.method} (${s.provider})` : s.method,
        s.user_agent ?? "—",
        s.address ?? "—",
        button(
          "Sign out device",
          () =>
            void act(null, alert, async () => {
              await api.endSession(user.id, s.id);
              notify("Device signed out");
              await redraw(() => userPage(user.id));
            }),
          { "aria-label": `Sign out device signed in ${when(s.created_at)}` },
        ),
      ]),
    ),
    sessions.length ? all : "",
  );
}

function keysSection(user: User, keys: ApiKeyRow[], alert: ReturnType<typeof alertBox>): HTMLElement {
  return h(
    "section",
    { class: "card", "aria-label": "API keys" },
    h("h2", {}, "API keys"),
    table(
      "API keys",
      ["Name", "Starts with", "Created", "Last used", "Expires", ""],
      keys.map((k) => [
        k.name,
        h("code", {}, k.prefix),
        when(k.created_at),
        when(k.last_used_at),
        when(k.expires_at),
        button(`Revoke ${k.name}`, () =>
          void act(null, alert, async () => {
            if (!confirm(`Revoke the key ${k.name}? Scripts using it stop working.`)) return;
            await api.revokeKey(user.id, k.id);
            notify("Key revoked");
            await redraw(() => userPage(user.id));
          }),
        ),
      ]),
    ),
  );
}

// -- mail --------------------------------------------------------------------------------------

export async function mailPage(): Promise<void> {
  const statuses: (MailStatus | "")[] = ["", "pending", "sent", "failed", "dropped"];
  const status = h(
    "select",
    {},
    statuses.map((s) => h("option", { value: s }, s || "any")),
  );
  const results = h("div");
  const alert = alertBox();
  const more = h("button", { type: "button", hidden: true }, "Next page");
  let cursor: string | null = null;
  let asked: MailStatus | "" = ""; // the status the shown pages answer

  function row(m: MailMessage): (Node | string)[] {
    return [
      when(m.created_at),
      m.kind,
      m.to,
      m.status,
      String(m.attempts),
      m.last_error ?? "—",
      m.status === "failed"
        ? button(`Retry message to ${m.to}`, () =>
            void act(null, alert, async () => {
              await api.retryMail(m.id);
              notify("Queued again");
              await load(false);
            }),
          )
        : "",
    ];
  }

  async function load(next: boolean): Promise<void> {
    if (!next) {
      cursor = null;
      more.hidden = true;
      asked = status.value as MailStatus | "";
    }
    const found = await api.mail(asked, next ? (cursor ?? undefined) : undefined);
    const shown = table(
      "Mail outbox",
      ["Created", "Kind", "To", "Status", "Attempts", "Last error", ""],
      found.items.map(row),
    );
    if (next) append(results, [shown]);
    else fill(results, shown);
    cursor = found.next_cursor ?? null;
    more.hidden = !cursor;
  }

  status.addEventListener("change", () => void act(null, alert, () => load(false)));
  more.addEventListener("click", () => void act(more, alert, () => load(true)));
  page(
    "Mail",
    h("p", {}, "Messages wait here until the mail server takes them; links are never shown."),
    h("div", { class: "row filters" }, field("Status", status)),
    alert.element,
    results,
    more,
  );
  await load(false);
}
