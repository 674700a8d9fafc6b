import type { Logger } from "@/core/log.ts";
import { followChannel } from "@/infra/db/notifications.ts";

/** The channel the database's triggers (migrations/010_auth_changes.sql) notify on. */
export const AUTH_CHANGES_CHANNEL = "pomodex_auth";
/** However quiet the feed, an entry is read from the database again after this. */
const MAX_AGE_MS = 60_000;
const MAX_ENTRIES = 10_000;

interface Entry<T> {
  userId: string;
  value: T;
  validUntil: number;
}

/**
 * An in-process cache of the credentials found alive (login sessions, M2M clients), so that
 * an authenticated request needs no query. It is used only while the change feed listens:
 * every UPDATE or DELETE of a session, user or client row notifies at its commit (a
 * trigger, so no code path can forget), and the entry goes on every instance at once. When
 * the feed is not listening, nothing is read from the cache and it is emptied.
 */
export class LiveCredentials<T = unknown> {
  #entries = new Map<string, Entry<T>>();
  #listening = false;
  /** Bumped by every change: a lookup that raced a change must not be cached. */
  #generation = 0;
  /** Lookups answered here (the tests read it). */
  hits = 0;

  get listening(): boolean {
    return this.#listening;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Where a lookup starts: pass it to put() after reading the database. */
  get generation(): number {
    return this.#generation;
  }

  get(key: string, userId: string, now: number): T | undefined {
    if (!this.#listening) return undefined;
    const entry = this.#entries.get(key);
    if (!entry || entry.userId !== userId || entry.validUntil <= now) return undefined;
    this.hits++;
    return entry.value;
  }

  /** Caches what the database said at `generation`, unless something changed since. */
  put(key: string, userId: string, value: T, validUntil: number, generation: number, now: number) {
    if (!this.#listening || generation !== this.#generation) return;
    if (this.#entries.size >= MAX_ENTRIES) {
      this.#entries.delete(this.#entries.keys().next().value!); // the oldest
    }
    this.#entries.set(key, { userId, value, validUntil: Math.min(validUntil, now + MAX_AGE_MS) });
  }

  /** A notification: "session:<id>" and "client:<id>" drop one entry, "user:<id>" all theirs. */
  changed(payload: string) {
    this.#generation++;
    if (!payload.startsWith("user:")) return void this.#entries.delete(payload);
    const userId = payload.slice("user:".length);
    for (const [key, entry] of this.#entries) {
      if (entry.userId === userId) this.#entries.delete(key);
    }
  }

  setListening(listening: boolean) {
    this.#generation++;
    this.#entries.clear();
    this.#listening = listening;
  }
}

/** Keeps `live` in step with the database's changes; close() when shutting down. */
export function followCredentialChanges(url: string, live: LiveCredentials, log: Logger) {
  return followChannel(url, AUTH_CHANGES_CHANNEL, {
    onNotify: (payload) => live.changed(payload),
    onListening: (listening) => live.setListening(listening),
  }, log);
}
