// The admin page's behaviour: refresh the rows and the load every few seconds (the same filter and order as
// the page's address), act on a row or many without leaving the page, show events and logs, and report every
// failure in words. Without it the page still works: its forms post and come back, a delete asks on a page.
"use strict";
const live = () => document.getElementById("admin-live");
const message = (text, isError) => {
  const box = document.getElementById("message");
  box.textContent = text;
  box.classList.toggle("error", Boolean(isError));
};

async function post(form, extra) {
  const body = new URLSearchParams(new FormData(form));
  for (const [key, value] of Object.entries(extra || {})) body.set(key, value);
  const response = await fetch(form.action, { method: "POST", body, headers: { "X-Requested-With": "portal" } });
  if (response.status === 401) { location.href = `/science-portal/login?next=${encodeURIComponent(location.pathname + location.search)}`; }
  return { ok: response.ok, text: (await response.text()).trim() };
}

async function refresh() {
  const response = await fetch(`/science-portal/admin/fragments/sessions${location.search}`);
  if (response.status === 401) { location.href = "/science-portal/login?next=%2Fscience-portal%2Fadmin"; return; }
  if (response.ok) { live().innerHTML = await response.text(); }
}

// Every 5 s while the page is seen (an admin watches a room: sessions start, end and get busy all the time).
function schedule() {
  setTimeout(async () => { if (!document.hidden) { await refresh(); } schedule(); }, 5000);
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  const row = form.closest("tr[data-ref]");
  if (row) {
    event.preventDefault();
    const who = `${row.dataset.name} of ${row.dataset.user} (${row.dataset.ref})`;
    if (form.dataset.action === "delete") {
      if (!confirm(`Delete ${who}? Its container goes; /arc is kept.`)) return;
      form.querySelector("button").disabled = true;
      const result = await post(form, { confirmed: "yes" });
      message(result.ok ? `Deleted ${who}.` : `Delete failed: ${result.text}`, !result.ok);
    } else {
      const result = await post(form);
      message(result.ok ? result.text : `Renew failed: ${result.text}`, !result.ok);
    }
    await refresh();
  } else if (form.hasAttribute("data-bulk")) {
    event.preventDefault();
    const result = await post(form);
    message(result.ok ? result.text : `Not deleted: ${result.text}`, !result.ok);
    if (result.ok) form.querySelector('input[name="confirm"]').value = "";
    await refresh();
  }
});

document.addEventListener("click", async (event) => {
  const target = event.target.closest("[data-view], [data-refresh]");
  if (!target) return;
  if (target.hasAttribute("data-refresh")) { await refresh(); return; }
  event.preventDefault();
  const row = target.closest("tr[data-ref]");
  const response = await fetch(target.getAttribute("href"));
  const dialog = document.getElementById("text-view");
  dialog.querySelector("h2").textContent = `${target.dataset.view} of ${row.dataset.name} of ${row.dataset.user}`;
  dialog.querySelector("pre").textContent = await response.text();
  dialog.showModal();
});

schedule();
