// The forum on the member's device (port of cli/member/client.py, roster.py, sealing.py):
// the browser's own fold of the hub-signed log, epoch secrets opened from it, content
// sealed and opened here; the client duties (duties.js) commit epochs sealed to exactly
// the verified roster and admit only candidates whose nomination passed.
//
// The node is never asked who is in a forum. The roster comes from rules.js folding
// entries whose hub signatures, chain and author signatures this page checked with node
// keys it pinned (nodekeys.js); every device sealed to must also appear in an attestation
// from the log that verifies under its home node's pinned key ("no ghost members").

import { ApiError, b64u, unb64u } from "./api.js";
import { decode, equalBytes } from "./codec.js";
import { defaultCharter, pledgeHash } from "./charter.js";
import { attestationFromWire, KeySet, sameDevice, verifyAttestation } from "./descriptor.js";
import { attachedContent, detachContent, newEpochSecret, newContentNonce, openEpoch, openContentMap, sealedContentFromWire, sealedSecretFromWire, sealEpoch, sealContentMap } from "./group.js";
import { nodeOf } from "./identity.js";
import { openInvitation, sealInvitation } from "./invitation.js";
import { buildEvent, entryFromBytes, makeForumId, VERSION } from "./log.js";
import { ACTIVE, CONTENT_TYPES, applyEntry } from "./rules.js";
import { epochSecrets, getEpochSecret, saveEpochSecret } from "./store.js";
import { runDuties } from "./duties.js";
import { foldView } from "./view.js";

const PAGE = 500;
const ATTESTED_IN = { "forum.create": "author", "device.add": "author", "member.invite": "candidate" };
const CLEAR_FIELDS = {
  "forum.create": ["hub"], "member.invite": ["candidate"], "member.remove": ["subject"],
  "epoch.commit": ["epoch", "admit"], "role.assign": ["member", "roles"], "member.leave": [],
  "device.add": [], "device.remove": ["device"], "hub.move": [],
};

/** A roster device without a verified attestation, or a candidate not admitted. */
export class GhostMemberError extends ApiError {
  constructor(message) {
    super("client.ghost_member", message);
  }
}

// ---------------------------------------------------------------------------- no ghosts

/** {member: {kid: device}} from every attestation in the log that verifies here. */
export async function attestedDevices(entries, nodeKeys) {
  const out = {};
  for (const entry of entries) {
    const ev = entry.signedEvent;
    const who = ATTESTED_IN[ev.type];
    if (!who) continue;
    const member = who === "author" ? ev.author : ev.body.candidate;
    const att = await verifiedAttestation(ev.body.attestation, member, nodeKeys);
    if (att) for (const d of att.devices) (out[member] ??= {})[d.id] = d;
  }
  return out;
}

export async function verifiedAttestation(obj, member, nodeKeys) {
  if (typeof member !== "string") return null;
  try {
    const att = await attestationFromWire(obj);
    const key = await nodeKeys(att.node, att.kid, att.ts);
    if (!key || att.member !== member) return null;
    return await verifyAttestation(obj, { expectedNode: nodeOf(member), keys: new KeySet([key]) });
  } catch {
    return null;
  }
}

/** {member: {org, industry?, title?}} from every attestation that verifies here: those of
 *  node-enforced bodies and `extra` ones (a nomination carries the candidate's). The
 *  conflict check rests on these, never on what a nominator typed. */
export async function attestedProfiles(entries, nodeKeys, extra = []) {
  const out = {};
  const take = async (obj, member) => {
    const att = await verifiedAttestation(obj, member, nodeKeys);
    if (att) out[att.member] = { org: att.org, ...(att.industry ? { industry: att.industry } : {}), ...(att.title ? { title: att.title } : {}) };
  };
  for (const entry of entries) {
    const ev = entry.signedEvent;
    const who = ATTESTED_IN[ev.type];
    if (who) await take(ev.body.attestation, who === "author" ? ev.author : ev.body.candidate);
  }
  for (const obj of extra) await take(obj, obj.member);
  return out;
}

