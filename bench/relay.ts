// The terminal bench's ceiling for bulk output: a bare relay in a process of its own, the
// same shape as the terminal proxy (exec TTY on the engine socket → WebSocket to the client)
// with nothing else: no ticket, no validation, no limits, no replay buffer, no activity
// reports. It keeps the proxy's flow control (wait while more than 256 KiB are queued on the
// socket, terminal/session.ts), which decides how the output is cut into frames. Through
// it the bench reads the same frames, decoded the same way, as through the proxy, and the
// work is split over the same two processes; the proxy can only add to what this costs.
//   deno run -A bench/relay.ts <engine socket> <container id>
// prints {"port": n} once it listens on 127.0.0.1.
import { DockerClient } from "@/infra/docker/mod.ts";
import type { TtySession } from "@/infra/docker/types.ts";
import { hangUp, SESSION_VAR } from "@/terminal/hangup.ts";
import { SHELL_COMMAND, SHELL_DIR, SHELL_ENV, SHELL_USER } from "@/terminal/session.ts";

/** As terminal/session.ts's SOCKET_HIGH_WATER. */
const HIGH_WATER = 256 * 1024;
const [socketPath, containerId] = Deno.args;
const engine = new DockerClient({ socketPath });
await engine.negotiate();

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(JSON.stringify({ port })),
}, (req) => {
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.binaryType = "arraybuffer";
  const id = crypto.randomUUID();
  const early: Uint8Array[] = [];
  let tty: TtySession | null = null;
  let closed = false;
  const end = async () => {
    if (closed) return;
    closed = true;
    await hangUp(engine, containerId, `${SESSION_VAR}=${id}`, SHELL_USER);
    await tty?.close();
  };
  socket.onmessage = (e) => {
    const bytes = new Uint8Array(e.data as ArrayBuffer);
    if (tty) void tty.write(bytes).catch(() => {});
    else early.push(bytes);
  };
  socket.onclose = () => void end();
  socket.onopen = async () => {
    tty = await engine.execTty(containerId, SHELL_COMMAND, {
      user: SHELL_USER,
      env: { ...SHELL_ENV, [SESSION_VAR]: id },
      workingDir: SHELL_DIR,
      cols: 80,
      rows: 24,
    });
    for (const bytes of early.splice(0)) await tty.write(bytes);
    for await (const chunk of tty.readable) {
      if (socket.readyState !== WebSocket.OPEN) break;
      socket.send(chunk);
      while (socket.readyState === WebSocket.OPEN && socket.bufferedAmount > HIGH_WATER) {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    if (socket.readyState === WebSocket.OPEN) socket.close();
    await end();
  };
  return response;
});
