// Device keys at rest: non-extractable CryptoKeys kept in IndexedDB (specs/web.md).
//
// IndexedDB stores a CryptoKey by structured clone, keeping it non-extractable: the key
// survives reloads, yet neither the node that serves this page nor any script can read
// its private bytes. Clearing the site's data deletes the keys: a device then needs a new
// device key (device.add) or its passphrase backup.

import { AgreementKey, SigningKey } from "./keys.js";

const DB_NAME = "peerforum";
const STORE = "device-keys";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  const req = indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE);
  return request(req);
}

async function withStore(mode, fn) {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, mode);
    const result = await request(fn(tx.objectStore(STORE)));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    return result;
  } finally {
    db.close();
  }
}

/** Keep a device's keys under `name` (e.g. the member id): {sign, agree} from keys.js. */
export function saveDeviceKeys(name, { sign, agree }) {
  const record = {
    sign: { privateKey: sign.privateKey, publicKey: sign.verifyKey.cryptoKey },
    agree: { privateKey: agree.privateKey, publicRaw: agree.public.raw },
  };
  return withStore("readwrite", (store) => store.put(record, name));
}

/** The device keys saved under `name`, or null. */
export async function loadDeviceKeys(name) {
  const record = await withStore("readonly", (store) => store.get(name));
  if (!record) return null;
  const sign = await SigningKey.fromCryptoKeys(record.sign.privateKey, record.sign.publicKey);
  const agree = await AgreementKey.fromPrivateKey(record.agree.privateKey, record.agree.publicRaw);
  return { sign, agree };
}

export function deleteDeviceKeys(name) {
  return withStore("readwrite", (store) => store.delete(name));
}

/** Fresh non-extractable device keys: Ed25519 to sign, X25519 to receive epoch secrets. */
export async function generateDeviceKeys() {
  return { sign: await SigningKey.generate(), agree: await AgreementKey.generate() };
}
