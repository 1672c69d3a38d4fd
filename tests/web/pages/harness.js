// Test-only bridge between pytest (Playwright page.evaluate) and the web client modules.
// Values cross as JSON: bytes as {"$bin": hex}, integers beyond 2^53 as {"$int": "..."}.
// Every entry point answers {ok: value} or {error: code, message}, so pytest can compare
// error codes with the vectors'.

import * as codec from "/static/js/codec.js";
import * as keys from "/static/js/keys.js";
import * as hpke from "/static/js/hpke.js";
import * as group from "/static/js/group.js";
import * as log from "/static/js/log.js";
import * as keystore from "/static/js/keystore.js";
import * as rules from "/static/js/rules.js";
import * as descriptor from "/static/js/descriptor.js";
import { ProtocolError, remote } from "/static/js/errors.js";

const { fromHex, toHex } = codec;

function fromJson(x) {
  if (Array.isArray(x)) return x.map(fromJson);
  if (x !== null && typeof x === "object") {
    if (Object.hasOwn(x, "$bin")) return fromHex(x.$bin);
    if (Object.hasOwn(x, "$int")) return BigInt(x.$int);
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, fromJson(v)]));
  }
  return x;
}

function toJson(x) {
  if (x instanceof Uint8Array) return { $bin: toHex(x) };
  if (typeof x === "bigint") return { $int: x.toString() };
  if (Array.isArray(x)) return x.map(toJson);
  if (x !== null && typeof x === "object") {
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, toJson(v)]));
  }
  return x;
}

async function run(fn) {
  try {
    return { ok: await fn() };
  } catch (err) {
    if (err instanceof ProtocolError) return { error: err.code, message: err.message };
    return { error: "js." + err.name, message: String(err.message) };
  }
}

// Errors a step gives, as a code (or "ok"): for expecting several failures in one call.
async function codeOf(fn) {
  const r = await run(fn);
  return r.error ?? "ok";
}

const state = {}; // keys generated in this page for the cross-implementation tests

const sealedSecret = (s) => group.sealedSecretFromWire({ ...s, enc: fromHex(s.enc) });
const sealedContent = (s) => group.sealedContentFromWire({ ...s, nonce: fromHex(s.nonce), ct: fromHex(s.ct) });

