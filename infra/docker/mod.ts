export { DockerClient, type DockerClientOptions, findDockerSocket, hostPortOf } from "./client.ts";
export { DockerError, DockerNotFound, isNotFound, isUnreachable } from "./errors.ts";
export { splitRef } from "./images.ts";
export type { CommitOptions, TransferOptions } from "./images.ts";
export { makeTar, readTar } from "./tar.ts";
export type { ReadTarEntry, TarEntry } from "./tar.ts";
export type * from "./types.ts";
