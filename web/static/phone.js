/* The console's softphone: Twilio's Voice JavaScript SDK (or the demo's simulator of it).
 *
 * The Device is made only when the agent clicks "Turn on phone": browsers play no ringtone
 * for a page the user has not touched. Its access token comes from the hub and is renewed
 * before it expires: on the SDK's tokenWillExpire, and by a timer of our own in case that
 * event does not come again after a renewal. A renewal waits for the end of a call when it
 * can (it costs about a second of audio), but never past the token's end.
 *
 * One tab of a browser holds the phone: every tab of one identity would ring, and closing
 * one would reject the call. Turning the phone on in a tab tells the other tabs (a
 * BroadcastChannel) to let theirs go; they offer to take it back.
 *
 * Calls are handed to the desk (desk.js) as DOM events: `cahub:incoming` with the parent
 * CallSid the TwiML passes as the `callSid` parameter (the browser's own leg has another
 * sid), and `cahub:outgoing` for a call the agent places. Other calls may ring while the
 * agent is on one (allowIncomingWhileBusy): the SDK would otherwise drop them silently,
 * leaving the caller waiting out the dial; the desk lets the agent decline them at once.
 */
(() => {
  "use strict";

  const REFRESH_BEFORE_MS = 60000;
  const root = document.querySelector('[data-testid="phone"]');
  if (!root || root.dataset.mode === "unavailable") return;

  const statusLine = root.querySelector('[data-testid="phone-status"]');
  const startButton = root.querySelector('[data-testid="phone-start"]');
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const tokenUrl = document.body.dataset.tokenUrl;
  const edges = (document.body.dataset.voiceEdges || "roaming").split(",");
  const channel = "BroadcastChannel" in window ? new BroadcastChannel(`cahub-phone-${document.body.dataset.agent}`) : null;

  let device = null;
  let tokenExpiresAt = 0;
  let refreshTimer = null;
  let refreshWhenIdle = false;

  function setState(state, text) {
    root.dataset.state = state;
    statusLine.textContent = text;
    document.dispatchEvent(new CustomEvent("cahub:phone", { detail: { state } }));
  }

  async function fetchToken() {
    if (root.dataset.mode === "simulator") { // the demo's phone reaches no Twilio: no token
      tokenExpiresAt = Date.now() + 24 * 3600 * 1000;
      return "simulated";
    }
    const response = await fetch(tokenUrl, {
      method: "POST", headers: { "X-CSRFToken": csrf }, credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`the hub gave no token (HTTP ${response.status})`);
    const body = await response.json();
    tokenExpiresAt = Date.now() + body.ttl * 1000;
    return body.token;
  }

  async function start() {
    if (!window.Twilio || !window.Twilio.Device) {
      return setState("error", "Phone unavailable: the Voice SDK did not load");
    }
    startButton.disabled = true;
    setState("starting", "Turning on…");
    try {
      const token = await fetchToken();
      device = new window.Twilio.Device(token, {
        edge: edges, allowIncomingWhileBusy: true, closeProtection: true,
        codecPreferences: ["opus", "pcmu"], tokenRefreshMs: REFRESH_BEFORE_MS,
        appName: "customer-activity-hub",
      });
      wire(device);
      await device.register();
      if (channel) channel.postMessage({ type: "claimed" });
      scheduleRefresh();
    } catch (error) {
      console.warn("the phone could not start", error);
      setState("error", "Phone off: could not connect");
      startButton.hidden = false;
      startButton.disabled = false;
    }
    return undefined;
  }

  function wire(dev) {
    dev.on("registered", () => {
      startButton.hidden = true;
      setState("ready", "Phone on");
    });
    dev.on("unregistered", () => { if (device === dev) setState("off", "Phone off"); });
    dev.on("error", (error) => {
      console.warn("phone error", error && error.code, error && error.message);
      if (error && error.code === 31401) setState("error", "Microphone blocked");
    });
    dev.on("incoming", (call) => {
      const sid = call.customParameters.get("callSid") || call.parameters.CallSid;
      track(call);
      document.dispatchEvent(new CustomEvent("cahub:incoming", { detail: { sid, call } }));
    });
    dev.on("tokenWillExpire", () => refresh());
  }

  function track(call) {
    call.on("accept", () => setState("busy", "On a call"));
    for (const end of ["disconnect", "cancel", "reject"]) {
      call.on(end, () => {
        if (!device || device.isBusy) return;
        setState("ready", "Phone on");
        if (refreshWhenIdle) refresh();
      });
    }
  }

  function scheduleRefresh() {
    window.clearTimeout(refreshTimer);
    const wait = Math.max(tokenExpiresAt - Date.now() - REFRESH_BEFORE_MS * 1.5, 1000);
    refreshTimer = window.setTimeout(() => refresh(), wait);
  }

  /* A new token: now if no call is on, else once it ends (unless the old one runs out). */
  async function refresh() {
    if (!device) return;
    const last = tokenExpiresAt - Date.now() < REFRESH_BEFORE_MS / 2;
    if (device.isBusy && !last) {
      refreshWhenIdle = true;
      window.clearTimeout(refreshTimer);
      refreshTimer = window.setTimeout(() => refresh(), Math.max(tokenExpiresAt - Date.now() - REFRESH_BEFORE_MS / 3, 1000));
      return;
    }
    refreshWhenIdle = false;
    try {
      device.updateToken(await fetchToken());
    } catch (error) {
      console.warn("the phone's token could not be renewed", error);
    }
    scheduleRefresh();
  }

  /* Let the phone go (another tab took it, or the agent signs out). */
  function release(text) {
    window.clearTimeout(refreshTimer);
    if (device) device.destroy();
    device = null;
    startButton.hidden = false;
    startButton.disabled = false;
    startButton.textContent = "Use phone here";
    setState("elsewhere", text);
  }

  async function dial(number) {
    if (!device || device.isBusy) return null;
    const call = await device.connect({ params: { To: number } });
    track(call);
    setState("busy", "Calling…");
    document.dispatchEvent(new CustomEvent("cahub:outgoing", { detail: { number, call } }));
    return call;
  }

  if (channel) {
    channel.addEventListener("message", (event) => {
      if (event.data && event.data.type === "claimed" && device) {
        release("Phone is on in another tab");
      }
    });
  }
  startButton.addEventListener("click", start);
  document.addEventListener("cahub:signedout", () => { if (device) release("Phone off"); });

  window.cahubPhone = {
    dial,
    ready: () => Boolean(device) && device.state === "registered",
    busy: () => Boolean(device) && device.isBusy,
  };
})();