const T = {
  // ------------------------------------------------------------------ codec (§2)
  codecValid: ({ value, hex }) => run(() => ({
    encoded: toHex(codec.encode(fromJson(value))),
    decoded: toJson(codec.decode(fromHex(hex))),
  })),
  codecDecode: (hex) => run(() => toJson(codec.decode(fromHex(hex)))),
  codecTooLarge: (n) => run(() => codec.decode(new Uint8Array(n + 1))),
  codecEncodeRefusals: async () => {
    const deep = (n) => (n === 0 ? [] : [deep(n - 1)]);
    return {
      loneSurrogate: await codeOf(() => codec.encode("\ud800")),
      loneSurrogateKey: await codeOf(() => codec.encode({ "\udc00": 1 })),
      float: await codeOf(() => codec.encode(1.5)),
      unsafeNumber: await codeOf(() => codec.encode(2 ** 60)),
      bigintTooLarge: await codeOf(() => codec.encode(2n ** 64n)),
      bigintTooSmall: await codeOf(() => codec.encode(-(2n ** 63n) - 1n)),
      undefined: await codeOf(() => codec.encode(undefined)),
      date: await codeOf(() => codec.encode(new Date(0))),
      mapWithIntKey: await codeOf(() => codec.encode(new Map([[1, 2]]))),
      tooDeep: await codeOf(() => codec.encode(deep(16))),
      depth16: await codeOf(() => codec.encode(deep(15))),
      tooLarge: await codeOf(() => codec.encode(new Uint8Array(1024 * 1024))),
    };
  },
  codecValueModel: () => run(() => {
    const safe = codec.decode(fromHex("cf001fffffffffffff")); // 2^53 - 1
    const big = codec.decode(fromHex("cf0020000000000000")); // 2^53
    const proto = codec.decode(codec.encode({ __proto__: null, ["__proto__"]: 1 }));
    return {
      safeType: typeof safe,
      bigType: typeof big,
      bigintSmallEncodes: toHex(codec.encode(5n)),
      protoKeyIsOwn: Object.hasOwn(proto, "__proto__"),
      mapEncodes: toHex(codec.encode(new Map([["b", 1], ["a", 2]]))),
      bomKept: codec.decode(fromHex("a3efbbbf")) === "\ufeff",
    };
  }),

  // ------------------------------------------------------------------ Ed25519 (§3)
  ed25519: (c) => run(async () => {
    const key = await keys.SigningKey.fromSeed(fromHex(c.secret));
    const msg = fromHex(c.message);
    const sig = await key.sign(msg);
    const vk = await keys.VerifyKey.fromRaw(fromHex(c.public));
    await vk.verify(msg, fromHex(c.signature));
    const bad = fromHex(c.signature);
    bad[0] ^= 1;
    return {
      public: toHex(key.publicKey),
      signature: toHex(sig),
      keyId: key.keyId,
      fingerprint: await vk.fingerprint(),
      tampered: await codeOf(() => vk.verify(msg, bad)),
      otherMessage: await codeOf(() => vk.verify(codec.concatBytes(msg, Uint8Array.of(0)), fromHex(c.signature))),
      shortSig: await codeOf(() => vk.verify(msg, bad.subarray(0, 63))),
      extractable: key.privateKey.extractable,
    };
  }),
  x25519: (v) => run(async () => {
    const a = await keys.AgreementKey.fromSecret(fromHex(v.alice_secret));
    const b = await keys.AgreementKey.fromSecret(fromHex(v.bob_secret));
    return {
      alicePublic: toHex(a.public.raw),
      bobPublic: toHex(b.public.raw),
      ab: toHex(await a.deriveBits(b.public.raw)),
      ba: toHex(await b.deriveBits(a.public.raw)),
    };
  }),
  signedObject: ({ seed, domain, unsigned }) => run(async () => {
    const key = await keys.SigningKey.fromSeed(fromHex(seed));
    const signed = await keys.signObject(domain, fromJson(unsigned), key);
    return {
      input: toHex(keys.signingInput(domain, fromJson(unsigned))),
      encoded: toHex(codec.encode(signed)),
      verifies: await codeOf(() => keys.verifyObject(domain, signed, key.verifyKey)),
      otherDomain: await codeOf(() => keys.verifyObject("entry", signed, key.verifyKey)),
    };
  }),

  // ------------------------------------------------------------------ HPKE (§8.8)
  hpkeRfc: ({ v, skEm }) => run(async () => {
    const skR = await keys.AgreementKey.fromSecret(fromHex(v.skRm));
    const eph = await keys.AgreementKey.fromSecret(fromHex(skEm));
    const info = fromHex(v.info);
    const ctx = await hpke.receiverContext(fromHex(v.enc), skR, info);
    const e = v.encryptions[0];
    const sealed = await hpke.sealBase(skR.public.raw, info, fromHex(e.aad), fromHex(e.plaintext), { ephemeral: eph });
    const opened = await hpke.openBase(fromHex(v.enc), skR, info, fromHex(e.aad), fromHex(e.ct));
    const wrongAad = await codeOf(() => hpke.openBase(fromHex(v.enc), skR, info, new Uint8Array(0), fromHex(e.ct)));
    return {
      pkRm: toHex(skR.public.raw), key: toHex(ctx.key), baseNonce: toHex(ctx.baseNonce),
      enc: toHex(sealed.enc), ct: toHex(sealed.ct), plaintext: toHex(opened), wrongAad,
    };
  }),

  // ------------------------------------------------------------------ group (§8)
  groupContent: (c) => run(async () => {
    const secret = fromHex(c.epoch_secret);
    const header = codec.decode(fromHex(c.header));
    const nonce = fromHex(c.nonce);
    const sealed = await group.sealContent(secret, { header, plaintext: fromHex(c.plaintext), nonce });
    const wire = group.sealedContentFromWire(codec.decode(fromHex(c.sealed)));
    return {
      aad: toHex(codec.encode(header)),
      info: toHex(group.contentInfo(c.suite)),
      key: toHex(await group.contentKey(secret, { header })),
      ct: toHex(sealed.ct),
      sealed: toHex(codec.encode(sealed)),
      opened: toHex(await group.openContent(secret, { header, sealed: wire })),
      openedMap: toJson(await group.openContentMap(secret, { header, sealed: wire })),
    };
  }),
  // Detached content (§6.9): open the vector's attachment under the event's header, and
  // detach the same sealed object again (ct_ref and attachment byte for byte).
  detachedOpen: (v) => run(async () => {
    const entry = await log.entryFromBytes(fromHex(v.entry));
    const ev = entry.signedEvent;
    const sealed = await group.attachedContent(ev.body, fromHex(v.attachment));
    const again = await group.detachContent(sealed, v.expires);
    return {
      plaintext: toHex(await group.openContent(fromHex(v.epoch_secret), { header: ev.header(), sealed })),
      ct_ref: toHex(again.body.ct_ref), attachment: toHex(again.attachment), expires: again.body.expires,
    };
  }),
  detachedInvalid: (c) => run(async () => {
    const ev = await log.eventFromBytes(fromHex(c.event));
    if (!Object.hasOwn(ev.body, "ct_ref")) throw remote("content.attachment_mismatch", "the event is not detached");
    return group.attachedContent(ev.body, c.attachment === null ? null : fromHex(c.attachment));
  }),
  groupContentInvalid: (c) => run(async () => {
    const header = codec.decode(fromHex(c.header));
    return group.openContent(fromHex(c.epoch_secret), { header, sealed: sealedContent(c.sealed) });
  }),
  groupEpoch: (c) => run(async () => {
    const key = await keys.AgreementKey.fromSecret(fromHex(c.recipient_secret));
    const eph = await keys.AgreementKey.fromSecret(fromHex(c.ephemeral_secret));
    const sealed = sealedSecret(c.sealed);
    const opened = await group.openEpoch([sealed], { forum: c.forum, epoch: c.epoch, key });
    const resealed = await group.sealEpoch(fromHex(c.secret), {
      forum: c.forum, epoch: c.epoch, recipients: [key.public], ephemerals: [eph],
    });
    return {
      public: toHex(key.public.raw),
      to: key.public.keyId,
      info: toHex(group.epochInfo({ forum: c.forum, epoch: c.epoch, to: sealed.to })),
      secret: toHex(opened),
      resealed: toJson(resealed),
    };
  }),
  groupEpochInvalid: (c) => run(async () => {
    const key = await keys.AgreementKey.fromSecret(fromHex(c.recipient_secret));
    const secrets = c.sealed.map(sealedSecret);
    return toHex(await group.openEpoch(secrets, { forum: c.forum, epoch: c.epoch, key }));
  }),
  groupRecipients: (c) => run(() => {
    const secrets = c.to.map((to) => ({ suite: 1, to, enc: new Uint8Array(80) }));
    group.checkRecipients(secrets, c.roster);
    return true;
  }),

  // ------------------------------------------------------------------ forum log (§6)
  logEvent: (v) => run(async () => {
    const raw = fromHex(v.encoded);
    const event = await log.eventFromBytes(raw);
    const device = await keys.VerifyKey.fromRaw(fromHex(v.device_key));
    await log.verifyEvent(event, device);
    const hub = await keys.VerifyKey.fromRaw(fromHex(v.hub_key));
    return {
      eventId: toHex(event.eventId),
      reencoded: toHex(codec.encode(event.toWire())),
      underHubKey: await codeOf(() => log.verifyEvent(event, hub)),
      type: event.type,
      author: event.author,
    };
  }),
  logEntries: ({ entries, hubKey }) => run(async () => {
    const hub = await keys.VerifyKey.fromRaw(fromHex(hubKey));
    let prev = log.ZERO_HASH;
    const out = [];
    for (const [i, e] of entries.entries()) {
      const entry = await log.entryFromBytes(fromHex(e.encoded));
      await log.verifyEntry(entry, hub, { seq: i + 1, prev });
      out.push({ hash: toHex(entry.hash), type: entry.signedEvent.type, origin: log.forumOrigin(entry.forum) });
      prev = entry.hash;
    }
    return out;
  }),
  logInvalidEntry: (c) => run(async () => {
    const entry = await log.entryFromBytes(fromHex(c.entry));
    const hub = await keys.VerifyKey.fromRaw(fromHex(c.hub_key));
    await log.verifyEntry(entry, hub, { seq: c.seq, prev: fromHex(c.prev) });
  }),
  logHead: ({ head, cosig, lastHash }) => run(async () => {
    const h = log.headFromBytes(fromHex(head.encoded));
    const hub = await keys.VerifyKey.fromRaw(fromHex(head.hub_key));
    await log.verifyHead(h, hub);
    const c = log.cosignatureFromBytes(fromHex(cosig.encoded));
    const node = await keys.VerifyKey.fromRaw(fromHex(cosig.node_key));
    await log.verifyCosignature(c, node, h);
    return {
      seq: h.seq,
      hashMatches: toHex(h.hash) === lastHash,
      cosigUnderHub: await codeOf(() => log.verifyCosignature(c, hub, h)),
    };
  }),
  logMutations: ({ encoded, deviceKey }) => run(async () => {
    // Every single-bit change of a signed event must be refused (strict decoding, fields,
    // key id or signature); returns the set of codes seen ("ok" would be a forgery).
    const raw = fromHex(encoded);
    const device = await keys.VerifyKey.fromRaw(fromHex(deviceKey));
    const codes = new Set();
    for (let i = 0; i < raw.length; i++) {
      const bad = raw.slice();
      bad[i] ^= 0x01;
      codes.add(await codeOf(async () => log.verifyEvent(await log.eventFromBytes(bad), device)));
    }
    return [...codes].sort();
  }),

  // ------------------------------------------------------------------ cross-implementation
  deviceGenerate: () => run(async () => {
    state.sign = await keys.SigningKey.generate();
    state.agree = await keys.AgreementKey.generate();
    return {
      signPublic: toHex(state.sign.publicKey),
      agreePublic: toHex(state.agree.public.raw),
      signExtractable: state.sign.privateKey.extractable,
      agreeExtractable: state.agree.privateKey.extractable,
      exportRefused: await codeOf(() => crypto.subtle.exportKey("pkcs8", state.sign.privateKey)),
    };
  }),
  openFromPython: ({ forum, epoch, secrets, roster, event, author }) => run(async () => {
    const wire = codec.decode(fromHex(secrets)).map(group.sealedSecretFromWire);
    group.checkRecipients(wire, roster);
    const secret = await group.openEpoch(wire, { forum, epoch, key: state.agree });
    const ev = await log.eventFromBytes(fromHex(event.encoded));
    await log.verifyEvent(ev, await keys.VerifyKey.fromRaw(fromHex(event.device_key)));
    if (ev.author !== author) throw new Error("author");
    const content = await group.openEventContent(ev, new Map([[epoch, secret]]));
    const noSecret = await codeOf(() => group.openEventContent(ev, new Map()));
    return { content: toJson(content), eventId: toHex(ev.eventId), noSecret };
  }),
  sealForPython: ({ forum, author, epoch, ts, nonce, contentNonce, content, recipients }) => run(async () => {
    const roster = await Promise.all(recipients.map((r) => keys.AgreementPublicKey.fromRaw(fromHex(r))));
    const secret = group.newEpochSecret();
    const secrets = await group.sealEpoch(secret, { forum, epoch, recipients: roster });
    const event = await log.buildContentEvent({
      forum, type: "post", author, deviceKey: state.sign, ts, nonce: fromHex(nonce), epoch,
      content: fromJson(content), epochSecret: secret, contentNonce: fromHex(contentNonce),
    });
    // And an event the hub would sequence as-is: a member.leave with an empty body.
    const leave = await log.buildEvent({
      forum, type: "member.leave", author, deviceKey: state.sign, ts, nonce: fromHex(nonce), epoch, body: {},
    });
    return {
      event: toHex(event.raw), eventId: toHex(event.eventId), leave: toHex(leave.raw),
      secrets: toHex(codec.encode(secrets)), signPublic: toHex(state.sign.publicKey),
    };
  }),


  // ------------------------------------------------------------------ forum rules (§7)
  // Node keys of the vectors: any ts, only the listed kid (the vectors' own lookup).
  rulesFold: ({ nodes, entries, extra }) => run(async () => {
    const known = {};
    for (const [name, v] of Object.entries(nodes)) known[name] = await keys.VerifyKey.fromRaw(fromHex(v.key));
    const lookup = async (node, kid) => (known[node] && known[node].keyId === kid ? known[node] : null);
    const opts = { hubKeyAt: lookup, nodeKeys: lookup };
    const parsed = await Promise.all(entries.map((h) => log.entryFromBytes(fromHex(h))));
    let state = await rules.fold(parsed, opts);
    if (!extra) return toJson(rules.stateToWire(state));
    const more = await Promise.all(extra.map((h) => log.entryFromBytes(fromHex(h))));
    state = await rules.fold(more.slice(0, -1), { ...opts, state });
    const before = toHex(codec.encode(rules.stateToWire(state)));
    const code = await codeOf(() => rules.applyEntry(state, more.at(-1), opts));
    return { code, unchanged: before === toHex(codec.encode(rules.stateToWire(state))) };
  }),

  // ------------------------------------------------------------------ key rotation (§4.4)
  rotation: ({ data, expectedNode, pinned }) => run(async () => {
    const hexKeys = (list) => list.map((k) => ({ ...k, key: fromHex(k.key) }));
    const set = await descriptor.KeySet.fromWire({ keys: hexKeys(pinned.keys), old_keys: hexKeys(pinned.old_keys) });
    const after = descriptor.applyRotation(set, await descriptor.verifyRotation(fromHex(data), { expectedNode, pinned: set }));
    return {
      keys: after.current.map((k) => ({ kid: k.keyId, key: toHex(k.raw) })),
      old_keys: after.old.map((o) => ({ kid: o.key.keyId, key: toHex(o.key.raw), expired: o.expired })),
    };
  }),

  // ------------------------------------------------------------------ keystore (IndexedDB)
  keystoreSave: (name) => run(async () => {
    const device = await keystore.generateDeviceKeys();
    await keystore.saveDeviceKeys(name, device);
    return { sign: device.sign.keyId, agree: device.agree.public.keyId };
  }),
  keystoreLoad: (name) => run(async () => {
    const device = await keystore.loadDeviceKeys(name);
    if (!device) return null;
    const msg = codec.ascii("still mine after a reload");
    await device.sign.verifyKey.verify(msg, await device.sign.sign(msg));
    const peer = await keys.AgreementKey.generate();
    const ab = await device.agree.deriveBits(peer.public.raw);
    const ba = await peer.deriveBits(device.agree.public.raw);
    return {
      sign: device.sign.keyId,
      agree: device.agree.public.keyId,
      signExtractable: device.sign.privateKey.extractable,
      agreeExtractable: device.agree.privateKey.extractable,
      exportRefused: await codeOf(() => crypto.subtle.exportKey("jwk", device.sign.privateKey)),
      agreementWorks: toHex(ab) === toHex(ba),
    };
  }),
  keystoreDelete: (name) => run(() => keystore.deleteDeviceKeys(name)),
};

window.T = T;
document.getElementById("state").textContent = "ready";
window.harnessReady = true;
