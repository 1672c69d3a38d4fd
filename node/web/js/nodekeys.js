// Node keys as this browser knows them (specs/web.md, "Trust model"): descriptors it
// verified itself and pinned in IndexedDB, used to check hub signatures and attestations.
//
// The home node's descriptor comes from this origin's /.well-known/peerforum and is
// pinned at enrollment; its fingerprint is shown so the member can compare it with the
// one their operator gives them. The page may not connect to any other origin (CSP
// connect-src 'self'), so another node's descriptor can only come relayed by the home node
// (RELAY below, answered by nodes that offer it). The browser verifies the relayed bytes
// itself (self-signed, the name it asked for) and pins them on first use; since the home
// node also serves this page's code, relaying adds no party the member must trust.
//
// Once a node is pinned, a descriptor presenting a current key the pin does not hold is
// believed only through that node's rotation statements, verified from the pinned set
// (§4.4, as peers do in §4.6); otherwise it is refused and the old pin stays. So neither
// the home node nor anyone it relays for can swap another node's key under a member.

import { homeNodeName, fetchOwnDescriptor, PREFIX, seg, unb64u } from "./api.js";
import { decode } from "./codec.js";
import { applyRotation, verifyDescriptor, verifyRotation } from "./descriptor.js";
import { getPinned, pin } from "./store.js";

const RELAY = (node) => `${PREFIX}/nodes/${seg(node)}/descriptor`;

export class NodeKeys {
  /** `session` (api.js Session) is used for relayed descriptors of other nodes. */
  constructor(session) {
    this.session = session;
    this.known = new Map(); // node -> verified descriptor
    this.fetched = new Set(); // nodes fetched during this page's life: once each
    this.refused = new Map(); // node -> why its new descriptor was not believed
  }

  /** Verify bytes as `node`'s descriptor. A pinned one is checked against its own validity
   *  at the time it was issued, so an old pin still verifies old signatures offline. */
  async load(node, { fetch = true } = {}) {
    if (this.known.has(node)) return this.known.get(node);
    const bytes = await getPinned(node);
    if (!bytes) return fetch ? this.refresh(node) : null;
    const issued = Number(decode(bytes).issued);
    const desc = await verifyDescriptor(bytes, { expectedName: node, nowMs: issued });
    this.known.set(node, desc);
    return desc;
  }

  async fetchBytes(node) {
    if (node === homeNodeName()) return fetchOwnDescriptor();
    const answer = await this.session.call("GET", RELAY(node).slice(PREFIX.length));
    return unb64u(answer.descriptor);
  }

  /** `node`'s rotation statements, relayed (the home node's too: same route). */
  async rotations(node) {
    const answer = await this.session.call("GET", `${RELAY(node).slice(PREFIX.length)}?rotations=1`);
    return (answer.rotations ?? []).map(unb64u);
  }

  /** Fetch `node`'s current descriptor (once per page), verify it and pin it: on first
   *  use, or when its keys follow from the pinned ones (unchanged, or rotated). */
  async refresh(node) {
    if (this.fetched.has(node)) return this.known.get(node) ?? null;
    this.fetched.add(node);
    let bytes;
    try {
      bytes = await this.fetchBytes(node);
    } catch {
      return this.known.get(node) ?? null; // unreachable or no relay: keep what we pinned
    }
    const desc = await verifyDescriptor(bytes, { expectedName: node, nowMs: Date.now() });
    const pinned = await this.load(node, { fetch: false }).catch(() => null);
    if (pinned && !(await this.follows(node, pinned.keys, desc.keys))) {
      this.refused.set(node, "its key changed without a rotation statement from the key pinned here");
      return pinned;
    }
    this.refused.delete(node);
    this.known.set(node, desc);
    await pin(node, bytes);
    return desc;
  }

  /** Whether every current key of `next` is pinned already or reached from the pinned
   *  set through the node's own rotation statements (R1-R4, applied in order). */
  async follows(node, pinnedKeys, next) {
    const held = (set) => new Set([...set.current.map((k) => k.keyId), ...set.old.map((o) => o.key.keyId)]);
    const covered = (set) => next.current.every((k) => held(set).has(k.keyId));
    if (covered(pinnedKeys)) return true;
    let keys = pinnedKeys;
    for (const data of await this.rotations(node).catch(() => [])) {
      try {
        keys = applyRotation(keys, await verifyRotation(data, { expectedNode: node, pinned: keys }));
      } catch {
        continue; // a statement not chained to our pin proves nothing
      }
    }
    return covered(keys);
  }

  /** A KeyLookup for rules.js: `(node, kid, ts)` -> VerifyKey or null (sig.key_expired throws). */
  lookup = async (node, kid, ts) => {
    let desc = await this.load(node).catch(() => null);
    for (const attempt of [0, 1]) {
      if (!desc) return null;
      try {
        return desc.keys.keyValidAt(kid, ts);
      } catch (err) {
        if (err.code !== "sig.unknown_key" || attempt) throw err;
      }
      desc = await this.refresh(node); // a key we have not seen: one fresh fetch
    }
    return null;
  };

  /** The pinned fingerprints of `node`'s current keys, for the member to compare. */
  async fingerprints(node) {
    const desc = await this.load(node).catch(() => null);
    if (!desc) return [];
    return Promise.all(desc.keys.current.map((k) => k.fingerprint()));
  }
}

