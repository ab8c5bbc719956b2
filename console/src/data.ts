// Collections and their documents: declare, configure (schema dry run first), browse,
// edit as JSON with If-Match, files, and a live view of changes.

import {
  ConflictError,
  type ChangeEvent,
  type UntypedDoc,
} from "../../sdk/typescript/src/index.js";
import {
  api,
  client,
  type Collection,
  type CollectionPatch,
  type ReadAccess,
  type SchemaCheck,
  type WriteAccess,
} from "./api.js";
import { append, button, fill, field, h, link, select, table, when } from "./dom.js";
import {
  act,
  alertBox,
  current,
  json,
  notify,
  onLeave,
  page,
  parseJson,
  redraw,
} from "./ui.js";

const READ: ReadAccess[] = ["owner", "authenticated", "public"];
const WRITE: WriteAccess[] = ["owner", "authenticated", "admin"];

const enc = encodeURIComponent;
const collectionHref = (name: string, tab = "") => `#/collections/${enc(name)}${tab && `/${tab}`}`;
const documentHref = (name: string, id: string) =>
  `#/collections/${enc(name)}/documents/${enc(id)}`;

function preview(data: unknown, max = 120): string {
  const text = JSON.stringify(data);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// -- the list of collections, and declaring one ----------------------------------------

export async function collectionsPage(): Promise<void> {
  const here = current();
  const collections = await api.collections();
  if (!here()) return;
  const name = h("input", { required: true, pattern: "[a-z][a-z0-9_]{0,62}", autocomplete: "off" });
  const description = h("input", { autocomplete: "off" });
  const read = select(READ, "owner");
  const write = select(WRITE, "owner");
  const schema = h("textarea", { rows: 6, spellcheck: false, class: "code" });
  const alert = alertBox();
  const submit = h("button", { type: "submit" }, "Declare");
  const form = h(
    "form",
    { class: "card", "aria-label": "Declare a collection" },
    h("h2", {}, "Declare a collection"),
    field("Name", name, "Lower case letters, digits and _; starts with a letter"),
    field("Description", description),
    h("div", { class: "row" }, field("Who may read", read), field("Who may write", write)),
    field("JSON Schema (optional)", schema, "Draft 2020-12; empty for none"),
    alert.element,
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(submit, alert, async () => {
      const text = schema.value.trim();
      const declared = await api.declare({
        name: name.value,
        description: description.value,
        access: { read: read.value as ReadAccess, write: write.value as WriteAccess },
        ...(text ? { schema: parseJson("The schema", text) as Record<string, unknown> } : {}),
      });
      notify(`Collection ${declared.name} declared`);
      location.hash = collectionHref(declared.name);
    });
  });
  page(
    "Collections",
    table(
      "Declared collections",
      ["Name", "Description", "Read", "Write", "Changed"],
      collections.map((c) => [
        link(c.name, collectionHref(c.name)),
        c.description,
        c.access.read,
        c.access.write,
        when(c.updated_at),
      ]),
    ),
    form,
  );
}

// -- one collection: documents, live changes, settings -----------------------------------

function tabs(name: string, current: string): HTMLElement {
  const entries: [string, string][] = [
    ["Documents", "documents"],
    ["Live", "live"],
    ["Settings", "settings"],
  ];
  return h(
    "nav",
    { class: "tabs", "aria-label": "Collection" },
    entries.map(([label, tab]) =>
      h(
        "a",
        {
          href: collectionHref(name, tab === "documents" ? "" : tab),
          "aria-current": tab === current ? "page" : undefined,
        },
        label,
      ),
    ),
  );
}

export async function collectionPage(name: string, tab: string): Promise<void> {
  const here = current();
  const collection = await api.collection(name);
  if (!here()) return; // left meanwhile: subscribe to nothing
  const top = [tabs(name, tab), collection.description ? h("p", {}, collection.description) : ""];
  if (tab === "live") livePage(collection, top);
  else if (tab === "settings") settingsPage(collection, top);
  else documentsPage(collection, top);
}