/** Active members' devices, plus those of the candidates this commit admits. */
export function rosterAfter(state, admit) {
  const roster = {};
  for (const m of Object.values(state.members)) if (m.status === ACTIVE) roster[m.id] = m.devices;
  for (const c of admit) {
    const inv = state.invitations[c];
    if (!inv || !inv.accepted) throw new GhostMemberError(`${c} has no accepted invitation`);
    roster[c] = inv.devices;
  }
  return roster;
}

/** The X25519 keys to seal to, each checked against a verified attestation. */
export function sealingKeys(roster, attested) {
  const keys = [];
  for (const member of Object.keys(roster).sort()) {
    for (const kid of Object.keys(roster[member]).sort()) {
      if (!sameDevice(attested[member]?.[kid], roster[member][kid])) {
        throw new GhostMemberError(`${member} device ${kid} has no verified attestation`);
      }
      keys.push(roster[member][kid].agree);
    }
  }
  return keys;
}

/** The node's roster must not hold anyone our verified fold does not (same seq only). */
export function compareReported(reported, state) {
  if (reported.seq !== state.seq) return;
  for (const m of reported.members ?? []) {
    if (m.status !== ACTIVE) continue;
    const ours = state.members[m.member];
    if (!ours || ours.status !== ACTIVE) throw new GhostMemberError(`node lists ${m.member} who is not in the verified log`);
    for (const d of m.devices ?? []) {
      const mine = ours.devices[d.kid];
      if (!mine || b64u(mine.agree.raw) !== d.agree) throw new GhostMemberError(`node lists an unverified device of ${m.member}`);
    }
  }
}

// ---------------------------------------------------------------------------- the client

export class ForumClient {
  /** `session` (api.js), `device` {sign, agree} (keystore.js), `keys` (nodekeys.js). */
  constructor({ session, device, keys }) {
    Object.assign(this, { session, device, keys, member: session.member, node: session.node });
    this.cache = new Map(); // forum -> {state, entries}: folded once, extended by new pages
    // Attachments of detached entries (§6.9) as the node served them, by b64u event id;
    // checked against the event's ct_ref before use. Gone once the nodes deleted them.
    this.attachments = new Map();
    this.locks = new Map(); // forum -> the promise of its last fold
    this.syncing = new Map(); // forum -> the duties running now
  }

  get lookup() {
    return this.keys.lookup;
  }

  /** New entries from the node, each checked and folded onto what we verified before.
   *  Calls for one forum run one at a time: two folds extending the same cached state
   *  would each append the same entries. */
  verified(forum, { maxAgeMs = 0 } = {}) {
    const prev = this.locks.get(forum) ?? Promise.resolve();
    // `maxAgeMs`: a fold that recent will do (a courtesy check before signing, which
    // every other client re-checks anyway), sparing the member's rate limit at the node.
    const recent = (c) => c && maxAgeMs && Date.now() - c.at <= maxAgeMs;
    const next = prev.catch(() => {}).then(() => (recent(this.cache.get(forum)) ? this.cache.get(forum) : this.extend(forum)));
    this.locks.set(forum, next);
    return next;
  }

  async extend(forum) {
    const c = this.cache.get(forum) ?? { state: null, entries: [] };
    let from = (c.state?.seq ?? 0) + 1;
    for (;;) {
      const page = await this.session.entries(forum, { from, limit: PAGE });
      if (page.gaps.length) throw new ApiError("forum.gap", `entries missing ${JSON.stringify(page.gaps)}`);
      const batch = await Promise.all(page.entries.map((e) => entryFromBytes(unb64u(e))));
      for (const [eid, data] of Object.entries(page.attachments ?? {})) this.attachments.set(eid, unb64u(data));
      let { state } = c;
      for (const entry of batch) {
        state = await applyEntry(state, entry, { hubKeyAt: this.lookup, nodeKeys: this.lookup });
        c.state = state;
        c.entries.push(entry);
        await this.openEpoch(forum, entry);
      }
      this.cache.set(forum, c);
      if (!batch.length || batch.at(-1).seq >= page.head) break;
      from = batch.at(-1).seq + 1;
    }
    if (!c.state) throw new ApiError("forum.unknown", `${forum} has no entries`);
    c.at = Date.now();
    return c;
  }

