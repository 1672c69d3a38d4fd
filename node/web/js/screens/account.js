// Enrollment and the member's devices. Keys are generated here, non-extractable, and
// stored in IndexedDB before the code is spent; the node only ever sees public keys and
// a proof of possession signed over the code's hash.
//
// A further device (cli/member/devices.py, mirrored): the new browser makes its own keys
// and shows a *request* — its public keys and a `device` proof signed with its new key,
// the same JSON `peerforum client device request` writes. The member carries it to a
// device already enrolled (this screen, or `peerforum client device add`), which
// registers it with the node, checks the attestation the node signs under the pinned
// node key, and signs `device.add` in each forum, then commits the epoch that makes due.
// Nothing secret crosses between devices; the new one reads from that epoch on.

import { ApiError, Session, b64u, enroll, homeNodeName, fetchOwnDescriptor, unb64u } from "../api.js";
import { decode } from "../codec.js";
import { KeySet, verifyAttestation, verifyDescriptor } from "../descriptor.js";
import { nodeOf } from "../identity.js";
import { signingInput } from "../keys.js";
import { generateDeviceKeys, loadDeviceKeys, saveDeviceKeys } from "../keystore.js";
import { deleteSetting, getSetting, pin, setSetting } from "../store.js";
import { field, form, h, section, time } from "../ui.js";

export async function enrollScreen(ctx, { onEnrolled }) {
  const code = h("input", { name: "code", required: true, autocomplete: "off", spellcheck: "false", autocapitalize: "off" });
  return h("div", { class: "screen" },
    h("h2", {}, "Enroll this device"),
    h("p", {}, "Your organization's operator gave you a one-time code. This browser creates your keys; they never leave this device."),
    form({ class: "stack", "aria-label": "Enroll" }, [field("One-time code", code, "Looks like handle.XXXXXXXX"), h("button", { type: "submit" }, "Enroll")], async () => {
      await enrollDevice(code.value.trim());
      await onEnrolled();
    }),
    await newDeviceSection(onEnrolled));
}

/** On a new browser of an enrolled member: the request to carry, then the check-in. */
async function newDeviceSection(onEnrolled) {
  const pending = await getSetting("pending-device");
  const area = h("div", { class: "stack" });
  const show = (request) => area.replaceChildren(
    field("Device request", h("textarea", { readonly: true, rows: 5, spellcheck: "false", id: "device-request" }, JSON.stringify(request)),
      "Copy this to a device already enrolled (My devices → Add a device, or peerforum client device add). It holds public keys only."),
    form({ class: "stack", "aria-label": "Finish adding this device" }, [h("button", { type: "submit" }, "This device was added")], async () => {
      await finishNewDevice();
      await onEnrolled();
    }));
  if (pending) show(await deviceRequest(pending.member));
  const member = h("input", { name: "member", required: true, autocomplete: "off", spellcheck: "false", autocapitalize: "off" });
  return section("Already a member? Add this browser",
    h("p", {}, "Use this instead of a code when you are enrolled on another device."),
    form({ class: "stack", "aria-label": "Request to add this device" }, [field("Your member id", member, `Looks like @you:${homeNodeName()}`), h("button", { type: "submit" }, "Make a device request")], async () => {
      show(await requestNewDevice(member.value.trim()));
    }),
    area);
}

const deviceMessage = ({ member, node, sign, agree }) => signingInput("device", { v: 1, member, node, sign, agree });

/** The request of this browser's keys for `member` (signed afresh: Ed25519 is deterministic). */
async function deviceRequest(member) {
  const device = await loadDeviceKeys(member);
  if (!device) throw new ApiError("client.no_device", "this browser's keys are gone: make a new request");
  const [sign, agree] = [device.sign.publicKey, device.agree.public.raw];
  const proof = await device.sign.sign(deviceMessage({ member, node: homeNodeName(), sign, agree }));
  return { member, sign: b64u(sign), agree: b64u(agree), proof: b64u(proof) };
}

/** New keys for `member` on this browser, kept non-extractable; the request to carry. */
export async function requestNewDevice(member) {
  const node = homeNodeName();
  if (!/^@[^:]+:/.test(member) || nodeOf(member) !== node) throw new ApiError("api.bad_request", `${member} is not a member id of ${node}`);
  if (await getSetting("account")) throw new ApiError("api.conflict", "this browser is enrolled already");
  await saveDeviceKeys(member, await generateDeviceKeys());
  const device = await loadDeviceKeys(member);
  await setSetting("pending-device", { member, node, kid: device.sign.keyId });
  return deviceRequest(member);
}

/** Once added: a session opens with the new key, and the node's attestation of the member,
 *  verified under the node key pinned now, lists this device. Then it is this browser's account. */