function documentsPage(collection: Collection, top: (Node | string)[]): void {
  const docs = client.collection(collection.name);
  const search = h("input", { type: "search", autocomplete: "off" });
  const filter = h("input", { autocomplete: "off", class: "code", placeholder: '{"done": false}' });
  const sort = h("input", { autocomplete: "off", class: "code", placeholder: "-created_at" });
  const results = h("div");
  const alert = alertBox();
  const submit = h("button", { type: "submit" }, "Show");
  const more = h("button", { type: "button", hidden: true }, "Next page");
  let cursor: string | null = null;
  let asked: Record<string, string | number> = {}; // the query the shown pages answer

  async function load(next: boolean): Promise<void> {
    if (!next) {
      cursor = null;
      more.hidden = true;
      asked = { limit: 25 };
      if (filter.value.trim()) asked["filter"] = filter.value.trim();
      if (collection.search && search.value.trim()) asked["search"] = search.value.trim();
      if (sort.value.trim()) asked["sort"] = sort.value.trim();
    }
    const found = await docs.list(next && cursor ? { ...asked, cursor } : asked);
    const rows = found.items.map((d: UntypedDoc) => [
      link(d.id, documentHref(collection.name, d.id)),
      String(d.version),
      when(d.updated_at),
      h("code", {}, preview(d.data)),
    ]);
    const shown = table(`Documents of ${collection.name}`, ["Id", "Version", "Changed", "Data"], rows);
    if (next) append(results, [shown]);
    else fill(results, shown);
    cursor = found.next_cursor;
    more.hidden = !cursor;
    notify(`${found.items.length} documents ${next ? "more " : ""}shown`);
  }

  const form = h(
    "form",
    { class: "row filters", "aria-label": "Find documents" },
    collection.search
      ? field("Search", search, `Words in ${collection.search.fields.join(", ")}; best first`)
      : "",
    field("Filter", filter, "The filter language, as JSON"),
    field("Sort", sort, "Fields, comma-separated; - for descending"),
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(submit, alert, () => load(false));
  });
  more.addEventListener("click", () => void act(more, alert, () => load(true)));
  page(
    collection.name,
    ...top,
    h("p", {}, link("New document", collectionHref(collection.name, "new"))),
    form,
    alert.element,
    results,
    more,
  );
  void act(null, alert, () => load(false));
}

function livePage(collection: Collection, top: (Node | string)[]): void {
  const state = h("p", { role: "status" }, "Connecting…");
  const list = h("ol", { class: "events", reversed: true });
  const subscription = client.collection(collection.name).subscribe({
    onChange(event: ChangeEvent<UntypedDoc>) {
      const item = h(
        "li",
        {},
        h("time", {}, new Date().toLocaleTimeString()),
        " ",
        h("strong", {}, event.type),
        " ",
        event.type === "deleted" ? event.id : link(event.id, documentHref(collection.name, event.id)),
        event.type === "deleted" ? "" : h("code", {}, preview(event.document.data, 160)),
      );
      list.prepend(item);
    },
    onState(s) {
      state.textContent =
        s === "open" ? "Watching: changes appear here as they happen." : `Connection: ${s}`;
    },
    onReset() {
      list.prepend(h("li", {}, "Some changes may have been missed while disconnected."));
    },
    onEnd(reason) {
      state.textContent = `The server ended the stream: ${reason}`;
    },
  });
  onLeave(() => subscription.close());
  page(collection.name, ...top, state, list);
}

function settingsPage(collection: Collection, top: (Node | string)[]): void {
  const description = h("input", { value: collection.description, autocomplete: "off" });
  const schema = h("textarea", { rows: 12, spellcheck: false, class: "code" });
  schema.value = collection.schema ? json(collection.schema) : "";
  const indexes = h("textarea", { rows: 6, spellcheck: false, class: "code" });
  indexes.value = json(collection.indexes ?? []);
  const access = h("textarea", { rows: 8, spellcheck: false, class: "code" });
  access.value = json(collection.access);
  const alert = alertBox();
  const report = h("div", { "aria-live": "polite" });
  const check = h("button", { type: "button" }, "Check schema against stored documents");
  const save = h("button", { type: "submit" }, "Save");
  const confirmed = { schema: "" }; // the schema text saved anyway despite rejections

  function schemaValue(): Record<string, unknown> | null {
    const text = schema.value.trim();
    return text ? (parseJson("The schema", text) as Record<string, unknown>) : null;
  }

  function showReport(found: SchemaCheck): void {
    fill(
      report,
      h(
        "div",
        { class: found.rejected ? "alert" : "notice" },
        h(
          "p",
          {},
          `${found.rejected} of ${found.scanned} stored documents would be rejected`,
          found.complete ? "." : " (stopped early: there are more documents).",
        ),
        found.examples.length
          ? h(
              "ul",
              {},
              found.examples.map((e) =>
                h(
                  "li",
                  {},
                  link(e.id, documentHref(collection.name, e.id)),
                  ": ",
                  e.errors.map((x) => `${x.loc.join(".")}: ${x.msg}`).join("; "),
                ),
              ),
            )
          : "",
      ),
    );
  }

  check.addEventListener("click", () =>
    void act(check, alert, async () => {
      const candidate = schemaValue();
      if (!candidate) {
        fill(report, h("p", { class: "notice" }, "No schema: every document is accepted."));
        return;
      }
      showReport(await api.checkSchema(collection.name, candidate));
    }),
  );

  const form = h(
    "form",
    { class: "card", "aria-label": "Collection settings" },
    field("Description", description),
    field("JSON Schema", schema, "Applies to later writes; empty removes it"),
    check,
    report,
    field("Indexes", indexes, 'A list of {"name", "fields", "unique"?, "expire_after_seconds"?}'),
    field("Access", access, "read, write, rules and field rules"),
    alert.element,
    save,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(save, alert, async () => {
      const candidate = schemaValue();
      const newIndexes = parseJson("The indexes", indexes.value) as CollectionPatch["indexes"];
      const newAccess = parseJson("The access", access.value) as CollectionPatch["access"];
      const before = collection.schema ? json(collection.schema) : "";
      const after = candidate ? json(candidate) : "";
      // Only what was changed here: another admin's change to the rest stays.
      const changes: CollectionPatch = {};
      if (description.value !== collection.description) changes.description = description.value;
      if (after !== before) changes.schema = candidate;
      if (json(newIndexes) !== json(collection.indexes ?? [])) changes.indexes = newIndexes;
      if (json(newAccess) !== json(collection.access)) changes.access = newAccess;
      if (!Object.keys(changes).length) {
        notify("Nothing to save");
        return;
      }
      if (candidate && after !== before && confirmed.schema === after) changes.force = true;
      if (candidate && after !== before && confirmed.schema !== after) {
        const found = await api.checkSchema(collection.name, candidate);
        if (found.rejected) {
          showReport(found);
          confirmed.schema = after;
          save.textContent = "Save anyway";
          throw new Error(
            "The new schema would reject stored documents (listed above). They stay as " +
              "they are but cannot be saved again unchanged. Press “Save anyway” to go on.",
          );
        }
      }
      await api.change(collection.name, changes);
      notify("Settings saved");
      location.hash = collectionHref(collection.name);
    });
  });

  const drop = dropCollection(collection.name);
  page(collection.name, ...top, form, drop);
}

