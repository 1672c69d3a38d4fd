// Keys, key ids, fingerprints and domain-separated signatures (specs/protocol.md §3),
// on WebCrypto only: Ed25519 for every signature, X25519 for receiving epoch secrets.
//
// A member's device keys are generated here and are non-extractable: the page can use
// them but no script (ours included) can read the private bytes, and they persist as
// CryptoKey objects in IndexedDB (keystore.js). Importing from a seed exists for test
// vectors and for restoring a passphrase backup; it is never how a device gets its keys.

import { ascii, concatBytes, encode } from "./codec.js";
import { local, remote } from "./errors.js";

const subtle = globalThis.crypto.subtle;
const SIGNATURE_PREFIX = ascii("PFP/1\x00");
// WebCrypto imports Ed25519/X25519 private keys only as PKCS#8 (or JWK with the public
// key, which a bare seed does not give us): a fixed DER header, then the 32 seed bytes.
const PKCS8_ED25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const PKCS8_X25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);

export async function sha256(data) {
  return new Uint8Array(await subtle.digest("SHA-256", data));
}

/** "k" + 16 lower-case hex digits of SHA-256(pub) (§3.2), for Ed25519 and X25519 keys. */
export async function keyId(pub) {
  const h = await sha256(pub);
  return "k" + [...h.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** 128 bits of SHA-256(pub) as eight upper-case groups of four, compared out of band. */
export async function fingerprint(pub) {
  const h = [...(await sha256(pub)).subarray(0, 16)].map((b) => b.toString(16).padStart(2, "0"));
  return h.join("").toUpperCase().match(/.{4}/g).join(" ");
}

function b64uDecode(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

function need32(bytes, code, what) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw code(what);
}

async function rawPublic(publicKey) {
  return new Uint8Array(await subtle.exportKey("raw", publicKey));
}

// Private key from 32 bytes plus its public key: import once extractable to read the public
// half from the JWK, then again with the extractability the caller asked for.
async function importPrivate(prefix, algorithm, secret, usages, extractable) {
  const der = concatBytes(prefix, secret);
  const probe = await subtle.importKey("pkcs8", der, algorithm, true, usages);
  const pub = b64uDecode((await subtle.exportKey("jwk", probe)).x);
  const key = extractable ? probe : await subtle.importKey("pkcs8", der, algorithm, false, usages);
  return [key, pub];
}

// ---------------------------------------------------------------------------- Ed25519

export class VerifyKey {
  constructor(raw, id, cryptoKey) {
    this.raw = raw;
    this.keyId = id;
    this.cryptoKey = cryptoKey;
  }

  static async fromRaw(raw) {
    need32(raw, (w) => remote("identity.bad_key", w), "Ed25519 public key must be 32 bytes");
    let cryptoKey;
    try {
      cryptoKey = await subtle.importKey("raw", raw, { name: "Ed25519" }, true, ["verify"]);
    } catch {
      throw remote("identity.bad_key", "not an Ed25519 public key");
    }
    return new VerifyKey(raw, await keyId(raw), cryptoKey);
  }

  fingerprint() {
    return fingerprint(this.raw);
  }

  /** Resolve if `signature` is valid for `message`; otherwise throw sig.invalid. */
  async verify(message, signature) {
    if (!(signature instanceof Uint8Array) || signature.length !== 64) {
      throw remote("sig.invalid", "signature must be 64 bytes");
    }
    let ok = false;
    try {
      ok = await subtle.verify({ name: "Ed25519" }, this.cryptoKey, signature, message);
    } catch {
      ok = false;
    }
    if (!ok) throw remote("sig.invalid", "signature does not verify");
  }
}

export class SigningKey {
  constructor(privateKey, verifyKey) {
    this.privateKey = privateKey; // CryptoKey, non-extractable for device keys
    this.verifyKey = verifyKey;
  }

  get keyId() {
    return this.verifyKey.keyId;
  }

  get publicKey() {
    return this.verifyKey.raw;
  }

  /** A fresh device key; the private half cannot be exported (DESIGN §2). */
  static async generate({ extractable = false } = {}) {
    const pair = await subtle.generateKey({ name: "Ed25519" }, extractable, ["sign", "verify"]);
    return SigningKey.fromCryptoKeys(pair.privateKey, pair.publicKey);
  }

  /** From a 32-byte RFC 8032 seed (test vectors, backup restore). */
  static async fromSeed(seed, { extractable = false } = {}) {
    need32(seed, (w) => local("identity.bad_key", w), "Ed25519 seed must be 32 bytes");
    const [key, pub] = await importPrivate(PKCS8_ED25519, { name: "Ed25519" }, seed, ["sign"], extractable);
    return new SigningKey(key, await VerifyKey.fromRaw(pub));
  }

  /** Rebuild from CryptoKeys kept in IndexedDB (the public key is always exportable). */
  static async fromCryptoKeys(privateKey, publicKey) {
    return new SigningKey(privateKey, await VerifyKey.fromRaw(await rawPublic(publicKey)));
  }

  async sign(message) {
    return new Uint8Array(await subtle.sign({ name: "Ed25519" }, this.privateKey, message));
  }
}

// ---------------------------------------------------------------------------- X25519

export class AgreementPublicKey {
  constructor(raw, id) {
    this.raw = raw;
    this.keyId = id;
  }

  static async fromRaw(raw) {
    need32(raw, (w) => remote("identity.bad_key", w), "X25519 public key must be 32 bytes");
    return new AgreementPublicKey(raw, await keyId(raw));
  }
}

export async function importX25519Public(raw) {
  need32(raw, (w) => remote("identity.bad_key", w), "X25519 public key must be 32 bytes");
  return subtle.importKey("raw", raw, { name: "X25519" }, true, []);
}

export class AgreementKey {
  constructor(privateKey, publicKey) {
    this.privateKey = privateKey; // CryptoKey usable only for deriveBits
    this.public = publicKey; // AgreementPublicKey
  }

  static async generate({ extractable = false } = {}) {
    const pair = await subtle.generateKey({ name: "X25519" }, extractable, ["deriveBits"]);
    return AgreementKey.fromCryptoKeys(pair.privateKey, pair.publicKey);
  }

  /** From a 32-byte X25519 secret (RFC 7748; WebCrypto clamps it, as cryptography does). */
  static async fromSecret(secret, { extractable = false } = {}) {
    need32(secret, (w) => local("identity.bad_key", w), "X25519 secret must be 32 bytes");
    const [key, pub] = await importPrivate(PKCS8_X25519, { name: "X25519" }, secret, ["deriveBits"], extractable);
    return new AgreementKey(key, await AgreementPublicKey.fromRaw(pub));
  }

  static async fromCryptoKeys(privateKey, publicKey) {
    return AgreementKey.fromPrivateKey(privateKey, await rawPublic(publicKey));
  }

  /** Rebuild from a stored private CryptoKey and the raw public key saved beside it. */
  static async fromPrivateKey(privateKey, publicRaw) {
    return new AgreementKey(privateKey, await AgreementPublicKey.fromRaw(publicRaw));
  }

  /** X25519(sk, pk). WebCrypto refuses an all-zero result (a low-order peer key). */
  async deriveBits(peerRaw) {
    const peer = await importX25519Public(peerRaw);
    return new Uint8Array(await subtle.deriveBits({ name: "X25519", public: peer }, this.privateKey, 256));
  }
}

// ---------------------------------------------------------------------------- signed objects

/** "PFP/1" 0x00 domain 0x00 encode(unsigned): the bytes a signature covers (§3.3). */
export function signingInput(domain, unsigned) {
  if (!/^[a-z]+$/.test(domain)) throw local("schema.bad_value", "domain must be lower-case ASCII");
  return concatBytes(SIGNATURE_PREFIX, ascii(domain), Uint8Array.of(0), encode(unsigned));
}

function withoutSig(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (k !== "sig") out[k] = v;
  return out;
}

/** `unsigned` plus `sig` over its signing input in `domain`. */
export async function signObject(domain, unsigned, key) {
  if (Object.hasOwn(unsigned, "sig")) throw local("schema.bad_value", "object is already signed");
  const sig = await key.sign(signingInput(domain, unsigned));
  return { ...unsigned, sig };
}

/** Check `signed.sig` under `key` (a VerifyKey) and return the object without it. */
export async function verifyObject(domain, signed, key) {
  if (!(signed.sig instanceof Uint8Array)) throw remote("schema.wrong_type", "sig must be bin");
  const unsigned = withoutSig(signed);
  await key.verify(signingInput(domain, unsigned), signed.sig);
  return unsigned;
}
