// The "New job" dialog: presets, client-side checks, POST /jobs and server error display.

import { requireElement, setFieldError } from "./dom.js";
import { shortId } from "./format.js";
import {
  FORM_FIELDS,
  buildJobRequest,
  formFieldForApiField,
  formatLocalDateTime,
  parsePayload,
  presetFormValues,
} from "./job-request.js";

// A fresh "at a date and time" choice starts this far in the future.
const DEFAULT_SCHEDULE_LEAD_MS = 60_000;

export function createNewJobForm({ dialog, createJob, notify, onCreated, onOpenJob }) {
  const form = requireElement(dialog, "[data-new-job-form]");
  const submitButton = requireElement(form, 'button[type="submit"]');
  const typeSelect = requireElement(form, 'select[name="type"]');
  const generalError = requireElement(form, "[data-form-error]");
  const errorElements = new Map(
    [...form.querySelectorAll("[data-error-for]")].map((element) => [element.dataset.errorFor, element]),
  );

  let submitting = false;
  let payloadValid = true;

  function field(name) {
    return form.elements.namedItem(name);
  }

  function readValues() {
    const values = {};
    for (const name of FORM_FIELDS) {
      values[name] = field(name).value;
    }
    return values;
  }

  function ensureTypeOption(type) {
    if (type !== "" && ![...typeSelect.options].some((option) => option.value === type)) {
      typeSelect.add(new Option(type, type));
    }
  }

  function writeValues(values) {
    ensureTypeOption(values.type);
    for (const name of FORM_FIELDS) {
      field(name).value = values[name];
    }
    clearErrors();
    syncScheduleInputs();
    checkPayload();
  }

  function updateSubmitButton() {
    submitButton.disabled = submitting || !payloadValid;
    submitButton.textContent = submitting ? "Creating…" : "Create job";
  }

  function showFieldError(name, message) {
    const element = errorElements.get(name);
    const input = field(name);
    if (element === undefined || input === null) {
      return false;
    }
    setFieldError(element, message);
    input.setAttribute("aria-invalid", message === "" ? "false" : "true");
    return true;
  }

  function clearErrors() {
    for (const name of errorElements.keys()) {
      showFieldError(name, "");
    }
    setFieldError(generalError, "");
  }

  function checkPayload() {
    const { error } = parsePayload(field("payload").value);
    payloadValid = error === undefined;
    showFieldError("payload", error ?? "");
    updateSubmitButton();
  }

  function syncScheduleInputs() {
    const mode = field("scheduleMode").value;
    const scheduleAt = field("scheduleAt");
    const delay = field("delaySeconds");
    scheduleAt.disabled = mode !== "at";
    delay.disabled = mode !== "delay";
    if (mode === "at" && scheduleAt.value === "") {
      scheduleAt.value = formatLocalDateTime(new Date(Date.now() + DEFAULT_SCHEDULE_LEAD_MS));
    }
    if (mode !== "at") {
      showFieldError("scheduleAt", "");
    }
    if (mode !== "delay") {
      showFieldError("delaySeconds", "");
    }
  }

  function showErrors(errors) {
    let firstField = null;
    for (const { field: name, message } of errors) {
      if (showFieldError(name, message)) {
        firstField ??= name;
      } else {
        setFieldError(generalError, message);
      }
    }
    if (firstField !== null) {
      field(firstField).focus();
    }
  }

  function showServerError(error) {
    const name = formFieldForApiField(error.field, field("scheduleMode").value);
    if (name !== null && showFieldError(name, error.message)) {
      setFieldError(generalError, "The server rejected the job. See the highlighted field.");
      field(name).focus();
      return;
    }
    const prefix = error.status === 0 ? "" : "The server rejected the job: ";
    setFieldError(generalError, `${prefix}${error.message}`);
  }

  async function submit() {
    if (submitting) {
      return;
    }
    clearErrors();
    const { request, errors } = buildJobRequest(readValues());
    if (errors.length > 0) {
      showErrors(errors);
      return;
    }

    submitting = true;
    updateSubmitButton();
    try {
      const job = await createJob(request);
      dialog.close();
      onCreated(job);
      notify(`Created job ${shortId(job.id)} (${job.type}).`, {
        actionLabel: "Show details",
        onAction: () => onOpenJob(job.id),
      });
    } catch (error) {
      showServerError(error);
    } finally {
      submitting = false;
      updateSubmitButton();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });

  form.addEventListener("input", (event) => {
    const name = event.target.name;
    if (name === "payload") {
      checkPayload();
    } else if (errorElements.has(name)) {
      showFieldError(name, "");
    }
  });

  form.addEventListener("change", (event) => {
    if (event.target.name === "scheduleMode") {
      syncScheduleInputs();
    }
  });

  form.addEventListener("click", (event) => {
    const presetButton = event.target.closest("[data-preset]");
    if (presetButton !== null) {
      writeValues(presetFormValues(presetButton.dataset.preset));
    }
  });

  function open() {
    if (dialog.open) {
      return;
    }
    setFieldError(generalError, "");
    syncScheduleInputs();
    checkPayload();
    dialog.showModal();
    typeSelect.focus();
  }

  updateSubmitButton();
  return { open, close: () => dialog.close() };
}