  /** Keep the epoch secret an epoch.commit of the verified log sealed to this device. */
  async openEpoch(forum, entry) {
    const ev = entry.signedEvent;
    if (ev.type !== "epoch.commit") return;
    const epoch = ev.body.epoch;
    if (await getEpochSecret(this.member, forum, epoch)) return;
    const secrets = ev.body.secrets.map(sealedSecretFromWire);
    if (!secrets.some((s) => s.to === this.device.agree.public.keyId)) return; // not ours to read
    const secret = await openEpoch(secrets, { forum, epoch, key: this.device.agree });
    await saveEpochSecret(this.member, forum, epoch, secret);
  }

  /** Every entry as an item (cli/member/items.py): body opened, or null when we cannot.
   *  Pass `entries` just verified to spare the node another request. */
  async items(forum, entries = null) {
    entries ??= (await this.verified(forum)).entries;
    const secrets = await epochSecrets(this.member, forum);
    return Promise.all(entries.map((e) => this.item(e, secrets)));
  }

  async item(entry, secrets) {
    const ev = entry.signedEvent;
    const open = async (sealed) => {
      const secret = secrets.get(Number(ev.epoch));
      if (!secret) return null;
      try {
        return await openContentMap(secret, { header: ev.header(), sealed: sealedContentFromWire(sealed) });
      } catch {
        return null;
      }
    };
    let body;
    const detached = Object.hasOwn(ev.body, "ct_ref");
    const attachment = detached ? this.attachments.get(b64u(ev.eventId)) : undefined;
    if (CONTENT_TYPES.includes(ev.type) && detached && !attachment && ev.body.expires <= Date.now()) {
      body = { expired: true }; // every node deleted the ciphertext: the entry stays
    } else if (CONTENT_TYPES.includes(ev.type) && detached) {
      let sealed = null;
      try {
        sealed = attachment ? await attachedContent(ev.body, attachment) : null;
      } catch {
        sealed = null;
      }
      body = sealed ? await open(sealed) : null;
    } else if (CONTENT_TYPES.includes(ev.type)) {
      body = await open(ev.body.ct);
    } else if (ev.type === "member.accept") {
      body = { invite: b64u(ev.body.invite) };
    } else {
      body = Object.fromEntries((CLEAR_FIELDS[ev.type] ?? []).map((f) => [f, ev.body[f]]));
      if (ev.type === "member.invite" && ev.body.sealed) {
        body.sealed = await openInvitation(ev.body.sealed, { header: ev.header(), forum: ev.forum, key: this.device.agree });
      } else if (ev.type === "member.remove" && ev.body.sealed) {
        body.sealed = await open(ev.body.sealed);
      }
    }
    const expires = typeof ev.body.expires === "number" ? ev.body.expires : null;
    return { seq: entry.seq, type: ev.type, author: ev.author, ts: entry.ts, event: b64u(ev.eventId), epoch: ev.epoch, body, expires };
  }

  // ------------------------------------------------------------------ events

  /** Sign an event; a function body is given the header first (to seal under it). */
  async event(forum, type, epoch, body) {
    const ts = Date.now();
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    const header = { v: VERSION, forum, type, author: this.member, kid: this.device.sign.keyId, ts, nonce, epoch };
    const b = typeof body === "function" ? await body(header) : body;
    return buildEvent({ forum, type, author: this.member, deviceKey: this.device.sign, ts, nonce, epoch, body: b });
  }

  async submit(event, attachment = null) {
    const result = await this.session.submit(event, attachment);
    // "sequenced": our node is the hub and holds the entry now; "forwarded": wait for it.
    if (result.status !== "sequenced" && result.seq) await this.awaitSeq(event.forum, result.seq);
    return result;
  }

