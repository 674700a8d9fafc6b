/** Workspace backup stores (local directory or GCS) behind one interface. */
export * from "./types.ts";
export { LocalBackupStore } from "./local.ts";
export { createGcsStorage, GcsBackupStore, type GcsStorageOptions } from "./gcs.ts";
