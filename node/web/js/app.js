// App shell entry point. The screens (forums, meetings, members) mount into #app once
// the client API (/_pf/client/v1/) is in place; for now this checks that the browser
// has the WebCrypto algorithms PFP/1 needs, since a member must not be half let in.

import { supportsPfp } from "./support.js";

const status = document.getElementById("status");

async function start() {
  const missing = await supportsPfp();
  if (missing.length) {
    status.dataset.state = "unsupported";
    status.textContent = `This browser lacks WebCrypto ${missing.join(", ")}; use a current Chromium, Firefox or Safari.`;
    return;
  }
  status.dataset.state = "ready";
  status.textContent = "Ready. Keys are created and kept on this device.";
  document.documentElement.dataset.ready = "1";
}

start();
