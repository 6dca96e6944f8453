// The dashboard's behaviour: refresh the cards while anything is changing, launch, renew, save as image,
// relaunch and delete without leaving the page, show events and logs, keep the message to the room current,
// and report every failure in words.
"use strict";
const NOTICE_EVERY_MS = 5000; // how soon a new message to the room reaches an open dashboard
const csrf = () => document.getElementById("sessions").dataset.csrf;
const message = (text, isError) => {
  const box = document.getElementById("message");
  box.textContent = text;
  box.classList.toggle("error", Boolean(isError));
};

async function post(url, fields) {
  const body = new URLSearchParams({ csrf: csrf(), ...fields });
  const response = await fetch(url, { method: "POST", body, headers: { "X-Requested-With": "portal" } });
  if (response.status === 401) { location.href = "/science-portal/login"; }
  return { ok: response.ok, text: (await response.text()).trim() };
}

async function refresh() {
  const response = await fetch("/science-portal/fragments/sessions");
  if (response.status === 401) { location.href = "/science-portal/login"; return; }
  if (response.ok) { document.getElementById("sessions").innerHTML = await response.text(); }
  const load = await fetch("/science-portal/fragments/load");
  if (load.ok) { document.getElementById("load").innerHTML = await load.text(); }
  await refreshNotice();
}

// The banner is replaced only when the message changed (each one has its key): a screen reader then
// announces a new message once, not every poll.
async function refreshNotice() {
  const response = await fetch("/science-portal/fragments/notice");
  if (!response.ok) return;
  const incoming = document.createElement("template");
  incoming.innerHTML = (await response.text()).trim();
  const box = document.getElementById("notice");
  const key = (element) => (element ? element.dataset.key : "");
  if (key(incoming.content.firstElementChild) !== key(box.firstElementChild)) { box.replaceChildren(incoming.content); }
}

function watchNotice() {
  setTimeout(async () => {
    try { if (!document.hidden) { await refreshNotice(); } } catch { /* a dropped request: the next poll asks again */ }
    watchNotice();
  }, NOTICE_EVERY_MS);
}

// Poll every 3 s while a session is starting or ending, else every 30 s (for expiry and figures);
// never while the page is hidden.
function schedule() {
  const busy = document.querySelector('.card[data-status="Pending"], .card[data-status="Terminating"]');
  setTimeout(async () => { if (!document.hidden) { await refresh(); } schedule(); }, busy ? 3000 : 30000);
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.hasAttribute("data-refresh")) { await refresh(); return; }
  const card = button.closest(".card");
  if (!card) return;
  const id = card.dataset.id;
  const name = card.querySelector("h3").textContent;
  if (button.dataset.action === "delete") {
    if (!confirm(`Delete session ${name} (${id})? Its container goes; /arc is kept.`)) return;
    button.disabled = true;
    const result = await post(`/science-portal/sessions/${id}/delete`, {});
    message(result.ok ? `Deleted ${name}.` : `Delete failed: ${result.text}`, !result.ok);
    await refresh();
  } else if (button.dataset.action === "relaunch") {
    button.disabled = true;
    const result = await post(`/science-portal/sessions/${id}/relaunch`, {});
    message(result.ok ? `Relaunching ${name} (${result.text}); it shows Running when it answers.` : `Relaunch failed: ${result.text}`, !result.ok);
    await refresh();
  } else if (button.dataset.action === "edit") {
    editInForm(card);
  } else if (button.dataset.action === "renew") {
    const result = await post(`/science-portal/sessions/${id}/renew`, {});
    message(result.ok ? `${name}: ${result.text}` : `Renew failed: ${result.text}`, !result.ok);
    await refresh();
  } else if (button.dataset.action === "snapshot") {
    if (!confirm(`Save ${name} as an image? It pauses while its files are copied; /arc and /scratch are not in it.`)) return;
    button.disabled = true; button.textContent = "Saving…";
    const result = await post(`/science-portal/sessions/${id}/snapshot`, {});
    if (result.ok) {
      addImage(result.text, card.dataset.type);
      message(`${name} saved as image ${result.text}: choose it in the launch form below.`);
    } else {
      message(`Save as image failed: ${result.text}`, true);
    }
    await refresh();
  } else if (button.dataset.view) {
    const response = await fetch(`/science-portal/sessions/${id}/${button.dataset.view}`);
    const dialog = document.getElementById("text-view");
    dialog.querySelector("h2").textContent = `${button.dataset.view} of ${name}`;
    dialog.querySelector("pre").textContent = await response.text();
    dialog.showModal();
  }
});

