// Small DOM helpers for the screens. Everything is built with createElement and
// textContent — never innerHTML — so text from other members (decrypted content) can
// never become markup, and nothing needs an inline script or style (CSP).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let fieldCount = 0;
/** A labelled form field: <label for> + control, so screen readers name every input. */
export function field(label, control, hint) {
  const id = control.id || `f${++fieldCount}`;
  control.id = id;
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

/** A form whose submit runs `action(form)` with the button disabled and errors shown. */
export function form(attrs, children, action) {
  const error = h("p", { class: "error", role: "alert" });
  const el = h("form", attrs, ...children, error);
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const buttons = el.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    error.textContent = "";
    try {
      await action(el);
    } catch (err) {
      error.textContent = describe(err);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
  return el;
}

/** A refusal as a member reads it: the message, and the protocol code for support. */
export function describe(err) {
  const code = err?.code ? ` (${err.code})` : "";
  const msg = String(err?.message ?? err).replace(/^[a-z_.]+: /, "");
  return `${msg}${code}`;
}

export const time = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A member id shown short ("@bob") with the full id for hover and screen readers. */
export const who = (mid) => h("span", { class: "who", title: mid }, mid.split(":")[0]);

export function section(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h3", {}, title), ...children);
}

export function setStatus(text, state = "ready") {
  const status = document.getElementById("status");
  status.dataset.state = state;
  status.textContent = text;
}
