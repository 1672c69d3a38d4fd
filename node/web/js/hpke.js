// HPKE base mode for PFP/1 suite 1 (specs/protocol.md §8.8; RFC 9180 §4-§5):
// DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, single-shot seal and open.
//
// WebCrypto has no HPKE, but has every primitive: X25519 deriveBits, HMAC-SHA256 (so
// Extract and Expand are written out exactly as the spec states them, which keeps each
// labelled step checkable against the text) and AES-GCM.

import { ascii, concatBytes } from "./codec.js";
import { AgreementKey, importX25519Public } from "./keys.js";

const subtle = globalThis.crypto.subtle;
const HPKE_V1 = ascii("HPKE-v1");
export const KEM_ID = concatBytes(ascii("KEM"), Uint8Array.of(0x00, 0x20));
export const SUITE_ID = concatBytes(ascii("HPKE"), Uint8Array.of(0x00, 0x20, 0x00, 0x01, 0x00, 0x01));
const EMPTY = new Uint8Array(0);
// WebCrypto refuses a zero-length HMAC key; HMAC pads keys with zeros, so this is the same.
const ZERO_SALT = new Uint8Array(32);
export const N_ENC = 32;
const N_SECRET = 32;
const N_KEY = 16;
const N_NONCE = 12;

async function hmac(key, data) {
  const k = await subtle.importKey("raw", key.length ? key : ZERO_SALT, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, data));
}

export const extract = (salt, ikm) => hmac(salt, ikm);

export async function expand(prk, info, length) {
  const out = [];
  let t = EMPTY;
  for (let i = 1, n = 0; n < length; i++) {
    t = await hmac(prk, concatBytes(t, info, Uint8Array.of(i)));
    out.push(t);
    n += t.length;
  }
  return concatBytes(...out).slice(0, length);
}

export function labeledExtract(id, salt, label, ikm) {
  return extract(salt, concatBytes(HPKE_V1, id, ascii(label), ikm));
}

export function labeledExpand(id, prk, label, info, length) {
  const l = Uint8Array.of(length >> 8, length & 0xff);
  return expand(prk, concatBytes(l, HPKE_V1, id, ascii(label), info), length);
}

async function sharedSecret(dh, enc, pkR) {
  const eaePrk = await labeledExtract(KEM_ID, EMPTY, "eae_prk", dh);
  return labeledExpand(KEM_ID, eaePrk, "shared_secret", concatBytes(enc, pkR), N_SECRET);
}

/** Mode 0 key schedule: the AEAD key and base nonce for `ss` and `info`. */
export async function keySchedule(ss, info) {
  const pskIdHash = await labeledExtract(SUITE_ID, EMPTY, "psk_id_hash", EMPTY);
  const infoHash = await labeledExtract(SUITE_ID, EMPTY, "info_hash", info);
  const context = concatBytes(Uint8Array.of(0), pskIdHash, infoHash);
  const secret = await labeledExtract(SUITE_ID, ss, "secret", EMPTY);
  return {
    key: await labeledExpand(SUITE_ID, secret, "key", context, N_KEY),
    baseNonce: await labeledExpand(SUITE_ID, secret, "base_nonce", context, N_NONCE),
  };
}

async function aesGcm(op, key, nonce, aad, data) {
  const k = await subtle.importKey("raw", key, { name: "AES-GCM" }, false, [op]);
  const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
  return new Uint8Array(await subtle[op](params, k, data));
}

/**
 * SealBase(pkR, info, aad, pt) -> {enc, ct}. The ephemeral key is fresh and
 * non-extractable unless `ephemeral` (an AgreementKey) is passed: tests only, to
 * reproduce specs/vectors/group.json byte for byte. Rejects if X25519 gives all zeros.
 */
export async function sealBase(pkR, info, aad, pt, { ephemeral } = {}) {
  const eph = ephemeral ?? (await AgreementKey.generate());
  const enc = eph.public.raw;
  const dh = await eph.deriveBits(pkR);
  const { key, baseNonce } = await keySchedule(await sharedSecret(dh, enc, pkR), info);
  return { enc, ct: await aesGcm("encrypt", key, baseNonce, aad, pt) };
}

/** OpenBase(enc, skR, info, aad, ct) -> pt; rejects on any failure (bad tag, zero DH). */
export async function openBase(enc, skR, info, aad, ct) {
  await importX25519Public(enc); // length and form of the encapsulated key
  const dh = await skR.deriveBits(enc);
  const { key, baseNonce } = await keySchedule(await sharedSecret(dh, enc, skR.public.raw), info);
  return aesGcm("decrypt", key, baseNonce, aad, ct);
}

/** The receiver's key schedule alone (checks RFC 9180's key and base_nonce). */
export async function receiverContext(enc, skR, info) {
  const dh = await skR.deriveBits(enc);
  return keySchedule(await sharedSecret(dh, enc, skR.public.raw), info);
}
