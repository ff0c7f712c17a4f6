/* A stand-in for Twilio's Voice JavaScript SDK: the same `Twilio.Device` and `Twilio.Call`
 * surface the console uses, with no network and no audio.
 *
 * Two uses. In the demo (the page's phone is "simulator"), it plays Twilio's part: a new
 * incoming call's pop rings it, and answering, hanging up and dialling out are reported to
 * the hub's simulator routes, which send the hub the status callbacks Twilio would (signed
 * with the hub's auth token, as `cahub simulate-call` does). In the browser tests it is served
 * in place of the SDK (CAHUB_VOICE_SDK_URL) and driven from the test through
 * `window.TwilioSimulator`: `ring(...)`, `devices`, `calls`, `expireToken()`.
 */
(() => {
  "use strict";

  class Emitter {
    constructor() { this._handlers = new Map(); }

    on(name, handler) {
      if (!this._handlers.has(name)) this._handlers.set(name, []);
      this._handlers.get(name).push(handler);
      return this;
    }

    off(name, handler) {
      this._handlers.set(name, (this._handlers.get(name) || []).filter((h) => h !== handler));
      return this;
    }

    removeListener(name, handler) { return this.off(name, handler); }

    emit(name, ...args) {
      for (const handler of this._handlers.get(name) || []) handler(...args);
    }
  }

  let serial = 0;

  function fakeSid() {
    serial += 1;
    const random = Array.from(crypto.getRandomValues(new Uint8Array(12)),
      (b) => b.toString(16).padStart(2, "0")).join("");
    return `CA${serial.toString(16).padStart(8, "0")}${random}`;
  }

  class Call extends Emitter {
    constructor(device, direction, parameters, customParameters) {
      super();
      this.device = device;
      this.direction = direction;
      this.parameters = parameters;
      this.customParameters = new Map(Object.entries(customParameters || {}));
      this.callerInfo = null;
      this.log = [];
      this._status = direction === "INCOMING" ? "pending" : "connecting";
      this._muted = false;
    }

    status() { return this._status; }

    isMuted() { return this._muted; }

    accept() { this.log.push("accept"); this._open(); }

    reject() {
      this.log.push("reject");
      this._close("reject");
    }

    ignore() { this.log.push("ignore"); this._close(null); }

    disconnect() {
      this.log.push("disconnect");
      if (this._status === "pending") return this.reject();
      this._close("disconnect");
      return undefined;
    }

    mute(shouldMute = true) {
      this.log.push(shouldMute ? "mute" : "unmute");
      this._muted = Boolean(shouldMute);
      this.emit("mute", this._muted, this);
    }

    /* What Twilio does when the far end hangs up, the caller gives up ringing, or a transfer
     * takes the caller elsewhere: the hub hears of it from Twilio, not from this phone. */
    remoteHangup() { this._close(this._status === "pending" ? "cancel" : "disconnect", false); }

    /* What Twilio does for a call out: it gets its CallSid and rings, then is answered. */
    remoteRinging(callSid) {
      this.parameters = { ...this.parameters, CallSid: callSid };
      this._status = "ringing";
      this.emit("ringing", false);
    }

    remoteAnswer() { this._open(); }

    _open() {
      this._status = "open";
      this.device._busy(this, true);
      this.emit("accept", this);
      simulated(this, "answer");
    }

    _close(event, byThisPhone = true) {
      if (this._status === "closed") return;
      const wasOpen = this._status === "open";
      this._status = "closed";
      this.device._busy(this, false);
      if (event) this.emit(event, this);
      if (byThisPhone && (wasOpen || event === "reject")) simulated(this, "hangup");
    }
  }

  class Device extends Emitter {
    constructor(token, options) {
      super();
      this.token = token;
      this.options = options || {};
      this.state = "unregistered";
      this.calls = [];
      this.tokens = [token];
      this.identity = null;
      this._active = new Set();
      Simulator.devices.push(this);
    }

    static get isSupported() { return true; }

    get isBusy() { return this._active.size > 0; }

    async register() {
      this.state = "registered";
      this.emit("registered", this);
    }

    async unregister() {
      this.state = "unregistered";
      this.emit("unregistered", this);
    }

    destroy() {
      for (const call of this.calls) if (call.status() !== "closed") call.disconnect();
      this.state = "destroyed";
      this.emit("destroyed", this);
    }

    updateToken(token) {
      this.token = token;
      this.tokens.push(token);
    }

    async connect({ params } = {}) {
      const call = new Call(this, "OUTGOING", {}, params);
      this.calls.push(call);
      if (Simulator.driving()) window.setTimeout(() => dialOut(call), 0);
      return call;
    }

    _incoming(parameters, customParameters) {
      if (this.state !== "registered") return null;
      if (this.isBusy && !this.options.allowIncomingWhileBusy) return null;
      const call = new Call(this, "INCOMING", parameters, customParameters);
      this.calls.push(call);
      this.emit("incoming", call);
      return call;
    }

    _busy(call, active) {
      if (active) this._active.add(call);
      else this._active.delete(call);
    }
  }

  /* --- the demo: the hub's simulator routes play the rest of Twilio --------------------- */

  function relayUrl(path) {
    return `${document.body.dataset.simulatorUrl}/${path}`;
  }

  async function relay(path, body) {
    const token = document.querySelector('meta[name="csrf-token"]').content;
    const response = await fetch(relayUrl(path), {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(body), credentials: "same-origin",
    });
    return response.ok ? response.json() : null;
  }

  function simulated(call, what) {
    if (!Simulator.driving()) return;
    const parent = call.customParameters.get("callSid") || call.parameters.CallSid;
    if (!parent) return;
    relay(what, { call_sid: parent, leg_sid: call.legSid || call.parameters.CallSid,
                  direction: call.direction === "INCOMING" ? "inbound" : "outbound",
                  to: call.parameters.To || "" });
  }

  /* Dialling out: the hub answers as the TwiML App would, the number "rings" and answers. */
  async function dialOut(call) {
    const placed = await relay("dial", { to: call.customParameters.get("To") || "" });
    if (!placed) return call._close("disconnect");
    call.parameters = { CallSid: placed.call_sid, To: placed.to, From: placed.from };
    call.legSid = placed.leg_sid;
    call._status = "ringing";
    call.emit("ringing", false);
    window.setTimeout(() => { if (call.status() === "ringing") call._open(); }, 1500);
    return undefined;
  }

  /* A new incoming pop rings the phone, as Twilio's <Dial><Client> would. */
  function ringOnPop(event) {
    const { summary, isNew } = event.detail;
    if (!isNew || summary.call.direction === "outbound" || !summary.call.sid) return;
    // Twilio's invite comes a moment after the webhook's answer, not within the pop.
    window.setTimeout(() => Simulator.ring({ parent: summary.call.sid, from: summary.call.from,
                                             to: summary.call.to }), 300);
  }

  const Simulator = {
    devices: [],
    driving: () => document.body.dataset.phoneMode === "simulator",
    device() {
      return this.devices.filter((d) => d.state === "registered").pop() || null;
    },
    ring({ parent, from = "+14155550134", to = "client:agent", leg = fakeSid(), params = {} }) {
      const device = this.device();
      if (!device) return null;
      const call = device._incoming({ CallSid: leg, From: from, To: to },
        { callSid: parent, ...params });
      if (call) call.legSid = leg;
      return call;
    },
    calls() { return this.devices.flatMap((d) => d.calls); },
    expireToken() { for (const d of this.devices) d.emit("tokenWillExpire", d); },
  };

  window.Twilio = { Device, Call };
  window.TwilioSimulator = Simulator;
  document.addEventListener("cahub:card", (event) => { if (Simulator.driving()) ringOnPop(event); });
})();
