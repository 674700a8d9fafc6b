import { z } from "zod";

/** The largest project quota an administrator may give (and DEFAULT_PROJECT_QUOTA may be). */
export const MAX_PROJECT_QUOTA = 1000;

/** A bad setting stops the start with one line that names the variable. */
export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`);
  }
}

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().min(1);
const flag = z.enum(["true", "false", "1", "0", "yes", "no"]).transform((v) =>
  ["true", "1", "yes"].includes(v)
);
const list = z.string().transform((v) => v.split(",").map((s) => s.trim()).filter(Boolean));
const optional = z.string().trim().min(1).optional().catch(undefined);

/**
 * Every environment variable Pomodex reads, with its default. `.env.example`
 * documents the same list; tests/config_test.ts keeps the two in step.
 */
const schema = z.object({
  HOST: z.string().default("0.0.0.0"),
  PORT: port.default(8000),
  PUBLIC_URL: z.url().default("http://localhost:8000"),
  DATA_DIR: z.string().default("./data"),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, "must start with postgres://").optional(),
  DATABASE_POOL_SIZE: positiveInt.max(100).default(10),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  MASTER_KEY: z.string().regex(/^[A-Za-z0-9+/_-]{43}=?$/, "must be 32 bytes, base64").optional(),
  JWT_PRIVATE_KEY: optional,
  JWT_PRIVATE_KEY_PATH: optional,
  JWT_ISSUER: z.string().default("pomodex"),
  JWT_AUDIENCE: z.string().default("pomodex-api"),
  ACCESS_TOKEN_TTL_SECONDS: positiveInt.max(3600).default(900),
  REFRESH_TOKEN_TTL_DAYS: positiveInt.max(365).default(30),
  REFRESH_TOKEN_REUSE_GRACE_SECONDS: z.coerce.number().int().min(0).max(60).default(10),
  INITIAL_ADMIN_EMAIL: optional,
  INITIAL_ADMIN_PASSWORD: optional,
  REGISTRATION: z.enum(["open", "invite", "closed"]).default("open"),
  METRICS_TOKEN: optional,
  CORS_ORIGINS: list.default([]),
  TRUSTED_PROXIES: list.default([]),
  BODY_LIMIT_BYTES: positiveInt.default(64 * 1024),
  RATE_LIMIT_LOGIN_PER_MINUTE: positiveInt.default(30),
  RATE_LIMIT_LOGIN_FAILURES_PER_15_MINUTES: positiveInt.default(10),
  RATE_LIMIT_REGISTER_PER_MINUTE: positiveInt.default(10),
  RATE_LIMIT_REFRESH_PER_MINUTE: positiveInt.default(60),
  RATE_LIMIT_REGISTER_PER_EMAIL_PER_HOUR: positiveInt.default(5),
  RATE_LIMIT_REFRESH_PER_ACCOUNT_PER_MINUTE: positiveInt.default(120),
  RATE_LIMIT_CLIENT_TOKEN_PER_MINUTE: positiveInt.default(60),
  RATE_LIMIT_TERMINAL_TICKETS_PER_MINUTE: positiveInt.default(30),
  DOCKER_HOST: optional,
  SANDBOX_IMAGE: z.string().default("localhost/pomodex-sandbox:latest"),
  HOST_IP: z.union([z.ipv4(), z.ipv6()], { error: "must be an IP address" }).default("127.0.0.1"),
  SSH_HOST: optional,
  DEFAULT_PROJECT_QUOTA: z.coerce.number().int().min(0).max(MAX_PROJECT_QUOTA).default(5),
  SANDBOX_MEMORY_MB: positiveInt.default(1024),
  SANDBOX_CPUS: z.coerce.number().positive().max(64).default(1),
  SANDBOX_PIDS: positiveInt.default(256),
  SANDBOX_SUBNET_POOL: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "must be an IPv4 CIDR")
    .default("10.213.0.0/16"),
  SANDBOX_ALLOWED_RANGES: list.default([]),
  SANDBOX_FIREWALL: z.enum(["nftables", "off"]).default("nftables"),
  SANDBOX_USERNS: z.enum(["required", "off"]).default("required"),
  WORKSPACE_DIR: optional,
  WORKSPACE_DISK_GB: positiveInt.max(16384).default(10),
  SANDBOX_ROOTFS_GB: positiveInt.max(16384).default(10),
  MAX_RUNNING_SANDBOXES: positiveInt.max(100_000).optional(),
  EGRESS_PROXY: z.enum(["squid", "off"]).default("squid"),
  EGRESS_PROXY_PORT: port.default(3128),
  EGRESS_HOSTS_FILE: optional,
  EGRESS_DEFAULT_POLICY: z.enum(["open", "allowlist", "none"]).default("open"),
  EGRESS_ALLOW_OPEN: flag.default(true),
  TERMINAL_PROXY: flag.default(true),
  TERMINAL_PROXY_PORT: port.default(9000),
  TERMINAL_PUBLIC_URL: optional,
  API_INTERNAL_URL: optional,
  TERMINAL_MAX_CONNECTIONS_PER_USER: positiveInt.max(1000).default(10),
  TERMINAL_MAX_CONNECTIONS_PER_PROJECT: positiveInt.max(1000).default(5),
  TERMINAL_MAX_FRAME_BYTES: positiveInt.min(1024).max(16 * 1024 * 1024).default(64 * 1024),
  TERMINAL_IDLE_TIMEOUT_SECONDS: positiveInt.max(7 * 24 * 3600).default(900),
  TERMINAL_PING_INTERVAL_SECONDS: positiveInt.max(3600).default(30),
  TERMINAL_RECONNECT_GRACE_SECONDS: z.coerce.number().int().min(0).max(3600).default(30),
  TERMINAL_REPLAY_BUFFER_BYTES: z.coerce.number().int().min(0).max(16 * 1024 * 1024)
    .default(64 * 1024),
  REGISTRY: optional,
  REGISTRY_USERNAME: optional,
  REGISTRY_PASSWORD: optional,
  GCP_PROJECT: optional,
  GCS_BUCKET: optional,
  GOOGLE_APPLICATION_CREDENTIALS: optional,
  GCP_IAM_ENDPOINT: z.url().optional(),
  GCS_ENDPOINT: z.url().optional(),
  ARTIFACT_REGISTRY_HOST: optional,
  ARTIFACT_REGISTRY_LOCATION: z.string().default("us-central1"),
  ARTIFACT_REGISTRY_REPOSITORY: z.string().default("pomodex-snapshots"),
  IDLE_THRESHOLD_MINUTES: positiveInt.max(24 * 60).default(30),
  CHECK_INTERVAL_SECONDS: positiveInt.max(3600).default(60),
  BACKUP_INTERVAL_MINUTES: positiveInt.default(60),
  BACKUP_KEEP: positiveInt.max(100).default(5),
  CRON: flag.default(true),
});

type Env = z.infer<typeof schema>;

export interface Config {
  host: string;
  port: number;
  publicUrl: string;
  dataDir: string;
  databaseUrl?: string;
  databasePoolSize: number;
  logLevel: Env["LOG_LEVEL"];
  masterKey?: string;
  jwt: {
    privateKey?: string;
    privateKeyPath?: string;
    issuer: string;
    audience: string;
    accessTtlSeconds: number;
    refreshTtlDays: number;
    /** Concurrent refreshes of one token inside this window share one successor. */
    refreshReuseGraceSeconds: number;
  };
  initialAdmin?: { email: string; password: string };
  /** Who may sign up: anyone, holders of an admin's invite code, or nobody. */
  registration: "open" | "invite" | "closed";
  corsOrigins: string[];
  trustedProxies: string[];
  /** Set: GET /metrics needs `Authorization: Bearer <token>`; unset: it is public. */
  metricsToken?: string;
  bodyLimitBytes: number;
  rateLimits: {
    loginPerMinute: number;
    loginFailuresPer15Minutes: number;
    registerPerMinute: number;
    refreshPerMinute: number;
    registerPerEmailPerHour: number;
    refreshPerAccountPerMinute: number;
    clientTokenPerMinute: number;
    terminalTicketsPerMinute: number;
  };
  engine: {
    dockerHost?: string;
    sandboxImage: string;
    hostIp: string;
    sshHost: string;
    memoryMb: number;
    cpus: number;
    pids: number;
  };
  /** What keeps tenants apart on one host (docs/ISOLATION.md). */
  isolation: {
    /** Each project's network is one /28 of this pool. */
    subnetPool: string;
    /** Private ranges sandboxes may still reach (an internal mirror, say). */
    allowedRanges: string[];
    firewall: "nftables" | "off";
    userns: "required" | "off";
    workspaceDir: string;
    workspaceDiskGb: number;
    rootfsGb: number;
    maxRunningSandboxes: number;
  };
  egress: {
    proxy: "squid" | "off";
    proxyPort: number;
    hostsFile?: string;
    defaultPolicy: "open" | "allowlist" | "none";
    allowOpen: boolean;
  };
  defaultProjectQuota: number;
  terminal: {
    enabled: boolean;
    port: number;
    publicUrl: string;
    apiInternalUrl: string;
    maxConnectionsPerUser: number;
    maxConnectionsPerProject: number;
    maxFrameBytes: number;
    /** No byte either way for this long closes the connection (4408). */
    idleTimeoutSeconds: number;
    /** A connection silent this long is pinged; no pong in as long again closes it. */
    pingIntervalSeconds: number;
    /** How long a shell opened with a reconnect id waits for its socket to come back; 0: never. */
    reconnectGraceSeconds: number;
    /** Output kept per shell and replayed to a reconnecting socket. */
    replayBufferBytes: number;
  };
  registry?: { address: string; username?: string; password?: string };
  gcp?: {
    project: string;
    bucket?: string;
    credentialsPath?: string;
    iamEndpoint?: string;
    storageEndpoint?: string;
    artifactRegistryHost?: string;
    artifactRegistryLocation: string;
    artifactRegistryRepository: string;
  };
  idleThresholdMinutes: number;
  checkIntervalSeconds: number;
  backupIntervalMinutes: number;
  backupKeep: number;
  cron: boolean;
}

/**
 * Reads and validates the environment once, at start. The machine's memory sets the default
 * for MAX_RUNNING_SANDBOXES.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  machine: { memoryBytes: number } = { memoryBytes: Deno.systemMemoryInfo().total },
): Config {
  const defined = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ""),
  );
  const parsed = schema.safeParse(defined);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue.path[0]), describe(issue));
  }
  const e = parsed.data;
  if ((e.INITIAL_ADMIN_EMAIL === undefined) !== (e.INITIAL_ADMIN_PASSWORD === undefined)) {
    throw new ConfigError("INITIAL_ADMIN_PASSWORD", "and INITIAL_ADMIN_EMAIL must be set together");
  }
  if (e.INITIAL_ADMIN_PASSWORD !== undefined && e.INITIAL_ADMIN_PASSWORD.length < 8) {
    throw new ConfigError("INITIAL_ADMIN_PASSWORD", "must be at least 8 characters");
  }
  if ((e.REGISTRY_USERNAME === undefined) !== (e.REGISTRY_PASSWORD === undefined)) {
    throw new ConfigError("REGISTRY_PASSWORD", "and REGISTRY_USERNAME must be set together");
  }
  if (e.GCS_BUCKET !== undefined && e.GCP_PROJECT === undefined) {
    throw new ConfigError("GCP_PROJECT", "is required when GCS_BUCKET is set");
  }
  if (e.GCP_PROJECT !== undefined && e.GOOGLE_APPLICATION_CREDENTIALS === undefined) {
    throw new ConfigError("GOOGLE_APPLICATION_CREDENTIALS", "is required when GCP_PROJECT is set");
  }
  for (const range of e.SANDBOX_ALLOWED_RANGES) {
    if (!isCidr(range)) {
      throw new ConfigError("SANDBOX_ALLOWED_RANGES", `has a bad range: ${range}`);
    }
  }
  const poolPrefix = Number(e.SANDBOX_SUBNET_POOL.split("/")[1]);
  if (poolPrefix < 8 || poolPrefix > 28) {
    throw new ConfigError("SANDBOX_SUBNET_POOL", "must be a prefix from /8 to /28");
  }
  const publicHost = new URL(e.PUBLIC_URL).hostname;
  return {
    host: e.HOST,
    port: e.PORT,
    publicUrl: e.PUBLIC_URL.replace(/\/$/, ""),
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    logLevel: e.LOG_LEVEL,
    masterKey: e.MASTER_KEY,
    jwt: {
      privateKey: e.JWT_PRIVATE_KEY,
      privateKeyPath: e.JWT_PRIVATE_KEY_PATH,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      accessTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
      refreshTtlDays: e.REFRESH_TOKEN_TTL_DAYS,
      refreshReuseGraceSeconds: e.REFRESH_TOKEN_REUSE_GRACE_SECONDS,
    },
    initialAdmin: e.INITIAL_ADMIN_EMAIL && e.INITIAL_ADMIN_PASSWORD
      ? { email: e.INITIAL_ADMIN_EMAIL, password: e.INITIAL_ADMIN_PASSWORD }
      : undefined,
    registration: e.REGISTRATION,
    corsOrigins: e.CORS_ORIGINS,
    trustedProxies: e.TRUSTED_PROXIES,
    metricsToken: e.METRICS_TOKEN,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    rateLimits: {
      loginPerMinute: e.RATE_LIMIT_LOGIN_PER_MINUTE,
      loginFailuresPer15Minutes: e.RATE_LIMIT_LOGIN_FAILURES_PER_15_MINUTES,
      registerPerMinute: e.RATE_LIMIT_REGISTER_PER_MINUTE,
      refreshPerMinute: e.RATE_LIMIT_REFRESH_PER_MINUTE,
      registerPerEmailPerHour: e.RATE_LIMIT_REGISTER_PER_EMAIL_PER_HOUR,
      refreshPerAccountPerMinute: e.RATE_LIMIT_REFRESH_PER_ACCOUNT_PER_MINUTE,
      clientTokenPerMinute: e.RATE_LIMIT_CLIENT_TOKEN_PER_MINUTE,
      terminalTicketsPerMinute: e.RATE_LIMIT_TERMINAL_TICKETS_PER_MINUTE,
    },
    engine: {
      dockerHost: e.DOCKER_HOST,
      sandboxImage: e.SANDBOX_IMAGE,
      hostIp: e.HOST_IP,
      sshHost: e.SSH_HOST ?? e.HOST_IP,
      memoryMb: e.SANDBOX_MEMORY_MB,
      cpus: e.SANDBOX_CPUS,
      pids: e.SANDBOX_PIDS,
    },
    isolation: {
      subnetPool: e.SANDBOX_SUBNET_POOL,
      allowedRanges: e.SANDBOX_ALLOWED_RANGES,
      firewall: e.SANDBOX_FIREWALL,
      userns: e.SANDBOX_USERNS,
      workspaceDir: e.WORKSPACE_DIR ?? `${e.DATA_DIR.replace(/\/$/, "")}/workspaces`,
      workspaceDiskGb: e.WORKSPACE_DISK_GB,
      rootfsGb: e.SANDBOX_ROOTFS_GB,
      maxRunningSandboxes: e.MAX_RUNNING_SANDBOXES ??
        defaultMaxRunning(machine.memoryBytes, e.SANDBOX_MEMORY_MB),
    },
    egress: {
      proxy: e.EGRESS_PROXY,
      proxyPort: e.EGRESS_PROXY_PORT,
      hostsFile: e.EGRESS_HOSTS_FILE,
      defaultPolicy: e.EGRESS_DEFAULT_POLICY,
      allowOpen: e.EGRESS_ALLOW_OPEN,
    },
    defaultProjectQuota: e.DEFAULT_PROJECT_QUOTA,
    terminal: {
      enabled: e.TERMINAL_PROXY,
      port: e.TERMINAL_PROXY_PORT,
      publicUrl: (e.TERMINAL_PUBLIC_URL ?? `ws://${publicHost}:${e.TERMINAL_PROXY_PORT}`)
        .replace(/\/$/, ""),
      apiInternalUrl: (e.API_INTERNAL_URL ?? `http://127.0.0.1:${e.PORT}`).replace(/\/$/, ""),
      maxConnectionsPerUser: e.TERMINAL_MAX_CONNECTIONS_PER_USER,
      maxConnectionsPerProject: e.TERMINAL_MAX_CONNECTIONS_PER_PROJECT,
      maxFrameBytes: e.TERMINAL_MAX_FRAME_BYTES,
      idleTimeoutSeconds: e.TERMINAL_IDLE_TIMEOUT_SECONDS,
      pingIntervalSeconds: e.TERMINAL_PING_INTERVAL_SECONDS,
      reconnectGraceSeconds: e.TERMINAL_RECONNECT_GRACE_SECONDS,
      replayBufferBytes: e.TERMINAL_REPLAY_BUFFER_BYTES,
    },
    registry: e.REGISTRY
      ? { address: e.REGISTRY, username: e.REGISTRY_USERNAME, password: e.REGISTRY_PASSWORD }
      : undefined,
    gcp: e.GCP_PROJECT
      ? {
        project: e.GCP_PROJECT,
        bucket: e.GCS_BUCKET,
        credentialsPath: e.GOOGLE_APPLICATION_CREDENTIALS,
        iamEndpoint: e.GCP_IAM_ENDPOINT,
        storageEndpoint: e.GCS_ENDPOINT,
        artifactRegistryHost: e.ARTIFACT_REGISTRY_HOST,
        artifactRegistryLocation: e.ARTIFACT_REGISTRY_LOCATION,
        artifactRegistryRepository: e.ARTIFACT_REGISTRY_REPOSITORY,
      }
      : undefined,
    idleThresholdMinutes: e.IDLE_THRESHOLD_MINUTES,
    checkIntervalSeconds: e.CHECK_INTERVAL_SECONDS,
    backupIntervalMinutes: e.BACKUP_INTERVAL_MINUTES,
    backupKeep: e.BACKUP_KEEP,
    cron: e.CRON,
  };
}

