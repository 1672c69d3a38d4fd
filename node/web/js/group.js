// Group encryption (specs/protocol.md §8; port of protocol/group.py): epoch secrets sealed
// to each roster device with HPKE, content sealed under a per-event key derived from the
// epoch secret. Every sealed object names its suite; only the suites in SUITES exist.
//
// This is where "no ghost members" is enforced on the member's side: a device seals an
// epoch secret only to the exact roster, and refuses to use a secret whose recipients are
// not exactly the roster (checkRecipients) — the node cannot add a reader unnoticed.

import { ascii, concatBytes, decode, encode } from "./codec.js";
import { local, remote, ProtocolError } from "./errors.js";
import { openBase, sealBase, N_ENC } from "./hpke.js";
import { checkFields, field, isMap } from "./schema.js";

const subtle = globalThis.crypto.subtle;
export const SECRET_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const HEADER_FIELDS = Object.freeze(["v", "forum", "type", "author", "kid", "ts", "nonce", "epoch"]);
const EMPTY = new Uint8Array(0);

export const SUITES = Object.freeze({
  1: Object.freeze({ id: 1, encBytes: N_ENC, contentKeyBytes: 32, sealedSecretBytes: N_ENC + SECRET_BYTES + TAG_BYTES }),
});
export const DEFAULT_SUITE = 1;

export function suiteOf(id) {
  const suite = typeof id === "number" && Object.hasOwn(SUITES, id) ? SUITES[id] : undefined;
  if (!suite) throw remote("epoch.unknown_suite", `suite ${String(id).slice(0, 20)} is not supported`);
  return suite;
}

/** Fresh randomness the author's device draws (§8.3, §8.6). */
export const newEpochSecret = () => crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
export const newContentNonce = () => crypto.getRandomValues(new Uint8Array(NONCE_BYTES));

// ---------------------------------------------------------------------------- sealed objects
// Checks in the order of §8.2: field set, field types, suite, sizes.

/** {suite, to, enc} from its wire map, or the schema.* / epoch.unknown_suite code. */
export function sealedSecretFromWire(obj) {
  const what = "sealed secret";
  checkFields(obj, ["suite", "to", "enc"], [], what);
  const suite = field(obj, "suite", "int", what);
  const to = field(obj, "to", "str", what);
  const enc = field(obj, "enc", "bin", what);
  const s = suiteOf(suite);
  if (!to) throw remote("schema.wrong_type", "sealed secret.to must be a key id");
  if (enc.length !== s.sealedSecretBytes) {
    throw remote("schema.bad_value", `sealed secret.enc must be ${s.sealedSecretBytes} bytes`);
  }
  return { suite, to, enc };
}

/** {suite, nonce, ct} from its wire map, or the schema.* / epoch.unknown_suite code. */
export function sealedContentFromWire(obj) {
  const what = "sealed content";
  checkFields(obj, ["suite", "nonce", "ct"], [], what);
  const suite = field(obj, "suite", "int", what);
  const nonce = field(obj, "nonce", "bin", what);
  const ct = field(obj, "ct", "bin", what);
  suiteOf(suite);
  if (nonce.length !== NONCE_BYTES) throw remote("schema.bad_value", `content nonce must be ${NONCE_BYTES} bytes`);
  if (ct.length < TAG_BYTES) throw remote("schema.bad_value", "content ct is shorter than its tag");
  return { suite, nonce, ct };
}

// ---------------------------------------------------------------------------- epoch secrets

/** HPKE info (§8.5): binds a sealed secret to its forum, epoch and recipient. */
export function epochInfo({ forum, epoch, to }) {
  return concatBytes(ascii("PFP/1 epoch"), Uint8Array.of(0), encode({ epoch, forum, to }));
}

/**
 * Seal `secret` to each roster device (AgreementPublicKey: {raw, keyId}), in order (§8.4).
 * `ephemerals` (AgreementKeys, one per recipient) is for tests only: it makes the output
 * reproducible; without it every recipient gets a fresh non-extractable ephemeral key.
 */
