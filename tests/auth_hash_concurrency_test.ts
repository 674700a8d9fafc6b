// A burst of logins must not run every argon2id at once: each holds 19 MiB on its own
// thread, and 200 at once took the server from 120 MB to 700 MB (reliability/load_test.ts).
import assert from "node:assert/strict";
import { limitConcurrency } from "@/auth/passwords.ts";

Deno.test("limitConcurrency runs at most N at once, in arrival order, and survives failures", async () => {
  const limited = limitConcurrency(2);
  let active = 0, most = 0;
  const order: number[] = [];
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) =>
      limited(async () => {
        active++;
        most = Math.max(most, active);
        order.push(i);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        if (i === 3) throw new Error("boom");
        return i;
      })),
  );
  assert.equal(most, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(results.filter((r) => r.status === "rejected").length, 1);
  assert.equal(await limited(() => Promise.resolve("still works")), "still works");
});

Deno.test("100 verifications at once stay within a few hashes' memory", async () => {
  // In a process of its own: with --parallel, other test files share this one's RSS. The
  // peak is the kernel's own high-water mark (VmHWM, reset just before), not a sampler that a
  // busy machine could make miss the peak.
  const passwords = new URL("../auth/passwords.ts", import.meta.url).href;
  const script = `
    import { ARGON2ID, createPasswordHasher } from "${passwords}";
    const status = () => Deno.readTextFileSync("/proc/self/status");
    const rss = () => Number(/VmRSS:\\s+(\\d+) kB/.exec(status())[1]) / 1024;
    const peak = () => Number(/VmHWM:\\s+(\\d+) kB/.exec(status())[1]) / 1024;
    const hasher = await createPasswordHasher(undefined, 2);
    const hashed = await hasher.hash("correct horse battery");
    const before = rss();
    Deno.writeTextFileSync("/proc/self/clear_refs", "5"); // VmHWM := VmRSS
    const ok = await Promise.all(
      Array.from({ length: 100 }, () => hasher.verify(hashed, "correct horse battery")),
    );
    const growth = peak() - before;
    console.log(JSON.stringify({ ok: ok.every(Boolean), growth, perHash: ARGON2ID.memoryCost / 1024 }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", new URL("../deno.json", import.meta.url).pathname, script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const { ok, growth, perHash } = JSON.parse(text.trim().split("\n").at(-1)!);
  assert.ok(ok);
  // Two at once hold about 2 x 19 MiB at the peak; unbounded, the peak grew by about 19 MiB
  // per thread the library started (500+ MB here). At most 4 hashes' worth, overhead included.
  assert.ok(growth < 4 * perHash, `the peak RSS grew ${growth.toFixed(0)} MB`);
  console.log(`peak RSS growth: ${growth.toFixed(0)} MB (${(growth / perHash).toFixed(1)} hashes)`);
});
