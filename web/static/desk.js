/* The agent's desk on each call card: the call's state and the phone's buttons, the notes
 * (saved by the hub as they are typed), the wrap-up, the transfer, and calling out.
 *
 * The state comes from two places: the hub's `callstate` events (from Twilio's status
 * callbacks, so every tab and device agrees) and the phone in this tab (which knows at once
 * that the agent answered or hung up). The card shows whichever is further along. Nothing
 * here is parsed as HTML: caller data and notes are text.
 *
 * A reopened console asks the hub for the calls still open on the agent's desk and shows
 * them again with their drafts: a closed tab loses no note.
 */
(() => {
  "use strict";

  const SAVE_AFTER_MS = 700;
  const RETRY_AFTER_MS = 3000;
  const RANK = { ringing: 0, calling: 0, connected: 1, transferring: 2, ended: 3, missed: 4,
                 declined: 4, transferred: 4, wrapped_up: 5, logged: 5 };
  const WORKING = new Set(["connected", "transferring", "ended"]);
  const HANDED_ON = new Set(["transferring", "transferred"]);
  const body = document.body;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const config = JSON.parse(document.getElementById("desk-config").textContent);
  const callsUrl = body.dataset.callsUrl;
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const desks = new Map(); // call sid -> desk
  const early = new Map(); // call sid -> a state that came before its card
  const el = (...args) => window.cahub.el(...args);
  let pendingDial = null;

  /* --- the hub ------------------------------------------------------------------------ */

  async function send(method, url, payload, options = {}) {
    const response = await fetch(url, {
      method, credentials: "same-origin", keepalive: Boolean(options.keepalive),
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(payload),
    });
    const answer = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, body: answer };
  }

  const callUrl = (sid, what) => `${callsUrl}/${encodeURIComponent(sid)}/${what}`;

  /* --- one desk per card ---------------------------------------------------------------- */

  function deskFor(card, summary) {
    const sid = summary.call.sid;
    let desk = [...desks.values()].find((d) => d.card === card);
    if (desk && desk.sid !== sid) desks.delete(desk.sid);
    if (!desk) desk = build(card, summary);
    desk.sid = sid;
    desk.summary = summary;
    desks.set(sid, desk);
    if (early.has(sid)) apply(desk, early.get(sid));
    early.delete(sid);
    return desk;
  }

  function build(card, summary) {
    const bar = card.querySelector('[data-testid="call-bar"]');
    const work = card.querySelector('[data-testid="call-work"]');
    const desk = { card, bar, work, sid: summary.call.sid, summary, server: null, local: null,
                   call: null, answeredAt: null, endedAt: null, muted: false, saved: "",
                   timer: null, saveTimer: null, transferOpen: false, message: "" };
    desk.state = el("p", "callstate", null, "call-state");
    desk.state.setAttribute("role", "status");
    desk.controls = el("div", "controls", null, "call-controls");
    bar.append(desk.state, desk.controls);
    desk.handoffs = el("div", "handoffs", null, "handoffs");
    desk.notesBox = buildNotes(desk);
    desk.wrapup = buildWrapup(desk);
    work.append(desk.handoffs, desk.notesBox, desk.wrapup);
    render(desk);
    return desk;
  }

  function buildNotes(desk) {
    const box = el("div", "notes");
    const id = `notes-${Math.random().toString(36).slice(2)}`;
    const label = el("label", "notes__label", "Notes");
    label.htmlFor = id;
    desk.notes = el("textarea", "notes__text", null, "notes");
    desk.notes.id = id;
    desk.notes.rows = 3;
    desk.notes.maxLength = config.max_notes;
    desk.notes.placeholder = "What the caller needs, what you did, what happens next";
    desk.notesStatus = el("span", "notes__status", "", "notes-status");
    desk.notesStatus.setAttribute("aria-live", "polite");
    const head = el("div", "notes__head");
    head.append(label, desk.notesStatus);
    box.append(head, desk.notes);
    desk.notes.addEventListener("input", () => scheduleSave(desk));
    desk.notes.addEventListener("blur", () => saveNow(desk));
    return box;
  }

  function buildWrapup(desk) {
    const form = el("form", "wrapup", null, "wrapup");
    const set = el("fieldset", "wrapup__outcomes");
    set.append(el("legend", "wrapup__legend", "Outcome"));
    const name = `outcome-${Math.random().toString(36).slice(2)}`;
    for (const outcome of config.outcomes) {
      const option = el("label", "outcome", null, "outcome");
      const input = el("input");
      Object.assign(input, { type: "radio", name, value: outcome.id });
      option.append(input, el("span", "outcome__label", outcome.label));
      set.append(option);
    }
    desk.deadline = el("p", "wrapup__deadline", "", "wrapup-deadline");
    desk.wrapupError = el("p", "wrapup__error", "", "wrapup-error");
    desk.wrapupError.setAttribute("role", "alert");
    const save = el("button", "button button--primary", "Save wrap-up", "wrapup-save");
    save.type = "submit";
    const actions = el("div", "wrapup__actions");
    actions.append(save, desk.deadline);
    form.append(set, actions, desk.wrapupError);
    form.addEventListener("submit", (event) => { event.preventDefault(); wrapUp(desk, form); });
    return form;
  }

  /* --- what the card shows ----------------------------------------------------------------- */

  function phaseOf(desk) {
    const server = desk.server ? desk.server.phase : null;
    const local = desk.local;
    if (!server) return local;
    if (!local) return server;
    // A transfer ends this phone's leg; the call goes on, with a colleague: the hub knows.
    if (HANDED_ON.has(server) && local === "ended") return server;
    return RANK[local] > RANK[server] ? local : server;
  }

  function render(desk) {
    const phase = phaseOf(desk);
    desk.card.dataset.phase = phase || "";
    desk.card.classList.toggle("card--ringing", phase === "ringing" && Boolean(desk.call));
    desk.card.classList.toggle("card--live", WORKING.has(phase) && phase !== "ended");
    renderState(desk, phase);
    renderControls(desk, phase);
    renderWork(desk, phase);
    desk.bar.hidden = !phase && desk.controls.childElementCount === 0;
    tick(desk);
  }

  function renderState(desk, phase) {
    const server = desk.server || {};
    const texts = {
      ringing: desk.summary.call.direction === "outbound" ? "Calling…"
        : server.handoffs && server.handoffs.length ? "Transfer for you" : "Incoming call",
      calling: "Calling…", connected: "Connected",
      transferring: `Transferring to ${server.transfer_to_name || "a colleague"}…`,
      transferred: `Transferred to ${server.transfer_to_name || "a colleague"}`,
      ended: "Call ended · wrap up", missed: "Missed call", declined: "Declined",
      wrapped_up: `Wrapped up · ${server.outcome_label || ""}`,
      logged: "Logged without a wrap-up",
    };
    desk.state.dataset.phase = phase || "";
    desk.state.hidden = !phase;
    desk.state.textContent = phase ? texts[phase] || phase : "";
    if (server.transfer_failed && (phase === "ringing" || phase === "connected")) {
      desk.state.append(el("span", "callstate__note",
        ` · ${server.transfer_failed} did not answer: the caller is back with you`));
    }
    desk.clock = el("span", "callstate__clock", "", "call-clock");
    desk.state.append(desk.clock);
  }

  function renderControls(desk, phase) {
    desk.controls.replaceChildren();
    const call = desk.call && desk.call.status() !== "closed" ? desk.call : null;
    if (phase === "ringing" && call && call.direction === "INCOMING") {
      const busy = window.cahubPhone && window.cahubPhone.busy();
      const answer = button("Answer", "answer", "button--answer", () => call.accept());
      answer.disabled = Boolean(busy);
      if (busy) answer.title = "Finish your current call first";
      desk.controls.append(answer, button("Decline", "decline", "button--danger", () => call.reject()));
    } else if (call && (phase === "connected" || phase === "calling")) {
      const mute = button(desk.muted ? "Unmute" : "Mute", "mute", "button--quiet", () => {
        call.mute(!call.isMuted());
      });
      mute.setAttribute("aria-pressed", String(desk.muted));
      desk.controls.append(mute);
      if (phase === "connected" && desk.summary.call.direction !== "outbound") {
        desk.controls.append(transferControl(desk));
      }
      desk.controls.append(button("Hang up", "hangup", "button--danger", () => call.disconnect()));
    } else if (phase === "connected" && desk.summary.call.direction !== "outbound") {
      desk.controls.append(transferControl(desk));
    }
    const number = desk.card.dataset.number;
    const idle = !phase || (RANK[phase] >= RANK.ended && phase !== "transferred");
    if (number && idle && window.cahubPhone && window.cahubPhone.ready()) {
      const back = button("Call back", "call-back", "button--quiet", () => dial(number));
      back.disabled = window.cahubPhone.busy();
      desk.controls.append(back);
    }
    if (desk.message) desk.controls.append(el("span", "controls__message", desk.message, "desk-message"));
  }

  function renderWork(desk, phase) {
    const server = desk.server || {};
    desk.work.hidden = !phase || phase === "calling";
    desk.handoffs.replaceChildren();
    for (const handoff of server.handoffs || []) {
      if (!handoff.notes || !handoff.notes.trim()) continue;
      const note = el("figure", "handoff", null, "handoff");
      note.append(el("figcaption", "handoff__from", `Notes from ${handoff.agent_name || handoff.agent_id}`),
                  el("blockquote", "handoff__text", handoff.notes));
      desk.handoffs.append(note);
    }
    const closed = ["wrapped_up", "logged", "transferred"].includes(phase)
      || (phase === "missed" && !desk.notes.value);
    desk.notes.readOnly = closed;
    // Ringing, the card asks one thing (answer?); notes come once the call is taken.
    desk.notesBox.hidden = ["missed", "declined", "ringing"].includes(phase) && !desk.notes.value;
    desk.wrapup.hidden = phase !== "ended";
    if (server.wrapup_due_at && phase === "ended") {
      const due = new Date(server.wrapup_due_at);
      desk.deadline.textContent = `Not wrapped up by ${clock.format(due)}? The call is logged then, with these notes.`;
    } else {
      desk.deadline.textContent = "";
    }
  }

  function button(text, testid, variant, onClick) {
    const node = el("button", `button ${variant}`, text, testid);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function transferControl(desk) {
    const box = el("div", "transfer", null, "transfer");
    const colleagues = config.agents;
    if (!desk.transferOpen) {
      const open = button("Transfer", "transfer-open", "button--quiet", () => {
        desk.transferOpen = true;
        render(desk);
      });
      open.disabled = colleagues.length === 0;
      box.append(open);
      return box;
    }
    const pick = el("select", "transfer__pick", null, "transfer-agent");
    pick.setAttribute("aria-label", "Transfer to");
    for (const agent of colleagues) {
      const option = el("option", null, agent.name);
      option.value = agent.id;
      pick.append(option);
    }
    box.append(pick,
      button("Transfer call", "transfer-confirm", "button--primary", () => transfer(desk, pick.value)),
      button("Cancel", "transfer-cancel", "button--quiet", () => { desk.transferOpen = false; render(desk); }));
    return box;
  }

  /* The running clock of a live call, or the length of an ended one. */
  function tick(desk) {
    if (!desk.clock) return;
    const phase = phaseOf(desk);
    const server = desk.server || {};
    const answered = desk.answeredAt || (server.answered_at ? new Date(server.answered_at) : null);
    if (phase === "connected" && answered) {
      desk.clock.textContent = ` · ${duration((Date.now() - answered.getTime()) / 1000, true)}`;
    } else if (RANK[phase] >= RANK.ended && typeof server.talk_s === "number") {
      desk.clock.textContent = ` · ${duration(server.talk_s)}`;
    } else if (RANK[phase] >= RANK.ended && answered && desk.endedAt) {
      desk.clock.textContent = ` · ${duration((desk.endedAt - answered) / 1000)}`;
    } else {
      desk.clock.textContent = "";
    }
  }

  function duration(seconds, running = false) {
    const s = Math.max(0, Math.round(seconds));
    if (running) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  }

  /* --- the hub's news, the phone's news ----------------------------------------------------- */

  function apply(desk, state) {
    desk.server = state;
    if (RANK[state.phase] >= RANK.transferring) desk.transferOpen = false;
    render(desk);
  }

  function bind(desk, call) {
    desk.call = call;
    desk.local = call.direction === "INCOMING" ? "ringing" : "calling";
    call.on("accept", () => { desk.local = "connected"; desk.answeredAt = new Date(); render(desk); });
    call.on("disconnect", () => { desk.local = desk.local === "calling" ? "missed" : "ended";
                                  desk.endedAt = new Date(); render(desk); });
    call.on("cancel", () => { if (desk.local === "ringing") desk.local = "missed"; render(desk); });
    call.on("reject", () => { desk.local = "declined"; render(desk); });
    call.on("error", (error) => { console.warn("call error", error && error.code); });
    call.on("mute", (muted) => { desk.muted = muted; render(desk); });
    render(desk);
  }

  document.addEventListener("cahub:card", (event) => {
    deskFor(event.detail.card, event.detail.summary);
  });

  document.addEventListener("cahub:callstate", (event) => {
    const state = event.detail;
    const desk = desks.get(state.call_sid);
    if (desk) apply(desk, state);
    else early.set(state.call_sid, state);
  });

  document.addEventListener("cahub:incoming", (event) => {
    const { sid, call } = event.detail;
    const card = window.cahub.card(sid);
    let desk = desks.get(sid) || (card && deskFor(card, window.cahub.summary(sid)));
    if (!desk) { // the phone rang before the pop came: a card from the call's parameters
      const made = window.cahub.showPop(placeholder(sid, call));
      desk = desks.get(sid) || deskFor(made, placeholder(sid, call));
    }
    bind(desk, call);
  });

  document.addEventListener("cahub:phone", () => { for (const desk of desks.values()) render(desk); });

  function placeholder(sid, call) {
    const params = call.customParameters;
    return { call: { sid, from: call.parameters.From, to: call.parameters.To,
                     caller_kind: "number", direction: "inbound", verstat: null },
             identity: null, found: params.get("found") === "true", name: params.get("name") || null,
             loyalty_tier: params.get("loyalty_tier") || null, audiences: [], recent_events: [] };
  }

  /* --- notes ---------------------------------------------------------------------------- */

  function scheduleSave(desk) {
    desk.notesStatus.textContent = "Saving…";
    window.clearTimeout(desk.saveTimer);
    desk.saveTimer = window.setTimeout(() => saveNow(desk), SAVE_AFTER_MS);
  }

  async function saveNow(desk, keepalive = false) {
    window.clearTimeout(desk.saveTimer);
    const text = desk.notes.value;
    if (text === desk.saved || desk.notes.readOnly || desk.sid.startsWith("pending-")) return;
    try {
      const answer = await send("PUT", callUrl(desk.sid, "notes"), { notes: text }, { keepalive });
      if (answer.ok) {
        desk.saved = text;
        desk.notesStatus.textContent = desk.notes.value === text ? "Saved" : "Saving…";
      } else if (answer.status === 409) {
        desk.notesStatus.textContent = "This call is closed";
      } else {
        throw new Error(`HTTP ${answer.status}`);
      }
    } catch (error) {
      desk.notesStatus.textContent = "Not saved yet, retrying…";
      desk.saveTimer = window.setTimeout(() => saveNow(desk), RETRY_AFTER_MS);
    }
  }

  /* --- wrap-up, transfer, calling out ------------------------------------------------------ */

  async function wrapUp(desk, form) {
    const chosen = form.querySelector("input[type=radio]:checked");
    if (!chosen) {
      desk.wrapupError.textContent = "Pick an outcome first.";
      return;
    }
    desk.wrapupError.textContent = "";
    window.clearTimeout(desk.saveTimer);
    const answer = await send("POST", callUrl(desk.sid, "wrapup"),
      { outcome: chosen.value, notes: desk.notes.value }).catch(() => null);
    if (answer && answer.ok) {
      desk.saved = desk.notes.value;
      desk.notesStatus.textContent = "Saved";
      apply(desk, answer.body.state);
    } else {
      desk.wrapupError.textContent = answer && answer.body.error
        ? answer.body.error.message : "The wrap-up could not be saved. Try again.";
    }
  }

  async function transfer(desk, agentId) {
    desk.message = "";
    await saveNow(desk);
    const answer = await send("POST", callUrl(desk.sid, "transfer"), { agent: agentId })
      .catch(() => null);
    desk.transferOpen = false;
    if (answer && answer.ok) apply(desk, answer.body.state);
    else {
      desk.message = answer && answer.body.error ? answer.body.error.message : "The transfer failed.";
      render(desk);
    }
  }

  async function dial(number) {
    if (!window.cahubPhone || !window.cahubPhone.ready() || window.cahubPhone.busy()) return;
    await window.cahubPhone.dial(number);
  }

  document.addEventListener("cahub:outgoing", (event) => {
    const { number, call } = event.detail;
    const sid = `pending-${Date.now()}`;
    const card = window.cahub.showPop({
      call: { sid, from: null, to: number, caller_kind: "number", direction: "outbound" },
      identity: null, found: false, audiences: [], recent_events: [] }, { quiet: true });
    pendingDial = { card, call };
    bind(desks.get(sid), call);
    const forget = () => { if (pendingDial && pendingDial.call === call) pendingDial = null; };
    call.on("disconnect", forget);
  });

  /* The pop of the call the agent is placing takes over its card. */
  window.cahub.claim = (summary) => {
    if (!pendingDial) return null;
    const { card, call } = pendingDial;
    const sid = call.parameters && call.parameters.CallSid;
    if (sid && sid !== summary.call.sid) return null;
    pendingDial = null;
    return card;
  };

  const dialer = document.querySelector('[data-testid="dialer"]');
  if (dialer) {
    const input = dialer.querySelector("input");
    const go = dialer.querySelector("button");
    const refresh = () => {
      const ready = window.cahubPhone && window.cahubPhone.ready() && !window.cahubPhone.busy();
      go.disabled = !ready || !input.value.trim();
      dialer.dataset.ready = String(Boolean(ready));
    };
    input.addEventListener("input", refresh);
    document.addEventListener("cahub:phone", refresh);
    dialer.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!go.disabled) dial(input.value.trim()).then(() => { input.value = ""; refresh(); });
    });
    refresh();
  }

  /* --- a reopened console -------------------------------------------------------------- */

  async function restore() {
    try {
      const response = await fetch(callsUrl, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      const { calls } = await response.json();
      for (const item of calls.reverse()) {
        const card = window.cahub.showPop(item.summary, { quiet: true });
        const desk = deskFor(card, item.summary);
        if (!desk.notes.value) {
          desk.notes.value = item.notes;
          desk.saved = item.notes;
        }
        if (!desk.server || RANK[item.state.phase] >= RANK[desk.server.phase]) apply(desk, item.state);
      }
    } catch (error) {
      console.warn("the open calls could not be listed", error);
    }
  }

  /* A tab closing mid-note: what is typed goes to the hub before the page does. */
  window.addEventListener("pagehide", () => {
    for (const desk of desks.values()) if (desk.notes.value !== desk.saved) saveNow(desk, true);
  });

  document.addEventListener("DOMContentLoaded", restore);
  window.setInterval(() => { for (const desk of desks.values()) tick(desk); }, 1000);
})();
