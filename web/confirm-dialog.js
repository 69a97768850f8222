// A confirm step for destructive actions, shown in <dialog data-confirm-dialog>.

import { requireElement } from "./dom.js";

// Returns askToConfirm({ title, message, confirmLabel }), which resolves to true only when
// the confirm button was pressed. Escape and "Go back" resolve to false.
export function createConfirmDialog(dialog) {
  const title = requireElement(dialog, "[data-confirm-title]");
  const message = requireElement(dialog, "[data-confirm-message]");
  const confirmButton = requireElement(dialog, "[data-confirm-yes]");

  return function askToConfirm({ title: titleText, message: messageText, confirmLabel }) {
    if (dialog.open) {
      return Promise.resolve(false);
    }
    title.textContent = titleText;
    message.textContent = messageText;
    confirmButton.textContent = confirmLabel;
    dialog.returnValue = "";

    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
      dialog.showModal();
    });
  };
}
