// Rules for the job actions: the statuses in which the server allows each one, and the text of
// its confirm dialog.

export const JOB_ACTIONS = {
  retry: {
    allowedStatuses: ["FAILED", "CANCELLED"],
    title: "Retry this job?",
    confirmLabel: "Retry job",
    describe: (id) => `Job ${id} goes back to the queue and runs again.`,
    done: (id) => `Job ${id} will run again.`,
  },
  cancel: {
    allowedStatuses: ["PENDING", "QUEUED", "RUNNING"],
    title: "Cancel this job?",
    confirmLabel: "Cancel job",
    describe: (id) => `Job ${id} is cancelled and will not run again unless you retry it.`,
    done: (id) => `Job ${id} was cancelled.`,
  },
  delete: {
    allowedStatuses: ["COMPLETED", "FAILED", "CANCELLED"],
    title: "Delete this job?",
    confirmLabel: "Delete job",
    describe: (id) => `Job ${id} is removed from the server. This cannot be undone.`,
    done: (id) => `Job ${id} was deleted.`,
  },
};

export function isActionAllowed(action, status) {
  const rule = JOB_ACTIONS[action];
  return rule !== undefined && rule.allowedStatuses.includes(status);
}
