// @xmpp/client over WebSocket, for stanzagate's end-to-end tests. The library uses the
// global WebSocket, which Node before 22 lacks without a flag: the `ws` package then
// stands in.
//
//   node xmpp_client.mjs URL USER PASSWORD NS PEER
//
// Logs in (`ONLINE jid`), sends a delegated IQ in NS to the domain (`IQ type`), sends
// PEER a chat message (`SENT`), waits for a chat message back (`MESSAGE from body`),
// prints whether Stream Management is on (`SM enabled|disabled`), then closes the
// stream (`STOPPED`). Exits 1 on any error
// and after 60 s whatever happens.
if (typeof globalThis.WebSocket === "undefined") {
  globalThis.WebSocket = (await import("ws")).WebSocket;
}
const { client, xml } = await import("@xmpp/client");

const [url, username, password, ns, peer] = process.argv.slice(2);
const domain = "localhost";
const say = (...parts) => console.log(parts.join(" "));
setTimeout(() => { say("TIMEOUT"); process.exit(1); }, 60_000).unref();

const xmpp = client({ service: url, domain, username, password, resource: "xmppjs" });
xmpp.on("error", (err) => { say("ERROR", err.condition || err.message); process.exit(1); });

let replied;
const reply = new Promise((resolve) => { replied = resolve; });
xmpp.on("stanza", (stanza) => {
  if (stanza.is("message") && stanza.attrs.type === "chat" && stanza.getChildText("body")) {
    say("MESSAGE", stanza.attrs.from, stanza.getChildText("body"));
    replied();
  }
});

xmpp.on("online", async (address) => {
  try {
    say("ONLINE", address.toString());
    const result = await xmpp.iqCaller.request(
      xml("iq", { type: "get", to: domain }, xml("query", { xmlns: ns })), 20_000);
    say("IQ", result.attrs.type);
    await xmpp.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, "hello from xmpp.js")));
    say("SENT");
    await reply;
    // Enabled after binding, once <enabled/> came back (asked for at "online").
    say("SM", xmpp.streamManagement.enabled ? "enabled" : "disabled");
    await xmpp.stop();
    say("STOPPED");
    process.exit(0);
  } catch (err) {
    say("ERROR", err.condition || err.message);
    process.exit(1);
  }
});

xmpp.start().catch((err) => { say("ERROR", err.condition || err.message); process.exit(1); });
