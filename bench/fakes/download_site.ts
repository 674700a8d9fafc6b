// A stand-in for a public download site, run inside a network namespace by bench/egress.ts:
// HTTPS on 443 (the certificate given) serving fixed random bodies of the sizes asked for,
// e.g. /bytes/1048576. Usage: deno run -A download_site.ts CERT_FILE KEY_FILE SIZE...
const [certFile, keyFile, ...sizes] = Deno.args;
const bodies = new Map<string, Uint8Array<ArrayBuffer>>();
for (const size of sizes.map(Number)) {
  const body = new Uint8Array(new ArrayBuffer(size));
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(body.subarray(i, i + 65536));
  bodies.set(`/bytes/${size}`, body);
}
Deno.serve({
  hostname: "0.0.0.0",
  port: 443,
  cert: await Deno.readTextFile(certFile),
  key: await Deno.readTextFile(keyFile),
  onListen: () => console.log("ready"),
}, (req) => {
  const body = bodies.get(new URL(req.url).pathname);
  return body
    ? new Response(body, { headers: { "content-type": "application/octet-stream" } })
    : new Response("not found\n", { status: 404 });
});
