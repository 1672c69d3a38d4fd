// One error tree for PFP/1 in the browser, mirroring protocol/errors.py.
//
// Every refusal carries a stable `code` from specs/protocol.md §9 (e.g. "codec.non_minimal"),
// so the web client, the Python reference and the node name the same failure the same way.
// RemoteProtocolError: the bytes we were given are at fault (a node, another member).
// LocalProtocolError: we were asked to build something the protocol forbids.

export class ProtocolError extends Error {
  constructor(code, message = "") {
    super(message ? `${code}: ${message}` : code);
    this.name = new.target.name;
    this.code = code;
  }
}

export class RemoteProtocolError extends ProtocolError {}
export class LocalProtocolError extends ProtocolError {}

export const remote = (code, message) => new RemoteProtocolError(code, message);
export const local = (code, message) => new LocalProtocolError(code, message);
