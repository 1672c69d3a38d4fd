// What the web client keeps on this device besides its keys (keystore.js): who it is,
// the epoch secrets it opened, and the node descriptors it pinned (specs/web.md).
//
// A database of its own ("peerforum-state"), so keystore.js's database and its tested
// schema stay as they are. Epoch secrets are raw bytes here: IndexedDB is the page's own
// storage, readable only by scripts of this origin — the same code that opens them.

const DB_NAME = "peerforum-state";
const STORES = ["settings", "epochs", "nodes"];

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let dbPromise = null;
function openDb() {
  if (!dbPromise) {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      for (const name of STORES) if (!req.result.objectStoreNames.contains(name)) req.result.createObjectStore(name);
    };
    dbPromise = request(req);
  }
  return dbPromise;
}

async function run(storeName, mode, fn) {
  const db = await openDb();
  const tx = db.transaction(storeName, mode);
  const result = await request(fn(tx.objectStore(storeName)));
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
  return result;
}

export const getSetting = (key) => run("settings", "readonly", (s) => s.get(key));
export const setSetting = (key, value) => run("settings", "readwrite", (s) => s.put(value, key));
export const deleteSetting = (key) => run("settings", "readwrite", (s) => s.delete(key));

const epochKey = (member, forum, epoch) => `${member}|${forum}|${epoch}`;

/** The secret of `forum`'s `epoch` opened by `member`'s device here, or undefined. */
export const getEpochSecret = (member, forum, epoch) => run("epochs", "readonly", (s) => s.get(epochKey(member, forum, epoch)));
export const saveEpochSecret = (member, forum, epoch, secret) =>
  run("epochs", "readwrite", (s) => s.put(secret, epochKey(member, forum, epoch)));

/** Every secret `member` holds for `forum`, as a Map epoch -> bytes (what group.js takes). */
export async function epochSecrets(member, forum) {
  const prefix = `${member}|${forum}|`;
  const range = IDBKeyRange.bound(prefix, prefix + "\uffff");
  const db = await openDb();
  const tx = db.transaction("epochs", "readonly");
  const [keys, values] = await Promise.all([request(tx.objectStore("epochs").getAllKeys(range)), request(tx.objectStore("epochs").getAll(range))]);
  return new Map(keys.map((k, i) => [Number(k.slice(prefix.length)), values[i]]));
}

export const getPinned = (node) => run("nodes", "readonly", (s) => s.get(node));
export const pin = (node, bytes) => run("nodes", "readwrite", (s) => s.put(bytes, node));
