// Node-enforced forum rules as one fold, in the browser (specs/protocol.md §7; a faithful
// port of protocol/rules.py, checked against specs/vectors/rules.json in Chromium).
//
// The member's device does not take any node's word for who is in a forum: it folds the
// hub-signed entries itself, and only this fold says whom an epoch secret may be sealed
// to. States are frozen plain objects; `applyEntry` never changes the state it is given.
// `nodeKeys(node, kid, ts)` resolves to a VerifyKey or null (it may throw sig.key_expired).

import { equalBytes } from "./codec.js";
import { ProtocolError, RemoteProtocolError, remote } from "./errors.js";
import { attestationFromWire, verifyAttestation, KeySet } from "./descriptor.js";
import { checkRecipients, sealedContentFromWire, sealedSecretFromWire } from "./group.js";
import { certificateFromWire, verifyHubMove } from "./hubmove.js";
import { nodeOf, parseMemberId } from "./identity.js";
import { ZERO_HASH, forumOrigin, verifyEntry, verifyEvent } from "./log.js";
import { checkFields, field, isMap, nonNegative } from "./schema.js";

export const ACTIVE = "active";
export const REMOVED = "removed";
export const LEFT = "left";
export const ROLES = Object.freeze(["moderator", "moderator-elect", "timekeeper"]);
export const CONTENT_TYPES = Object.freeze([
  "post", "reply", "update", "dilemma", "response", "rating", "motion", "vote",
  "meeting", "agenda", "rsvp", "attendance", "commitment", "checkin", "resource",
  "parking", "survey", "charter", "pledge", "intake", "waiver", "notice",
]);

// ---------------------------------------------------------------------------- state

const dict = (entries = []) => Object.freeze(Object.assign(Object.create(null), Object.fromEntries(entries)));
const withKey = (d, k, v) => dict([...Object.entries(d), [k, v]]);
const withoutKey = (d, k) => dict(Object.entries(d).filter(([key]) => key !== k));
const replace = (obj, changes) => Object.freeze({ ...obj, ...changes });

export function member(id, status, roles, org, devices) {
  return Object.freeze({ id, status, roles: Object.freeze([...roles].sort()), org, devices });
}

export function activeMembers(state) {
  return Object.values(state.members).filter((m) => m.status === ACTIVE);
}

/** Active members' device signing keys: {member: {device id: VerifyKey}}. */
export function rosterOf(state) {
  const out = Object.create(null);
  for (const m of activeMembers(state)) {
    out[m.id] = Object.create(null);
    for (const [k, d] of Object.entries(m.devices)) out[m.id][k] = d.sign;
  }
  return out;
}

/** Key ids of every active device's X25519 key: who an epoch must be sealed to. */
export function recipientsOf(state) {
  return activeMembers(state).flatMap((m) => Object.values(m.devices).map((d) => d.agree.keyId));
}

// ---------------------------------------------------------------------------- rule helpers

const badBody = (what) => remote("rules.bad_body", what);

/** Run a schema check on an event body: whatever it finds is rules.bad_body. */
function inBody(check) {
  try {
    return check();
  } catch (err) {
    if (err instanceof RemoteProtocolError) throw badBody(err.message.replace(/^[a-z_.]+: /, ""));
    throw err;
  }
}

const bodyField = (body, name, type, ev) => inBody(() => field(body, name, type, ev.type));

function memberIdIn(body, name, ev) {
  const value = bodyField(body, name, "str", ev);
  try {
    parseMemberId(value);
  } catch (err) {
    throw badBody(`${ev.type}.${name}: ${err.message}`);
  }
  return value;
}

/** Verify an attestation of `who` by its home node (attestation.invalid, sig.unknown_key). */
async function attested(obj, who, nodeKeys) {
  let att;
  try {
    att = await attestationFromWire(obj);
  } catch (err) {
    if (err instanceof RemoteProtocolError) throw remote("attestation.invalid", err.message);
    throw err;
  }
  if (att.member !== who) throw remote("attestation.invalid", `attests ${att.member}, not ${who}`);
  const key = await nodeKeys(att.node, att.kid, att.ts);
  if (!key) throw remote("sig.unknown_key", `no key ${att.kid} for ${att.node}`);
  return verifyAttestation(obj, { expectedNode: nodeOf(who), keys: new KeySet([key]) });
}

const deviceMap = (att) => dict(att.devices.map((d) => [d.id, d]));

/** A malformed sealed object is rules.bad_body; an unknown suite keeps its code. */
function sealedPart(read, obj) {
  try {
    return read(obj);
  } catch (err) {
    if (err instanceof ProtocolError && err.code === "epoch.unknown_suite") throw err;
    if (err instanceof RemoteProtocolError) throw badBody(err.message);
    throw err;
  }
}

