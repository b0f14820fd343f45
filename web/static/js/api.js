// api.js — the dashboard's one websocket to the Leosac API (/websocket).
//
// Api keeps one connection, reconnects with exponential back-off, re-authenticates with the
// token kept in sessionStorage, times out slow calls, and rejects in-flight calls with a clear
// ApiError when the connection is lost. Pushes ("event", "session_closed") and connection
// notices ("connection", "reconnected") are delivered to listeners registered with on().

const TOKEN_KEY = "gatehouse.token";
const DEVICE_KEY_PREFIX = "gatehouse.device."; // + lower-cased username: that user's device token

/** Status codes of the Leosac dialect (README), plus client-side ones (negative). */
export const Status = Object.freeze({
  SUCCESS: 0, GENERAL_FAILURE: 1, PERMISSION_DENIED: 2, RATE_LIMITED: 3, MALFORMED: 4,
  INVALID_CALL: 5, TIMEOUT: 6, SESSION_ABORTED: 7, ENTITY_NOT_FOUND: 8, DATABASE_ERROR: 9,
  UNKNOWN: 10, MODEL_EXCEPTION: 11, INVALID_ARGUMENT: 12,
  LOGIN_FAILED: -1,      // content.status === -1 (status_code 0 on the wire)
  CONNECTION_LOST: -2,   // the socket closed before the reply came, or is down
});

/** ApiError is a failed call: a non-zero status_code, a login failure, a timeout or a lost connection. */
export class ApiError extends Error {
  constructor(type, status_code, status_string, content) {
    super(messageOf(type, status_code, status_string, content));
    this.name = "ApiError";
    this.type = type;
    this.status_code = status_code;
    this.status_string = status_string || "";
    this.content = content ?? null;
    this.errors = Array.isArray(content?.errors) ? content.errors : [];
  }
}

function messageOf(type, code, str, content) {
  if (code === Status.LOGIN_FAILED) return content?.message || "Invalid credentials";
  if (code === Status.RATE_LIMITED) {
    const s = Number(content?.retry_after);
    return s > 0 ? `Too many attempts: try again in ${formatSeconds(s)}.` : (str || "Too many requests: slow down.");
  }
  if (code === Status.INVALID_CALL) return str || `The server does not know the call ${type}.`;
  if (code === Status.MODEL_EXCEPTION && Array.isArray(content?.errors) && content.errors.length) {
    return content.errors.map((e) => e.detail).join(" ");
  }
  if (str) return str;
  return `The call ${type} failed (status ${code}).`;
}

function formatSeconds(s) {
  if (s < 90) return `${Math.ceil(s)} s`;
  return `${Math.ceil(s / 60)} min`;
}

function uuid() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Api is the dashboard's connection. Options: url (default ws(s)://<host>/websocket),
 * timeout (ms per call, default 15000), minDelay/maxDelay (reconnect back-off, ms).
 */
