// Converse.js, the web client, in headless Chromium (Debian's /usr/bin/chromium, driven
// by puppeteer-core) logging in through stanzagate over WebSocket.
//
//   node converse.mjs WS_URL JID PASSWORD PEER
//
// Serves a page with Converse.js from node_modules on a loopback port, logs in with
// auto_login, prints `CONNECTED jid` once the session is up, sends PEER a chat message
// through Converse's API (`SENT`), prints `MESSAGE from body` for the reply, then
// logs out and closes the browser (`DONE`). Exits 1 on error or after 90 s.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const [wsUrl, jid, password, peer] = process.argv.slice(2);
const say = (...parts) => console.log(parts.join(" "));
const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "node_modules", "converse.js", "dist");
let browser;
const fail = async (why) => {
  say("ERROR", why);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
};
setTimeout(() => fail("timeout"), 90_000).unref();

const page_html = `<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script></head><body>
<script type="module">
converse.plugins.add("sgprobe", {
  initialize() {
    const { api } = this._converse;
    const { $msg } = converse.env;
    api.listen.on("connected", () => {
      console.log("SG CONNECTED " + api.connection.get().jid);
      api.send($msg({ to: ${JSON.stringify(peer)}, type: "chat" }).c("body").t("hello from converse"));
      console.log("SG SENT");
    });
    api.listen.on("message", (data) => {
      const body = data.stanza.querySelector("body");
      if (body) console.log("SG MESSAGE " + data.stanza.getAttribute("from") + " " + body.textContent);
    });
  }
});
converse.initialize({
  websocket_url: ${JSON.stringify(wsUrl)},
  jid: ${JSON.stringify(jid)},
  password: ${JSON.stringify(password)},
  auto_login: true,
  discover_connection_methods: false,
  whitelisted_plugins: ["sgprobe"],
  view_mode: "fullscreen",
  persistent_store: "IndexedDB",
  loglevel: "warn",
});
</script></body></html>`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    return res.end(page_html);
  }
  const file = path.normalize(path.join(dist, url.pathname.replace(/^\/dist\//, "")));
  if (!file.startsWith(dist) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.writeHead(404);
    return res.end();
  }
  const types = { ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm" };
  res.writeHead(200, { "content-type": types[path.extname(file)] || "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;

browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in CI containers needs --no-sandbox; nothing but our loopback page is loaded.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
const page = await browser.newPage();
let replied;
const reply = new Promise((resolve) => { replied = resolve; });
page.on("console", (msg) => {
  const text = msg.text();
  if (!text.startsWith("SG ")) return;
  say(text.slice(3));
  if (text.startsWith("SG MESSAGE ")) replied();
});
page.on("pageerror", (err) => say("PAGEERROR", err.message));
await page.goto(`http://127.0.0.1:${port}/`);
await reply;
await page.evaluate(() => window.converse && true);
await browser.close();
server.close();
say("DONE");
process.exit(0);
