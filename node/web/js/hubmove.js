// Hub move certificates (specs/protocol.md §6.6; port of protocol/hubmove.py, the
// verifying half): a strict majority of active members signs the last entry they accept
// and the node that sequences after it. The browser checks it when folding a hub.move.

import { remote } from "./errors.js";
import { checkNodeName, parseMemberId } from "./identity.js";
import { signingInput } from "./keys.js";
import { checkForumId } from "./log.js";
import { checkFields, field, fixedBytes, nonNegative } from "./schema.js";

const KID_RE = /^k[0-9a-f]{16}$/;

function kidOf(v, what) {
  if (typeof v !== "string") throw remote("schema.wrong_type", `${what} must be str`);
  if (!KID_RE.test(v)) throw remote("schema.bad_value", `${what} is not a key id`);
  return v;
}

function sigOf(v, what) {
  if (!(v instanceof Uint8Array)) throw remote("schema.wrong_type", `${what} must be bin`);
  if (v.length !== 64) throw remote("sig.invalid", `${what} must be 64 bytes`);
  return v;
}

/** HubMoveCertificate.from_wire: {statement: {forum, last_seq, last_hash, old_hub, new_hub}, sigs}. */
export function certificateFromWire(obj) {
  const names = ["v", "forum", "last_seq", "last_hash", "old_hub", "new_hub", "sigs"];
  const m = checkFields(obj, names, [], "hub move");
  if (field(m, "v", "int", "hub move") !== 1) throw remote("schema.unsupported_version", "hub move.v must be 1");
  const statement = {
    forum: field(m, "forum", "str", "hub move"),
    last_seq: nonNegative(m, "last_seq", "hub move"),
    last_hash: fixedBytes(m, "last_hash", 32, "hub move"),
    old_hub: field(m, "old_hub", "str", "hub move"),
    new_hub: field(m, "new_hub", "str", "hub move"),
  };
  checkForumId(statement.forum);
  checkNodeName(statement.old_hub);
  checkNodeName(statement.new_hub);
  if (statement.last_seq < 1) throw remote("schema.bad_value", "last_seq must be an int >= 1");
  const sigs = [];
  for (const s0 of field(m, "sigs", "array", "hub move")) {
    const w = "hub move signature";
    const s = checkFields(s0, ["member", "kid", "sig"], [], w);
    const member = field(s, "member", "str", w);
    const kid = kidOf(s.kid, `${w}.kid`);
    const sig = sigOf(s.sig, w);
    parseMemberId(member);
    sigs.push({ member, kid, sig });
  }
  return { statement, sigs };
}

/** What one member device signs (domain "hubmove"). */
export function signedPart(st, member, kid) {
  return { v: 1, forum: st.forum, last_seq: st.last_seq, last_hash: st.last_hash, old_hub: st.old_hub, new_hub: st.new_hub, member, kid };
}

/**
 * Check `cert` against the active members: `roster[member][device kid]` is a VerifyKey.
 * Every signature must be good and by a distinct active member (hubmove.invalid); their
 * number must be a strict majority of the active members (hubmove.no_quorum).
 */
export async function verifyHubMove(cert, roster) {
  const st = cert.statement;
  if (st.new_hub === st.old_hub) throw remote("hubmove.invalid", "new hub is the old hub");
  const seen = new Set();
  for (const s of cert.sigs) {
    if (seen.has(s.member)) throw remote("hubmove.invalid", `${s.member} signed twice`);
    seen.add(s.member);
    const key = roster[s.member]?.[s.kid];
    if (!key) throw remote("hubmove.invalid", `${s.member}/${s.kid} is not an active device`);
    try {
      await key.verify(signingInput("hubmove", signedPart(st, s.member, s.kid)), s.sig);
    } catch {
      throw remote("hubmove.invalid", `bad signature by ${s.member}`);
    }
  }
  const active = Object.keys(roster).length;
  if (2 * seen.size <= active) throw remote("hubmove.no_quorum", `${seen.size} of ${active} active members signed`);
}
