# The Pomodex server (API + dashboard) and, with another command, the terminal proxy.
# Build: docker build -t pomodex .   Run: see docker-compose.yml.
FROM denoland/deno:2.9.6

WORKDIR /app
ENV DENO_DIR=/app/.deno-cache \
    DATA_DIR=/data \
    PORT=8000

# Dependencies first, so code edits do not re-download them.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY . .
# Bundling once here puts the bundler in Deno's cache, so the server bundles its islands
# at start without reaching the network.
RUN deno cache --frozen main.ts terminal.ts \
 && deno task build \
 && mkdir -p /data && chown -R deno:deno /data /app/.deno-cache

USER deno
EXPOSE 8000 9000
VOLUME /data
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:8000/health'); Deno.exit(r.ok ? 0 : 1)"]
CMD ["deno", "run", "-A", "--frozen", "main.ts"]
