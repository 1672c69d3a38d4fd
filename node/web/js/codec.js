// Canonical msgpack, the strict profile of specs/protocol.md §2 (port of protocol/codec.py).
//
// Signatures cover exact bytes, so there is one valid encoding per value and the decoder
// refuses every other, with the code of the first rule broken (§2.3).
//
// Value model (what `decode` returns and `encode` accepts):
//   nil -> null          bool -> boolean        str -> string (well-formed UTF-16)
//   bin -> Uint8Array    array -> Array
//   int -> Number when it is a safe integer (|n| <= 2^53 - 1), BigInt beyond. Millisecond
//          times, seqs and epochs stay plain Numbers; only values past 2^53 (none in PFP/1
//          today but allowed by §2.1) become BigInt, so no integer silently loses precision.
//          `encode` accepts both; an integral Number beyond the safe range is refused
//          (codec.bad_type): it may already have been rounded, pass a BigInt instead.
//   map -> a plain object with a null prototype, so a key such as "__proto__" is an
//          ordinary own key. `encode` accepts plain objects (any key order: it sorts) and
//          Maps with string keys.

import { local, remote } from "./errors.js";

export const LIMITS = Object.freeze({
  maxDepth: 16,
  maxObjectBytes: 1024 * 1024, // any single encoded object
  maxEventBytes: 64 * 1024,
});

const INT_MIN = -(2n ** 63n);
const INT_MAX = 2n ** 64n - 1n;
const utf8 = new TextEncoder();
// fatal: refuse invalid UTF-8 (overlong forms, surrogates) like Python's strict codec.
// ignoreBOM: keep a leading U+FEFF as text; the default would silently strip it.
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------- encode

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.len = 0;
  }
  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }
  byte(b) {
    this.reserve(1);
    this.buf[this.len++] = b;
  }
  uint(value, size) {
    // Big-endian unsigned integer of `size` bytes; `value` a Number or BigInt.
    this.reserve(size);
    let v = BigInt(value);
    for (let i = size - 1; i >= 0; i--) {
      this.buf[this.len + i] = Number(v & 0xffn);
      v >>= 8n;
    }
    this.len += size;
  }
  bytes(b) {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  result() {
    return this.buf.slice(0, this.len);
  }
}

