// "Your app": a page of the app's own that embeds the sign-in in a few lines.
import { disconnect, signIn, status } from "../offline-access.js";

const $ = (id) => document.getElementById(id);

function show(account, text) {
  const user = account?.user;
  $("status").textContent = text || (user
    ? `Connected as ${user.email}: ${account.account?.status || "active"}.` : "Not connected.");
  $("connect").hidden = Boolean(user);
  $("disconnect").hidden = !user;
}

$("connect").addEventListener("click", () => signIn().then(show, (error) => {
  if (error.kind !== "superseded") show(null, `Not connected (${error.kind}).`);
}));
$("disconnect").addEventListener("click", async () => {
  const { status: code } = await disconnect();
  show(null, code === 200 ? "Disconnected: the grant is revoked and your data deleted." : `Not connected (${code}).`);
});

status().then(({ account }) => show(account));