function sealedIn(body) {
  if (Object.hasOwn(body, "sealed")) sealedPart(sealedContentFromWire, body.sealed);
}

const withMember = (s, m, changes = {}) => replace(s, { members: withKey(s.members, m.id, m), ...changes });

// ---------------------------------------------------------------------------- effects

async function createForum({ event: ev, body, nodeKeys }) {
  const hub = bodyField(body, "hub", "str", ev);
  if (hub !== forumOrigin(ev.forum)) throw badBody("forum.create hub must be the node named in the forum id");
  const att = await attested(body.attestation, ev.author, nodeKeys);
  const founder = member(ev.author, ACTIVE, ["moderator"], att.org, deviceMap(att));
  return Object.freeze({
    forum: ev.forum, hub, seq: 0, head: ZERO_HASH, epoch: 0, epochRequired: true, frozen: false,
    members: dict([[ev.author, founder]]), invitations: dict(),
  });
}

async function inviteMember({ state: s, event: ev, body, nodeKeys }) {
  const candidate = memberIdIn(body, "candidate", ev);
  if (s.members[candidate]?.status === ACTIVE) throw remote("rules.already_member", candidate);
  sealedIn(body);
  const att = await attested(body.attestation, candidate, nodeKeys);
  const invitation = Object.freeze({ candidate, invite: ev.eventId, org: att.org, devices: deviceMap(att), accepted: false });
  return replace(s, { invitations: withKey(s.invitations, candidate, invitation) });
}

function acceptInvitation({ state: s, event: ev, body }) {
  const invitation = s.invitations[ev.author]; // the author check found it
  const invite = bodyField(body, "invite", "bin", ev);
  if (!equalBytes(invite, invitation.invite) || invitation.accepted) throw remote("rules.no_invitation", "not the open invitation");
  return replace(s, { invitations: withKey(s.invitations, ev.author, replace(invitation, { accepted: true })) });
}

function commitEpoch({ state: s, event: ev, body }) {
  if (bodyField(body, "epoch", "int", ev) !== s.epoch + 1) throw remote("rules.stale_epoch", `epoch.commit must name ${s.epoch + 1}`);
  const admit = bodyField(body, "admit", "array", ev).map((a) => memberIdIn({ m: a }, "m", ev));
  if (new Set(admit).size !== admit.length) throw badBody("epoch.commit admits a candidate twice");
  let members = s.members;
  let invitations = s.invitations;
  for (const candidate of admit) {
    const inv = invitations[candidate];
    if (!inv || !inv.accepted) throw remote("rules.no_invitation", `${candidate} has not accepted`);
    invitations = withoutKey(invitations, candidate);
    members = withKey(members, candidate, member(candidate, ACTIVE, [], inv.org, inv.devices));
  }
  const secrets = bodyField(body, "secrets", "array", ev).map((obj) => sealedPart(sealedSecretFromWire, obj));
  const after = replace(s, { members, invitations });
  checkRecipients(secrets, recipientsOf(after).sort());
  return replace(after, { epoch: s.epoch + 1, epochRequired: false });
}

function removeMember({ state: s, event: ev, body }) {
  const subject = memberIdIn(body, "subject", ev);
  sealedIn(body);
  const m = s.members[subject];
  if (m && m.status === ACTIVE) return withMember(s, replace(m, { status: REMOVED, roles: [] }), { epochRequired: true });
  if (Object.hasOwn(s.invitations, subject)) return replace(s, { invitations: withoutKey(s.invitations, subject) }); // no keys change
  throw remote("rules.not_member", `${subject} is not an active member`);
}

function leaveForum({ state: s, event: ev }) {
  return withMember(s, replace(s.members[ev.author], { status: LEFT, roles: [] }), { epochRequired: true });
}

async function addDevice({ state: s, event: ev, body, nodeKeys }) {
  const m = s.members[ev.author];
  const att = await attested(body.attestation, ev.author, nodeKeys);
  const fresh = Object.entries(deviceMap(att)).filter(([k]) => !Object.hasOwn(m.devices, k));
  if (!fresh.length) throw badBody("device.add attests no new device");
  return withMember(s, replace(m, { devices: dict([...Object.entries(m.devices), ...fresh]) }), { epochRequired: true });
}

function removeDevice({ state: s, event: ev, body }) {
  const m = s.members[ev.author];
  const device = bodyField(body, "device", "str", ev);
  if (!Object.hasOwn(m.devices, device)) throw remote("rules.unknown_device", `${device} is not ${ev.author}'s`);
  if (Object.keys(m.devices).length === 1) throw badBody("device.remove would leave the member without a device");
  return withMember(s, replace(m, { devices: withoutKey(m.devices, device) }), { epochRequired: true });
}