export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function isPlainObject(value) {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function writeInt(w, value) {
  let n = typeof value === "bigint" ? value : BigInt(value);
  if (n < INT_MIN || n > INT_MAX) throw local("codec.bad_type", "integer out of range");
  if (n >= 0n) {
    if (n <= 0x7fn) w.byte(Number(n));
    else if (n <= 0xffn) (w.byte(0xcc), w.uint(n, 1));
    else if (n <= 0xffffn) (w.byte(0xcd), w.uint(n, 2));
    else if (n <= 0xffffffffn) (w.byte(0xce), w.uint(n, 4));
    else (w.byte(0xcf), w.uint(n, 8));
    return;
  }
  // Two's complement of a negative n in `size` bytes is n + 2^(8*size).
  if (n >= -32n) w.byte(Number(n + 256n));
  else if (n >= -128n) (w.byte(0xd0), w.uint(n + 2n ** 8n, 1));
  else if (n >= -32768n) (w.byte(0xd1), w.uint(n + 2n ** 16n, 2));
  else if (n >= -(2n ** 31n)) (w.byte(0xd2), w.uint(n + 2n ** 32n, 4));
  else (w.byte(0xd3), w.uint(n + 2n ** 64n, 8));
}

function writeLength(w, n, fix, fixMax, codes) {
  // codes: [8-bit or null, 16-bit, 32-bit] format bytes (§2.2 step 2).
  if (fix !== null && n <= fixMax) w.byte(fix | n);
  else if (codes[0] !== null && n <= 0xff) (w.byte(codes[0]), w.uint(n, 1));
  else if (n <= 0xffff) (w.byte(codes[1]), w.uint(n, 2));
  else (w.byte(codes[2]), w.uint(n, 4));
}

function writeStr(w, s) {
  // TextEncoder would quietly turn a lone surrogate into U+FFFD: refuse it instead.
  if (!s.isWellFormed()) throw local("codec.invalid_utf8", "str is not valid UTF-16/UTF-8");
  const b = utf8.encode(s);
  writeLength(w, b.length, 0xa0, 31, [0xd9, 0xda, 0xdb]);
  w.bytes(b);
}

function writeValue(w, value, depth, limits) {
  if (depth > limits.maxDepth) throw local("codec.too_deep", `depth exceeds ${limits.maxDepth}`);
  if (value === null) return w.byte(0xc0);
  switch (typeof value) {
    case "boolean":
      return w.byte(value ? 0xc3 : 0xc2);
    case "bigint":
      return writeInt(w, value);
    case "number":
      if (!Number.isInteger(value)) throw local("codec.float", "floats are not allowed");
      if (!Number.isSafeInteger(value)) {
        throw local("codec.bad_type", "integer beyond 2^53 as a Number: pass a BigInt");
      }
      return writeInt(w, value);
    case "string":
      return writeStr(w, value);
    case "object":
      break;
    default:
      throw local("codec.bad_type", `cannot encode ${typeof value}`);
  }
  if (value instanceof Uint8Array) {
    writeLength(w, value.length, null, 0, [0xc4, 0xc5, 0xc6]);
    return w.bytes(value);
  }
  if (Array.isArray(value)) {
    writeLength(w, value.length, 0x90, 15, [null, 0xdc, 0xdd]);
    for (const item of value) writeValue(w, item, depth + 1, limits);
    return;
  }
  let entries;
  if (value instanceof Map) entries = [...value.entries()];
  else if (isPlainObject(value)) entries = Object.entries(value);
  else throw local("codec.bad_type", `cannot encode ${value.constructor?.name ?? "object"}`);
  const keyed = entries.map(([k, v]) => {
    if (typeof k !== "string") throw local("codec.non_text_key", "map key is not a str");
    if (!k.isWellFormed()) throw local("codec.invalid_utf8", "map key is not valid UTF-16");
    return [utf8.encode(k), k, v];
  });
  keyed.sort((a, b) => compareBytes(a[0], b[0]));
  for (let i = 1; i < keyed.length; i++) {
    if (compareBytes(keyed[i - 1][0], keyed[i][0]) === 0) {
      throw local("codec.duplicate_key", `key ${JSON.stringify(keyed[i][1])} repeated`);
    }
  }
  writeLength(w, keyed.length, 0x80, 15, [null, 0xde, 0xdf]);
  for (const [, k, v] of keyed) {
    writeStr(w, k);
    writeValue(w, v, depth + 1, limits);
  }
}

/** Encode `value` in the canonical profile; throws LocalProtocolError("codec.*"). */
export function encode(value, limits = LIMITS) {
  const w = new Writer();
  writeValue(w, value, 1, limits);
  if (w.len > limits.maxObjectBytes) {
    throw local("codec.too_large", `${w.len} bytes > ${limits.maxObjectBytes}`);
  }
  return w.result();
}

// ---------------------------------------------------------------------------- decode

const EXT = new Set([0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8]);
const SIZE = { 0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4, 0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4 };
// The smallest length each format may carry: anything shorter has a smaller format.
const MIN_LEN = { 0xc4: 0, 0xc5: 0x100, 0xc6: 0x10000, 0xd9: 32, 0xda: 0x100, 0xdb: 0x10000,
  0xdc: 16, 0xdd: 0x10000, 0xde: 16, 0xdf: 0x10000 };
const UINT_SIZE = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8 };
const UINT_FLOOR = { 1: 0x80n, 2: 0x100n, 4: 0x10000n, 8: 0x100000000n };
const INT_SIZE = { 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8 };
const INT_FLOOR = { 1: -32n, 2: -128n, 4: -32768n, 8: -(2n ** 31n) };

