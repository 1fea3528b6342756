// Ringmaster wallboard: one tenant's queues, calls and agents, live, with the
// supervisor's controls. Hand-written, no framework: it reads the board from
// /api/live/{tenant}/stream (Server-Sent Events read with fetch(), as
// EventSource cannot send the Authorization header) and acts through the API.
"use strict";

(() => {
  const TOKEN_KEY = "ringmaster.wallboard.token";
  const TENANT_KEY = "ringmaster.wallboard.tenant";
  const RECONNECT_MIN_MS = 500;
  // A PBX confirms a presence change in milliseconds; after this long it will not,
  // (it does not know the agent, say) and the supervisor should know.
  const CONFIRM_WAIT_MS = 30000;
  const RECONNECT_MAX_MS = 10000;
  // The stream sends a comment every 15 s: silence for longer means a dead link.
  const SILENCE_MS = 40000;
  const PAUSE_REASONS = ["break", "lunch", "meeting", "training", "admin"];
  const STATE_NAMES = {
    available: "available",
    ringing: "ringing",
    busy: "busy",
    wrapup: "wrap-up",
    paused: "paused",
    logged_out: "logged out",
  };
  const STATE_ORDER = ["available", "ringing", "busy", "wrapup", "paused", "logged_out"];

  const $ = (id) => document.getElementById(id);

  let token = localStorage.getItem(TOKEN_KEY);
  let tenantId = null;
  let board = null;
  let boardReceived = 0; // Date.now() when `board` came
  let stream = null; // the AbortController of the stream being read
  let retryMs = RECONNECT_MIN_MS;
  // Presence requested from this page, by extension, until the board shows it.
  const requested = new Map();

  // --- the DOM, built from text only (names and caller ids come from the PBX) ---

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
  }

  // --- errors ---

  function describe(status, body) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail
        .map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`)
        .join("; ");
    }
    return `the API answered ${status}`;
  }

  function showError(message) {
    $("error-text").textContent = message;
    $("error").hidden = false;
  }

  $("error-close").addEventListener("click", () => {
    $("error").hidden = true;
  });

  // --- the API ---

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function headers(extra) {
    const all = { Accept: "application/json", ...(extra || {}) };
    if (token) all.Authorization = `Bearer ${token}`;
    return all;
  }

  async function api(method, path, body) {
    const options = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
    if (body !== undefined) options.body = JSON.stringify(body);
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      throw new ApiError(0, "the daemon cannot be reached");
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (error) {
      answer = null;
    }
    if (response.status === 401) {
      signIn("The token was refused: sign in again.");
      throw new ApiError(401, describe(401, answer));
    }
    if (!response.ok) throw new ApiError(response.status, describe(response.status, answer));
    return answer;
  }

  // --- signing in ---

  function signIn(message) {
    closeStream();
    $("board").hidden = true;
    $("tenant-picker").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
    setConnection("signed out", "signed-out");
    $("token").focus();
  }

  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    localStorage.setItem(TOKEN_KEY, token);
    start();
  });

  $("sign-out").addEventListener("click", (event) => {
    event.preventDefault();
    token = null;
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TENANT_KEY);
    signIn("");
  });

  async function start() {
    $("sign-in").hidden = true;
    $("sign-out").hidden = !token;
    let tenants;
    try {
      tenants = (await api("GET", "/api/tenants?limit=1000")).items;
    } catch (error) {
      if (error.status === 401) return; // the sign-in form is up
      setConnection("reconnecting", "reconnecting");
      showError(`Cannot read the tenants: ${error.message}`);
      setTimeout(start, retryMs);
      retryMs = Math.min(retryMs * 2, RECONNECT_MAX_MS);
      return;
    }
    $("error").hidden = true;
    if (!tenants.length) {
      showError("No tenant to show: provision one first.");
      return;
    }
    const select = $("tenant-select");
    select.replaceChildren(
      ...tenants.map((t) => el("option", { value: t.id, text: `${t.name} (${t.id})` })),
    );
    // A tenant token sees its own tenant only; an admin picks one.
    $("tenant-picker").hidden = tenants.length < 2;
    const wanted = Number(new URLSearchParams(location.hash.slice(1)).get("tenant"))
      || Number(localStorage.getItem(TENANT_KEY));
    const chosen = tenants.find((t) => t.id === wanted) || tenants[0];
    select.value = String(chosen.id);
    watch(chosen.id);
  }

  $("tenant-select").addEventListener("change", () => {
    watch(Number($("tenant-select").value));
  });

  // --- the stream ---

  function setConnection(text, state) {
    const node = $("connection");
    node.textContent = text;
    node.dataset.state = state;
  }

  function closeStream() {
    if (stream) stream.abort();
    stream = null;
  }

  function watch(id) {
    tenantId = id;
    localStorage.setItem(TENANT_KEY, String(id));
    board = null;
    requested.clear();
    closeStream();
    retryMs = RECONNECT_MIN_MS;
    connect();
  }

  async function connect() {
    const controller = new AbortController();
    stream = controller;
    const watched = tenantId;
    let silence = null;
    const quiet = () => {
      clearTimeout(silence);
      silence = setTimeout(() => controller.abort(), SILENCE_MS);
    };
    let failure = "the stream ended";
    try {
      quiet();
      const response = await fetch(`/api/live/${watched}/stream`, {
        headers: headers({ Accept: "text/event-stream" }),
        signal: controller.signal,
        cache: "no-store",
      });
      if (response.status === 401) {
        clearTimeout(silence);
        signIn("The token was refused: sign in again.");
        return;
      }
      if (!response.ok) {
        let answer = null;
        try {
          answer = await response.json();
        } catch (error) {
          answer = null;
        }
        failure = describe(response.status, answer);
        if (response.status === 404) showError(`Tenant ${watched}: ${failure}`);
      } else {
        await read(response.body.getReader(), controller, quiet);
      }
    } catch (error) {
      failure = "the daemon cannot be reached";
    }
    clearTimeout(silence);
    if (stream !== controller) return; // replaced (another tenant) or signed out
    setConnection("reconnecting…", "reconnecting");
    $("connection").title = failure;
    setTimeout(() => {
      if (stream === controller) connect();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, RECONNECT_MAX_MS);
  }

  async function read(reader, controller, quiet) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      quiet();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        message(block, controller);
      }
    }
  }

  function message(block, controller) {
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // a keepalive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (kind !== "board" || !data.length || stream !== controller) return;
    retryMs = RECONNECT_MIN_MS;
    setConnection("live", "live");
    $("connection").title = "";
    show(JSON.parse(data.join("\n")));
  }

  // --- rendering ---

  function show(next) {
    board = next;
    boardReceived = Date.now();
    $("tenant-name").textContent = board.tenant.name;
    document.title = `${board.tenant.name}: Ringmaster wallboard`;
    $("board").hidden = false;
    for (const agent of board.agents) {
      const asked = requested.get(agent.number);
      if (asked && settled(asked.state, agent.state)) requested.delete(agent.number);
    }
    $("queues").replaceChildren(...board.queues.map(queueCard));
    $("agents").replaceChildren(...board.agents.map(agentRow));
    tick();
  }

  function settled(asked, state) {
    if (asked === "available") return state !== "paused" && state !== "logged_out";
    return asked === state;
  }

  function elapsed() {
    return (Date.now() - boardReceived) / 1000;
  }

  function queueCard(queue) {
    const sl = queue.today.service_level_pct;
    const states = STATE_ORDER.filter((s) => queue.agents[s]).map((s) =>
      el("span", { class: `chip state-${s}`, "data-state": s }, `${queue.agents[s]} ${STATE_NAMES[s]}`));
    return el(
      "article",
      { class: `queue ${queue.status}`, "data-queue": queue.id },
      el("h2", {}, el("span", { class: "number", text: queue.number }), queue.name,
        queue.status === "inactive" ? " (inactive)" : ""),
      el(
        "div",
        { class: "figures" },
        figure("Waiting", String(queue.waiting), "q-waiting"),
        figure("Longest wait", "", "q-longest"),
        figure("SL today", sl === null ? "–" : `${Math.round(sl)}%`, "q-sl"),
      ),
      el("p", { class: "today" },
        "Today ", el("b", { text: queue.today.offered }), " offered · ",
        el("b", { class: "q-answered", text: queue.today.answered }), " answered · ",
        el("b", { text: queue.today.abandoned }), ` abandoned · SL ${queue.service_level_s} s`),
      el("div", { class: "states" }, ...states),
      queue.calls.length ? callTable(queue) : el("p", { class: "no-calls", text: "No call waiting" }),
    );
  }

  function figure(label, value, name) {
    return el("div", { class: "figure" },
      el("span", { class: `value ${name}`, text: value }),
      el("span", { class: "label", text: label }));
  }

  function callTable(queue) {
    return el(
      "table",
      { class: "calls" },
      el("thead", {}, el("tr", {}, ...["#", "Caller", "Wait", "State", "Pri", ""].map(
        (h) => el("th", { text: h })))),
      el("tbody", {}, ...queue.calls.map((call) => el(
        "tr",
        { "data-call": call.call_id },
        el("td", { text: call.position }),
        el("td", { class: "caller", text: call.caller_name || call.caller_id || call.did }),
        el("td", { class: "wait", "data-wait": call.wait_s, "data-sl": queue.service_level_s }),
        el("td", { class: "call-state",
          text: call.state === "ringing" ? `ringing ${call.ringing.join(", ")}` : "queued" }),
        el("td", { class: "priority", text: call.priority }),
        el("td", { class: "actions" },
          el("button", { type: "button", onclick: () => moveCall(queue, call) }, "Move"),
          el("button", { type: "button", onclick: () => prioritise(call) }, "Priority"),
          el("button", { type: "button", onclick: () => sendCall(call) }, "Send"),
          el("button", { type: "button", class: "danger", onclick: () => hangUp(call) }, "Hang up")),
      ))),
    );
  }

  function agentRow(agent) {
    const asked = requested.get(agent.number);
    const late = asked && Date.now() - asked.at >= CONFIRM_WAIT_MS;
    const label = STATE_NAMES[agent.state] || agent.state;
    const paused = agent.state === "paused";
    const out = agent.state === "logged_out";
    return el(
      "tr",
      { "data-agent": agent.number },
      el("td", { class: "number", text: agent.number }),
      el("td", { class: "name", text: agent.name }),
      el("td", {},
        el("span", { class: `state agent-state state-${agent.state}`, text: label }),
        paused && agent.reason ? el("span", { class: "reason", text: agent.reason }) : null,
        asked ? el("span", { class: late ? "pending unconfirmed" : "pending",
          text: late ? UNCONFIRMED_LABELS[asked.state] : asked.label }) : null),
      el("td", { class: "since", "data-since": agent.state_since || "" }),
      el("td", { class: "in-queues", text: agent.queues.map(queueNumber).join(", ") }),
      el("td", { class: "actions" },
        paused
          ? el("button", { type: "button",
            onclick: () => presence(agent, "available").catch(() => {}) }, "Unpause")
          : el("button", { type: "button", disabled: out, onclick: () => pause(agent) }, "Pause"),
        " ",
        el("button", { type: "button", class: "danger", disabled: out,
          onclick: () => logOut(agent) }, "Log out")),
    );
  }

  function queueNumber(id) {
    const queue = board && board.queues.find((q) => q.id === id);
    return queue ? queue.number : String(id);
  }

  // Every second, the waits and times in state move on without a new board.
  function tick() {
    $("clock").textContent = new Date().toLocaleTimeString();
    if (!board) return;
    for (const asked of requested.values()) {
      if (!asked.late && Date.now() - asked.at >= CONFIRM_WAIT_MS) {
        asked.late = true;
        show(board); // draws the request as not confirmed (and ticks)
        return;
      }
    }
    const since = elapsed();
    const at = Date.parse(board.at) / 1000;
    for (const queue of board.queues) {
      const card = document.querySelector(`[data-queue="${queue.id}"]`);
      if (!card) continue;
      const longest = queue.waiting ? queue.longest_wait_s + since : 0;
      const node = card.querySelector(".q-longest");
      node.textContent = duration(longest);
      const over = longest > queue.service_level_s;
      node.classList.toggle("red", over);
      card.classList.toggle("over", over);
    }
    for (const node of document.querySelectorAll("[data-wait]")) {
      const wait = Number(node.dataset.wait) + since;
      node.textContent = duration(wait);
      node.classList.toggle("red", wait > Number(node.dataset.sl));
    }
    for (const node of document.querySelectorAll("[data-since]")) {
      node.textContent = node.dataset.since
        ? duration(at - Date.parse(node.dataset.since) / 1000 + since)
        : "";
    }
  }

  setInterval(tick, 1000);

  // --- the supervisor's controls ---

  // One dialog for every action: a new board while it is open changes nothing in it.
  function ask(title, fields, run) {
    const dialog = $("action");
    $("action-title").textContent = title;
    $("action-fields").replaceChildren(...fields);
    $("action-error").textContent = "";
    const form = $("action-form");
    form.onsubmit = async (event) => {
      event.preventDefault();
      $("action-ok").disabled = true;
      try {
        await run();
        dialog.close();
      } catch (error) {
        $("action-error").textContent = error.message;
      } finally {
        $("action-ok").disabled = false;
      }
    };
    $("action-cancel").onclick = () => dialog.close();
    dialog.showModal();
    const first = $("action-fields").querySelector("input, select");
    if (first) first.focus();
  }

  function pause(agent) {
    const choice = el("select", { id: "pause-reason" },
      ...PAUSE_REASONS.map((r) => el("option", { value: r, text: r })),
      el("option", { value: "", text: "other (type it)" }));
    const typed = el("input", { id: "pause-other", maxlength: 256, placeholder: "reason" });
    ask(`Pause ${agent.number} ${agent.name}`,
      [el("label", {}, "Reason", choice), el("label", {}, "Other reason", typed)],
      () => presence(agent, "paused", typed.value.trim() || choice.value));
  }

  function logOut(agent) {
    ask(`Log out ${agent.number} ${agent.name}?`, [],
      () => presence(agent, "logged_out"));
  }

  const ASKED_LABELS = {
    paused: "pause requested",
    available: "unpause requested",
    logged_out: "log-out requested",
  };

  const UNCONFIRMED_LABELS = {
    paused: "pause not confirmed by the PBX",
    available: "unpause not confirmed by the PBX",
    logged_out: "log-out not confirmed by the PBX",
  };

  async function presence(agent, state, reason) {
    const body = { state };
    if (reason) body.reason = reason;
    try {
      await api("POST",
        `/api/agents/${tenantId}/${encodeURIComponent(agent.number)}/presence`, body);
    } catch (error) {
      if (state === "available") showError(`Unpause ${agent.number}: ${error.message}`);
      throw error;
    }
    // The PBX applies it and confirms; until then the board shows the old state.
    requested.set(agent.number, { state, label: ASKED_LABELS[state], at: Date.now() });
    if (board) show(board);
  }

  function callPath(call, action) {
    return `/api/calls/${tenantId}/${encodeURIComponent(call.call_id)}/${action}`;
  }

  function callName(call) {
    return call.caller_name || call.caller_id || call.call_id;
  }

  function moveCall(queue, call) {
    const others = board.queues.filter((q) => q.id !== queue.id && q.status === "active");
    const choice = el("select", { id: "move-queue" },
      ...others.map((q) => el("option", { value: q.id, text: `${q.number} ${q.name}` })));
    ask(`Move ${callName(call)} to another queue`, [el("label", {}, "Queue", choice)],
      () => {
        if (!choice.value) throw new Error("no other active queue in this tenant");
        return api("POST", callPath(call, "move"), { queue_id: Number(choice.value) });
      });
  }

  function prioritise(call) {
    const choice = el("select", { id: "call-priority" },
      ...[...Array(10).keys()].map((p) => el("option", { value: p, text: p })));
    choice.value = String(call.priority);
    ask(`Priority of ${callName(call)}`, [el("label", {}, "Priority (9 first)", choice)],
      () => api("POST", callPath(call, "priority"), { priority: Number(choice.value) }));
  }

  function sendCall(call) {
    const list = el("datalist", { id: "extensions" },
      ...board.agents.map((a) => el("option", { value: a.number, text: a.name })));
    const typed = el("input", { id: "send-extension", list: "extensions", required: true });
    ask(`Send ${callName(call)} to an extension`,
      [el("label", {}, "Extension", typed), list],
      () => api("POST", callPath(call, "send"), { extension: typed.value.trim() }));
  }

  function hangUp(call) {
    ask(`Hang up ${callName(call)}?`, [],
      () => api("POST", callPath(call, "hangup"), {}));
  }

  tick();
  start();
})();
