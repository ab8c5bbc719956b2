// A few DOM helpers. Text always goes in as text nodes, never as HTML: documents, names and
// error messages come from users, and the page's policy forbids inline script anyway.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | undefined>;

/** An element: `h("button", {type: "button", onclick: go}, "Save")`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent: Element, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(parent: Element, ...children: (Child | Child[])[]): void {
  parent.replaceChildren();
  append(parent, children);
}

let fieldIds = 0;

/** A labelled field; the label is tied to the control for screen readers. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): HTMLElement {
  fieldIds += 1;
  control.id ||= `field-${fieldIds}`;
  const parts: Child[] = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintId = `${control.id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(options: string[], value: string, attrs: Attrs = {}): HTMLSelectElement {
  return h(
    "select",
    attrs,
    options.map((o) => h("option", { value: o, selected: o === value }, o)),
  );
}

/** A table with a caption (visually hidden if asked), headers and rows. */
export function table(caption: string, headers: string[], rows: Child[][]): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))
          : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "Nothing here")),
      ),
    ),
  );
}

export function when(value: string | null | undefined): string {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}

export function button(label: string, onclick: () => void, attrs: Attrs = {}): HTMLButtonElement {
  return h("button", { type: "button", ...attrs, onclick: () => onclick() }, label);
}

export function link(label: string, href: string): HTMLAnchorElement {
  return h("a", { href }, label);
}
