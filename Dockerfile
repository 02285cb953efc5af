# syntax=docker/dockerfile:1
# Ordo worker image: `docker build -t ordo .` then `docker run ordo` (role `pipeline`).
# Configuration comes from the environment (docs/configuration.md).

# The Node line of all three stages. package.json supports Node >= 20.9.
ARG NODE_VERSION=22

# ---- build: compile TypeScript to dist/ ----
FROM node:${NODE_VERSION}-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# tsc -p tsconfig.build.json: rootDir ".", include ["src"] -> dist/src/**/*.js
RUN npm run build

# ---- deps: production dependencies only ----
FROM node:${NODE_VERSION}-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime ----
FROM node:${NODE_VERSION}-alpine
ENV NODE_ENV=production \
    KAFKAJS_NO_PARTITIONER_WARNING=1
WORKDIR /app
# package.json is needed at runtime: its "type": "module" makes dist/**/*.js ESM.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# `npm run build` copies schemas/ to dist/schemas, where the compiled
# dist/src/schema/usage-event.js finds it ('../../schemas/usage-event.avsc').
# The official image's unprivileged user (uid 1000). Ordo writes nothing to disk.
USER node
# /metrics, /healthz, /readyz (ORDO_METRICS_PORT)
EXPOSE 9464
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["pipeline"]