function dropCollection(name: string): HTMLElement {
  const typed = h("input", { autocomplete: "off" });
  const alert = alertBox();
  const go = button("Delete the collection", () =>
    void act(go, alert, async () => {
      if (typed.value !== name) throw new Error(`Type ${name} to confirm.`);
      await api.dropCollection(name);
      notify(`Collection ${name} deleted`);
      location.hash = "#/collections";
    }),
    { class: "danger" },
  );
  return h(
    "section",
    { class: "card danger-zone", "aria-label": "Delete the collection" },
    h("h2", {}, "Delete the collection"),
    h("p", {}, "Every document and file in it goes too. This cannot be undone."),
    field(`Type ${name} to confirm`, typed),
    alert.element,
    go,
  );
}

// -- one document ------------------------------------------------------------------------

export async function newDocumentPage(name: string): Promise<void> {
  const here = current();
  const collection = await api.collection(name);
  if (!here()) return;
  const editor = h("textarea", { rows: 16, spellcheck: false, class: "code" });
  editor.value = "{\n  \n}";
  const alert = alertBox();
  const create = h("button", { type: "submit" }, "Create");
  const form = h(
    "form",
    { class: "card", "aria-label": "New document" },
    field("Data (JSON)", editor),
    alert.element,
    create,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(create, alert, async () => {
      const data = parseJson("The data", editor.value) as Record<string, unknown>;
      const made = await client.collection(name).create(data);
      notify("Document created");
      location.hash = documentHref(name, made.id);
    });
  });
  page(`New document in ${name}`, h("p", {}, link(`Back to ${name}`, collectionHref(name))), form, schemaHint(collection));
}

function schemaHint(collection: Collection): Node | string {
  if (!collection.schema) return "";
  return h(
    "details",
    {},
    h("summary", {}, "The collection's schema"),
    h("pre", { class: "code" }, json(collection.schema)),
  );
}