// A saved image joins the launch form's menu at once (the page lists images only when it loads).
function addImage(imageName, types) {
  const menu = document.getElementById("image");
  if (!menu || [...menu.options].some((option) => option.value === imageName)) return;
  const option = new Option(imageName, imageName);
  option.dataset.types = types;
  menu.add(option);
  if (form) form.dispatchEvent(new Event("change"));
}

// The launch form: images of the chosen type, Fixed only where the type offers it, skaha's name rule.
const form = document.getElementById("launch");
let editInForm = () => {}; // Edit and relaunch: an ended card's settings into the form (set below, with the form)
if (form) {
  const type = form.elements.type, image = form.elements.image, name = form.elements.name;
  const fixedTypes = document.getElementById("resources").dataset.fixedTypes.split(",");
  const sync = () => {
    let first = null;
    for (const option of image.options) {
      const fits = option.dataset.types.split(",").includes(type.value);
      option.hidden = !fits; option.disabled = !fits;
      if (fits && !first) first = option;
    }
    if (!image.selectedOptions[0] || image.selectedOptions[0].disabled) { image.value = first ? first.value : ""; }
    const custom = form.elements.custom_image.value.trim() !== "";
    image.required = !custom; image.disabled = custom;
    document.getElementById("no-image").hidden = Boolean(first) || custom;
    const count = document.querySelectorAll(`.card`).length;
    if (/^[a-z]+[0-9]*$/.test(name.value)) { name.value = `${type.value}${count + 1}`; }
    const fixedOk = fixedTypes.includes(type.value);
    form.querySelector('input[value="fixed"]').disabled = !fixedOk;
    if (!fixedOk) form.querySelector('input[value="flexible"]').checked = true;
    document.getElementById("fixed").hidden = !form.querySelector('input[value="fixed"]').checked;
  };
  form.addEventListener("change", sync);
  form.elements.custom_image.addEventListener("input", sync);
  sync();
  const choose = (select, value) => {
    if (select && [...select.options].some((option) => option.value === value)) select.value = value;
  };
  editInForm = (card) => {
    const old = card.dataset;
    type.value = old.type;
    sync(); // the images of its type
    // The menu names a local image as the catalogue does (localhost/project/name:tag): a session launched by its
    // engine name (project/name:tag) finds it under that name.
    const offered = (value) => [...image.options].some((option) => option.value === value && !option.disabled);
    const listedAs = [old.image, `localhost/${old.image}`].find(offered);
    const listed = listedAs !== undefined;
    if (listed) image.value = listedAs;
    form.elements.custom_image.value = listed ? "" : old.image; // not offered here: named under Advanced
    document.getElementById("advanced").open = !listed;
    const fixed = old.fixed === "true" && fixedTypes.includes(old.type);
    form.querySelector(`input[name="resources"][value="${fixed ? "fixed" : "flexible"}"]`).checked = true;
    if (fixed) { choose(form.elements.cores, old.cores); choose(form.elements.ram, old.ram); }
    choose(form.elements.gpus, old.gpus || "0");
    sync();
    name.value = old.name; // last: sync names a session after its type
    form.scrollIntoView({ block: "start" });
    name.focus();
    message(`The launch form holds the settings of ${old.name}: change what you need, then Launch.` +
      (listed ? "" : " If its image is from a private registry, give the username and secret again, under Advanced."));
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("launch-error");
    error.hidden = true;
    if (!/^[A-Za-z0-9-]+$/.test(name.value)) {
      error.textContent = "name can only contain alpha-numeric chars and '-'"; error.hidden = false; name.focus(); return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true; button.textContent = "Launching…";
    const fields = Object.fromEntries(new FormData(form));
    const result = await post("/science-portal/launch", fields);
    button.disabled = false; button.textContent = "Launch";
    if (!result.ok) { error.textContent = result.text; error.hidden = false; return; }
    message(`Launching ${name.value} (${result.text}); it shows Running when it answers.`);
    await refresh();
  });
}
// An admin's form for the message to the room: set it or clear it, and see it at once.
const broadcast = document.getElementById("broadcast");
if (broadcast) {
  broadcast.addEventListener("submit", async (event) => {
    event.preventDefault();
    const clearing = Boolean(event.submitter && event.submitter.hasAttribute("data-clear"));
    const error = document.getElementById("broadcast-error");
    error.hidden = true;
    const text = broadcast.elements.namedItem("text");
    const result = clearing
      ? await post("/science-portal/broadcast/clear", {})
      : await post("/science-portal/broadcast", { text: text.value });
    if (!result.ok) { error.textContent = result.text; error.hidden = false; return; }
    if (clearing) text.value = "";
    message(result.text);
    await refreshNotice();
  });
}
schedule();
watchNotice();
