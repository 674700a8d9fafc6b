/** Google Cloud for per-project identities: credentials, IAM, Artifact Registry. */
export * from "./errors.ts";
export * from "./credentials.ts";
export * from "./rest.ts";
export * from "./iam.ts";
export * from "./artifact-registry.ts";
