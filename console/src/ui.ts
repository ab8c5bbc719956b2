// What every page shares: the main area, errors shown where they happened, a polite
// status line, and a cleanup hook for what a page leaves running (a live subscription).

import { DocstoreError } from "../../sdk/typescript/src/index.js";
import { fill, h } from "./dom.js";

export function main(): HTMLElement {
  return document.getElementById("main") as HTMLElement;
}

/** Show a page: its heading (focused, so screen readers announce the new page). */
export function page(title: string, ...intro: (Node | string)[]): HTMLElement {
  const heading = h("h1", { tabindex: -1 }, title);
  fill(main(), heading, ...intro);
  document.title = `${title} · Docstore console`;
  heading.focus();
  return main();
}

/** A problem as people read it: the API's detail and each field error. */
export function explain(error: unknown): (Node | string)[] {
  if (error instanceof DocstoreError) {
    const fields = error.problem.errors ?? [];
    return [
      h("p", {}, error.problem.detail || error.message),
      fields.length
        ? h(
            "ul",
            {},
            fields.map((f) => h("li", {}, h("code", {}, f.loc.join(".")), ": ", f.msg)),
          )
        : "",
    ];
  }
  return [h("p", {}, error instanceof Error ? error.message : String(error))];
}

/** An alert box for an error, to put next to the form it is about. */
export function alertBox(): { element: HTMLElement; show(error: unknown): void; clear(): void } {
  const element = h("div", { class: "alert", role: "alert", hidden: true });
  return {
    element,
    show(error: unknown) {
      fill(element, ...explain(error));
      element.hidden = false;
    },
    clear() {
      fill(element);
      element.hidden = true;
    },
  };
}

let fading: ReturnType<typeof setTimeout> | undefined;

/** A short message for the status line (read out politely), gone after a while. */
export function notify(message: string): void {
  const status = document.getElementById("status");
  if (!status) return;
  status.textContent = message;
  clearTimeout(fading);
  fading = setTimeout(() => (status.textContent = ""), 8000);
}

let cleanups: (() => void)[] = [];
let navigation = 0;

/** Run `stop` when the next page replaces this one. */
export function onLeave(stop: () => void): void {
  cleanups.push(stop);
}

/** Leave the page shown: stop what it left running; pages still loading are stale. */
export function leave(): void {
  navigation += 1;
  for (const stop of cleanups) stop();
  cleanups = [];
}

/** Draw a page again in place (after an action): what the old one left running stops. */
export async function redraw(draw: () => Promise<void>): Promise<void> {
  leave();
  await draw();
}

/** For a page that is loading: whether it is still the one to show (no navigation since). */
export function current(): () => boolean {
  const mine = navigation;
  return () => mine === navigation;
}

/** Run an action from a button, once at a time, reporting an error in `alert`. The button
 * stays focusable while busy (aria-disabled, not disabled, which would drop the focus). */
export async function act(
  button: HTMLButtonElement | null,
  alert: { show(error: unknown): void; clear(): void },
  work: () => Promise<void>,
): Promise<void> {
  if (button?.getAttribute("aria-disabled") === "true") return;
  button?.setAttribute("aria-disabled", "true");
  alert.clear();
  try {
    await work();
  } catch (error) {
    alert.show(error);
  } finally {
    button?.removeAttribute("aria-disabled");
  }
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** Parse a JSON text field, or throw an error naming the field. */
export function parseJson(label: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${label} is not valid JSON: ${(error as Error).message}`);
  }
}
