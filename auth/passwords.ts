import { hash, type Options, parseOptions, verify } from "@node-rs/argon2";

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

/** OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane). */
export const ARGON2ID: Options = {
  algorithm: 2, // Argon2id (a const enum in the typings, so spelled as its value)
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
};

/**
 * Passwords are compared as NFKC (NIST SP 800-63B), so the same password typed on two
 * keyboards that compose "é" differently still matches.
 */
export const normalizePassword = (password: string) => password.normalize("NFKC");

/** Length in characters (code points), as users count them, after normalization. */
export function passwordLengthProblem(password: string): string | null {
  const length = [...normalizePassword(password)].length;
  if (length < PASSWORD_MIN_LENGTH) return `must be at least ${PASSWORD_MIN_LENGTH} characters`;
  if (length > PASSWORD_MAX_LENGTH) return `must be at most ${PASSWORD_MAX_LENGTH} characters`;
  return null;
}

export interface PasswordHasher {
  /** argon2id on the library's worker threads, never on the event loop. */
  hash(password: string): Promise<string>;
  verify(passwordHash: string, password: string): Promise<boolean>;
  /**
   * Same work as verify() against a hash nobody can match: an unknown email costs
   * what a wrong password costs, so timing does not tell them apart.
   */
  verifyDummy(password: string): Promise<false>;
  /** What verifyDummy() checks against: made at start with today's parameters. */
  readonly dummyHash: string;
  /** True when the hash was made with weaker parameters than today's. */
  needsRehash(passwordHash: string): boolean;
}

/**
 * Each argon2 run holds memoryCost (19 MiB) on its own thread, and the library starts as many
 * as it is given: 200 logins at once took the server from 120 MB to 700 MB (reliability/
 * load_test.ts). The CPU does them no faster in parallel, so at most this many run at once.
 */
export const MAX_CONCURRENT_HASHES = Math.max(2, navigator.hardwareConcurrency ?? 2);

export function limitConcurrency(max: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(work: () => Promise<T>): Promise<T> => {
    if (active < max) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = waiting.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else active--;
    }
  };
}

export async function createPasswordHasher(
  options: Options = ARGON2ID,
  maxConcurrent = MAX_CONCURRENT_HASHES,
): Promise<PasswordHasher> {
  const limited = limitConcurrency(maxConcurrent);
  const hashPassword = (password: string) =>
    limited(() => hash(normalizePassword(password), options));
  const dummyHash = await hashPassword(crypto.randomUUID());
  const check = async (passwordHash: string, password: string) => {
    try {
      return await limited(() => verify(passwordHash, normalizePassword(password)));
    } catch {
      return false; // a malformed stored hash never lets anyone in
    }
  };
  return {
    hash: hashPassword,
    verify: check,
    dummyHash,
    async verifyDummy(password) {
      await check(dummyHash, password);
      return false;
    },
    needsRehash(passwordHash) {
      try {
        const used = parseOptions(passwordHash);
        return used.algorithm !== options.algorithm ||
          used.memoryCost < (options.memoryCost ?? 0) ||
          used.timeCost < (options.timeCost ?? 0);
      } catch {
        return true;
      }
    },
  };
}
