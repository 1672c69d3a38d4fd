// Names of nodes and members (specs/protocol.md §3.4; port of protocol/identity.py).
// Names are compared byte for byte after validation; node names must already be lower case.

import { remote } from "./errors.js";

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOST = `(?:${LABEL}(?:\\.${LABEL})*|[0-9]{1,3}(?:\\.[0-9]{1,3}){3}|\\[[0-9a-f:]+\\])`;
const NODE_RE = new RegExp(`^${HOST}(?::([1-9][0-9]{0,4}))?$`);
const HANDLE_RE = /^[a-z0-9][a-z0-9._=-]{0,63}$/;
const MAX_NODE_NAME = 255;

const show = (v) => JSON.stringify(String(v)).slice(0, 80);

/** `name` if it is a valid node name, else identity.bad_node_name. */
export function checkNodeName(name) {
  const m = typeof name === "string" && name.length <= MAX_NODE_NAME ? NODE_RE.exec(name) : null;
  if (!m || (m[1] !== undefined && Number(m[1]) > 65535)) {
    throw remote("identity.bad_node_name", `bad node name ${show(name)}`);
  }
  return name;
}

/** Split "@handle:node" into [handle, node], validating both (identity.bad_member_id). */
export function parseMemberId(mid) {
  const bad = () => remote("identity.bad_member_id", `bad member id ${show(mid)}`);
  if (typeof mid !== "string" || !mid.startsWith("@") || !mid.includes(":")) throw bad();
  const at = mid.indexOf(":");
  const handle = mid.slice(1, at);
  const node = mid.slice(at + 1);
  if (!HANDLE_RE.test(handle)) throw bad();
  try {
    checkNodeName(node);
  } catch {
    throw bad();
  }
  return [handle, node];
}

export const nodeOf = (mid) => parseMemberId(mid)[1];