  async awaitSeq(forum, seq, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const page = await this.session.entries(forum, { from: seq, limit: 1, wait: 5 });
      if (page.head >= seq) return;
    }
  }

  async attestation(member) {
    const bytes = await this.session.attestation(member);
    const obj = decode(bytes);
    const att = await verifiedAttestation(obj, member, this.lookup);
    if (!att) throw new ApiError("attestation.invalid", `no attestation of ${member} verifies under its node's pinned key`);
    return { obj, att };
  }

  // ------------------------------------------------------------------ duties

  /** Carry out what the forum's record makes due (duties.js): removals that passed, a
   *  new epoch, invitations, amendments, our pledge. A call while one runs joins it: two
   *  commits at once would race for the same epoch. */
  sync(forum) {
    if (!this.syncing.has(forum)) this.syncing.set(forum, runDuties(this, forum).finally(() => this.syncing.delete(forum)));
    return this.syncing.get(forum);
  }

  /** Commit a new epoch admitting `admit`, sealed to exactly the verified roster (no
   *  ghosts); false when another member committed first. */
  async commitEpoch(forum, admit) {
    const { state, entries } = await this.verified(forum);
    compareReported(await this.session.reportedState(forum), state);
    const keys = sealingKeys(rosterAfter(state, admit), await attestedDevices(entries, this.lookup));
    const epoch = state.epoch + 1;
    const secrets = await sealEpoch(newEpochSecret(), { forum, epoch, recipients: keys });
    const ev = await this.event(forum, "epoch.commit", state.epoch, { epoch, admit, secrets });
    try {
      await this.submit(ev);
    } catch (err) {
      if (err.code === "rules.stale_epoch" || err.code === "rules.no_invitation") return false; // another member was first
      throw err;
    }
    await this.verified(forum); // the log, not our memory, says what the epoch is
    return true;
  }

  /** The member view (view.js) over what this device opens, with attested profiles. */
  async view(forum, opts = {}) {
    const { state, entries } = await this.verified(forum, opts);
    const items = await this.items(forum, entries);
    const extra = items.filter((i) => i.type === "motion" && i.body?.attestation && typeof i.body.attestation === "object").map((i) => i.body.attestation);
    const profiles = await attestedProfiles(entries, this.lookup, extra);
    return { state, entries, view: await foldView(forum, this.member, items, Date.now(), profiles) };
  }

  /** Seal `content` as a `type` entry under the current epoch (duties first). */
  async content(forum, type, content, { expires, duties = true } = {}) {
    let { state } = await this.verified(forum);
    if (duties && (state.epochRequired || Object.values(state.invitations).some((i) => i.accepted))) {
      await this.sync(forum);
      ({ state } = await this.verified(forum));
    }
    if (state.epochRequired) throw new ApiError("rules.epoch_required", "a new epoch is due before anything can be sealed");
    const secret = await getEpochSecret(this.member, forum, state.epoch);
    if (!secret) throw new ApiError("content.open_failed", `no secret for epoch ${state.epoch}`);
    let attachment = null;
    const ev = await this.event(forum, type, state.epoch, async (header) => {
      const ct = await sealContentMap(secret, { header, body: content, nonce: newContentNonce() });
      if (expires === undefined) return { ct };
      // Detached (§6.9): nodes delete the ciphertext at `expires`; the entry stays.
      const detached = await detachContent(ct, expires);
      attachment = detached.attachment;
      return detached.body;
    });
    await this.submit(ev, attachment);
    if (attachment) this.attachments.set(b64u(ev.eventId), attachment);
    return b64u(ev.eventId);
  }

  /** forum.create, epoch 1 to our devices, then the charter (with the name) and our pledge. */
  async createForum(name) {
    const forum = makeForumId(crypto.getRandomValues(new Uint8Array(16)), this.node);
    const { obj } = await this.attestation(this.member);
    await this.submit(await this.event(forum, "forum.create", 0, { hub: this.node, attestation: obj }));
    await this.commitEpoch(forum, []);
    const charter = defaultCharter();
    await this.content(forum, "charter", { name: name || "", charter }, { duties: false });
    await this.content(forum, "pledge", { pledge_hash: await pledgeHash(charter) }, { duties: false });
    return forum;
  }

  /** member.invite with `envelope` (charter, pledge, nomination) sealed to the
   *  candidate's attested devices and the members' (cli/member issue_invite). */
  async invite(forum, candidate, envelope) {
    const { state, entries } = await this.verified(forum);
    const { obj, att } = await this.attestation(candidate);
    const members = sealingKeys(rosterAfter(state, []), await attestedDevices(entries, this.lookup));
    const recipients = [...att.devices.map((d) => d.agree), ...members];
    const ev = await this.event(forum, "member.invite", state.epoch, async (header) => ({
      candidate, attestation: obj, sealed: await sealInvitation(envelope, { header, forum, recipients }),
    }));
    await this.submit(ev);
    return b64u(ev.eventId);
  }

  /** As a candidate: the open invitation to `forum` (its event) and its envelope, opened. */
  async invitation(forum) {
    const inv = (await this.session.invites()).find((i) => i.forum === forum);
    if (!inv) throw new ApiError("rules.no_invitation", `no open invitation to ${forum}`);
    let ev;
    if (inv.entry) {
      ev = (await entryFromBytes(unb64u(inv.entry))).signedEvent;
    } else { // our own node is the hub: a candidate may read the (sealed) log
      const wanted = unb64u(inv.invite);
      ev = (await this.verified(forum)).entries.map((e) => e.signedEvent).find((e) => equalBytes(e.eventId, wanted));
      if (!ev) throw new ApiError("rules.no_invitation", `invitation to ${forum} not found`);
    }
    const envelope = await openInvitation(ev.body.sealed, { header: ev.header(), forum, key: this.device.agree });
    return { event: ev, envelope };
  }

  /** Accept: member.accept signs the invitation's id, which commits to the pledge shown. */
  async accept(forum) {
    const { event, envelope } = await this.invitation(forum);
    if (!envelope || !envelope.pledge || !envelope.pledge_hash || !envelope.charter) {
      throw new ApiError("client.no_pledge", "the invitation carries no pledge this device can read");
    }
    if (!equalBytes(await pledgeHash(envelope.charter), envelope.pledge_hash)) {
      throw new ApiError("client.no_pledge", "the pledge does not match the charter");
    }
    const ev = await this.event(forum, "member.accept", event.epoch, { invite: event.eventId });
    await this.session.submit(ev);
    return b64u(ev.eventId);
  }

  /** member.remove carrying the motion that passed and its reason, sealed under the
   *  current epoch (a duty: duties.js calls it, then re-keys). */
  async remove(forum, subject, sealed) {
    const { state } = await this.verified(forum);
    const secret = await getEpochSecret(this.member, forum, state.epoch);
    const ev = await this.event(forum, "member.remove", state.epoch, async (header) => ({
      subject, sealed: await sealContentMap(secret, { header, body: sealed, nonce: newContentNonce() }),
    }));
    await this.submit(ev);
    return b64u(ev.eventId);
  }

  /** device.add of another device of this member, carrying the attestation our node
   *  signed for it (verified by the caller), then the epoch it makes due: the new device
   *  reads from that epoch on, never earlier (cli/member/devices.py add_device). */
  async addDevice(forum, attestation) {
    const { state } = await this.verified(forum);
    const ev = await this.event(forum, "device.add", state.epoch, { attestation });
    await this.submit(ev);
    const report = await this.sync(forum);
    return { forum, event: b64u(ev.eventId), epoch: report.epoch };
  }

  /** Leave: the remaining members' duties re-key without us. */
  async leave(forum) {
    const { state } = await this.verified(forum);
    const ev = await this.event(forum, "member.leave", state.epoch, {});
    await this.submit(ev);
    return b64u(ev.eventId);
  }
}
