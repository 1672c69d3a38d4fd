// Node identity in the browser (specs/protocol.md §4.3, §4.5; port of the parts of
// protocol/descriptor.py a member's device needs): key sets, descriptors and attestations.
//
// The browser checks attestations itself, under node keys it pinned (nodekeys.js), so
// that the home node cannot vouch for a device nobody enrolled: a ghost reader.

import { decode } from "./codec.js";
import { remote } from "./errors.js";
import { checkNodeName, parseMemberId } from "./identity.js";
import { AgreementPublicKey, VerifyKey, signingInput } from "./keys.js";
import { checkFields, field, isMap } from "./schema.js";

export const MAX_TEXT = 128;
export const MAX_LIST = 16;
export const PROTOCOL = "PFP/1";
const KID_RE = /^k[0-9a-f]{16}$/;
const SKEW_MS = 300_000;
const MAX_VALIDITY_MS = 7 * 24 * 3600 * 1000;

const badValue = (what, why) => remote("schema.bad_value", `${what} ${why}`);

function uint(v, what) {
  if (!((typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint")) {
    throw remote("schema.wrong_type", `${what} must be int`);
  }
  if (v < 0) throw badValue(what, "must be >= 0");
  return Number(v);
}

function text(v, what, limit = MAX_TEXT) {
  if (typeof v !== "string") throw remote("schema.wrong_type", `${what} must be str`);
  if (v.length < 1 || v.length > limit) throw badValue(what, `must be 1..${limit} characters`);
  return v;
}

function binOf(v, size, what) {
  if (!(v instanceof Uint8Array)) throw remote("schema.wrong_type", `${what} must be bin`);
  if (v.length !== size) throw badValue(what, `must be ${size} bytes`);
  return v;
}

function kidOf(v, what) {
  if (typeof v !== "string") throw remote("schema.wrong_type", `${what} must be str`);
  if (!KID_RE.test(v)) throw badValue(what, "is not a key id");
  return v;
}

function sigOf(v, what) {
  if (!(v instanceof Uint8Array)) throw remote("schema.wrong_type", `${what} must be bin`);
  if (v.length !== 64) throw remote("sig.invalid", `${what} must be 64 bytes`);
  return v;
}

function boundedList(obj, name, what, { empty = false } = {}) {
  const items = field(obj, name, "array", what);
  if (items.length > MAX_LIST || (!empty && !items.length)) {
    throw badValue(`${what}.${name}`, `must hold ${empty ? 0 : 1}..${MAX_LIST} items`);
  }
  return items;
}

function checkVersion(obj, what) {
  if (field(obj, "v", "int", what) !== 1) throw remote("schema.unsupported_version", `${what}.v must be 1`);
}

function loadMap(data, what) {
  const value = data instanceof Uint8Array ? decode(data) : data;
  if (!isMap(value)) throw remote("schema.wrong_type", `${what} must be a map`);
  return value;
}

async function keyed(obj, what, extra = []) {
  checkFields(obj, ["kid", "key", ...extra], [], what);
  const key = await VerifyKey.fromRaw(binOf(obj.key, 32, `${what}.key`));
  if (kidOf(obj.kid, `${what}.kid`) !== key.keyId) throw badValue(`${what}.kid`, "is not the id of its key");
  return key;
}

// ---------------------------------------------------------------------------- key sets

/** The keys of one node: `current` VerifyKeys, `old` [{key, expired}] (§4.3). */
export class KeySet {
  constructor(current, old = []) {
    if (current.length < 1 || current.length > MAX_LIST || old.length > MAX_LIST) {
      throw badValue("key set", `needs 1..${MAX_LIST} current and <= ${MAX_LIST} old keys`);
    }
    const kids = [...current.map((k) => k.keyId), ...old.map((o) => o.key.keyId)];
    if (new Set(kids).size !== kids.length) throw badValue("key set", "lists a key twice");
    this.current = current;
    this.old = old;
    Object.freeze(this);
  }

  static async fromWire(obj, what = "keys") {
    const current = [];
    for (const e of boundedList(obj, "keys", what)) current.push(await keyed(e, `${what}.keys[]`));
    const old = [];
    for (const e of boundedList(obj, "old_keys", what, { empty: true })) {
      const key = await keyed(e, `${what}.old_keys[]`, ["expired"]);
      old.push({ key, expired: uint(e.expired, "expired") });
    }
    return new KeySet(current, old);
  }

  /** The key `kid` if it may verify a signature made at `tsMs` (sig.unknown_key / key_expired). */
  keyValidAt(kid, tsMs) {
    for (const key of this.current) if (key.keyId === kid) return key;
    for (const o of this.old) {
      if (o.key.keyId === kid) {
        if (tsMs < o.expired) return o.key;
        throw remote("sig.key_expired", `${kid} expired at ${o.expired}`);
      }
    }
    throw remote("sig.unknown_key", `no key ${String(kid).slice(0, 40)}`);
  }
}

// ---------------------------------------------------------------------------- descriptors

const DESCRIPTOR_FIELDS = ["v", "name", "keys", "old_keys", "issued", "valid_until", "endpoints", "versions", "kid", "sig"];

/** Steps D1-D7 of §4.3: a descriptor fetched for `expectedName`, usable at `nowMs`. */
export async function verifyDescriptor(data, { expectedName, nowMs }) {
  const obj = checkFields(loadMap(data, "descriptor"), DESCRIPTOR_FIELDS, [], "descriptor");
  checkVersion(obj, "descriptor");
  const keys = await KeySet.fromWire(obj, "descriptor");
  const name = checkNodeName(obj.name);
  const issued = uint(obj.issued, "descriptor.issued");
  const validUntil = uint(obj.valid_until, "descriptor.valid_until");
  if (validUntil < issued) throw badValue("descriptor.valid_until", "is before issued");
  const endpoints = field(obj, "endpoints", "map", "descriptor");
  if (!Object.hasOwn(endpoints, "inbox")) throw remote("schema.missing_field", "descriptor.endpoints.inbox");
  const versions = field(obj, "versions", "array", "descriptor");
  if (!versions.includes(PROTOCOL)) throw remote("schema.unsupported_version", `${PROTOCOL} not offered`);
  const kid = kidOf(obj.kid, "descriptor.kid");
  sigOf(obj.sig, "descriptor.sig");
  if (name !== expectedName) throw remote("descriptor.name_mismatch", `${name} from ${expectedName}`); // D2
  if (validUntil - issued > MAX_VALIDITY_MS) throw remote("descriptor.validity_too_long"); // D3
  if (nowMs > validUntil) throw remote("descriptor.expired", `valid until ${validUntil}`); // D4
  if (issued > nowMs + SKEW_MS) throw remote("descriptor.not_yet_valid", `issued ${issued}`); // D5
  // D6: a descriptor speaks for the node now, so only a current key may sign it.
  const signer = keys.current.find((k) => k.keyId === kid);
  if (!signer) {
    const retired = keys.old.some((o) => o.key.keyId === kid);
    throw remote(retired ? "sig.key_expired" : "sig.unknown_key", "not a current key");
  }
  const unsigned = {};
  for (const k of DESCRIPTOR_FIELDS) if (k !== "sig") unsigned[k] = obj[k];
  await signer.verify(signingInput("descriptor", unsigned), obj.sig); // D7
  return { name, keys, issued, validUntil, kid };
}

// ---------------------------------------------------------------------------- rotation

const ROTATION_FIELDS = ["v", "node", "old_kid", "old_key", "new_kid", "new_key", "ts", "kid"];

/** Steps R1-R4 of §4.4 against the key set this browser `pinned` for `expectedNode`:
 *  the only way a node's new key is believed once an older one is pinned. */
export async function verifyRotation(data, { expectedNode, pinned }) {
  const obj = checkFields(loadMap(data, "rotation"), [...ROTATION_FIELDS, "sig", "new_sig"], [], "rotation"); // R1
  checkVersion(obj, "rotation");
  const oldKey = await keyed({ kid: obj.old_kid, key: obj.old_key }, "rotation.old");
  const newKey = await keyed({ kid: obj.new_kid, key: obj.new_key }, "rotation.new");
  if (kidOf(obj.kid, "rotation.kid") !== oldKey.keyId) throw remote("rotation.invalid", "not signed by the old key");
  const node = checkNodeName(obj.node);
  const ts = uint(obj.ts, "rotation.ts");
  if (oldKey.keyId === newKey.keyId) throw badValue("rotation.new_key", "equals old_key");
  sigOf(obj.sig, "rotation.sig");
  sigOf(obj.new_sig, "rotation.new_sig");
  if (node !== expectedNode) throw remote("rotation.invalid", `statement is for ${node}`); // R2
  try {
    if (pinned.keyValidAt(oldKey.keyId, ts).keyId !== oldKey.keyId) throw remote("sig.unknown_key"); // R3
    const unsigned = {};
    for (const k of ROTATION_FIELDS) unsigned[k] = obj[k];
    const message = signingInput("rotation", unsigned);
    await oldKey.verify(message, obj.sig); // R4
    await newKey.verify(message, obj.new_sig);
  } catch (err) {
    throw remote("rotation.invalid", err.message);
  }
  return { node, oldKey, newKey, ts };
}

/** The pinned set after a verified rotation: the old key retired at its `ts`. */
export function applyRotation(keys, rot) {
  let current = keys.current.filter((k) => k.keyId !== rot.oldKey.keyId);
  let old = keys.old;
  if (current.length !== keys.current.length) old = [...old, { key: rot.oldKey, expired: rot.ts }];
  if (!current.some((k) => k.keyId === rot.newKey.keyId)) current = [...current, rot.newKey];
  return new KeySet(current, old.filter((o) => o.key.keyId !== rot.newKey.keyId));
}

// ---------------------------------------------------------------------------- attestations

const ATTESTATION_FIELDS = ["v", "node", "member", "org", "devices", "ts", "kid", "sig"];

/** A device {sign: VerifyKey, agree: AgreementPublicKey, id}; id is its signing key id. */
export async function deviceFromWire(obj) {
  checkFields(obj, ["sign", "agree"], [], "device");
  const sign = await VerifyKey.fromRaw(binOf(obj.sign, 32, "device.sign"));
  const agree = await AgreementPublicKey.fromRaw(binOf(obj.agree, 32, "device.agree"));
  return Object.freeze({ sign, agree, id: sign.keyId });
}

/** Same device: the same two public keys (Device equality in Python). */
export function sameDevice(a, b) {
  const eq = (x, y) => x.length === y.length && x.every((v, i) => v === y[i]);
  return !!a && !!b && eq(a.sign.raw, b.sign.raw) && eq(a.agree.raw, b.agree.raw);
}

/** Attestation.from_wire: the fields checked, devices parsed, nothing verified yet. */
export async function attestationFromWire(obj) {
  checkFields(obj, ATTESTATION_FIELDS, ["title", "industry"], "attestation");
  checkVersion(obj, "attestation");
  const devices = [];
  for (const e of boundedList(obj, "devices", "attestation")) devices.push(await deviceFromWire(e));
  const node = checkNodeName(obj.node);
  const member = obj.member;
  if (parseMemberId(member)[1] !== node) throw remote("attestation.invalid", "member is not of the signing node");
  text(obj.org, "attestation.org");
  if (Object.hasOwn(obj, "title")) text(obj.title, "attestation.title");
  if (Object.hasOwn(obj, "industry")) text(obj.industry, "attestation.industry");
  const signs = new Set(devices.map((d) => d.sign.keyId));
  const agrees = new Set(devices.map((d) => d.agree.keyId));
  if (signs.size !== devices.length || agrees.size !== devices.length) throw badValue("attestation.devices", "lists a key twice");
  const ts = uint(obj.ts, "attestation.ts");
  const kid = kidOf(obj.kid, "attestation.kid");
  sigOf(obj.sig, "attestation.sig");
  return Object.freeze({
    node, member, org: obj.org, title: obj.title ?? null, industry: obj.industry ?? null,
    devices, ts, kid, sig: obj.sig, wire: obj,
  });
}

/** Steps A1-A4 of §4.5: `keys` (a KeySet) are the pinned keys of `expectedNode`. */
export async function verifyAttestation(data, { expectedNode, keys }) {
  const obj = loadMap(data, "attestation");
  const att = await attestationFromWire(obj); // A1
  if (att.node !== expectedNode) throw remote("attestation.invalid", `signed by ${att.node}`); // A2
  const signer = keys.keyValidAt(att.kid, att.ts); // A3
  const unsigned = {};
  for (const [k, v] of Object.entries(obj)) if (k !== "sig") unsigned[k] = v;
  try {
    await signer.verify(signingInput("attestation", unsigned), att.sig); // A4
  } catch (err) {
    throw remote("attestation.invalid", err.message);
  }
  return att;
}
