// Steward's progressive enhancements. Every page works without this file.
"use strict";

// Forms marked data-confirm ask before they submit.
// A submit button may carry its own data-confirm (a form with both "save" and "remove").
document.addEventListener("submit", (event) => {
  const form = event.target;
  const button = event.submitter;
  const question = (button && button.dataset && button.dataset.confirm) || (form instanceof HTMLFormElement && form.dataset.confirm);
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  // Work that takes seconds shows that it is under way, and a second click cannot send it twice. Disabled after the
  // browser has taken the form's data, so the button's own name and value still go with it.
  if (form instanceof HTMLFormElement && form.method === "post" && !form.dataset.noBusy) {
    window.setTimeout(() => {
      for (const control of form.querySelectorAll("button[type=submit], button:not([type])")) {
        control.disabled = true;
        if (control === button) {
          control.dataset.label = control.textContent;
          control.textContent = "Working…";
        }
      }
      form.setAttribute("aria-busy", "true");
      form.classList.add("busy");
    }, 0);
  }
});

// A page restored from the back/forward cache gets its buttons back.
window.addEventListener("pageshow", () => {
  for (const form of document.querySelectorAll("form.busy")) {
    form.classList.remove("busy");
    form.removeAttribute("aria-busy");
    for (const control of form.querySelectorAll("button")) {
      control.disabled = false;
      if (control.dataset.label) control.textContent = control.dataset.label;
    }
  }
});

// "/" jumps to the search box (unless the reader is typing somewhere).
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const active = document.activeElement;
  if (active && (active.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName))) return;
  const box = document.getElementById("search-q");
  if (box) {
    event.preventDefault();
    box.focus();
  }
});

// <time datetime> elements show the reader's local time as a tooltip.
for (const element of document.querySelectorAll("time[datetime]")) {
  const when = new Date(element.getAttribute("datetime"));
  if (!Number.isNaN(when.getTime())) element.title = when.toLocaleString();
}