export class Api {
  constructor(opts = {}) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = opts.url || `${proto}//${location.host}/websocket`;
    this.timeout = opts.timeout ?? 15000;
    this.minDelay = opts.minDelay ?? 500;
    this.maxDelay = opts.maxDelay ?? 30000;
    this.ws = null;
    this.state = "idle"; // idle | connecting | authenticating | ready | down | closed
    this.pending = new Map(); // uuid → {resolve, reject, timer, type}
    this.waiters = []; // calls waiting for the connection to be ready
    this.listeners = new Map();
    this.attempt = 0;
    this.retryTimer = null;
    this.everConnected = false;
    this.me = null;
  }

  /** token returns the kept session token, or null. */
  get token() { return sessionStorage.getItem(TOKEN_KEY); }
  set token(t) { t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY); }

  /** connect opens the websocket (if not open) and resolves when calls can be sent. */
  connect() {
    if (this.state === "ready") return Promise.resolve();
    if (this.state === "idle" || this.state === "closed" || this.state === "down") this.open();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.lost(`Cannot connect: ${e.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.opened(ws);
    ws.onmessage = (ev) => this.received(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lost(ev.code === 4001 ? "The dashboard fell behind the event stream." : "Connection to the server lost.");
    };
    ws.onerror = () => {}; // onclose follows
  }

  async opened(ws) {
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    // The dashboard reads gatehouse's own types (rfid-card-pin, access decisions and logins in
    // the audit trail): every connection opts into them, as a Leosac client never does.
    try {
      await this.raw("session.set_features", { types: "gatehouse" });
    } catch (e) {
      if (this.ws !== ws) return;
      if (e.status_code === Status.CONNECTION_LOST) return; // onclose handles it
      ws.close();
      return;
    }
    if (this.token) {
      this.setState("authenticating");
      try {
        const r = await this.raw("authenticate_with_token", { token: this.token });
        this.me = await this.raw("whoami", {});
        void r;
      } catch (e) {
        if (this.ws !== ws) return;
        if (e.status_code === Status.CONNECTION_LOST) return; // onclose handles it
        if (e.status_code === Status.TIMEOUT) { ws.close(); return; }
        this.token = null;
        this.me = null;
        this.setState("ready");
        this.flushWaiters();
        this.emit("session_closed", { reason: e.status_code === Status.LOGIN_FAILED ? "Your session has expired: please log in again." : e.message });
        return;
      }
    }
    if (this.ws !== ws) return;
    this.setState("ready");
    this.flushWaiters();
    if (reconnect) this.emit("reconnected", { me: this.me });
  }

  flushWaiters() {
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.resolve();
  }

  lost(reason) {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ApiError(p.type, Status.CONNECTION_LOST, `${reason} The request may not have been carried out.`, null));
    }
    this.pending.clear();
    if (this.state === "closed") return;
    const delay = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt++;
    this.setState("down", { reason, retryIn: Math.round(delay), attempt: this.attempt });
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.reject(new ApiError("", Status.CONNECTION_LOST, `${reason} Retrying…`, null));
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** retryNow skips the back-off wait. */
  retryNow() {
    if (this.state === "down") this.open();
  }

  /** close ends the connection for good (no reconnect). */
  close() {
    this.setState("closed");
    clearTimeout(this.retryTimer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
    this.lost("Closed.");
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit("connection", { state, ...detail });
  }

  received(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    const p = msg && this.pending.get(msg.uuid);
    if (p) {
      this.pending.delete(msg.uuid);
      clearTimeout(p.timer);
      const c = msg.content;
      if (msg.status_code === Status.SESSION_ABORTED && this.me) {
        // The token expired or was revoked: the connection has no rights left.
        this.token = null;
        this.me = null;
        queueMicrotask(() => this.emit("session_closed", { reason: msg.status_string || "Your session has ended: please log in again." }));
      }
      if (msg.status_code !== 0) p.reject(new ApiError(msg.type, msg.status_code, msg.status_string, c));
      else if (c && typeof c === "object" && c.status === -1) p.reject(new ApiError(msg.type, Status.LOGIN_FAILED, c.message || "Invalid credentials", c));
      else p.resolve(c);
      return;
    }
    if (msg && typeof msg.type === "string") {
      if (msg.type === "session_closed") { this.token = null; this.me = null; }
      this.emit(msg.type, msg.content);
    }
  }

  /** raw sends on the open socket without waiting for readiness. */
  raw(type, content = {}, timeout = this.timeout) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new ApiError(type, Status.CONNECTION_LOST, "Not connected to the server: reconnecting…", null));
        return;
      }
      const id = uuid();
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError(type, Status.TIMEOUT, `The server did not answer ${type} within ${Math.round(timeout / 1000)} s.`, null));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer, type });
      ws.send(JSON.stringify({ uuid: id, type, content }));
    });
  }

  /**
   * call sends a request and resolves with the reply's content. It rejects with an ApiError when
   * status_code != 0, when content.status === -1 (login failure), on timeout, and when the
   * connection is lost. While (re)connecting it waits for the connection (within the timeout);
   * while the connection is down it rejects at once.
   */
  async call(type, content = {}, opts = {}) {
    const timeout = opts.timeout ?? this.timeout;
    if (this.state === "down" || this.state === "closed") {
      throw new ApiError(type, Status.CONNECTION_LOST, "Not connected to the server: reconnecting…", null);
    }
    if (this.state !== "ready") {
      let t;
      await Promise.race([
        this.connect(),
        new Promise((_, rej) => { t = setTimeout(() => rej(new ApiError(type, Status.TIMEOUT, "The server could not be reached in time.", null)), timeout); }),
      ]).finally(() => clearTimeout(t));
    }
    return this.raw(type, content, timeout);
  }

  /** on registers a listener for a push or notice type; returns the unsubscribe function. */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  emit(type, content) {
    for (const fn of [...(this.listeners.get(type) || [])]) {
      try { fn(content); } catch (e) { console.error(e); }
    }
  }

  /**
   * login calls create_auth_token, keeps the token and returns whoami's reply. It sends the
   * device token kept from this user's last login in this browser, and keeps the new one the
   * server returns (OWASP device cookies: a known device still logs in while the username is
   * under a password-guessing attack). Device tokens live in localStorage, one per username.
   */
  async login(username, password) {
    const key = DEVICE_KEY_PREFIX + username.toLowerCase();
    const content = { username, password };
    let device = null;
    try { device = localStorage.getItem(key); } catch { /* storage disabled */ }
    if (device) content.device_token = device;
    const r = await this.call("create_auth_token", content);
    if (r.device_token) {
      try { localStorage.setItem(key, r.device_token); } catch { /* storage full or disabled */ }
    }
    this.token = r.token;
    this.me = await this.call("whoami", {});
    return this.me;
  }

  /** resume logs in with the kept token (if any); resolves with whoami or null. */
  async resume() {
    await this.connect();
    return this.me;
  }

  /** logout revokes the token on the server and forgets it here. */
  async logout() {
    try {
      if (this.me) await this.call("logout", {});
    } finally {
      this.token = null;
      this.me = null;
    }
  }
}