export async function sealEpoch(secret, { forum, epoch, recipients, suite = DEFAULT_SUITE, ephemerals } = {}) {
  const s = suiteOf(suite);
  if (!(secret instanceof Uint8Array) || secret.length !== SECRET_BYTES) {
    throw local("schema.bad_value", `epoch secret must be ${SECRET_BYTES} bytes`);
  }
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw local("schema.bad_value", "epoch must be an int >= 0");
  const kids = recipients.map((r) => r.keyId);
  if (new Set(kids).size !== kids.length) throw local("epoch.recipients_mismatch", "a recipient is listed twice");
  const sealed = [];
  for (const [i, recipient] of recipients.entries()) {
    const info = epochInfo({ forum, epoch, to: kids[i] });
    const { enc, ct } = await sealBase(recipient.raw, info, EMPTY, secret, { ephemeral: ephemerals?.[i] });
    sealed.push({ suite: s.id, to: kids[i], enc: concatBytes(enc, ct) });
  }
  return sealed;
}

/** Open the secret addressed to `key` (an AgreementKey) — §8.7 steps 3-6. */
export async function openEpoch(secrets, { forum, epoch, key }) {
  const kid = key.public.keyId;
  const mine = secrets.filter((s) => s.to === kid);
  if (mine.length === 0) throw remote("epoch.open_failed", `no secret is addressed to ${kid}`);
  if (mine.length > 1) throw remote("epoch.recipients_mismatch", `${kid} is addressed twice`);
  const s = suiteOf(mine[0].suite);
  const { enc } = mine[0];
  // Built from the commit's own forum and epoch and our own key id, never from elsewhere.
  const info = epochInfo({ forum, epoch, to: kid });
  let secret;
  try {
    secret = await openBase(enc.subarray(0, s.encBytes), key, info, EMPTY, enc.subarray(s.encBytes));
  } catch {
    throw remote("epoch.open_failed", "sealed secret does not open");
  }
  if (secret.length !== SECRET_BYTES) throw remote("epoch.open_failed", "opened secret has the wrong length");
  return secret;
}

/**
 * Require the recipients to be exactly the roster (AgreementPublicKeys or key ids):
 * one missing, one extra, or one repeated is epoch.recipients_mismatch (§8.7 step 2).
 */
export function checkRecipients(secrets, roster) {
  const wanted = roster.map((r) => (typeof r === "string" ? r : r.keyId));
  if (new Set(wanted).size !== wanted.length) throw remote("epoch.recipients_mismatch", "the roster lists a key twice");
  const got = secrets.map((s) => s.to);
  const gotSet = new Set(got);
  if (gotSet.size !== got.length) throw remote("epoch.recipients_mismatch", "a recipient is addressed twice");
  const missing = wanted.filter((k) => !gotSet.has(k)).sort();
  const extra = got.filter((k) => !wanted.includes(k)).sort();
  if (missing.length || extra.length) {
    throw remote("epoch.recipients_mismatch", `missing [${missing}], not on the roster [${extra}]`);
  }
}

// ---------------------------------------------------------------------------- content

/** The cleartext header of an event: the event minus body and sig (§6.2). */
export function contentHeader(event) {
  const h = {};
  for (const [k, v] of Object.entries(event)) if (k !== "body" && k !== "sig") h[k] = v;
  return h;
}

function headerBytes(header) {
  checkFields(header, HEADER_FIELDS, [], "content header");
  return encode(header);
}

/** HKDF info for content keys: the label, NUL, then the canonical {suite} map. */
export function contentInfo(suite) {
  return concatBytes(ascii("PFP/1 content"), Uint8Array.of(0), encode({ suite }));
}

/** Per-event key: HKDF-SHA256(ikm = epoch secret, salt = SHA-256(header), info) (§8.6). */
export async function contentKey(epochSecret, { header, suite = DEFAULT_SUITE }) {
  const s = suiteOf(suite);
  if (!(epochSecret instanceof Uint8Array) || epochSecret.length !== SECRET_BYTES) {
    throw local("schema.bad_value", `epoch secret must be ${SECRET_BYTES} bytes`);
  }
  const salt = new Uint8Array(await subtle.digest("SHA-256", headerBytes(header)));
  const ikm = await subtle.importKey("raw", epochSecret, "HKDF", false, ["deriveBits"]);
  const params = { name: "HKDF", hash: "SHA-256", salt, info: contentInfo(s.id) };
  return new Uint8Array(await subtle.deriveBits(params, ikm, 8 * s.contentKeyBytes));
}

