// DOM helpers. Job data reaches the page only through textContent, value and setAttribute.

export function requireElement(root, selector) {
  const element = root.querySelector(selector);
  if (element === null) {
    throw new Error(`The dashboard markup has no element matching ${selector}.`);
  }
  return element;
}

// Returns a deep copy of the first element inside <template data-template="NAME">.
export function cloneTemplate(name) {
  const template = requireElement(document, `template[data-template="${name}"]`);
  const element = template.content.firstElementChild;
  if (element === null) {
    throw new Error(`The template ${name} is empty.`);
  }
  return element.cloneNode(true);
}

export function setTime(element, iso, text) {
  element.textContent = text;
  if (iso) {
    element.setAttribute("datetime", iso);
    element.setAttribute("title", iso);
  } else {
    element.removeAttribute("datetime");
    element.removeAttribute("title");
  }
}

export function setStatusBadge(element, status) {
  element.textContent = status ?? "UNKNOWN";
  element.dataset.status = status ?? "UNKNOWN";
}

export function setFieldError(element, message) {
  element.textContent = message;
  element.hidden = message === "";
}
