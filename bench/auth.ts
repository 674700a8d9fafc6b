// Auth throughput, in-process through the whole app over a real PostgreSQL database.
import { hash } from "@node-rs/argon2";
import { ARGON2ID } from "@/auth/passwords.ts";
import { createTestApp, type TestApp } from "@/tests/helpers/app.ts";
import { type BenchRow, timeEach } from "./stats.ts";
import { percentile } from "@/tests/helpers/stats.ts";

const EMAIL = "bench@example.com";
/** Logins timed (and bare hashes, alternated with them): over 100, for a p99. */
const LOGIN_SAMPLES = 150;
const PASSWORD = "correct horse battery staple";

/**
 * Logins per second and their latency against the floor that bounds them (one argon2id
 * hash, measured in the same run), and /auth/me per second (JWT verify + session check).
 */
export async function benchAuth(): Promise<{ rows: BenchRow[] }> {
  await using h = await createTestApp({
    RATE_LIMIT_LOGIN_PER_MINUTE: "1000000",
    RATE_LIMIT_LOGIN_FAILURES_PER_15_MINUTES: "1000000",
    RATE_LIMIT_REFRESH_PER_MINUTE: "1000000",
  });
  const reg = await h.request("/auth/register", {
    method: "POST",
    json: { email: EMAIL, password: PASSWORD },
  });
  if (reg.status !== 201) throw new Error(`register: ${reg.status}`);
  await reg.body?.cancel();

  await timeEach(3, () => bareHash());
  await timeEach(3, () => login(h));
  // The floor and the measure alternate, sample by sample (which goes first, in turn), so
  // a slow moment of the machine falls on both alike; enough samples for a real p99.
  const hashSamples: number[] = [], loginMs: number[] = [];
  for (let i = 0; i < LOGIN_SAMPLES; i++) {
    const pair = [
      async () => hashSamples.push(...await timeEach(1, () => bareHash())),
      async () => loginMs.push(...await timeEach(1, () => login(h))),
    ];
    for (const take of i % 2 ? pair.reverse() : pair) await take();
  }
  const hashMs = percentile(hashSamples, 50);
  const loginConcurrency = 4;
  const loginRate = await throughput(48, loginConcurrency, () => login(h));

  // An unknown email must cost what a wrong password costs (one argon2id verification),
  // or the time would tell which emails have accounts.
  const wrongMs: number[] = [], unknownMs: number[] = [];
  for (let i = 0; i < 20; i++) {
    wrongMs.push(...await timeEach(1, () => failedLogin(h, EMAIL)));
    unknownMs.push(...await timeEach(1, () => failedLogin(h, `nobody${i}@example.com`)));
  }

  const accessToken = await login(h);
  const me = () => getMe(h, accessToken);
  await timeEach(50, me);
  const meConcurrency = 16;
  const meMs: number[] = [];
  const meRate = await throughput(3000, meConcurrency, async () => {
    const started = performance.now();
    await me();
    meMs.push(performance.now() - started);
  });

  const loginP50 = percentile(loginMs, 50);
  return {
    rows: [
      {
        name: `argon2id hash, bare (m=19456 KiB, t=2, p=1), p50 of ${LOGIN_SAMPLES}`,
        value: round(hashMs),
        unit: "ms",
      },
      {
        name: `login latency p50 of ${LOGIN_SAMPLES}, alternated with the hash (vs one hash)`,
        value: round(loginP50),
        unit: "ms",
        floor: round(hashMs),
        ratio: round(loginP50 / hashMs),
      },
      {
        name: `login latency p99 of ${LOGIN_SAMPLES}`,
        value: round(percentile(loginMs, 99)),
        unit: "ms",
      },
      {
        name: "failed login p50, wrong password",
        value: round(percentile(wrongMs, 50)),
        unit: "ms",
      },
      {
        name: "failed login p50, unknown email (vs wrong password: 1x = no timing hint)",
        value: round(percentile(unknownMs, 50)),
        unit: "ms",
        floor: round(percentile(wrongMs, 50)),
        ratio: round(percentile(unknownMs, 50) / percentile(wrongMs, 50)),
      },
      {
        name: `logins per second (${loginConcurrency} concurrent)`,
        value: round(loginRate),
        unit: "logins/s",
      },
      {
        name: `/auth/me per second (${meConcurrency} concurrent)`,
        value: round(meRate),
        unit: "req/s",
      },
      { name: "/auth/me latency p50", value: round(percentile(meMs, 50)), unit: "ms" },
      { name: "/auth/me latency p99", value: round(percentile(meMs, 99)), unit: "ms" },
    ],
  };
}

const bareHash = () => hash(PASSWORD, ARGON2ID);

async function login(h: TestApp): Promise<string> {
  const res = await h.request("/auth/login", {
    method: "POST",
    json: { email: EMAIL, password: PASSWORD },
  });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${await res.text()}`);
  return (await res.json()).access_token;
}

async function failedLogin(h: TestApp, email: string): Promise<void> {
  const res = await h.request("/auth/login", {
    method: "POST",
    json: { email, password: "not the password" },
  });
  if (res.status !== 401) throw new Error(`failed login: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

async function getMe(h: TestApp, accessToken: string): Promise<void> {
  const res = await h.request("/auth/me", { headers: { authorization: `Bearer ${accessToken}` } });
  if (res.status !== 200) throw new Error(`/auth/me: ${res.status}`);
  await res.body?.cancel();
}

/** Operations per second with `concurrency` workers sharing `total` operations. */
async function throughput(
  total: number,
  concurrency: number,
  fn: () => Promise<unknown>,
): Promise<number> {
  let left = total;
  const worker = async () => {
    while (left-- > 0) await fn();
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return total / ((performance.now() - started) / 1000);
}

const round = (x: number) => Math.round(x * 100) / 100;

if (import.meta.main) console.table((await benchAuth()).rows);
