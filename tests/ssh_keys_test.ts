import assert from "node:assert/strict";
import { generateSshKeyPair, normalizePublicKey } from "@/projects/ssh-keys.ts";

Deno.test("generated key pair is read by ssh-keygen and the halves match", async () => {
  const pair = await generateSshKeyPair("pomodex-test");
  assert.match(
    pair.publicKey,
    /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* pomodex-test$/,
  );
  await using cleanup = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir();
  cleanup.defer(() => Deno.remove(dir, { recursive: true }));
  await Deno.writeTextFile(`${dir}/id`, pair.privateKey, { mode: 0o600 });
  const out = await new Deno.Command("ssh-keygen", { args: ["-y", "-f", `${dir}/id`] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const derived = new TextDecoder().decode(out.stdout).trim();
  assert.equal(
    derived.split(" ").slice(0, 2).join(" "),
    pair.publicKey.split(" ").slice(0, 2).join(" "),
  );
});

Deno.test("a user's public key must be exactly one key line", async () => {
  const { publicKey } = await generateSshKeyPair("me@laptop");
  assert.equal(normalizePublicKey(`  ${publicKey}\n`), publicKey);
  const [type, data] = publicKey.split(" ");
  for (
    const bad of [
      `command="rm -rf /" ${publicKey}`,
      `${publicKey}\nssh-ed25519 ${data} other`,
      `ssh-rsa ${data}`,
      `ssh-ed25519 not*base64`,
      "",
      "ssh-dss AAAA",
    ]
  ) {
    assert.throws(() => normalizePublicKey(bad), /not valid/, bad);
  }
  assert.equal(normalizePublicKey(`${type} ${data}`), `${type} ${data}`);
});
