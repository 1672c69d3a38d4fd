// The client API of the member's home node (/_pf/client/v1, specs/api.md): JSON over
// fetch, bytes as base64url, a bearer token bound to this device.
//
// A 401 is not an error for the member: the session is re-opened with a proof signed by
// the device's non-extractable key, and the call is retried once. Only the page's own
// origin is ever contacted (CSP connect-src 'self').

import { ascii } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { sha256, signingInput } from "./keys.js";

export const PREFIX = "/_pf/client/v1";
const MSGPACK = "application/vnd.peerforum+msgpack";

/** A refusal by the node (or no answer): `code` is a protocol code from specs/api.md. */
export class ApiError extends ProtocolError {
  constructor(code, message, status = 0) {
    super(code, message);
    this.status = status;
  }
}

export function b64u(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64u(text) {
  const b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

/** One path segment: forum and member ids hold "!", "@" and ":". */
export const seg = (s) => encodeURIComponent(s);

export async function httpJson(method, path, { body, token, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, credentials: "omit" });
  } catch (err) {
    throw new ApiError("api.unavailable", `cannot reach the node: ${err.message}`);
  }
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) throw new ApiError(data?.error ?? "api.internal", data?.message ?? `HTTP ${resp.status}`, resp.status);
  return data;
}

/** GET /.well-known/peerforum of the home node: the descriptor's exact bytes. */
export async function fetchOwnDescriptor() {
  const resp = await fetch("/.well-known/peerforum", { headers: { Accept: MSGPACK }, credentials: "omit" });
  if (!resp.ok) throw new ApiError("api.unavailable", `descriptor: HTTP ${resp.status}`, resp.status);
  return new Uint8Array(await resp.arrayBuffer());
}

/** The node's name: the page's host (with the port when there is one), as in node_name_of. */
export const homeNodeName = () => location.host.toLowerCase();

// ---------------------------------------------------------------------------- device proofs

export function enrollMessage({ codeHash, member, node, sign, agree }) {
  return signingInput("enroll", { v: 1, code: codeHash, member, node, sign, agree });
}

/** POST /enroll: spend the operator's one-time code with a proof of possession of `device`. */
export async function enroll(code, device) {
  const node = homeNodeName();
  const handle = code.slice(0, code.lastIndexOf("."));
  if (!handle || code.lastIndexOf(".") === code.length - 1) throw new ApiError("api.bad_request", "not an enrollment code");
  const member = `@${handle}:${node}`;
  const sign = device.sign.publicKey;
  const agree = device.agree.public.raw;
  const proof = await device.sign.sign(enrollMessage({ codeHash: await sha256(ascii(code)), member, node, sign, agree }));
  const answer = await httpJson("POST", PREFIX + "/enroll", { body: { code, device: { sign: b64u(sign), agree: b64u(agree) }, proof: b64u(proof) } });
  return { ...answer, member, node };
}

// ---------------------------------------------------------------------------- sessions

export class Session {
  /** `device` is {sign, agree} from keystore.js; the token lives in memory only. */
  constructor({ member, node, device }) {
    Object.assign(this, { member, node, device, token: null });
  }

  async login() {
    const ts = Date.now();
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    const kid = this.device.sign.keyId;
    const msg = signingInput("session", { v: 1, member: this.member, node: this.node, kid, ts, nonce });
    const sig = await this.device.sign.sign(msg);
    const answer = await httpJson("POST", PREFIX + "/session", { body: { member: this.member, kid, ts, nonce: b64u(nonce), sig: b64u(sig) } });
    this.token = answer.token;
    return this.token;
  }

  async logout() {
    if (this.token) await httpJson("DELETE", PREFIX + "/session", { token: this.token }).catch(() => {});
    this.token = null;
  }

  async call(method, path, body, { signal } = {}) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await httpJson(method, PREFIX + path, { body, token: this.token || (await this.login()), signal });
      } catch (err) {
        // A session that ended is re-opened; a rate limit is waited out: neither is the
        // member's problem. Both only a few times, so a real refusal still surfaces.
        if (err.code === "api.unauthorized" && attempt === 0) this.token = null;
        else if (err.code === "api.rate_limited" && attempt < 3) await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
        else throw err;
      }
    }
  }

  me() { return this.call("GET", "/me"); }
  forums() { return this.call("GET", "/forums").then((a) => a.forums); }
  invites() { return this.call("GET", "/invites").then((a) => a.invites); }
  reportedState(forum) { return this.call("GET", `/forums/${seg(forum)}/state`); }
  removeDevice(kid) { return this.call("DELETE", `/devices/${seg(kid)}`); }
  attestation(member) { return this.call("GET", `/members/${seg(member)}/attestation`).then((a) => unb64u(a.attestation)); }

  /** A signed event; a detached one (§6.9) with its attachment beside it. */
  submit(event, attachment = null) {
    const body = { event: b64u(event.raw) };
    if (attachment) body.attachment = b64u(attachment);
    return this.call("POST", `/forums/${seg(event.forum)}/events`, body);
  }

  /** One page of hub-signed entries from `from`; with `wait` (s) a long poll (≤ 30 s). */
  entries(forum, { from = 1, limit = 500, wait = 0, signal } = {}) {
    return this.call("GET", `/forums/${seg(forum)}/entries?from=${from}&limit=${limit}&wait=${wait}`, undefined, { signal });
  }
}

