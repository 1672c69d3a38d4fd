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

import { homeNodeName, fetchOwnDescriptor, PREFIX, seg, unb64u } from "./api.js";
import { decode } from "./codec.js";
import { verifyDescriptor } from "./descriptor.js";
import { getPinned, pin } from "./store.js";

const RELAY = (node) => `${PREFIX}/nodes/${seg(node)}/descriptor`;

export class NodeKeys {
  /** `session` (api.js Session) is used for relayed descriptors of other nodes. */
  constructor(session) {
    this.session = session;
    this.known = new Map(); // node -> verified descriptor
    this.fetched = new Set(); // nodes fetched during this page's life: once each
  }

  /** Verify bytes as `node`'s descriptor. A pinned one is checked against its own validity
   *  at the time it was issued, so an old pin still verifies old signatures offline. */
  async load(node) {
    if (this.known.has(node)) return this.known.get(node);
    const bytes = await getPinned(node);
    if (!bytes) return this.refresh(node);
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

  /** Fetch `node`'s current descriptor (once per page), verify and pin it. */
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
    this.known.set(node, desc);
    await pin(node, bytes);
    return desc;
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