/**
 * Sandboxes rarely use their whole memory limit (an idle one holds about 10 MB), so the host
 * may promise four times its memory before it says "full".
 */
export function defaultMaxRunning(memoryBytes: number, sandboxMemoryMb: number): number {
  return Math.max(1, Math.floor((4 * memoryBytes) / (sandboxMemoryMb * 1024 * 1024)));
}

function isCidr(range: string): boolean {
  const [address, prefix, ...rest] = range.split("/");
  if (rest.length > 0 || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  const v4 = z.ipv4().safeParse(address).success, v6 = z.ipv6().safeParse(address).success;
  return (v4 && Number(prefix) <= 32) || (v6 && Number(prefix) <= 128);
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_value") return `must be one of: ${issue.values.join(", ")}`;
  if (issue.code === "too_small") return `must be at least ${issue.minimum}`;
  if (issue.code === "too_big") return `must be at most ${issue.maximum}`;
  if (issue.code === "invalid_type") return `must be a ${issue.expected}`;
  return issue.message.startsWith("must") ? issue.message : `is invalid (${issue.message})`;
}

/** The variable names, for the .env.example consistency test. */
export const configVariables: string[] = Object.keys(schema.shape);

/**
 * For the entry points (main.ts, terminal.ts): the config, or one line naming the bad
 * variable on stderr and exit code 2, never a stack trace.
 */
export function loadConfigOrExit(env: Record<string, string | undefined>): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    Deno.exit(2);
  }
}
