// Feature check: every WebCrypto algorithm PFP/1 needs (specs/web.md), probed by use,
// because a browser may expose crypto.subtle yet lack Ed25519 or X25519.

const subtle = globalThis.crypto?.subtle;

const PROBES = {
  "SHA-256": () => subtle.digest("SHA-256", new Uint8Array(1)),
  Ed25519: () => subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]),
  X25519: () => subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]),
  HMAC: () => subtle.importKey("raw", new Uint8Array(32), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]),
  HKDF: () => subtle.importKey("raw", new Uint8Array(32), "HKDF", false, ["deriveBits"]),
  "AES-GCM": () => subtle.importKey("raw", new Uint8Array(32), { name: "AES-GCM" }, false, ["encrypt"]),
};

/** Names of the missing algorithms (empty when the browser can run the client). */
export async function supportsPfp() {
  if (!subtle || !globalThis.isSecureContext) return ["(crypto.subtle: needs HTTPS or localhost)"];
  const missing = [];
  for (const [name, probe] of Object.entries(PROBES)) {
    try {
      await probe();
    } catch {
      missing.push(name);
    }
  }
  return missing;
}
