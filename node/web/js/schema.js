// Field checks shared by every message format (specs/protocol.md §3.3; port of
// protocol/schema.py), so the browser refuses a malformed object with the same schema.*
// code as the node does.

import { remote } from "./errors.js";

const TYPES = {
  bin: (v) => v instanceof Uint8Array,
  str: (v) => typeof v === "string",
  // true is not an int: booleans are a type of their own in msgpack and here.
  int: (v) => (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint",
  bool: (v) => typeof v === "boolean",
  array: (v) => Array.isArray(v),
  map: (v) => isMap(v),
};

export function isMap(v) {
  if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Require a map with every `required` field and nothing beyond `optional`. */
export function checkFields(obj, required, optional = [], what = "object") {
  if (!isMap(obj)) throw remote("schema.wrong_type", `${what} must be a map`);
  const missing = required.filter((k) => !Object.hasOwn(obj, k)).sort();
  if (missing.length) throw remote("schema.missing_field", `${what}: missing ${missing}`);
  const allowed = new Set([...required, ...optional]);
  const extra = Object.keys(obj).filter((k) => !allowed.has(k)).sort();
  if (extra.length) throw remote("schema.unknown_field", `${what}: unknown ${extra}`);
  return obj;
}

/** `obj[name]` if it has exactly `type` ("bin", "str", "int", "bool", "array", "map"). */
export function field(obj, name, type, what = "object") {
  const value = Object.hasOwn(obj, name) ? obj[name] : undefined;
  if (!TYPES[type](value)) throw remote("schema.wrong_type", `${what}.${name} must be ${type}`);
  return value;
}

export function fixedBytes(obj, name, size, what = "object") {
  const value = field(obj, name, "bin", what);
  if (value.length !== size) throw remote("schema.bad_value", `${what}.${name} must be ${size} bytes`);
  return value;
}

export function nonNegative(obj, name, what = "object") {
  const value = field(obj, name, "int", what);
  if (value < 0) throw remote("schema.bad_value", `${what}.${name} must be >= 0`);
  return value;
}
