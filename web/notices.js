// Short messages in the lower right corner, such as "Created job …1a2b3c4d".

const NOTICE_LIFETIME_MS = 6000;
const MAX_NOTICES = 3;

// Returns notify(text, { tone, actionLabel, onAction }). tone is "info" or "error". A notice
// disappears after NOTICE_LIFETIME_MS unless focus is inside it, and only the newest
// MAX_NOTICES stay on screen.
export function createNotifier(container) {
  function removeLater(notice) {
    setTimeout(() => {
      if (notice.contains(document.activeElement)) {
        removeLater(notice);
      } else {
        notice.remove();
      }
    }, NOTICE_LIFETIME_MS);
  }

  return function notify(text, { tone = "info", actionLabel = null, onAction = null } = {}) {
    const notice = document.createElement("div");
    notice.className = "notice";
    notice.dataset.tone = tone;
    notice.dataset.testid = "notice";

    const paragraph = document.createElement("p");
    paragraph.textContent = text;
    notice.append(paragraph);

    if (actionLabel !== null && onAction !== null) {
      const actionButton = document.createElement("button");
      actionButton.type = "button";
      actionButton.textContent = actionLabel;
      actionButton.addEventListener("click", () => {
        notice.remove();
        onAction();
      });
      notice.append(actionButton);
    }

    const dismissButton = document.createElement("button");
    dismissButton.type = "button";
    dismissButton.className = "notice-dismiss";
    dismissButton.textContent = "Dismiss";
    dismissButton.addEventListener("click", () => notice.remove());
    notice.append(dismissButton);

    container.append(notice);
    while (container.children.length > MAX_NOTICES) {
      container.firstElementChild.remove();
    }
    removeLater(notice);
  };
}