async function contentCipher(op, epochSecret, header, suite, nonce, data) {
  const key = await contentKey(epochSecret, { header, suite });
  const k = await subtle.importKey("raw", key, { name: "AES-GCM" }, false, [op]);
  const params = { name: "AES-GCM", iv: nonce, additionalData: headerBytes(header), tagLength: 128 };
  return new Uint8Array(await subtle[op](params, k, data));
}

/** AES-256-GCM under the per-event key, the header's encoding as AAD -> {suite, nonce, ct}. */
export async function sealContent(epochSecret, { header, plaintext, nonce, suite = DEFAULT_SUITE }) {
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) {
    throw local("schema.bad_value", `content nonce must be ${NONCE_BYTES} bytes`);
  }
  return { suite, nonce, ct: await contentCipher("encrypt", epochSecret, header, suite, nonce, plaintext) };
}

/** Plaintext bytes of `sealed` (from sealedContentFromWire) under `header`. */
export async function openContent(epochSecret, { header, sealed }) {
  try {
    return await contentCipher("decrypt", epochSecret, header, sealed.suite, sealed.nonce, sealed.ct);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw remote("content.open_failed", "content does not authenticate");
  }
}

/** Seal a content map (e.g. {text: "..."}) as its canonical encoding. */
export function sealContentMap(epochSecret, { header, body, nonce, suite = DEFAULT_SUITE }) {
  return sealContent(epochSecret, { header, plaintext: encode(body), nonce, suite });
}

/** Open and strictly decode a content map (codec.* names a malformed plaintext). */
export async function openContentMap(epochSecret, { header, sealed }) {
  const value = decode(await openContent(epochSecret, { header, sealed }));
  if (!isMap(value)) throw remote("schema.wrong_type", "content plaintext must be a map");
  return value;
}

/**
 * Open a content event's body.ct (an Event from log.js, or a decoded event map) with the secrets this device holds, by epoch number.
 * No secret for the event's epoch (e.g. sealed before we were admitted) is
 * content.open_failed, exactly as a tag mismatch is (§8.6 step 2).
 */
export async function openEventContent(event, secretsByEpoch) {
  const sealed = sealedContentFromWire(event.body?.ct);
  const secret = secretsByEpoch.get(Number(event.epoch));
  if (!secret) throw remote("content.open_failed", `no secret for epoch ${event.epoch}`);
  const header = typeof event.header === "function" ? event.header() : contentHeader(event);
  return openContentMap(secret, { header, sealed });
}

// ---------------------------------------------------------------------------- detached content
//
// §6.9: an update's ciphertext leaves the signed event so nodes can delete it at `expires`.
// The event carries `{ct_ref, expires}`; the attachment (the encoded SealedContent) travels
// beside it. Sealing and the AAD are exactly those of inline content.

/** ct_ref of an attachment: SHA-256 of its exact bytes. */
export async function attachmentRef(attachment) {
  return new Uint8Array(await subtle.digest("SHA-256", attachment));
}

/** `{ body: {ct_ref, expires}, attachment }` for a sealed content object. */
export async function detachContent(sealed, expires) {
  if (!Number.isSafeInteger(expires) || expires < 0) throw local("schema.bad_value", "expires must be an int >= 0");
  const attachment = encode(sealed);
  if (attachment.length > 65536) throw local("event.too_large", "the attachment exceeds 64 KiB");
  return { body: { ct_ref: await attachmentRef(attachment), expires }, attachment };
}

/** The SealedContent a detached body names, read from `attachment` (§6.9 A1-A3). */
export async function attachedContent(body, attachment) {
  if (!(attachment instanceof Uint8Array)) throw remote("content.attachment_mismatch", "no attachment");
  if (attachment.length > 65536) throw remote("event.too_large", "the attachment exceeds 64 KiB");
  const ref = await attachmentRef(attachment);
  if (!(body.ct_ref instanceof Uint8Array) || ref.length !== body.ct_ref.length || !ref.every((b, i) => b === body.ct_ref[i])) {
    throw remote("content.attachment_mismatch", "attachment is not ct_ref's");
  }
  try {
    return sealedContentFromWire(decode(attachment));
  } catch (err) {
    throw remote("content.attachment_mismatch", `attachment: ${err.message}`);
  }
}
