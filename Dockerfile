# syntax=docker/dockerfile:1
# Ordo worker image: `docker build -t ordo .` then `docker run ordo` (role `pipeline`), or
# `docker run ordo api` / `docker run ordo merge`: every role shares this entrypoint.
# Configuration comes from the environment (docs/configuration.md).

# The Node line of all three stages: the major of the Node that package.json pins for the
# tests (its `node` devDependency; test/tooling/node-runtime.test.ts checks they agree) and
# an LTS line (test/deploy/compose.test.ts).
ARG NODE_VERSION=26

# ---- build: compile TypeScript to dist/ ----
FROM node:${NODE_VERSION}-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` devDependency's preinstall would fetch a second Node (a glibc
# build, on Alpine) that npm scripts put first on PATH; the build runs on the image's own.
# No other dependency needs an install script to compile TypeScript (nor the kafkajs patch).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
# tsc -p tsconfig.build.json: rootDir ".", include ["src"] -> dist/src/**/*.js, and
# schemas/ copied to dist/schemas, where dist/src/schema/*.js find it ('../../schemas/...').
RUN npm run build

# ---- deps: production dependencies only ----
# Installed with the devDependencies first, without install scripts (the `node`
# devDependency's would fetch a glibc Node), then patch-package (a devDependency) applies
# patches/ to kafkajs (docs/kafkajs-patch.md), then the devDependencies are pruned.
# `npm ci --omit=dev` would leave the patch out: patch-package would not be installed.
FROM node:${NODE_VERSION}-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund --ignore-scripts && npx patch-package --error-on-fail && npm prune --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime ----
FROM node:${NODE_VERSION}-alpine
ENV NODE_ENV=production \
    KAFKAJS_NO_PARTITIONER_WARNING=1
WORKDIR /app
# package.json is needed at runtime: its "type": "module" makes dist/**/*.js ESM.
# Everything is owned by root and only readable by the worker: Ordo writes nothing to disk
# (the Kubernetes manifests and docker-compose.yml run it with a read-only root file system).
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The official image's unprivileged `node` user, by number so that Kubernetes'
# runAsNonRoot can verify it.
USER 1000:1000
# /metrics, /healthz, /readyz (ORDO_METRICS_PORT); the api role also listens on ORDO_API_PORT.
EXPOSE 9464 8080
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["pipeline"]