export async function finishNewDevice() {
  const pending = await getSetting("pending-device");
  if (!pending) throw new ApiError("client.no_device", "make a device request first");
  const node = homeNodeName();
  const device = await loadDeviceKeys(pending.member);
  const bytes = await fetchOwnDescriptor();
  const desc = await verifyDescriptor(bytes, { expectedName: node, nowMs: Date.now() });
  const session = new Session({ member: pending.member, node, device });
  try {
    await session.login();
  } catch (err) {
    if (err.code === "api.unauthorized") throw new ApiError("client.not_added", "not added yet: add the request from one of your enrolled devices first", err.status);
    throw err;
  }
  const att = await verifyAttestation(await session.attestation(pending.member), { expectedNode: node, keys: desc.keys });
  if (att.member !== pending.member || !att.devices.some((d) => d.id === device.sign.keyId)) {
    throw new ApiError("attestation.invalid", "the node does not attest this device");
  }
  await pin(node, bytes);
  await setSetting("account", { member: pending.member, node, kid: device.sign.keyId });
  await deleteSetting("pending-device");
  await session.logout();
  return pending.member;
}

/** On an enrolled device: register the requested device, check the attestation the node
 *  signs for it under our pinned node key, then `device.add` and a new epoch in each forum. */
export async function addDevice(ctx, text) {
  let request;
  try {
    request = JSON.parse(text);
  } catch {
    throw new ApiError("api.bad_request", "that is not a device request");
  }
  if (request?.member !== ctx.account.member) throw new ApiError("api.bad_request", "the request is for another member");
  const answer = await ctx.session.call("POST", "/devices", { device: { sign: request.sign, agree: request.agree }, proof: request.proof });
  const attestation = decode(unb64u(answer.attestation));
  const key = await ctx.keys.lookup(ctx.account.node, String(attestation.kid), Number(attestation.ts));
  if (!key) throw new ApiError("sig.unknown_key", "no pinned key for our own node");
  const att = await verifyAttestation(attestation, { expectedNode: ctx.account.node, keys: new KeySet([key]) });
  if (att.member !== ctx.account.member || !att.devices.some((d) => d.id === answer.kid)) {
    throw new ApiError("attestation.invalid", "the node attested other devices");
  }
  const forums = [];
  for (const f of (await ctx.session.forums()).filter((x) => x.as === "member")) {
    forums.push(await ctx.client.addDevice(f.forum, attestation));
  }
  return { kid: answer.kid, forums };
}

/** Keys first (kept even if the node refuses), then the code, then the attestation checked. */
export async function enrollDevice(code) {
  const node = homeNodeName();
  const bytes = await fetchOwnDescriptor();
  const desc = await verifyDescriptor(bytes, { expectedName: node, nowMs: Date.now() });
  const device = await generateDeviceKeys();
  const answer = await enroll(code, device);
  const att = await verifyAttestation(unb64u(answer.attestation), { expectedNode: node, keys: desc.keys });
  if (att.member !== answer.member || !att.devices.some((d) => d.id === device.sign.keyId)) {
    throw new ApiError("attestation.invalid", "the node attested another device");
  }
  await saveDeviceKeys(answer.member, device);
  await pin(node, bytes); // the home node's key, pinned on first use (specs/web.md)
  await setSetting("account", { member: answer.member, node, kid: device.sign.keyId });
  return answer.member;
}

export async function devicesScreen(ctx) {
  const me = await ctx.session.me();
  const fps = await ctx.keys.fingerprints(ctx.account.node);
  const list = h("ul", { class: "list" });
  const render = (devices) => list.replaceChildren(...devices.map((d) => {
    const mine = d.kid === ctx.account.kid;
    const remove = mine ? h("span", { class: "tag" }, "this device") : h("button", {
      type: "button", class: "danger", "aria-label": `Remove device ${d.kid}`,
      onclick: async (ev) => {
        ev.target.disabled = true;
        await ctx.session.removeDevice(d.kid);
        render((await ctx.session.me()).devices);
      },
    }, "Remove");
    return h("li", { class: "row" }, h("code", {}, d.kid), h("span", { class: "muted" }, `added ${time(d.created_ms)}`), remove);
  }));
  render(me.devices);
  const request = h("textarea", { name: "request", rows: 4, required: true, spellcheck: "false" });
  const done = h("p", { role: "status" });
  const add = form({ class: "stack", "aria-label": "Add a device" }, [field("Device request", request, "Paste what your new device shows under “Add this browser”."), h("button", { type: "submit" }, "Add device")], async () => {
    done.textContent = "";
    const result = await addDevice(ctx, request.value.trim());
    request.value = "";
    render((await ctx.session.me()).devices);
    const epochs = result.forums.map((f) => `epoch ${f.epoch}`).join(", ");
    done.textContent = `Added ${result.kid}${result.forums.length ? `; your forums re-keyed (${epochs}): it reads from now on` : ""}.`;
  });
  return h("div", { class: "screen" },
    h("h2", {}, "My devices"),
    section("Who you are", h("p", {}, `${me.member} · ${me.org}${me.title ? ` · ${me.title}` : ""}`)),
    section("Devices that can read your forums", list,
      h("p", { class: "hint" }, "Removing a device ends its sessions. Your forums re-key when a member's client next syncs.")),
    section("Add a device", h("p", {}, "On the new device, open this page and choose “Add this browser”; bring its request here."), add, done),
    section("Your node's key", h("p", {}, "Compare with the fingerprint your operator gives you:"), ...fps.map((f) => h("p", {}, h("code", { class: "fp" }, f)))));
}
