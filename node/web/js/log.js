// The forum log on the member's device (specs/protocol.md §6; port of protocol/log.py):
// build and sign events, compute event ids, parse and verify hub-signed entries and heads.
//
// The device signs its own words, so a node can withhold or delay them but not forge
// them; and it re-checks every entry the hub signed, so a hub cannot rewrite history
// unnoticed. Event and entry ids are hashes of exact bytes, so every object keeps the
// bytes it was decoded from (`raw`) and is never re-encoded to be hashed.

import { decode, encode, equalBytes, LIMITS } from "./codec.js";
import { local, remote } from "./errors.js";
import { sealContentMap } from "./group.js";
import { checkNodeName, parseMemberId } from "./identity.js";
import { sha256, signObject, signingInput } from "./keys.js";
import { checkFields, field, fixedBytes, isMap, nonNegative } from "./schema.js";

export const VERSION = 1;
export const ZERO_HASH = new Uint8Array(32); // prev of the entry with seq 1
export const NONCE_BYTES = 16;
const FORUM_RE = /^!([A-Za-z0-9_-]{22}):(.+)$/;
const KID_RE = /^k[0-9a-f]{16}$/;
const TYPE_RE = /^[a-z][a-z0-9.-]{0,63}$/;
const EVENT_FIELDS = ["v", "forum", "type", "author", "kid", "ts", "nonce", "epoch", "body", "sig"];
const ENTRY_FIELDS = ["v", "forum", "seq", "prev", "event", "ts", "hub", "kid", "sig"];
const HEAD_FIELDS = ["v", "forum", "seq", "hash", "ts", "hub", "kid", "sig"];
const COSIG_FIELDS = ["v", "forum", "seq", "hash", "node", "ts", "kid", "sig"];

// ---------------------------------------------------------------------------- names

