/* Agent console: listens to the hub's screen-pop stream and shows each call as a card.
 *
 * Cards are built with createElement + textContent only (caller data is never parsed as
 * HTML). A later pop for the same call sid updates that call's card where it stands (its
 * desk, where the agent may be typing notes, is left as it is); other pops go on top. Each
 * card has two places the desk (desk.js) fills: a bar for the call's state and controls, and
 * one for the notes and the wrap-up; a `cahub:card` event tells it of each card, and each
 * `callstate` event of the stream becomes a `cahub:callstate` event. The EventSource reconnects by itself and sends Last-Event-ID, so the
 * server replays what was missed; when the browser gives up (a proxy error, a restart, a
 * signed-out session) we ask whether the session is still open, then reconnect with the last
 * id as a query parameter, or say that the agent has been signed out. A session that ends
 * while the stream is open (a sign-out in another tab or on another device, the end of the
 * shift) ends the stream with a "signedout" event.
 */
(() => {
  "use strict";

  const HIGH_RISK = 0.7;
  const MEDIUM_RISK = 0.4;
  const MAX_CARDS = 50;
  const MAX_EVENTS = 5;
  const TIERS = new Set(["bronze", "silver", "gold", "platinum", "diamond"]);

  const body = document.body;
  const eventsUrl = body.dataset.eventsUrl;
  const sessionUrl = body.dataset.sessionUrl;
  const renewMs = Math.max(Number(body.dataset.renewMs) || 0, 5000);
  const list = document.querySelector('[data-testid="cards"]');
  const empty = document.querySelector('[data-testid="empty"]');
  const announcer = document.querySelector('[data-testid="announcer"]');
  const connection = document.querySelector('[data-testid="connection"]');
  const connectionLabel = document.querySelector('[data-testid="connection-label"]');
  const cardsBySid = new Map();
  const summariesBySid = new Map();
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const money = currencyFormat(body.dataset.currency);
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

  let source = null;
  let lastEventId = "";
  let retryDelay = 1000;
  let signedOut = false;

  function currencyFormat(currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "USD" });
    } catch (error) {
      return new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
  }

  /* --- small DOM builders ------------------------------------------------------------ */

  function el(tag, className, text, testid) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (testid) node.dataset.testid = testid;
    return node;
  }

  function timeEl(date, className, testid, text) {
    const node = el("time", className, text, testid);
    node.dateTime = date.toISOString();
    node.title = date.toLocaleString();
    return node;
  }

  function relativeTime(date, now = Date.now()) {
    const seconds = Math.round((date.getTime() - now) / 1000);
    const steps = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"], [12, "month"]];
    let value = seconds;
    if (Math.abs(seconds) < 45) return "just now";
    for (const [size, unit] of steps) {
      if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
      value /= size;
    }
    return relative.format(Math.round(value), "year");
  }

  /* --- what a summary says ------------------------------------------------------------ */

  function callerName(summary) {
    if (summary.name) return summary.name;
    if (summary.ambiguous) return "Shared number";
    if (summary.call.caller_kind === "withheld") return "Withheld number";
    return summary.call.direction === "outbound" ? "Unknown contact" : "Unknown caller";
  }

  function callerNumber(summary) {
    if (summary.call.caller_kind === "withheld") return "No caller ID";
    const number = summary.call.direction === "outbound" ? summary.call.to : summary.call.from;
    return number || "No number";
  }

  /* STIR/SHAKEN, as an agent reads it: only full attestation (A) vouches for the number. */
  function verdict(verstat) {
    if (!verstat) return null;
    if (verstat.startsWith("TN-Validation-Passed-A")) {
      return { level: "verified", text: "Number verified",
               detail: "The caller's carrier vouches that they may use this number." };
    }
    if (verstat.startsWith("TN-Validation-Failed")) {
      return { level: "failed", text: "Number failed verification",
               detail: "The caller ID did not pass its check: it may be spoofed." };
    }
    return { level: "unverified", text: "Number not verified",
             detail: "The caller's carrier could not vouch for this number." };
  }

  function riskBand(churn) {
    if (churn >= HIGH_RISK) return "high";
    if (churn >= MEDIUM_RISK) return "medium";
    return "low";
  }

  function capitalise(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /* --- the card ----------------------------------------------------------------------- */

  function renderCard(summary, receivedAt) {
    const card = el("li", "card", null, "card");
    card.dataset.receivedAt = receivedAt.toISOString();
    const article = el("article", "card__body");
    const profile = el("div", "card__profile", null, "profile");
    profile.append(...renderBody(summary));
    article.append(renderHead(summary, receivedAt), el("div", "card__bar", null, "call-bar"),
                   profile, el("div", "card__work", null, "call-work"), renderFoot(summary));
    card.append(article);
    describe(card, summary);
    return card;
  }

  function describe(card, summary) {
    card.dataset.callSid = summary.call.sid;
    card.dataset.found = String(Boolean(summary.found));
    card.dataset.direction = summary.call.direction || "inbound";
    card.dataset.number = summary.call.caller_kind === "number" ? callerNumber(summary) : "";
    const verb = summary.call.direction === "outbound" ? "Call to" : "Call from";
    card.querySelector("article").setAttribute("aria-label", `${verb} ${callerName(summary)}`);
  }

  /* A later pop for the card's call: its profile is redrawn, its desk left alone. */
  function updateCard(card, summary) {
    const receivedAt = new Date(card.dataset.receivedAt);
    card.querySelector(".card__head").replaceWith(renderHead(summary, receivedAt));
    const profile = el("div", "card__profile", null, "profile");
    profile.append(...renderBody(summary));
    card.querySelector(".card__profile").replaceWith(profile);
    card.querySelector(".card__foot").replaceWith(renderFoot(summary));
    describe(card, summary);
  }

  function renderHead(summary, receivedAt) {
    const head = el("header", "card__head");
    const who = el("div", "card__who");
    const name = el("h2", "card__name", callerName(summary), "caller-name");
    if (!summary.name) name.classList.add("card__name--unknown");
    who.append(name, renderContact(summary));
    const checked = verdict(summary.call.verstat);
    if (checked) {
      const badge = el("span", `verstat verstat--${checked.level}`, checked.text, "verstat");
      badge.title = checked.detail;
      who.append(badge);
    }
    const meta = el("div", "card__meta");
    if (summary.loyalty_tier) meta.append(renderTier(summary.loyalty_tier));
    meta.append(timeEl(receivedAt, "card__time", "call-time", clock.format(receivedAt)));
    head.append(who, meta);
    return head;
  }

  function renderContact(summary) {
    const line = el("p", "card__contact");
    if (summary.call.direction === "outbound") {
      line.append(el("span", "card__direction", "Outbound call", "direction"));
    }
    line.append(el("span", "card__number", callerNumber(summary), "caller-number"));
    if (summary.email) line.append(el("span", "card__email", summary.email, "caller-email"));
    return line;
  }

  function renderTier(tier) {
    const key = String(tier).toLowerCase();
    const variant = TIERS.has(key) ? key : "other";
    const badge = el("span", `badge tier tier--${variant}`, capitalise(String(tier)), "loyalty-tier");
    badge.title = "Loyalty tier";
    return badge;
  }

  function renderBody(summary) {
    if (!summary.found) return [renderNoProfile(summary)];
    if (!summary.ambiguous) return renderProfile(summary);
    if (!summary.chosen) return [renderChooser(summary)];
    return [...renderProfile(summary), renderChooser(summary)];
  }

  /* A shared number is never resolved for the agent: they ask, then pick the person. */
  function renderChooser(summary) {
    const { count, candidates } = summary.ambiguous;
    const people = count || candidates.length || "several";
    const chooser = el("div", "chooser", null, "chooser");
    const text = summary.chosen
      ? `Shared number (${people} people). Not them?`
      : `This number is shared by ${people} people. Ask who is calling, then choose:`;
    chooser.append(el("p", "chooser__note", text));
    const options = el("div", "chooser__options");
    for (const candidate of candidates) {
      if (candidate.profile_id === summary.chosen) continue;
      options.append(renderCandidate(summary, candidate));
    }
    chooser.append(options);
    return chooser;
  }

  function renderCandidate(summary, candidate) {
    const button = el("button", "chooser__option", null, "candidate");
    button.type = "button";
    button.append(el("span", "chooser__name", candidate.name || "Customer without a name"));
    const detail = [candidate.email, candidate.loyalty_tier].filter(Boolean).join(" · ");
    if (detail) button.append(el("span", "chooser__detail", detail));
    button.addEventListener("click", () => showPop({
      ...summary, ...candidate, ambiguous: summary.ambiguous, chosen: candidate.profile_id,
    }));
    return button;
  }

  function renderProfile(summary) {
    const parts = [renderStats(summary)];
    const audiences = (summary.audiences || []).filter((a) => a.status !== "exited");
    if (audiences.length) parts.push(section("Audiences", renderAudiences(audiences)));
    const events = summary.recent_events || [];
    if (events.length) parts.push(section("Recent activity", renderEvents(events)));
    return parts;
  }

  function renderNoProfile(summary) {
    const withheld = summary.call.caller_kind === "withheld";
    const text = withheld
      ? "The caller withheld their number, so no profile could be looked up."
      : "No customer profile matches this number.";
    return el("p", "card__note", text, "no-profile");
  }

  function renderStats(summary) {
    const stats = el("dl", "stats");
    const value = typeof summary.lifetime_value === "number" ? money.format(summary.lifetime_value) : "—";
    stats.append(stat("Lifetime value", value, "lifetime-value"));
    stats.append(renderRisk(summary.churn_propensity));
    stats.append(stat("Last campaign", summary.last_campaign || "—", "last-campaign"));
    return stats;
  }

  function stat(label, value, testid) {
    const box = el("div", "stat");
    box.append(el("dt", "stat__label", label), el("dd", "stat__value", value, testid));
    return box;
  }

  function renderRisk(churn) {
    if (typeof churn !== "number") return stat("Churn risk", "—", "churn-risk");
    const band = riskBand(churn);
    const box = stat("Churn risk", `${Math.round(churn * 100)}%`, "churn-risk");
    box.classList.add("stat--risk", `risk--${band}`);
    box.dataset.risk = band;
    box.querySelector("dd").append(el("span", "risk__label", capitalise(band)));
    return box;
  }

  function section(title, content) {
    const part = el("section", "card__section");
    part.append(el("h3", "card__heading", title), content);
    return part;
  }

  function renderAudiences(audiences) {
    const chips = el("ul", "chips", null, "audiences");
    for (const audience of audiences) chips.append(el("li", "chip", audience.name || audience.id));
    return chips;
  }

  function renderEvents(events) {
    const items = el("ol", "events", null, "recent-events");
    for (const event of events.slice(0, MAX_EVENTS)) {
      const row = el("li", "event");
      const when = new Date(event.timestamp);
      const time = timeEl(when, "event__time", null, relativeTime(when));
      time.dataset.relative = "";
      row.append(el("span", "event__title", event.title || event.type), time);
      items.append(row);
    }
    return items;
  }

  function renderFoot(summary) {
    const parts = [summary.source ? `Source: ${summary.source}` : "No profile source answered"];
    const ms = summary.lookup_ms;
    if (typeof ms === "number") parts.push(`lookup ${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`);
    return el("footer", "card__foot", parts.join(" · "), "source");
  }

  /* --- the feed ----------------------------------------------------------------------- */

  function showPop(summary, { quiet = false } = {}) {
    const sid = summary.call.sid;
    let previous = cardsBySid.get(sid);
    if (!previous && summary.call.direction === "outbound" && window.cahub.claim) {
      previous = window.cahub.claim(summary); // the card of the call the agent is placing
      if (previous) forget(previous);
    }
    const isNew = !(previous && previous.isConnected);
    const card = isNew ? renderCard(summary, new Date()) : previous;
    if (isNew) list.prepend(card);
    else updateCard(card, summary);
    card.classList.remove("card--new", "card--updated");
    card.classList.add(isNew ? "card--new" : "card--updated");
    cardsBySid.set(sid, card);
    summariesBySid.set(sid, summary);
    trimFeed();
    if (!quiet) announce(summary, !isNew);
    document.dispatchEvent(new CustomEvent("cahub:card", { detail: { summary, card, isNew } }));
    return card;
  }

  function forget(card) {
    for (const [sid, other] of cardsBySid) if (other === card) cardsBySid.delete(sid);
  }

  function trimFeed() {
    while (list.children.length > MAX_CARDS) {
      const oldest = list.lastElementChild;
      cardsBySid.delete(oldest.dataset.callSid);
      summariesBySid.delete(oldest.dataset.callSid);
      oldest.remove();
    }
    empty.hidden = list.children.length > 0;
  }

  function announce(summary, updated) {
    if (summary.call.direction === "outbound") return;
    const name = callerName(summary);
    const churn = summary.churn_propensity;
    const risk = typeof churn === "number" ? `, churn risk ${riskBand(churn)}` : "";
    announcer.textContent = updated ? `Profile updated: ${name}${risk}` : `Incoming call: ${name}${risk}`;
  }

  function refreshRelativeTimes() {
    for (const node of list.querySelectorAll("time[data-relative]")) {
      node.textContent = relativeTime(new Date(node.dateTime));
    }
  }

  /* --- the connection ----------------------------------------------------------------- */

  function setConnection(state, label) {
    connection.dataset.state = state;
    connectionLabel.textContent = label;
  }

  function connect() {
    const url = lastEventId ? `${eventsUrl}?lastEventId=${encodeURIComponent(lastEventId)}` : eventsUrl;
    source = new EventSource(url);
    source.addEventListener("open", () => { retryDelay = 1000; setConnection("live", "Live"); });
    source.addEventListener("error", onError);
    source.addEventListener("screenpop", onPop);
    source.addEventListener("callstate", onCallState);
    source.addEventListener("signedout", signOut);
  }

  /* The session ended (signed out in another tab or elsewhere, or the shift is over). */
  function signOut() {
    signedOut = true;
    document.dispatchEvent(new CustomEvent("cahub:signedout"));
    if (source) source.close();
    setConnection("signed-out", "Signed out — reload to sign in");
  }

  function onPop(message) {
    lastEventId = message.lastEventId || lastEventId;
    try {
      showPop(JSON.parse(message.data));
    } catch (error) {
      console.error("unreadable screen pop", error);
    }
  }

  function onCallState(message) {
    lastEventId = message.lastEventId || lastEventId;
    try {
      const state = JSON.parse(message.data);
      document.dispatchEvent(new CustomEvent("cahub:callstate", { detail: state }));
    } catch (error) {
      console.error("unreadable call state", error);
    }
  }

  function onError() {
    if (source.readyState !== EventSource.CLOSED) return setConnection("reconnecting", "Reconnecting…");
    source.close();
    setConnection("reconnecting", "Reconnecting…");
    probe();
  }

  async function probe() {
    try {
      const response = await fetch(sessionUrl, { cache: "no-store" });
      if (response.status === 401) return signOut();
    } catch (error) {
      /* the hub is unreachable: keep trying */
    }
    retryDelay = Math.min(retryDelay * 2, 30000);
    window.setTimeout(connect, retryDelay);
  }

  /* The session's cookie expires when unused: the open console renews it now and then (the
   * stream alone would not), and so also learns early that its session has ended. */
  async function renewSession() {
    if (signedOut) return;
    try {
      const response = await fetch(sessionUrl, { cache: "no-store" });
      if (response.status === 401) signOut();
    } catch (error) {
      /* the hub is unreachable: the stream's reconnects take care of it */
    }
  }

  /* Close the stream before leaving, so signing out never shows as a broken connection. */
  const logoutForm = document.querySelector("[data-testid=logout-form]");
  if (logoutForm) logoutForm.addEventListener("submit", () => { if (source) source.close(); });
  window.addEventListener("pagehide", () => { if (source) source.close(); });

  /* A sign-in link's #token= has done its work on the login page: keep it out of sight. */
  if (window.location.hash) window.history.replaceState(null, "", window.location.pathname);

  window.cahub = {
    showPop, card: (sid) => cardsBySid.get(sid) || null,
    summary: (sid) => summariesBySid.get(sid) || null, callerName, callerNumber, el,
    claim: null,
  };
  trimFeed();
  // Once every deferred script (the desk, the phone) listens for what the stream brings.
  document.addEventListener("DOMContentLoaded", connect);
  window.setInterval(refreshRelativeTimes, 30000);
  window.setInterval(renewSession, renewMs);
})();
