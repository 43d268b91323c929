# storeroute: LMTP proxy, nginx auth_http service and replay journal for Cyrus IMAP clusters.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
# The journal and the embedded directory live here; mount a volume to keep them across restarts.
RUN mkdir -p /app/var && chown node:node /app/var
VOLUME ["/app/var"]
USER node
# LMTP, auth_http, admin API (loopback by default: set listen hosts in your config).
EXPOSE 2424 9000 9025
# The slot agent from this image (one per IMAP machine, sharing Cyrus's PID namespace):
#   docker run --pid=host --entrypoint node IMAGE --max-semi-space-size=1 --single-threaded \
#     dist/cli/agent-main.js --config /etc/storeroute/agent.yaml
ENTRYPOINT ["node", "dist/cli/index.js"]
CMD ["serve", "--config", "config/storeroute.example.yaml"]