function b64u(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** "!" + b64u(16 random bytes) + ":" + hub (§6.1); the id never changes. */
export function makeForumId(random16, hub) {
  if (!(random16 instanceof Uint8Array) || random16.length !== 16) {
    throw local("schema.bad_value", "forum id needs 16 random bytes");
  }
  return `!${b64u(random16)}:${checkNodeName(hub)}`;
}

export function checkForumId(forum) {
  const m = typeof forum === "string" ? FORUM_RE.exec(forum) : null;
  const bad = () => remote("schema.bad_value", `bad forum id ${JSON.stringify(String(forum)).slice(0, 80)}`);
  if (!m) throw bad();
  try {
    checkNodeName(m[2]);
  } catch {
    throw bad();
  }
  return forum;
}

/** The node that created `forum` (its first hub). */
export const forumOrigin = (forum) => checkForumId(forum).split(":").slice(1).join(":");

// ---------------------------------------------------------------------------- shared checks

function checkVersion(m, what) {
  if (field(m, "v", "int", what) !== VERSION) throw remote("schema.unsupported_version", `${what}.v must be 1`);
}

function checkKid(m, what) {
  if (!KID_RE.test(field(m, "kid", "str", what))) throw remote("schema.bad_value", `${what}.kid is not a key id`);
}

function decodeMap(data, what) {
  if (!(data instanceof Uint8Array)) throw remote("schema.wrong_type", `${what} must be bin`);
  const value = decode(data);
  if (!isMap(value)) throw remote("schema.wrong_type", `${what} must be a map`);
  return value;
}

function unsignedOf(wire) {
  const out = {};
  for (const [k, v] of Object.entries(wire)) if (k !== "sig") out[k] = v;
  return out;
}

async function verifySig(domain, wire, key, code) {
  try {
    await key.verify(signingInput(domain, unsignedOf(wire)), wire.sig);
  } catch {
    throw remote(code, `${domain} signature does not verify`);
  }
}

// ---------------------------------------------------------------------------- events

/** A member's signed event; `raw` is its exact encoding, `eventId` = SHA-256(raw). */
export class Event {
  constructor(wire, raw, eventId) {
    for (const k of EVENT_FIELDS) if (k !== "v") this[k] = wire[k];
    this.raw = raw;
    this.eventId = eventId;
    Object.freeze(this);
  }

  toWire() {
    const w = { v: VERSION };
    for (const k of EVENT_FIELDS) if (k !== "v") w[k] = this[k];
    return w;
  }

  /** The cleartext header (event minus body and sig): the AAD of sealed content (§8.6). */
  header() {
    const header = {};
    for (const [k, v] of Object.entries(this.toWire())) if (k !== "body" && k !== "sig") header[k] = v;
    return header;
  }
}

function checkEventMap(m) {
  checkForumId(field(m, "forum", "str", "event"));
  if (!TYPE_RE.test(field(m, "type", "str", "event"))) throw remote("schema.bad_value", "event.type is not a type name");
  parseMemberId(m.author);
  checkKid(m, "event");
  nonNegative(m, "ts", "event");
  fixedBytes(m, "nonce", NONCE_BYTES, "event");
  nonNegative(m, "epoch", "event");
  field(m, "body", "map", "event");
  fixedBytes(m, "sig", 64, "event");
}

/** Decode and check an event (§6.2 verify steps 1-2). */
export async function eventFromBytes(data) {
  if (data instanceof Uint8Array && data.length > LIMITS.maxEventBytes) {
    throw remote("event.too_large", `${data.length} bytes`);
  }
  const m = checkFields(decodeMap(data, "event"), EVENT_FIELDS, [], "event");
  checkVersion(m, "event");
  checkEventMap(m);
  return new Event(m, data, await sha256(data));
}

/** Build and sign an event with the author's device key, a SigningKey (§6.2 build). */
export async function buildEvent({ forum, type, author, deviceKey, ts, nonce, epoch, body }) {
  const unsigned = { v: VERSION, forum, type, author, kid: deviceKey.keyId, ts, nonce, epoch, body };
  const raw = encode(await signObject("event", unsigned, deviceKey));
  if (raw.length > LIMITS.maxEventBytes) throw local("event.too_large", `${raw.length} bytes`);
  return eventFromBytes(raw);
}

/**
 * Build a content event (post, reply, ...): `content` (a map) is sealed under the epoch
 * secret with this event's own header as AAD, then the event is signed (§8.6, §7.3).
 */
export async function buildContentEvent({ forum, type, author, deviceKey, ts, nonce, epoch, content, epochSecret, contentNonce }) {
  // Inline only: content that expires is detached (§6.9, group.js detachContent), since
  // `{ct, expires}` is refused by the rule table.
  const header = { v: VERSION, forum, type, author, kid: deviceKey.keyId, ts, nonce, epoch };
  const ct = await sealContentMap(epochSecret, { header, body: content, nonce: contentNonce });
  return buildEvent({ forum, type, author, deviceKey, ts, nonce, epoch, body: { ct } });
}

/** sig.unknown_key if `deviceKey` (a VerifyKey) is not event.kid; sig.invalid if bad. */
export async function verifyEvent(event, deviceKey) {
  if (deviceKey.keyId !== event.kid) throw remote("sig.unknown_key", `event kid ${event.kid} is another key`);
  await verifySig("event", event.toWire(), deviceKey, "sig.invalid");
}

// ---------------------------------------------------------------------------- entries

/** A hub-signed entry; `signedEvent` is its event decoded and checked, `hash` its id. */
export class Entry {
  constructor(wire, raw, hash, signedEvent) {
    for (const k of ENTRY_FIELDS) if (k !== "v") this[k] = wire[k];
    this.raw = raw;
    this.hash = hash;
    this.signedEvent = signedEvent;
    Object.freeze(this);
  }

  toWire() {
    const w = { v: VERSION };
    for (const k of ENTRY_FIELDS) if (k !== "v") w[k] = this[k];
    return w;
  }
}

/** Decode and check an entry and the event inside it (§6.3 E0). */
export async function entryFromBytes(data) {
  const m = checkFields(decodeMap(data, "entry"), ENTRY_FIELDS, [], "entry");
  checkVersion(m, "entry");
  checkForumId(field(m, "forum", "str", "entry"));
  if (nonNegative(m, "seq", "entry") < 1) throw remote("schema.bad_value", "entry.seq must be >= 1");
  fixedBytes(m, "prev", 32, "entry");
  field(m, "event", "bin", "entry");
  nonNegative(m, "ts", "entry");
  checkNodeName(field(m, "hub", "str", "entry"));
  checkKid(m, "entry");
  fixedBytes(m, "sig", 64, "entry");
  const event = await eventFromBytes(m.event);
  if (event.forum !== m.forum) throw remote("event.wrong_forum", "entry and its event name other forums");
  return new Entry(m, data, await sha256(data), event);
}

/** Check the hub's signature and, when given, the expected seq and prev (§6.3 E3, E4, E6). */
export async function verifyEntry(entry, hubKey, { seq, prev } = {}) {
  if (seq !== undefined && entry.seq !== seq) throw remote("entry.bad_seq", `expected seq ${seq}, got ${entry.seq}`);
  if (prev !== undefined && !equalBytes(entry.prev, prev)) throw remote("entry.broken_chain", `seq ${entry.seq} does not chain`);
  if (hubKey.keyId !== entry.kid) throw remote("sig.unknown_key", `entry kid ${entry.kid} is another key`);
  await verifySig("entry", entry.toWire(), hubKey, "sig.invalid");
}

// ---------------------------------------------------------------------------- heads

function checkPoint(m, what) {
  checkForumId(field(m, "forum", "str", what));
  if (nonNegative(m, "seq", what) < 1) throw remote("schema.bad_value", `${what}.seq must be >= 1`);
  fixedBytes(m, "hash", 32, what);
  nonNegative(m, "ts", what);
  checkKid(m, what);
  fixedBytes(m, "sig", 64, what);
}

/** The hub's signed head {forum, seq, hash, ts, hub, kid, sig} (§6.4), as a plain map. */
export function headFromBytes(data) {
  const m = checkFields(decodeMap(data, "head"), HEAD_FIELDS, [], "head");
  checkVersion(m, "head");
  checkPoint(m, "head");
  checkNodeName(field(m, "hub", "str", "head"));
  return m;
}

export function cosignatureFromBytes(data) {
  const m = checkFields(decodeMap(data, "cosignature"), COSIG_FIELDS, [], "cosignature");
  checkVersion(m, "cosignature");
  checkPoint(m, "cosignature");
  checkNodeName(field(m, "node", "str", "cosignature"));
  return m;
}

export async function verifyHead(head, hubKey) {
  if (hubKey.keyId !== head.kid) throw remote("head.invalid", `head kid ${head.kid} is another key`);
  await verifySig("head", head, hubKey, "head.invalid");
}

export async function verifyCosignature(cosig, nodeKey, head) {
  if (head && (cosig.forum !== head.forum || cosig.seq !== head.seq || !equalBytes(cosig.hash, head.hash))) {
    throw remote("head.invalid", "cosignature is for another head");
  }
  if (nodeKey.keyId !== cosig.kid) throw remote("head.invalid", `cosignature kid ${cosig.kid} is another key`);
  await verifySig("cosign", cosig, nodeKey, "head.invalid");
}