function assignRoles({ state: s, event: ev, body }) {
  const target = memberIdIn(body, "member", ev);
  const roles = bodyField(body, "roles", "array", ev);
  if (!roles.every((r) => typeof r === "string" && ROLES.includes(r)) || new Set(roles).size !== roles.length) {
    throw badBody(`roles must be distinct names from ${ROLES}`);
  }
  const m = s.members[target];
  if (!m || m.status !== ACTIVE) throw remote("rules.not_member", `${target} is not an active member`);
  return withMember(s, replace(m, { roles: Object.freeze([...roles].sort()) }));
}

export function certificateOf(event) {
  try {
    return certificateFromWire(event.body.certificate);
  } catch (err) {
    if (err instanceof RemoteProtocolError) throw remote("hubmove.invalid", err.message);
    throw err;
  }
}

async function moveHub({ state: s, event }) {
  const cert = certificateOf(event);
  const st = cert.statement;
  if (st.forum !== s.forum || st.old_hub !== s.hub || st.last_seq !== s.seq || !equalBytes(st.last_hash, s.head)) {
    throw remote("hubmove.invalid", "certificate is not for this forum's head");
  }
  await verifyHubMove(cert, rosterOf(s));
  return replace(s, { hub: st.new_hub, frozen: false });
}

function postContent({ state, event, body }) {
  if (Object.hasOwn(body, "ct")) {
    sealedPart(sealedContentFromWire, body.ct);
    return state;
  }
  // Detached (§6.9): the event names its attachment by hash; nodes delete it at `expires`.
  const ref = inBody(() => field(body, "ct_ref", "bin", event.type));
  if (ref.length !== 32) throw remote("rules.bad_body", `${event.type}.ct_ref must be 32 bytes`);
  inBody(() => nonNegative(body, "expires", event.type));
  return state;
}

// ---------------------------------------------------------------------------- the rule table

// `alternatives`: other [required, optional] body shapes taken instead of the first —
// content is inline {ct} or detached {ct_ref, expires} (§6.9), never a mix.
const rule = (who, required, optional, effect, content = false, alternatives = []) =>
  Object.freeze({ who, required, optional, effect, content, alternatives });
const CONTENT_RULE = rule("member", ["ct"], [], postContent, true, [[["ct_ref", "expires"], []]]);

/** Step R4: the body fits one of the rule's shapes. */
function checkBody(r, body, what) {
  if (!r.alternatives.length) return checkFields(body, r.required, r.optional, what);
  const shapes = [[r.required, r.optional], ...r.alternatives];
  for (const [required, optional] of shapes) {
    const allowed = new Set([...required, ...optional]);
    if (isMap(body) && required.every((k) => Object.hasOwn(body, k)) && Object.keys(body).every((k) => allowed.has(k))) return body;
  }
  throw remote("schema.unknown_field", `${what} body must be ${shapes.map(([req]) => `{${req.join(", ")}}`).join(" or ")}`);
}

export const RULES = Object.freeze({
  "forum.create": rule("creator", ["hub", "attestation"], [], createForum),
  "member.invite": rule("member", ["candidate", "attestation"], ["sealed"], inviteMember),
  "member.accept": rule("candidate", ["invite"], [], acceptInvitation),
  "epoch.commit": rule("member", ["epoch", "admit", "secrets"], [], commitEpoch),
  "member.remove": rule("member", ["subject"], ["sealed"], removeMember),
  "member.leave": rule("member", [], [], leaveForum),
  "device.add": rule("member", ["attestation"], [], addDevice),
  "device.remove": rule("member", ["device"], [], removeDevice),
  "role.assign": rule("moderator", ["member", "roles"], [], assignRoles),
  "hub.move": rule("member", ["certificate"], [], moveHub),
  ...Object.fromEntries(CONTENT_TYPES.map((t) => [t, CONTENT_RULE])),
});

// ---------------------------------------------------------------------------- the fold

/** Steps R4-R5: the author may submit this type; the device that signed it. */
async function authorDevice(state, ev, r, ctx) {
  let devices;
  if (r.who === "creator") {
    devices = deviceMap(await attested(ctx.body.attestation, ev.author, ctx.nodeKeys));
  } else if (r.who === "candidate") {
    const invitation = state.invitations[ev.author];
    if (!invitation) throw remote("rules.no_invitation", `${ev.author} is not invited`);
    devices = invitation.devices;
  } else {
    const m = state.members[ev.author];
    if (!m) throw remote("rules.not_member", ev.author);
    if (m.status !== ACTIVE) throw remote("rules.removed_member", `${ev.author} has ${m.status}`);
    devices = m.devices;
  }
  const device = devices[ev.kid];
  if (!device) throw remote("rules.unknown_device", `${ev.kid} is not ${ev.author}'s`);
  if (r.who === "moderator" && state && !state.members[ev.author].roles.includes("moderator")) {
    throw remote("rules.not_permitted", `${ev.type} needs a moderator`);
  }
  return device;
}