// Tables with class "sortable" sort by a column when its header is activated.
for (const table of document.querySelectorAll("table.sortable")) {
  const headers = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
  headers.forEach((header, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.textContent = header.textContent;
    header.textContent = "";
    header.appendChild(button);
    header.setAttribute("aria-sort", "none");
    button.addEventListener("click", () => {
      const ascending = header.getAttribute("aria-sort") !== "ascending";
      headers.forEach((other) => other.setAttribute("aria-sort", "none"));
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const key = (row) => {
        const cell = row.cells[index];
        return cell ? (cell.dataset.sort ?? cell.textContent.trim()) : "";
      };
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const nx = Number(x), ny = Number(y);
        const order = x !== "" && y !== "" && !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
}

// A running job's page follows its log, progress and state over Server-Sent Events.
const job = document.querySelector(".job[data-job-id]");
if (job && job.dataset.active === "true" && "EventSource" in window) {
  const log = document.getElementById("job-log");
  const bar = document.getElementById("job-progress");
  const message = document.getElementById("job-progress-message");
  const state = document.getElementById("job-state");
  const source = new EventSource(`/jobs/${job.dataset.jobId}/events?after=${job.dataset.lastSeq || 0}`);
  source.addEventListener("log", (event) => {
    const data = JSON.parse(event.data);
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(document.createTextNode(data.text));
    if (atBottom) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("progress", (event) => {
    const data = JSON.parse(event.data);
    if (typeof data.percent === "number") bar.value = data.percent;
    message.textContent = data.message || "";
  });
  source.addEventListener("end", (event) => {
    const data = JSON.parse(event.data);
    source.close();
    state.textContent = data.state;
    state.className = `badge badge-${data.state}`;
    // Reload once so the final facts (duration, error) come from the server.
    window.setTimeout(() => window.location.reload(), 800);
  });
}

// Sections marked data-refresh="SECONDS" reload their own content from the server while the tab is visible.
// Without JavaScript the page is complete; it is only not refreshed.
for (const section of document.querySelectorAll("[data-refresh][id]")) {
  const seconds = Math.max(5, Number(section.dataset.refresh) || 30);
  const status = section.querySelector(".refresh-status");
  const refresh = async () => {
    if (document.hidden) return;
    try {
      const response = await fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(section.id);
      if (fresh) {
        section.replaceChildren(...fresh.childNodes);
        const now = section.querySelector(".refresh-status");
        if (now) now.textContent = `Refreshed at ${new Date().toLocaleTimeString()}; every ${seconds} s.`;
      }
    } catch (error) {
      const now = section.querySelector(".refresh-status") || status;
      if (now) now.textContent = `Refresh failed (${error.message}); showing the last figures.`;
    }
  };
  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
}

// A preview beside an editor (data-preview-of names the form) follows the fields as they change: the form is sent
// with intent=preview, as its "Preview without saving" button does, and the preview section of the answer replaces
// this one. Nothing is saved.
for (const preview of document.querySelectorAll("[data-preview-of]")) {
  const form = document.getElementById(preview.dataset.previewOf);
  if (!(form instanceof HTMLFormElement)) continue;
  let timer = 0;
  let generation = 0;
  const refresh = async () => {
    const mine = ++generation;
    const body = new URLSearchParams(new FormData(form));
    body.set("intent", "preview");
    preview.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(form.action, { method: "POST", body, credentials: "same-origin", headers: { "X-Requested-With": "preview" } });
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(preview.id);
      if (fresh && mine === generation) preview.innerHTML = fresh.innerHTML;
    } catch (error) {
      // The preview stays as it was; the button still works.
    } finally {
      if (mine === generation) preview.removeAttribute("aria-busy");
    }
  };
  const soon = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 600);
  };
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
}

// Copy buttons: data-copy names the element whose text goes to the clipboard (the journalctl command on a host's logs).
for (const button of document.querySelectorAll("button[data-copy]")) {
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    try {
      await navigator.clipboard.writeText(source.textContent);
      button.textContent = "Copied";
    } catch (error) {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
  });
}

// Logs: "Follow new lines" opens a Server-Sent Events stream of the lines that match the page's filters and puts
// each new one at the top of the table; pressing it again pauses (the stream closes and resumes where it stopped).
const followButton = document.getElementById("log-follow");
if (followButton && "EventSource" in window) {
  const body = document.querySelector("#log-lines tbody");
  const status = document.getElementById("log-follow-status");
  let url = followButton.dataset.follow;
  let source = null;
  const cell = (row, text, className) => {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    row.append(td);
    return td;
  };
  const stop = () => {
    if (source) source.close();
    source = null;
    followButton.textContent = "Follow new lines";
    followButton.setAttribute("aria-pressed", "false");
    status.textContent = "paused";
  };
  const start = () => {
    source = new EventSource(url);
    followButton.textContent = "Pause";
    followButton.setAttribute("aria-pressed", "true");
    status.textContent = "following…";
    source.addEventListener("line", (event) => {
      const line = JSON.parse(event.data);
      // Resume after the newest block seen, not from the page's start.
      url = url.replace(/after=[^&]*/, `after=${encodeURIComponent(event.lastEventId)}`);
      document.getElementById("log-empty")?.remove();
      const row = document.createElement("tr");
      row.className = "followed" + (line.priority <= 3 ? " severe" : "");
      cell(row, line.time.replace("T", " ").replace(/\.\d+Z$/, " UTC"));
      cell(row, line.host);
      cell(row, line.priority_name, "priority");
      cell(row, line.unit);
      cell(row, line.identifier + (line.pid === null ? "" : `[${line.pid}]`));
      cell(row, line.message, "message");
      body.prepend(row);
      status.textContent = `following: last line at ${line.time}`;
    });
  };
  followButton.addEventListener("click", () => (source ? stop() : start()));
}
