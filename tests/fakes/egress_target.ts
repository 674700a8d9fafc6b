// A stand-in for a public web site, run inside a network namespace by tests/egress_test.ts:
// HTTP on 80 and HTTPS on 443 (the certificate given), answering with the Host it was asked
// for. Usage: deno run -A egress_target.ts CERT_FILE KEY_FILE
const [certFile, keyFile] = Deno.args;
const answer = (req: Request) => new Response(`hello from ${new URL(req.url).hostname}\n`);
Deno.serve({ hostname: "0.0.0.0", port: 80, onListen: () => {} }, answer);
Deno.serve({
  hostname: "0.0.0.0",
  port: 443,
  cert: await Deno.readTextFile(certFile),
  key: await Deno.readTextFile(keyFile),
  onListen: () => console.log("ready"),
}, answer);
