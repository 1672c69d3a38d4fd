// The invitation envelope (port of cli/member/invitation.py): the charter and pledge
// sealed to the candidate's devices and every active member's, under a one-off secret K.
//
// A candidate holds no epoch secret, so K is sealed with HPKE exactly like an epoch
// secret but with epoch number 0 — never a real epoch, so it cannot pass for one. The
// content is sealed under K with the invite event's own header as associated data, and
// the node sees one SealedContent whose ct is the encoding of {box, secrets}.

import { decode, encode } from "./codec.js";
import { newContentNonce, newEpochSecret, openContentMap, openEpoch, sealContentMap, sealEpoch, sealedContentFromWire, sealedSecretFromWire } from "./group.js";
import { isMap } from "./schema.js";

export const INVITE_EPOCH = 0;

/** `recipients`: AgreementPublicKeys of the candidate's devices and the members'. */
export async function sealInvitation(content, { header, forum, recipients }) {
  const secret = newEpochSecret();
  const secrets = await sealEpoch(secret, { forum, epoch: INVITE_EPOCH, recipients });
  const box = await sealContentMap(secret, { header, body: content, nonce: newContentNonce() });
  return { suite: box.suite, nonce: box.nonce, ct: encode({ box: box.ct, secrets }) };
}

/** The envelope's content, or null when it is not for this device (or is not one). */
export async function openInvitation(sealed, { header, forum, key }) {
  try {
    const outer = sealedContentFromWire(sealed);
    const inner = decode(outer.ct);
    if (!isMap(inner) || Object.keys(inner).sort().join() !== "box,secrets") return null;
    const secrets = inner.secrets.map(sealedSecretFromWire);
    if (!secrets.some((s) => s.to === key.public.keyId)) return null;
    const secret = await openEpoch(secrets, { forum, epoch: INVITE_EPOCH, key });
    return await openContentMap(secret, { header, sealed: { suite: outer.suite, nonce: outer.nonce, ct: inner.box } });
  } catch {
    return null;
  }
}
