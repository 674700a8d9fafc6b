// `deno task build`: bundles the islands as the server does at start, and prints what the
// pages will load. Run ahead of time (an image build, CI) it also puts the bundler into
// Deno's cache, so a server started without network still gets its islands.
import { createLogger } from "@/core/log.ts";
import { createAssetStore } from "./assets.ts";

const manifest = await createAssetStore(createLogger("info")).manifest();
for (const [name, asset] of manifest.files) {
  console.log(
    `${name.padEnd(40)} ${String(asset.body.length).padStart(8)} B, gzip ${asset.gzip.length} B`,
  );
}
if (Object.keys(manifest.islands).length === 0) {
  console.error("no island was bundled");
  Deno.exit(1);
}
