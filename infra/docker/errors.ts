/**
 * One error type for everything the engine (or the road to it) can do wrong, so callers
 * can branch on `status` instead of parsing messages. `status` is the HTTP status the
 * engine answered, or 0 when no answer came (socket missing, refused, timed out, cut).
 */
export class DockerError extends Error {
  readonly status: number;
  readonly op: string;
  /** The engine's own words (its JSON `message`), or the transport failure. */
  readonly engineMessage: string;

  constructor(status: number, op: string, engineMessage: string, options?: ErrorOptions) {
    const where = status === 0 ? "" : ` (HTTP ${status})`;
    super(`docker ${op}: ${engineMessage}${where}`, options);
    this.name = "DockerError";
    this.status = status;
    this.op = op;
    this.engineMessage = engineMessage;
  }
}

/** A 404: the container, image, volume or exec named in the call does not exist. */
export class DockerNotFound extends DockerError {
  constructor(op: string, engineMessage: string) {
    super(404, op, engineMessage);
    this.name = "DockerNotFound";
  }
}

export function isNotFound(err: unknown): err is DockerError {
  return err instanceof DockerError && err.status === 404;
}

/** True when the engine never answered: worth a retry or an "engine down" status. */
export function isUnreachable(err: unknown): err is DockerError {
  return err instanceof DockerError && err.status === 0;
}

/**
 * Podman answers 500 "...does not exist in database: no such container" for a container
 * that another call is removing at that moment; it is a 404 in all but status.
 */
export function isGoneMidRemoval(status: number, message: string): boolean {
  return status === 500 && /no such (container|volume|image|exec)/i.test(message);
}

export function errorFromStatus(status: number, op: string, message: string): DockerError {
  return status === 404 || isGoneMidRemoval(status, message)
    ? new DockerNotFound(op, message)
    : new DockerError(status, op, message);
}

/**
 * Docker answers `{"message": ...}`; Podman's compat layer adds `cause` and `response`.
 * Anything else (a proxy's HTML, an empty body) is kept as text so nothing is lost.
 */
export function engineMessageOf(text: string, fallback: string): string {
  const trimmed = text.trim();
  if (!trimmed) return fallback;
  try {
    const parsed = JSON.parse(trimmed);
    if (parsed && typeof parsed.message === "string" && parsed.message) return parsed.message;
  } catch {
    // not JSON: use the text as is
  }
  return trimmed.length > 2000 ? trimmed.slice(0, 2000) + "..." : trimmed;
}
