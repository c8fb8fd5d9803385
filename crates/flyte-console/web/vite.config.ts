import { defineConfig } from "vite";

// The console is served by flyte-rs under /console/ (crates/flyte-console/src/lib.rs); its
// assets land in /console/assets/ with content hashes, which the server caches for good.
export default defineConfig({
  base: "/console/",
  build: {
    assetsDir: "assets",
    sourcemap: false,
    reportCompressedSize: false,
    target: "es2022",
  },
  // `npx vite` (development only): the API of a flyte-rs on its default port.
  server: { proxy: { "/api": "http://127.0.0.1:30080" } },
});
