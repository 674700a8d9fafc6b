// The subset of the Engine API's shapes that Pomodex reads or writes. Field names are the
// engine's own (PascalCase) so these can be compared with the API reference line by line.

export interface VersionInfo {
  Version: string;
  ApiVersion: string;
  MinAPIVersion?: string;
  Os?: string;
  Arch?: string;
  Components?: { Name: string; Version: string }[];
}

/** Credentials for push/pull; `serveraddress` is the registry host ("localhost:5000"). */
export interface RegistryAuth {
  username?: string;
  password?: string;
  serveraddress?: string;
  identitytoken?: string;
}

export interface ImageInfo {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Created: string;
  Size: number;
  Config?: {
    Env?: string[] | null;
    Cmd?: string[] | null;
    Entrypoint?: string[] | null;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, unknown> | null;
    User?: string;
    WorkingDir?: string;
  };
}

export interface ImageSummary {
  Id: string;
  RepoTags: string[] | null;
  Size: number;
  Created: number;
}

/** One line of a pull/push progress stream. */
export interface ProgressEvent {
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: Record<string, unknown>;
}

export interface VolumeInfo {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Labels: Record<string, string> | null;
  CreatedAt?: string;
  Scope?: string;
}

export interface PortBinding {
  HostIp?: string;
  /** Empty or absent asks the engine for an ephemeral port. */
  HostPort?: string;
}

export type PortMap = Record<string, PortBinding[] | null>;

export interface RestartPolicy {
  Name: "" | "no" | "always" | "unless-stopped" | "on-failure";
  MaximumRetryCount?: number;
}

export interface HostConfig {
  /** "volume-name:/path[:ro]" or "/host/path:/path[:options]" */
  Binds?: string[];
  PortBindings?: PortMap;
  /** Bytes. */
  Memory?: number;
  /** CPUs x 1e9. */
  NanoCpus?: number;
  PidsLimit?: number;
  RestartPolicy?: RestartPolicy;
  SecurityOpt?: string[];
  CapDrop?: string[];
  CapAdd?: string[];
  ReadonlyRootfs?: boolean;
  Tmpfs?: Record<string, string>;
  NetworkMode?: string;
  /** "private": an IPC namespace of its own, /dev/shm inside it. */
  IpcMode?: string;
  /** Namespaced kernel settings, e.g. net.ipv6.conf.all.disable_ipv6. */
  Sysctls?: Record<string, string>;
  /** Driver-specific, e.g. { size: "10G" } where the storage driver can bound a layer. */
  StorageOpt?: Record<string, string>;
}

export interface NetworkSpec {
  Name: string;
  Driver?: string;
  Internal?: boolean;
  IPAM?: { Config: { Subnet: string; Gateway?: string }[] };
  /** e.g. com.docker.network.bridge.name, which Podman honours as well. */
  Options?: Record<string, string>;
  Labels?: Record<string, string>;
}

export interface NetworkInfo {
  Name: string;
  Id: string;
  Driver: string;
  IPAM?: { Config: { Subnet?: string; Gateway?: string }[] | null };
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  Containers?: Record<string, { IPv4Address?: string }> | null;
}

/** The parts of GET /info that Pomodex reads. */
export interface EngineInfo {
  Driver?: string;
  SecurityOptions?: string[] | null;
  MemTotal?: number;
}

export interface ContainerSpec {
  Image: string;
  /** A record here; the engine wants "K=V" strings, converted on the way out. */
  Env?: Record<string, string>;
  Labels?: Record<string, string>;
  Cmd?: string[];
  Entrypoint?: string[];
  /** `{ "22/tcp": {} }` */
  ExposedPorts?: Record<string, Record<string, never>>;
  User?: string;
  WorkingDir?: string;
  Hostname?: string;
  HostConfig?: HostConfig;
}

export interface ContainerState {
  Status: string;
  Running: boolean;
  Paused?: boolean;
  Restarting?: boolean;
  OOMKilled?: boolean;
  Dead?: boolean;
  Pid?: number;
  ExitCode: number;
  Error?: string;
  StartedAt?: string;
  FinishedAt?: string;
}

export interface ContainerInfo {
  Id: string;
  Name: string;
  Created: string;
  /** The image ID the container was made from. */
  Image: string;
  State: ContainerState;
  Config: {
    Image: string;
    Labels: Record<string, string> | null;
    Env: string[] | null;
    Cmd?: string[] | null;
    Entrypoint?: string[] | string | null;
  };
  NetworkSettings: {
    Ports: PortMap | null;
    IPAddress?: string;
    Networks?: Record<string, { IPAddress?: string }> | null;
  };
  /** Bytes in the container's own writable layer; only with ?size=true. */
  SizeRw?: number;
  HostConfig?: HostConfig;
  Mounts?: { Type: string; Name?: string; Source: string; Destination: string; RW: boolean }[];
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Status: string;
  Labels: Record<string, string> | null;
  Created: number;
}

export interface ExecInfo {
  ID: string;
  Running: boolean;
  ExitCode: number | null;
  /** A host PID, not one inside the container: useless for signalling from inside it. */
  Pid: number;
  ContainerID: string;
}

export interface ExecOptions {
  user?: string;
  env?: Record<string, string>;
  workingDir?: string;
  /** The whole exec, start to exit; on expiry the process is killed. Default: client's. */
  timeoutMs?: number;
  /** Fed to the process's stdin, then stdin is closed. */
  stdin?: Uint8Array;
}

export interface ExecResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

export interface TtyOptions {
  user?: string;
  env?: Record<string, string>;
  workingDir?: string;
  cols: number;
  rows: number;
}

export interface TtySession {
  execId: string;
  /** What the terminal prints. Ends when the process exits or the session is closed. */
  readable: ReadableStream<Uint8Array>;
  /** Keystrokes. Throws DockerError once the session is closed. */
  write(bytes: Uint8Array): Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
  /** Hangs up: closes the connection and makes sure the process tree is gone. Idempotent. */
  close(): Promise<void>;
  /** The exit code once the process has ended (after the readable ends), null if unknown. */
  exited: Promise<number | null>;
}