export async function documentPage(name: string, id: string): Promise<void> {
  const here = current();
  const docs = client.collection(name);
  const [collection, doc] = await Promise.all([api.collection(name), docs.get(id)]);
  if (!here()) return;
  let shown: UntypedDoc = doc; // the version the editor started from
  const meta = h("dl", { class: "meta" });
  const editor = h("textarea", { rows: 18, spellcheck: false, class: "code" });
  const alert = alertBox();
  const conflict = h("div", { class: "alert", role: "alert", hidden: true });
  const saveButton = h("button", { type: "submit" }, "Save");

  function show(d: UntypedDoc): void {
    shown = d;
    fill(
      meta,
      ...[
        ["Id", d.id],
        ["Owner", d.owner ?? "—"],
        ["Version", String(d.version)],
        ["Created", when(d.created_at)],
        ["Changed", when(d.updated_at)],
      ].flatMap(([k, v]) => [h("dt", {}, k as string), h("dd", {}, v as string)]),
    );
    editor.value = json(d.data);
  }

  /** Save the editor's data if the document is still at `version`; when someone changed
   * it meanwhile, show theirs next to the editor (which keeps the user's text). */
  async function save(version: number): Promise<void> {
    const data = parseJson("The data", editor.value) as Record<string, unknown>;
    try {
      show(await docs.replace({ id, version }, data));
      conflict.hidden = true;
      notify(`Saved: version ${shown.version}`);
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
      const latest = await docs.get(id);
      fill(
        conflict,
        h(
          "p",
          {},
          `Someone changed this document since you loaded it (it is now version ${latest.version}). `,
          "Your edit is not saved; it is still in the editor.",
        ),
        h(
          "details",
          { open: true },
          h("summary", {}, `Their version (${latest.version})`),
          h("pre", { class: "code" }, json(latest.data)),
        ),
        h(
          "div",
          { class: "row" },
          button("Use their version", () => {
            show(latest);
            conflict.hidden = true;
            editor.focus();
          }),
          button("Overwrite with mine", () => void act(null, alert, () => save(latest.version))),
        ),
      );
      conflict.hidden = false;
    }
  }

  const form = h(
    "form",
    { class: "card", "aria-label": "Document data" },
    field("Data (JSON)", editor, "Saved only if nobody changed the document since it was loaded"),
    conflict,
    alert.element,
    h(
      "div",
      { class: "row" },
      saveButton,
      button("Reload", () => void act(null, alert, () => redraw(() => documentPage(name, id)))),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(saveButton, alert, () => save(shown.version));
  });

  const remove = button(
    "Delete document",
    () =>
      void act(remove, alert, async () => {
        if (!confirm(`Delete document ${id}? This cannot be undone.`)) return;
        await docs.delete({ id, version: shown.version });
        notify("Document deleted");
        location.hash = collectionHref(name);
      }),
    { class: "danger" },
  );

  show(doc);
  const files = await filesSection(name, id);
  if (!here()) return;
  page(
    `Document ${id}`,
    h("p", {}, link(`Back to ${name}`, collectionHref(name))),
    meta,
    form,
    schemaHint(collection),
    files,
    h("div", { class: "card danger-zone" }, remove),
  );
}

// -- a document's files ---------------------------------------------------------------------

async function filesSection(name: string, id: string): Promise<HTMLElement> {
  const files = client.collection(name).files(id);
  const list = h("div");
  const viewer = h("div", { class: "viewer" });
  const alert = alertBox();
  const chooser = h("input", { type: "file" });
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Upload" });
  let shownUrl: string | undefined;

  function release(): void {
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = undefined;
  }
  onLeave(release);

  async function blobOf(filename: string, type: string): Promise<Blob> {
    return new Blob([(await files.download(filename)) as Uint8Array<ArrayBuffer>], { type });
  }

  async function refresh(): Promise<void> {
    const found = await files.list();
    fill(
      list,
      table(
        "Files",
        ["Name", "Type", "Size", ""],
        found.map((f) => [
          f.name,
          f.content_type,
          `${f.size} B`,
          h(
            "div",
            { class: "row" },
            button(`Preview ${f.name}`, () =>
              void act(null, alert, async () => {
                release();
                const blob = await blobOf(f.name, f.content_type);
                if (f.content_type.startsWith("image/")) {
                  shownUrl = URL.createObjectURL(blob);
                  fill(viewer, h("img", { src: shownUrl, alt: `Preview of ${f.name}` }));
                } else if (/^text\/|json|xml/.test(f.content_type)) {
                  fill(viewer, h("pre", { class: "code" }, (await blob.text()).slice(0, 100_000)));
                } else {
                  fill(viewer, h("p", {}, "No preview for this type: download it."));
                }
              }),
            ),
            button(`Download ${f.name}`, () =>
              void act(null, alert, async () => {
                const url = URL.createObjectURL(await blobOf(f.name, f.content_type));
                const a = h("a", { href: url, download: f.name });
                document.body.append(a);
                a.click();
                a.remove();
                setTimeout(() => URL.revokeObjectURL(url), 60_000);
              }),
            ),
          ),
        ]),
      ),
    );
  }

  chooser.addEventListener("change", () => {
    const file = chooser.files?.[0];
    if (!file) return;
    void act(null, alert, async () => {
      progress.hidden = false;
      try {
        await files.upload(file.name, file, {
          onProgress: (sent, total) => {
            if (total) progress.value = Math.round((sent / total) * 100);
          },
        });
      } finally {
        progress.hidden = true;
        progress.value = 0;
      }
      chooser.value = "";
      notify(`Uploaded ${file.name}`);
      await refresh();
    });
  });

  await refresh();
  return h(
    "section",
    { class: "card", "aria-label": "Files" },
    h("h2", {}, "Files"),
    list,
    field("Upload a file", chooser),
    progress,
    alert.element,
    viewer,
  );
}