const EMPTY_STATE = (forum) => Object.freeze({
  forum, hub: "", seq: 0, head: ZERO_HASH, epoch: 0, epochRequired: false, frozen: false,
  members: dict(), invitations: dict(),
});

/** Steps R1-R8: the state after `event` (seq and head unchanged), or the hub's refusal. */
export async function checkEvent(state, event, { nodeKeys }) {
  let placeholder = state;
  if (state === null) {
    if (event.type !== "forum.create") throw remote("forum.unknown", `${event.forum} has no forum.create`);
    placeholder = EMPTY_STATE(event.forum);
  } else {
    if (event.forum !== state.forum) throw remote("event.wrong_forum", `event is for ${event.forum}`); // R1
    if (state.frozen && event.type !== "hub.move") throw remote("forum.frozen", state.forum); // R2
  }
  const r = Object.hasOwn(RULES, event.type) ? RULES[event.type] : null; // R3
  if (!r) throw remote("rules.unknown_type", event.type);
  if (state !== null && r.who === "creator") throw remote("rules.not_permitted", "forum.create only at seq 1");
  inBody(() => checkBody(r, event.body, event.type));
  const ctx = { state: placeholder, event, body: event.body, nodeKeys };
  const device = await authorDevice(state, event, r, ctx); // R4-R5
  await verifyEvent(event, device.sign); // R6
  const staleCreate = r.who === "creator" && event.epoch !== 0;
  const staleMember = (r.who === "member" || r.who === "moderator") && event.epoch !== placeholder.epoch;
  if (staleCreate || staleMember) throw remote("rules.stale_epoch", `event epoch ${event.epoch}`); // R7
  if (r.content && placeholder.epochRequired) throw remote("rules.epoch_required", "membership changed; commit an epoch");
  return r.effect(ctx); // R8
}

/** Steps E1-E6 then R1-R8: the state after `entry` (an Entry from log.js). */
export async function applyEntry(state, entry, { hubKeyAt, nodeKeys }) {
  const ev = entry.signedEvent;
  let seq = 1;
  let prev = ZERO_HASH;
  let hub = forumOrigin(entry.forum);
  if (state !== null) {
    if (entry.forum !== state.forum) throw remote("event.wrong_forum", `entry is for ${entry.forum}`); // E1
    if (state.frozen && ev.type !== "hub.move") throw remote("forum.frozen", state.forum); // E2
    [seq, prev, hub] = [state.seq + 1, state.head, state.hub];
  }
  if (entry.seq !== seq) throw remote("entry.bad_seq", `expected seq ${seq}, got ${entry.seq}`); // E3
  if (!equalBytes(entry.prev, prev)) throw remote("entry.broken_chain", `seq ${entry.seq} does not chain`); // E4
  if (state !== null && ev.type === "hub.move") hub = certificateOf(ev).statement.new_hub; // the new hub signs it
  if (entry.hub !== hub) throw remote("entry.wrong_hub", `signed by ${entry.hub}, hub is ${hub}`); // E5
  const key = await hubKeyAt(entry.hub, entry.kid, entry.ts); // E6
  if (!key) throw remote("sig.unknown_key", `no key ${entry.kid} for ${entry.hub}`);
  await verifyEntry(entry, key);
  const after = await checkEvent(state, ev, { nodeKeys });
  return replace(after, { seq: entry.seq, head: entry.hash });
}

/** Apply `entries` in order from `state` (null: a forum not yet created). */
export async function fold(entries, { hubKeyAt, nodeKeys, state = null }) {
  for (const entry of entries) state = await applyEntry(state, entry, { hubKeyAt, nodeKeys });
  return state;
}

/** ForumState.to_wire, for comparing with the vectors and the node's replicas. */
export function stateToWire(s) {
  const devs = (d) => Object.fromEntries(Object.entries(d).map(([k, v]) => [k, { sign: v.sign.raw, agree: v.agree.raw }]));
  return {
    forum: s.forum, hub: s.hub, seq: s.seq, head: s.head, epoch: s.epoch, epoch_required: s.epochRequired, frozen: s.frozen,
    members: Object.fromEntries(Object.values(s.members).map((m) => [m.id, { status: m.status, roles: [...m.roles], org: m.org, devices: devs(m.devices) }])),
    invitations: Object.fromEntries(Object.values(s.invitations).map((i) => [i.candidate, { invite: i.invite, org: i.org, accepted: i.accepted, devices: devs(i.devices) }])),
  };
}