function toNumberIfSafe(n) {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

class StrictReader {
  constructor(data, limits) {
    this.data = data;
    this.pos = 0;
    this.limits = limits;
  }

  take(n) {
    const end = this.pos + n;
    if (end > this.data.length) throw remote("codec.truncated", `need ${n} bytes at offset ${this.pos}`);
    const chunk = this.data.subarray(this.pos, end);
    this.pos = end;
    return chunk;
  }

  uint(n) {
    let v = 0n;
    for (const b of this.take(n)) v = (v << 8n) | BigInt(b);
    return v;
  }

  length(format) {
    const n = Number(this.uint(SIZE[format]));
    if (n < MIN_LEN[format]) throw remote("codec.non_minimal", `length ${n} in a wider format`);
    return n;
  }

  readValue(depth) {
    if (depth > this.limits.maxDepth) throw remote("codec.too_deep", `depth exceeds ${this.limits.maxDepth}`);
    const start = this.pos;
    const b = this.take(1)[0];
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth);
    if (b === 0xc0) return null;
    if (b === 0xc2) return false;
    if (b === 0xc3) return true;
    if (b === 0xca || b === 0xcb) throw remote("codec.float", `float at offset ${start}`);
    if (EXT.has(b)) throw remote("codec.ext", `ext type at offset ${start}`);
    if (b === 0xc1) throw remote("codec.bad_type", `reserved byte at offset ${start}`);
    if (b >= 0xc4 && b <= 0xc6) return this.take(this.length(b)).slice();
    if (b >= 0xd9 && b <= 0xdb) return this.str(this.length(b));
    if (b === 0xdc || b === 0xdd) return this.array(this.length(b), depth);
    if (b === 0xde || b === 0xdf) return this.map(this.length(b), depth);
    if (b in UINT_SIZE) {
      const size = UINT_SIZE[b];
      const v = this.uint(size);
      if (v < UINT_FLOOR[size]) throw remote("codec.non_minimal", `uint ${v} in ${size} bytes`);
      return toNumberIfSafe(v);
    }
    // 0xd0..0xd3: signed ints; canonical only for negatives below the fixint range.
    const size = INT_SIZE[b];
    const v = BigInt.asIntN(size * 8, this.uint(size));
    if (v >= INT_FLOOR[size]) throw remote("codec.non_minimal", `int ${v} in ${size} signed bytes`);
    return toNumberIfSafe(v);
  }

  str(n) {
    const raw = this.take(n);
    try {
      return utf8Strict.decode(raw);
    } catch {
      throw remote("codec.invalid_utf8", "str is not valid UTF-8");
    }
  }

  array(n, depth) {
    // Each item takes at least one byte: refuse a huge count before allocating for it.
    if (n > this.data.length - this.pos) throw remote("codec.truncated", "array longer than the input");
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.readValue(depth + 1);
    return out;
  }

  map(n, depth) {
    if (2 * n > this.data.length - this.pos) throw remote("codec.truncated", "map longer than the input");
    const out = Object.create(null);
    let previous = null;
    for (let i = 0; i < n; i++) {
      const keyAt = this.pos;
      const key = this.readValue(depth + 1);
      if (typeof key !== "string") throw remote("codec.non_text_key", `map key at offset ${keyAt}`);
      const bytes = utf8.encode(key);
      if (previous !== null) {
        const order = compareBytes(bytes, previous);
        if (order === 0) throw remote("codec.duplicate_key", `key ${JSON.stringify(key)} repeated`);
        if (order < 0) throw remote("codec.unsorted_keys", `key ${JSON.stringify(key)} out of order`);
      }
      previous = bytes;
      out[key] = this.readValue(depth + 1);
    }
    return out;
  }
}

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw local("codec.bad_type", "decode takes a Uint8Array");
}

/** Decode canonical bytes; throws RemoteProtocolError naming the first rule broken (§2.3). */
export function decode(data, limits = LIMITS) {
  const bytes = asBytes(data);
  if (bytes.length > limits.maxObjectBytes) {
    throw remote("codec.too_large", `${bytes.length} bytes > ${limits.maxObjectBytes}`);
  }
  const reader = new StrictReader(bytes, limits);
  const value = reader.readValue(1);
  if (reader.pos !== bytes.length) {
    throw remote("codec.trailing_bytes", `${bytes.length - reader.pos} extra bytes`);
  }
  // §2.3 step 9: a guard, never reached by a conforming reader, against silent normalizing.
  let again;
  try {
    again = encode(value, limits);
  } catch {
    throw remote("codec.bad_type", "value not representable in the profile");
  }
  if (compareBytes(again, bytes) !== 0) throw remote("codec.bad_type", "re-encoding differs");
  return value;
}

// ---------------------------------------------------------------------------- helpers

export function toHex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

export function fromHex(hex) {
  if (hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) throw local("schema.bad_value", "not hex");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.length));
  return out;
}

export function equalBytes(a, b) {
  return a instanceof Uint8Array && b instanceof Uint8Array && compareBytes(a, b) === 0;
}

export const ascii = (s) => utf8.encode(s);
