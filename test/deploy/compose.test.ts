// Static checks of the Docker Compose stack: docker-compose.yml, the Dockerfile, .dockerignore
// and deploy/ (Prometheus and Grafana provisioning). There is no Docker engine where the
// tests run, so nothing is started: the files are checked against the Compose Specification
// schema, against each other (dependencies, health checks, mounts, ports) and against the
// versions the rest of the repository uses, and Prometheus' configuration goes through the
// real `promtool check config`, rules included. docker-compose.secured.yml (the secured
// variant, an override file) is merged onto the base the way Compose merges files and checked
// the same way, and its init script really runs here to make the material that Ordo's own
// configuration validation then accepts.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse, stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');
const read = (relative: string): string => readFileSync(path.join(ROOT, relative), 'utf8');

// Node's LTS lines still supported (https://nodejs.org/en/about/previous-releases):
// 24 "Krypton" (maintenance until 2028-04-30) and 26 (active LTS since 2026-10-28).
// Drop a line here when it reaches its end of life.
const NODE_LTS_LINES = [24, 26];

// Ordo's roles in the stack: service name -> the `ordo <role>` it runs.
const ORDO_ROLES: Record<string, string> = { 'ordo-pipeline': 'pipeline', 'ordo-api': 'api', 'ordo-merge': 'merge', 'ordo-ingest': 'ingest', 'ordo-deliver': 'deliver' };
const EXPECTED_SERVICES = ['kafka', 'registry', 'ordo-pipeline', 'ordo-api', 'ordo-merge', 'ordo-ingest', 'ordo-deliver', 'prometheus', 'grafana'];
const DEPENDENCY_CONDITIONS = ['service_healthy', 'service_completed_successfully'];

// ---------------------------------------------------------------------------------------------
// The parts of a Compose file these checks read (the schema test covers the rest).

interface DependsOnEntry {
  condition: string;
  required?: boolean;
}
interface Healthcheck {
  test?: string | string[];
  disable?: boolean;
}
interface LongVolume {
  type: string;
  source?: string;
  target: string;
  read_only?: boolean;
}
interface Service {
  image?: string;
  entrypoint?: string | string[];
  user?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  container_name?: string;
  depends_on?: string[] | Record<string, DependsOnEntry>;
  healthcheck?: Healthcheck;
  volumes?: (string | LongVolume)[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | { published?: string | number; target: number })[];
  deploy?: { replicas?: number };
  restart?: string;
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

function loadYaml(file: string): unknown {
  // Compose resolves YAML merge keys (`<<: *anchor`); so must we.
  return parse(readFileSync(file, 'utf8'), { merge: true });
}

const compose = loadYaml(COMPOSE_FILE) as ComposeFile;
const services = compose.services;

function service(name: string): Service {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no service "${name}"`);
  return found;
}

function dependencies(svc: Service): Record<string, DependsOnEntry | undefined> {
  const dependsOn = svc.depends_on ?? {};
  if (Array.isArray(dependsOn)) return Object.fromEntries(dependsOn.map((name) => [name, undefined]));
  return dependsOn;
}

function environment(svc: Service): Record<string, string> {
  const env = svc.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((item) => {
      const at = item.indexOf('=');
      return at < 0 ? [item, ''] : [item.slice(0, at), item.slice(at + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

function commandOf(svc: Service): string[] {
  return typeof svc.command === 'string' ? svc.command.split(/\s+/) : (svc.command ?? []);
}

function healthcheckCommand(svc: Service): string {
  const test = svc.healthcheck?.test ?? [];
  return typeof test === 'string' ? test : test.join(' ');
}

interface BindMount {
  /** Absolute path on the host. */
  source: string;
  target: string;
  readOnly: boolean;
}

/** The service's bind mounts (named volumes and tmpfs are skipped). */
function bindMounts(svc: Service): BindMount[] {
  const mounts: BindMount[] = [];
  for (const volume of svc.volumes ?? []) {
    if (typeof volume === 'string') {
      const [source = '', target = '', mode = ''] = volume.split(':');
      if (!/^(\.|\/|~)/.test(source)) continue; // a named volume
      mounts.push({ source: path.resolve(ROOT, source), target, readOnly: mode.split(',').includes('ro') });
    } else if (volume.type === 'bind' && volume.source !== undefined) {
      mounts.push({ source: path.resolve(ROOT, volume.source), target: volume.target, readOnly: volume.read_only === true });
    }
  }
  return mounts;
}

/** Where a path inside the service's container comes from on the host, through its bind mounts. */
function hostPath(svc: Service, containerPath: string): string | undefined {
  const candidates = bindMounts(svc)
    .filter((m) => containerPath === m.target || containerPath.startsWith(m.target.replace(/\/$/, '') + '/'))
    .sort((a, b) => b.target.length - a.target.length);
  const mount = candidates[0];
  return mount ? path.join(mount.source, path.relative(mount.target, containerPath)) : undefined;
}

/** Files matching a glob whose wildcards are in the last path segment only (as ours are). */
function globFiles(pattern: string): string[] {
  const dir = path.dirname(pattern);
  if (!existsSync(dir)) return [];
  const escaped = path.basename(pattern).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  const re = new RegExp(`^${escaped}$`);
  return readdirSync(dir).filter((name) => re.test(name)).map((name) => path.join(dir, name));
}

function imageTag(image: string): { name: string; tag?: string; digest?: string } {
  const [ref = '', digest] = image.split('@');
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1), digest };
  return { name: ref, digest };
}

/** A default out of scripts/kafka/env.sh (sourced by up.sh), e.g. KAFKA_VERSION="${ORDO_KAFKA_VERSION:-4.3.1}". */
function scriptDefault(variable: string): string {
  const text = read('scripts/kafka/env.sh');
  const match = new RegExp(`^${variable}="\\$\\{[A-Z_]+:-([^}]+)\\}"`, 'm').exec(text);
  if (!match?.[1]) throw new Error(`scripts/kafka/env.sh sets no default for ${variable}`);
  return match[1];
}

function promtoolVersion(): string {
  const result = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (result.error) {
    throw new Error(`promtool is not installed (${result.error.message}): run \`bash scripts/install-tools.sh\``);
  }
  const match = /promtool, version (\d+\.\d+\.\d+)/.exec(result.stdout + result.stderr);
  if (!match?.[1]) throw new Error(`cannot read the version out of \`promtool --version\`: ${result.stdout}${result.stderr}`);
  return match[1];
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Stage {
  from: string;
  name?: string;
  instructions: { keyword: string; args: string }[];
}

function dockerfileStages(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const expand = (value: string): string => value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args[a ?? b ?? ''] ?? '');
  for (const line of lines) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const upper = keyword.toUpperCase();
    const argsText = rest.join(' ');
    if (upper === 'FROM') {
      const words = rest.filter((word) => !word.startsWith('--'));
      stages.push({ from: expand(words[0] ?? ''), name: words[2]?.toLowerCase(), instructions: [] });
    } else if (upper === 'ARG' && stages.length === 0) {
      const [name = '', value = ''] = argsText.split('=');
      args[name] = value;
    } else {
      stages.at(-1)?.instructions.push({ keyword: upper, args: argsText });
    }
  }
  return { args, stages };
}

const dockerfile = dockerfileStages(read('Dockerfile'));

// ---------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', () => {
    // dclint ships the compose-spec project's schema/compose-spec.json as is.
    const require = createRequire(import.meta.url);
    const schemaFile = path.join(path.dirname(require.resolve('dclint/package.json')), 'schemas', 'compose.schema.json');
    const { $schema: dialect, ...schema } = JSON.parse(readFileSync(schemaFile, 'utf8')) as { $schema?: string; title?: string };
    expect(schema.title).toBe('Compose Specification');
    // Ajv's default dialect; the file spells its URI in a way Ajv does not know ("https:", no "#").
    expect(dialect).toMatch(/json-schema\.org\/draft-07\/schema/);
    const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true });
    const validate = ajv.compile(schema);

    const valid = validate(compose);
    expect(valid, ajv.errorsText(validate.errors, { separator: '\n' })).toBe(true);

    // The schema does reject a wrong file: an unknown depends_on condition.
    const broken = structuredClone(compose);
    broken.services['ordo-api'] = { ...service('ordo-api'), depends_on: { 'ordo-pipeline': { condition: 'service_ready' } } };
    expect(validate(broken)).toBe(false);
  });

  it('runs Kafka, the registry, the five Ordo roles, Prometheus and Grafana, each with a health check', () => {
    expect(Object.keys(services).sort()).toEqual([...EXPECTED_SERVICES].sort());
    for (const [name, svc] of Object.entries(services)) {
      const test = svc.healthcheck?.test;
      expect(svc.healthcheck?.disable ?? false, `${name}: health check disabled`).toBe(false);
      expect(test, `${name}: no health check`).toBeDefined();
      expect(Array.isArray(test) ? test[0] : test, `${name}: health check test is NONE`).not.toBe('NONE');
    }
  });

  it('orders the start with depends_on conditions that `up --wait` can honour', () => {
    for (const [name, svc] of Object.entries(services)) {
      expect(Array.isArray(svc.depends_on), `${name}: depends_on must use the long form with a condition`).toBe(false);
      for (const [target, entry] of Object.entries(dependencies(svc))) {
        expect(services[target], `${name} depends on "${target}", which is no service`).toBeDefined();
        expect(DEPENDENCY_CONDITIONS, `${name} -> ${target}: condition`).toContain(entry?.condition);
        if (entry?.condition === 'service_healthy') {
          expect(services[target]?.healthcheck?.test, `${name} waits for ${target} to be healthy, but ${target} has no health check`).toBeDefined();
        }
        if (entry?.condition === 'service_completed_successfully') {
          expect(['always', 'unless-stopped'], `${name} waits for ${target} to complete, but ${target} restarts forever`).not.toContain(services[target]?.restart);
        }
      }
    }

    // No cycle, and each role comes up after what it needs (transitively).
    const closure = (name: string, seen: string[] = []): Set<string> => {
      if (seen.includes(name)) throw new Error(`depends_on cycle: ${[...seen, name].join(' -> ')}`);
      const all = new Set<string>();
      for (const target of Object.keys(dependencies(service(name)))) {
        all.add(target);
        for (const further of closure(target, [...seen, name])) all.add(further);
      }
      return all;
    };
    const needs: Record<string, string[]> = {
      'ordo-pipeline': ['kafka', 'registry'],
      'ordo-api': ['kafka', 'registry', 'ordo-pipeline'],
      'ordo-merge': ['kafka', 'registry', 'ordo-pipeline'],
      'ordo-ingest': ['kafka', 'registry'],
      // It reads the ordered topic (the pipeline's) and the global topic (the merge's).
      'ordo-deliver': ['kafka', 'registry', 'ordo-pipeline', 'ordo-merge'],
      grafana: ['prometheus'],
    };
    for (const name of Object.keys(services)) {
      const deps = closure(name);
      for (const needed of needs[name] ?? []) expect([...deps], `${name} must start after ${needed}`).toContain(needed);
    }
  });

  it('runs every Ordo role from the image the Dockerfile builds', () => {
    const built = Object.entries(services).filter(([, svc]) => svc.build !== undefined);
    expect(built.map(([name]) => name), 'exactly one service builds the image').toEqual(['ordo-pipeline']);
    const [, builder] = built[0]!;
    const context = typeof builder.build === 'string' ? builder.build : (builder.build?.context ?? '.');
    const dockerfileName = typeof builder.build === 'string' ? 'Dockerfile' : (builder.build?.dockerfile ?? 'Dockerfile');
    expect(path.resolve(ROOT, context, dockerfileName)).toBe(path.join(ROOT, 'Dockerfile'));
    expect(builder.image, 'the built image needs a name the other roles can run').toBeDefined();

    for (const [name, role] of Object.entries(ORDO_ROLES)) {
      const svc = service(name);
      expect(svc.image, `${name}: image`).toBe(builder.image);
      expect(commandOf(svc), `${name}: command`).toEqual([role]);
      // The health check probes the role's own health server.
      const port = environment(svc).ORDO_METRICS_PORT;
      expect(port, `${name}: ORDO_METRICS_PORT`).toBe('9464');
      expect(healthcheckCommand(svc), `${name}: health check`).toMatch(new RegExp(`^(CMD |CMD-SHELL )?wget -qO- http://127\\.0\\.0\\.1:${port}/(readyz|healthz)$`));
    }
  });

  it('runs the roles that `ordo --help` lists', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(0);
    const section = result.stdout.split(/\n\s*\n/).find((block) => block.startsWith('roles:')) ?? '';
    const roles = [...section.matchAll(/^ {2}([a-z][a-z-]*)\s{2,}/gm)].map((m) => m[1]);
    for (const [name, role] of Object.entries(ORDO_ROLES)) {
      expect(roles, `${name} runs \`ordo ${role}\``).toContain(role);
    }
  });

  it('publishes the HTTP port each client-facing role listens on, as its configuration reads it', () => {
    const listening: Record<string, (config: ReturnType<typeof loadConfig>) => number> = {
      'ordo-api': (config) => config.apiPort,
      'ordo-ingest': (config) => config.ingest.port,
      'ordo-deliver': (config) => config.deliver.port,
    };
    const hosts: Record<string, (config: ReturnType<typeof loadConfig>) => string | undefined> = {
      'ordo-api': (config) => config.apiHost,
      'ordo-ingest': (config) => config.ingest.host,
      'ordo-deliver': (config) => config.deliver.host,
    };
    for (const [name, port] of Object.entries(listening)) {
      const svc = service(name);
      const config = loadConfig({ ...environment(svc) });
      const targets = (svc.ports ?? []).map((p) => (typeof p === 'object' ? p.target : Number(String(p).split(':').at(-1))));
      expect(targets, `${name} publishes its HTTP port ${port(config)}`).toContain(port(config));
      expect(['127.0.0.1', '::1', 'localhost'], `${name} listens where a published port reaches it`).not.toContain(hosts[name]!(config));
    }
  });

  it('creates the input topic with one partition count, whichever role creates it first', () => {
    // ordo-ingest does not wait for ordo-pipeline: either may create the input topic.
    const creators = Object.keys(ORDO_ROLES).filter((name) => ['pipeline', 'ingest'].includes(ORDO_ROLES[name]!));
    const counts = new Set(creators.map((name) => loadConfig({ ...environment(service(name)) }).topicPartitions));
    expect([...counts], creators.join(', ')).toHaveLength(1);
    expect(dependencies(service('ordo-ingest'))['ordo-pipeline']).toBeUndefined();
  });

  it('runs exactly one merge instance, writing the single-partition global topic', () => {
    const merge = service('ordo-merge');
    // A fixed container name makes `docker compose up --scale ordo-merge=2` fail.
    expect(merge.container_name).toBe('ordo-merge');
    expect(merge.deploy?.replicas ?? 1).toBe(1);
    expect(environment(merge).ORDO_GLOBAL_TOPIC ?? 'usage-events-global').toBe('usage-events-global');
  });

  it('bind-mounts only paths that exist in the repository, read-only', () => {
    let count = 0;
    for (const [name, svc] of Object.entries(services)) {
      for (const mount of bindMounts(svc)) {
        count += 1;
        const relative = path.relative(ROOT, mount.source);
        expect(relative.startsWith('..') || path.isAbsolute(relative), `${name}: ${mount.source} lies outside the repository`).toBe(false);
        expect(existsSync(mount.source), `${name}: bind-mounted ${relative} does not exist`).toBe(true);
        expect(mount.readOnly, `${name}: ${relative} should be mounted :ro`).toBe(true);
      }
    }
    expect(count).toBeGreaterThan(0);
  });

  it('gives ordo-api a writable store at ORDO_API_STORE_DIR that no other container shares', () => {
    const api = service('ordo-api');
    const dir = environment(api).ORDO_API_STORE_DIR;
    expect(dir).toBeDefined();
    const mounts = (api.volumes ?? []).filter((v) => (typeof v === 'string' ? v.split(':')[1] : v.target) === dir);
    expect(mounts).toHaveLength(1);
    const mount = mounts[0]!;
    // An anonymous volume: one per container (also under --scale), kept across its restarts; a
    // named volume or a bind mount would be shared by replicas, which must never open one store.
    expect(typeof mount === 'object' && mount.type === 'volume' && mount.source === undefined && mount.read_only !== true, JSON.stringify(mount)).toBe(true);
  });

  it('pins every image (no latest)', () => {
    const floating = ['latest', 'stable', 'edge', 'nightly', 'main', 'lts', 'current'];
    for (const [name, svc] of Object.entries(services)) {
      expect(svc.image, `${name}: image`).toBeDefined();
      const { tag, digest } = imageTag(svc.image ?? '');
      if (digest !== undefined) continue;
      expect(tag, `${name}: ${svc.image} has no tag`).toBeDefined();
      expect(floating, `${name}: ${svc.image} floats`).not.toContain(tag);
      // Pulled images carry a version; only the locally built one has a free-form tag.
      const builtHere = Object.values(services).some((other) => other.build !== undefined && other.image === svc.image);
      if (!builtHere) expect(tag, `${name}: ${svc.image} is not a version`).toMatch(/^v?\d+\.\d+\.\d+/);
    }
  });

  it('runs the Kafka and registry versions of scripts/kafka, and a Prometheus that loads what promtool checked', () => {
    expect(imageTag(service('kafka').image ?? '')).toMatchObject({ name: 'apache/kafka', tag: scriptDefault('KAFKA_VERSION') });
    expect(imageTag(service('registry').image ?? '')).toMatchObject({ name: 'apicurio/apicurio-registry', tag: scriptDefault('REGISTRY_VERSION') });
    // docker-compose.yml pins its own Prometheus; the local promtool only checks the rules. A
    // server of the same major line, not older than that promtool, loads every rule it
    // accepted (Prometheus keeps rule syntax within a major); a newer promtool could accept
    // what the pinned server refuses, an other major may read a rule differently.
    const { name, tag = '' } = imageTag(service('prometheus').image ?? '');
    expect(name).toBe('prom/prometheus');
    const image = /^v(\d+)\.(\d+)\.(\d+)$/.exec(tag)?.slice(1).map(Number);
    const tool = promtoolVersion().split('.').map(Number);
    expect(image, `prom/prometheus:${tag} is not a vX.Y.Z release`).toBeDefined();
    expect(image![0], `prom/prometheus:${tag} and promtool ${tool.join('.')} are on different major lines`).toBe(tool[0]);
    const notOlder = image![1]! > tool[1]! || (image![1] === tool[1] && image![2]! >= tool[2]!);
    expect(notOlder, `prom/prometheus:${tag} is older than promtool ${tool.join('.')}, which checked the rules`).toBe(true);
    expect(imageTag(service('grafana').image ?? '').name).toBe('grafana/grafana');
  });

  it('keeps the registry\'s schemas in the stack\'s own Kafka, not in memory, so ids outlive a registry restart', () => {
    const registry = service('registry');
    const env = environment(registry);
    expect(env.APICURIO_STORAGE_KIND).toBe('kafkasql');
    const kafkaListener = /PLAINTEXT:\/\/kafka:(\d+)/.exec(environment(service('kafka')).KAFKA_ADVERTISED_LISTENERS ?? '')?.[1];
    expect(env.APICURIO_KAFKASQL_BOOTSTRAP_SERVERS).toBe(`kafka:${kafkaListener}`);
    expect(dependencies(registry).kafka?.condition).toBe('service_healthy');
  });

  it('publishes each host port once, and its header comment names them all', () => {
    const header = readFileSync(COMPOSE_FILE, 'utf8').split('\n').filter((line, i, all) => all.slice(0, i + 1).every((l) => l.startsWith('#'))).join('\n');
    const published = new Map<string, string>();
    for (const [name, svc] of Object.entries(services)) {
      for (const port of svc.ports ?? []) {
        const host = typeof port === 'object' ? String(port.published ?? '') : String(port).split(':').slice(-2, -1)[0];
        if (!host) continue;
        expect(published.get(host), `host port ${host} is published by ${published.get(host)} and ${name}`).toBeUndefined();
        published.set(host, name);
        expect(header, `the header comment does not mention localhost:${host} (${name})`).toContain(`localhost:${host}`);
      }
    }
    expect([...published.keys()]).toEqual(expect.arrayContaining(['9092', '8081', '8080', '8090', '8092', '9090', '3000']));
  });
});

// ---------------------------------------------------------------------------------------------
// docker-compose.secured.yml, merged onto docker-compose.yml as
// `docker compose -f docker-compose.yml -f docker-compose.secured.yml` merges them.

const SECURED_FILE = path.join(ROOT, 'docker-compose.secured.yml');
const securedOverride = loadYaml(SECURED_FILE) as ComposeFile;

function volumeTarget(volume: string | LongVolume): string {
  return typeof volume === 'string' ? (volume.split(':')[1] ?? '') : volume.target;
}

/**
 * One service of `-f base -f override` per the Compose Specification's merge rules
 * (https://github.com/compose-spec/compose-spec/blob/main/13-merge.md) for the fields we use:
 * mappings merge key by key (environment, depends_on, healthcheck), volumes merge by mount
 * target, ports are appended, everything else (entrypoint, command, image, ...) is replaced.
 */
function mergeService(base: Service | undefined, over: Service): Service {
  if (base === undefined) return over;
  const merged: Service = { ...base };
  for (const key of Object.keys(over) as (keyof Service)[]) {
    if (key === 'environment') merged.environment = { ...environment(base), ...environment(over) };
    else if (key === 'depends_on') merged.depends_on = { ...dependencies(base), ...dependencies(over) } as Record<string, DependsOnEntry>;
    else if (key === 'healthcheck') merged.healthcheck = { ...base.healthcheck, ...over.healthcheck };
    else if (key === 'ports') merged.ports = [...(base.ports ?? []), ...(over.ports ?? [])];
    else if (key === 'volumes') {
      const targets = new Set((over.volumes ?? []).map(volumeTarget));
      merged.volumes = [...(base.volumes ?? []).filter((v) => !targets.has(volumeTarget(v))), ...(over.volumes ?? [])];
    } else (merged as Record<string, unknown>)[key] = over[key];
  }
  return merged;
}

const securedCompose: ComposeFile & Record<string, unknown> = {
  ...(compose as ComposeFile & Record<string, unknown>),
  services: Object.fromEntries(
    [...new Set([...Object.keys(services), ...Object.keys(securedOverride.services)])].map((name) => {
      const over = securedOverride.services[name];
      return [name, over === undefined ? services[name]! : mergeService(services[name], over)];
    }),
  ),
  volumes: { ...compose.volumes, ...securedOverride.volumes },
};
const secured = securedCompose.services;

function securedService(name: string): Service {
  const found = secured[name];
  if (!found) throw new Error(`the secured stack has no service "${name}"`);
  return found;
}

function compileComposeSchema(): ReturnType<Ajv['compile']> {
  const require = createRequire(import.meta.url);
  const schemaFile = path.join(path.dirname(require.resolve('dclint/package.json')), 'schemas', 'compose.schema.json');
  const { $schema: _dialect, ...schema } = JSON.parse(readFileSync(schemaFile, 'utf8')) as { $schema?: string };
  return new Ajv({ allErrors: true, strict: false, allowUnionTypes: true }).compile(schema);
}

/** Services that run once: another service waits for them with service_completed_successfully. */
function oneShots(all: Record<string, Service>): Set<string> {
  return new Set(Object.values(all).flatMap((svc) =>
    Object.entries(dependencies(svc)).filter(([, entry]) => entry?.condition === 'service_completed_successfully').map(([target]) => target)));
}

/** Named-volume mounts of a service: container path -> volume. */
function namedVolumeMounts(svc: Service): { volume: string; target: string; readOnly: boolean }[] {
  const mounts: { volume: string; target: string; readOnly: boolean }[] = [];
  for (const volume of svc.volumes ?? []) {
    if (typeof volume === 'string') {
      const [source = '', target = '', mode = ''] = volume.split(':');
      if (/^(\.|\/|~)/.test(source) || target === '') continue;
      mounts.push({ volume: source, target, readOnly: mode.split(',').includes('ro') });
    } else if (volume.type === 'volume' && volume.source !== undefined) {
      mounts.push({ volume: volume.source, target: volume.target, readOnly: volume.read_only === true });
    }
  }
  return mounts;
}

function mountFor(mounts: { volume: string; target: string; readOnly: boolean }[], containerPath: string) {
  return mounts
    .filter((m) => containerPath.startsWith(m.target.replace(/\/$/, '') + '/'))
    .sort((a, b) => b.target.length - a.target.length)[0];
}

/** The script a service's entrypoint runs, as a repository path (through its bind mounts). */
function entrypointScript(svc: Service): string {
  const words = typeof svc.entrypoint === 'string' ? svc.entrypoint.split(/\s+/) : (svc.entrypoint ?? []);
  expect(words[0], `entrypoint ${words.join(' ')} should run bash`).toBe('bash');
  const host = hostPath(svc, words[1] ?? '');
  expect(host, `entrypoint script ${words[1]} is not under a bind mount`).toBeDefined();
  return host!;
}

function parseProperties(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const at = line.indexOf('=');
    expect(at, `not a property line: ${line}`).toBeGreaterThan(0);
    expect(props.has(line.slice(0, at)), `property ${line.slice(0, at)} set twice`).toBe(false);
    props.set(line.slice(0, at), line.slice(at + 1));
  }
  return props;
}

// Variables that hold a secret inline; in compose each must come as its *_FILE instead.
const INLINE_SECRETS = [
  'KAFKA_SASL_PASSWORD',
  'KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET',
  'KAFKA_SSL_KEY_PASSPHRASE',
  'SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO',
  'SCHEMA_REGISTRY_BEARER_TOKEN',
];

describe('docker-compose.secured.yml (merged onto docker-compose.yml)', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'ordo-compose-secured-'));
  afterAll(() => {
    // make-secrets.sh leaves its directories read-only.
    for (const dir of ['broker', 'client']) if (existsSync(path.join(scratch, dir))) chmodSync(path.join(scratch, dir), 0o700);
    rmSync(scratch, { recursive: true, force: true });
  });

  const init = securedService('kafka-secrets');
  const kafka = securedService('kafka');
  const initEnv = environment(init);
  // Where each volume lives in the test: the init service's mount targets, mapped to scratch dirs.
  const volumeDirs: Record<string, string> = {};
  for (const mount of namedVolumeMounts(init)) volumeDirs[mount.volume] = path.join(scratch, path.basename(mount.target));
  /** A path inside `svc`'s container, in the scratch copy of the volume it is mounted from. */
  const scratchPath = (svc: Service, containerPath: string): string | undefined => {
    const mount = mountFor(namedVolumeMounts(svc), containerPath);
    const dir = mount && volumeDirs[mount.volume];
    return dir === undefined ? undefined : path.join(dir, path.relative(mount!.target, containerPath));
  };
  const makeSecrets = () =>
    spawnSync('bash', [entrypointScript(init)], {
      encoding: 'utf8',
      timeout: 60_000,
      env: {
        PATH: process.env.PATH,
        ...initEnv,
        BROKER_DIR: volumeDirs['kafka-secrets-broker'],
        CLIENT_DIR: volumeDirs['kafka-secrets-client'],
        // Here the files stay ours (chown to one's own ids is allowed as any user).
        ORDO_UID: String(process.getuid?.() ?? 0),
        ORDO_GID: String(process.getgid?.() ?? 0),
        KAFKA_UID: String(process.getuid?.() ?? 0),
        KAFKA_GID: String(process.getgid?.() ?? 0),
      },
    });

  it('is valid against the Compose Specification schema, alone and merged', () => {
    const validate = compileComposeSchema();
    expect(validate(securedOverride), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(securedCompose), JSON.stringify(validate.errors)).toBe(true);
  });

  it('reconfigures kafka and the five roles, adds only the one-shot kafka-secrets, and declares its volumes', () => {
    expect(Object.keys(securedOverride.services).sort()).toEqual(['kafka', 'kafka-secrets', ...Object.keys(ORDO_ROLES)].sort());
    expect(Object.keys(secured).sort()).toEqual([...EXPECTED_SERVICES, 'kafka-secrets'].sort());
    expect([...oneShots(secured)]).toEqual(['kafka-secrets']);
    for (const [name, svc] of Object.entries(secured)) {
      for (const mount of namedVolumeMounts(svc)) {
        expect(Object.keys(securedCompose.volumes ?? {}), `${name} mounts the undeclared volume ${mount.volume}`).toContain(mount.volume);
      }
    }
  });

  it('has a health check on every long-running service, and depends_on conditions `up --wait` can honour', () => {
    const once = oneShots(secured);
    for (const [name, svc] of Object.entries(secured)) {
      if (once.has(name)) {
        expect(svc.restart ?? 'no', `${name} runs once; it must not restart`).toBe('no');
        continue;
      }
      expect(svc.healthcheck?.test, `${name}: no health check`).toBeDefined();
      expect(svc.healthcheck?.disable ?? false).toBe(false);
    }
    for (const [name, svc] of Object.entries(secured)) {
      expect(Array.isArray(svc.depends_on), `${name}: depends_on must use the long form`).toBe(false);
      for (const [target, entry] of Object.entries(dependencies(svc))) {
        expect(secured[target], `${name} depends on "${target}", which is no service`).toBeDefined();
        expect(entry?.condition, `${name} -> ${target}`).toBe(once.has(target) ? 'service_completed_successfully' : 'service_healthy');
      }
    }
    // kafka and each role wait for the material they mount. (`up --wait` also needs every
    // one-shot to be waited for this way by a long-running service, or it reports its exit.)
    for (const name of ['kafka', ...Object.keys(ORDO_ROLES)]) {
      expect(dependencies(securedService(name))['kafka-secrets']?.condition, name).toBe('service_completed_successfully');
    }
    // Unchanged order otherwise: the roles still wait for a healthy kafka and registry.
    expect(dependencies(securedService('ordo-pipeline'))).toMatchObject({ kafka: { condition: 'service_healthy' }, registry: { condition: 'service_healthy' } });
  });

  it('runs pinned images: kafka-secrets the kafka service\'s own apache/kafka version', () => {
    expect(init.image).toBe(kafka.image);
    expect(imageTag(init.image ?? '')).toMatchObject({ name: 'apache/kafka', tag: scriptDefault('KAFKA_VERSION') });
    for (const [name, svc] of Object.entries(secured)) {
      const { tag, digest } = imageTag(svc.image ?? '');
      expect(tag ?? digest, `${name}: ${svc.image} is not pinned`).toBeDefined();
      expect(['latest', 'stable', 'edge', 'nightly', 'main', 'lts', 'current'], `${name}: ${svc.image} floats`).not.toContain(tag);
    }
  });

  it('bind-mounts only repository paths, read-only; the secrets volumes are writable by kafka-secrets alone', () => {
    for (const [name, svc] of Object.entries(secured)) {
      for (const mount of bindMounts(svc)) {
        expect(existsSync(mount.source), `${name}: ${mount.source} does not exist`).toBe(true);
        expect(mount.readOnly, `${name}: ${mount.source} should be :ro`).toBe(true);
      }
      for (const mount of namedVolumeMounts(svc)) {
        if (!mount.volume.startsWith('kafka-secrets-')) continue;
        expect(mount.readOnly, `${name} mounts ${mount.volume}`).toBe(name !== 'kafka-secrets');
      }
    }
    // The broker's key only reaches the broker; the roles get the client volume.
    expect(namedVolumeMounts(kafka).map((m) => m.volume)).toEqual(['kafka-secrets-broker']);
    for (const name of Object.keys(ORDO_ROLES)) expect(namedVolumeMounts(securedService(name)).map((m) => m.volume), name).toEqual(['kafka-secrets-client']);
  });

  it('hands the client material to the user Ordo\'s image runs as', () => {
    const user = dockerfile.stages.at(-1)!.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user).toBe(`${initEnv.ORDO_UID}:${initEnv.ORDO_GID}`);
  });

  it('has its scripts in deploy/secured, executable and `bash -n` clean', () => {
    for (const svc of [init, kafka]) {
      const script = entrypointScript(svc);
      expect(path.relative(ROOT, script)).toMatch(/^deploy\/secured\/[\w-]+\.sh$/);
      expect(statSync(script).mode & 0o111, `${script} is not executable`).not.toBe(0);
      const syntax = spawnSync('bash', ['-n', script], { encoding: 'utf8' });
      expect(syntax.status, syntax.stderr).toBe(0);
      const shellcheck = spawnSync('shellcheck', [script], { encoding: 'utf8' });
      if (!shellcheck.error) expect(shellcheck.status, shellcheck.stdout).toBe(0);
    }
  });

  it('passes every secret to the roles as a *_FILE path in the volume kafka-secrets writes, never inline', () => {
    const written = new Set(namedVolumeMounts(init).filter((m) => !m.readOnly).map((m) => m.volume));
    for (const name of Object.keys(ORDO_ROLES)) {
      const svc = securedService(name);
      const env = environment(svc);
      for (const variable of INLINE_SECRETS) expect(env[variable], `${name}: ${variable} inline`).toBeUndefined();
      const files = Object.entries(env).filter(([key]) => /^(KAFKA|SCHEMA_REGISTRY)_\w+_FILE$/.test(key));
      expect(files.map(([key]) => key).sort(), name).toEqual(['KAFKA_SASL_PASSWORD_FILE', 'KAFKA_SSL_CA_FILE']);
      for (const [key, file] of files) {
        const mount = mountFor(namedVolumeMounts(svc), file);
        expect(mount, `${name}: ${key}=${file} is in no volume`).toBeDefined();
        expect(written.has(mount!.volume), `${name}: ${key}=${file} is in ${mount!.volume}, which kafka-secrets does not write`).toBe(true);
      }
      expect(env).toMatchObject({ KAFKA_SECURITY_PROTOCOL: 'SASL_SSL', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: initEnv.SCRAM_USER });
    }
  });

  it('makes the material (deploy/secured/make-secrets.sh, run here), and the roles\' environment passes Ordo\'s config validation with it', () => {
    const first = makeSecrets();
    expect(first.status, first.stdout + first.stderr).toBe(0);

    for (const name of Object.keys(ORDO_ROLES)) {
      const svc = securedService(name);
      const env = environment(svc);
      // Container paths -> the files just made; the meters file -> its bind-mounted source.
      const local = Object.fromEntries(Object.entries(env).map(([key, value]) => {
        if (!key.endsWith('_FILE')) return [key, value];
        const file = scratchPath(svc, value) ?? hostPath(svc, value);
        expect(file && existsSync(file), `${name}: ${key}=${value} was not made`).toBe(true);
        return [key, file];
      }));
      const config = loadConfig(local);
      expect(config.brokers).toEqual(['kafka:19095']);
      expect(config.security.kafka.protocol).toBe('SASL_SSL');
      const sasl = config.security.kafka.sasl;
      expect(sasl?.mechanism).toBe('SCRAM-SHA-512');
      if (sasl?.mechanism !== 'SCRAM-SHA-512') continue;
      expect(sasl.username).toBe('ordo');
      // The password the roles send is the one the broker formats its SCRAM user with.
      const brokerPassword = readFileSync(path.join(volumeDirs['kafka-secrets-broker']!, `scram-${initEnv.SCRAM_USER}.password`), 'utf8').trim();
      expect(sasl.password.reveal()).toBe(brokerPassword);
      expect(brokerPassword).toMatch(/^[0-9a-f]{48}$/);
    }

    // The client certificate works for the mTLS listener too (the alternative the docs show).
    const pipeline = securedService('ordo-pipeline');
    const client = (file: string) => scratchPath(pipeline, `/etc/ordo-secrets/kafka/${file}`)!;
    const mtls = loadConfig({ KAFKA_BROKERS: 'kafka:19096', KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_SSL_CA_FILE: client('ca.crt'), KAFKA_SSL_CERT_FILE: client('client.crt'), KAFKA_SSL_KEY_FILE: client('client.key') });
    expect(mtls.security.kafka.tls?.cert).toBeDefined();

    // The broker's certificate is signed by that CA and names the host the roles connect to.
    const ca = new X509Certificate(readFileSync(client('ca.crt')));
    const brokerPem = readFileSync(path.join(volumeDirs['kafka-secrets-broker']!, 'broker-keystore.pem'), 'utf8');
    expect(brokerPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const brokerCert = new X509Certificate(brokerPem.slice(brokerPem.indexOf('-----BEGIN CERTIFICATE-----')));
    expect(brokerCert.verify(ca.publicKey)).toBe(true);
    for (const host of ['kafka', 'localhost']) expect(brokerCert.checkHost(host), host).toBe(host);
    expect(new X509Certificate(readFileSync(client('client.crt'))).subject).toBe('CN=ordo-client');

    // Secrets are readable by their owner only; a second run keeps the material.
    for (const dir of Object.values(volumeDirs)) {
      for (const file of readdirSync(dir).filter((f) => !f.startsWith('.') && !/^ca\.(pem|crt)$/.test(f))) {
        expect(statSync(path.join(dir, file)).mode & 0o077, `${file} is readable by others`).toBe(0);
      }
    }
    const again = makeSecrets();
    expect(again.status, again.stderr).toBe(0);
    expect(readFileSync(path.join(volumeDirs['kafka-secrets-broker']!, 'broker-keystore.pem'), 'utf8')).toBe(brokerPem);
  });

  it('starts a broker with SASL_SSL (SCRAM-SHA-512) and mTLS listeners, the StandardAuthorizer, and the material made', () => {
    if (!existsSync(path.join(volumeDirs['kafka-secrets-broker']!, '.complete'))) expect(makeSecrets().status).toBe(0);
    const env = environment(kafka);
    const printed = spawnSync('bash', [entrypointScript(kafka), '--print-config'], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
    expect(printed.status, printed.stderr).toBe(0);
    const props = parseProperties(printed.stdout);

    // docker-compose.yml's broker settings carry over.
    expect(props.get('node.id')).toBe('1');
    expect(props.get('num.partitions')).toBe('1');
    expect(props.get('auto.create.topics.enable')).toBe('false');
    expect(props.get('inter.broker.listener.name')).toBe('PLAINTEXT');

    const protocols = new Map((props.get('listener.security.protocol.map') ?? '').split(',').map((e) => e.split(':') as [string, string]));
    const listeners = (props.get('listeners') ?? '').split(',').map((l) => l.split(':')[0]!);
    const advertised = new Map((props.get('advertised.listeners') ?? '').split(',').map((l) => [l.split('://')[0]!, l.split('://')[1]!]));
    for (const name of [...listeners, ...advertised.keys()]) expect(protocols.has(name), `listener ${name} has no protocol`).toBe(true);
    const sasl = listeners.filter((l) => protocols.get(l) === 'SASL_SSL');
    const ssl = listeners.filter((l) => protocols.get(l) === 'SSL');
    expect(sasl.length).toBeGreaterThan(0);
    expect(ssl.length).toBeGreaterThan(0);
    expect(props.get('sasl.enabled.mechanisms')).toBe('SCRAM-SHA-512');
    for (const l of sasl) expect(props.get(`listener.name.${l.toLowerCase()}.scram-sha-512.sasl.jaas.config`), l).toMatch(/ScramLoginModule required;$/);
    for (const l of ssl) expect(props.get(`listener.name.${l.toLowerCase()}.ssl.client.auth`), l).toBe('required');
    expect(props.get('authorizer.class.name')).toBe('org.apache.kafka.metadata.authorizer.StandardAuthorizer');
    expect(props.get('allow.everyone.if.no.acl.found')).toBe('false');
    const superUsers = (props.get('super.users') ?? '').split(';');
    expect(superUsers).toEqual(expect.arrayContaining(['User:ANONYMOUS', `User:${initEnv.SCRAM_USER}`, 'User:CN=ordo-client']));

    // The files it reads are in its volume, and kafka-secrets made them.
    for (const key of ['ssl.keystore.location', 'ssl.truststore.location']) {
      const file = scratchPath(kafka, props.get(key) ?? '');
      expect(file && existsSync(file), `${key}=${props.get(key)} was not made`).toBe(true);
    }
    expect(props.get('ssl.keystore.type')).toBe('PEM');
    expect(existsSync(scratchPath(kafka, `${env.ORDO_KAFKA_SECRETS}/scram-${env.ORDO_SCRAM_USER}.password`) ?? '')).toBe(true);
    expect(env.ORDO_SCRAM_USER).toBe(initEnv.SCRAM_USER);
    expect(env.ORDO_KAFKA_SECRETS).toBe(initEnv.BROKER_MOUNT);
    const script = readFileSync(entrypointScript(kafka), 'utf8');
    expect(script).toMatch(/kafka-storage\.sh" format .*--ignore-formatted/);
    expect(script).toContain('--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$password]"');

    // The roles connect to an advertised SASL_SSL listener on the compose network.
    for (const name of Object.keys(ORDO_ROLES)) {
      const broker = environment(securedService(name)).KAFKA_BROKERS;
      const listener = [...advertised].find(([, address]) => address === broker)?.[0];
      expect(listener && protocols.get(listener), `${name}: KAFKA_BROKERS=${broker}`).toBe('SASL_SSL');
    }
    // The health check goes through SASL_SSL with the admin config kafka-secrets wrote.
    const check = healthcheckCommand(kafka);
    const bootstrap = /--bootstrap-server (\S+)/.exec(check)?.[1];
    expect([...advertised].some(([name, address]) => address === bootstrap && protocols.get(name) === 'SASL_SSL'), check).toBe(true);
    const adminFile = scratchPath(kafka, /--command-config (\S+)/.exec(check)?.[1] ?? '');
    expect(adminFile && existsSync(adminFile), check).toBe(true);
    const admin = parseProperties(readFileSync(adminFile!, 'utf8'));
    expect(admin.get('security.protocol')).toBe('SASL_SSL');
    expect(admin.get('sasl.mechanism')).toBe('SCRAM-SHA-512');
    expect(existsSync(scratchPath(kafka, admin.get('ssl.truststore.location') ?? '') ?? '')).toBe(true);
  });

  it('publishes each host port once, and its header comment names the ones it adds', () => {
    const header = readFileSync(SECURED_FILE, 'utf8').split('\n').filter((line, i, all) => all.slice(0, i + 1).every((l) => l.startsWith('#'))).join('\n');
    const published = new Map<string, string>();
    for (const [name, svc] of Object.entries(secured)) {
      for (const port of svc.ports ?? []) {
        const host = typeof port === 'object' ? String(port.published ?? '') : String(port).split(':').slice(-2, -1)[0]!;
        expect(published.get(host), `host port ${host} twice`).toBeUndefined();
        published.set(host, name);
      }
    }
    for (const svc of Object.values(securedOverride.services)) {
      for (const port of svc.ports ?? []) {
        const host = typeof port === 'object' ? String(port.published ?? port.target) : String(port).split(':')[0]!;
        expect(header).toContain(`localhost:${host}`);
      }
    }
  });
});

describe('Dockerfile', () => {
  const final = dockerfile.stages.at(-1)!;

  it('is multi-stage and runs as a non-root user', () => {
    expect(dockerfile.stages.length).toBeGreaterThan(1);
    const users = final.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args.split(':')[0]);
    expect(users.length, 'the final stage sets no USER').toBeGreaterThan(0);
    expect(['root', '0'], 'the final stage runs as root').not.toContain(users.at(-1));
  });

  it('builds on a Node LTS line that package.json supports', () => {
    const nodeStages = dockerfile.stages.filter((stage) => imageTag(stage.from).name === 'node');
    expect(nodeStages.map((stage) => stage.from)).toContain(final.from);
    const lines = new Set(nodeStages.map((stage) => Number(/^(\d+)/.exec(imageTag(stage.from).tag ?? '')?.[1])));
    expect(lines.size, `every stage on one Node line: ${nodeStages.map((s) => s.from).join(', ')}`).toBe(1);
    const [line] = [...lines];
    expect(NODE_LTS_LINES, `${final.from} is not on a Node LTS line`).toContain(line);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const minimum = Number(/>=\s*(\d+)/.exec(engines)?.[1]);
    expect(line).toBeGreaterThanOrEqual(minimum);
  });

  it('starts the CLI, so every role (pipeline, api, merge) is one argument away', () => {
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> };
    const entrypoint = final.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
    expect(JSON.parse(entrypoint?.args ?? 'null')).toEqual(['node', pkg.bin.ordo]);
  });

  it('copies into the build stage what `npm run build` reads, and .dockerignore keeps it', () => {
    const build = dockerfile.stages.find((stage) => stage.instructions.some((i) => i.keyword === 'RUN' && i.args.includes('npm run build')));
    expect(build, 'no stage runs `npm run build`').toBeDefined();
    const copied = build!.instructions
      .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from'))
      .flatMap((i) => i.args.split(/\s+/).filter((word) => !word.startsWith('--')).slice(0, -1));

    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    const tsconfig = loadYaml(path.join(ROOT, 'tsconfig.build.json')) as { extends?: string; include?: string[] };
    const needed = [
      'package.json',
      'package-lock.json',
      'tsconfig.build.json',
      ...(tsconfig.extends ? [path.normalize(tsconfig.extends)] : []),
      ...(tsconfig.include ?? []),
      ...[...(pkg.scripts.build ?? '').matchAll(/\bcp -r (\S+)/g)].map((m) => m[1]!),
    ];
    for (const item of needed) expect(copied.map((c) => path.normalize(c)), `the build stage does not COPY ${item}`).toContain(item);

    // .dockerignore: the last matching line wins; a leading "!" keeps.
    const rules = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    const ignored = (file: string): boolean => {
      let result = false;
      for (const rule of rules) {
        const keep = rule.startsWith('!');
        const pattern = rule.replace(/^!/, '').replace(/\/$/, '');
        if (pattern === '*' || pattern === '**' || file === pattern || file.startsWith(pattern + '/')) result = !keep;
      }
      return result;
    };
    for (const item of copied) expect(ignored(path.normalize(item)), `.dockerignore excludes ${item}, which the Dockerfile copies`).toBe(false);
  });
});

describe('deploy/prometheus', () => {
  const prometheus = service('prometheus');
  const configFile = path.join(ROOT, 'deploy/prometheus/prometheus.yml');
  const config = loadYaml(configFile) as {
    rule_files?: string[];
    scrape_configs: {
      job_name: string;
      static_configs?: { targets: string[] }[];
      dns_sd_configs?: { names: string[]; type?: string; port?: number }[];
    }[];
  };
  const scratch = mkdtempSync(path.join(tmpdir(), 'ordo-promtool-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('is the file the compose Prometheus loads', () => {
    const flag = commandOf(prometheus).find((arg) => arg.startsWith('--config.file='));
    const containerPath = flag?.slice('--config.file='.length) ?? '/etc/prometheus/prometheus.yml';
    expect(hostPath(prometheus, containerPath)).toBe(configFile);
  });

  it('scrapes every Ordo role (pipeline, api, merge, ingest) on its metrics port', () => {
    for (const name of Object.keys(ORDO_ROLES)) {
      const port = environment(service(name)).ORDO_METRICS_PORT;
      const scraped = config.scrape_configs.some((job) =>
        (job.static_configs ?? []).some((s) => s.targets.includes(`${name}:${port}`)) ||
        (job.dns_sd_configs ?? []).some((d) => d.names.includes(name) && String(d.port) === port));
      expect(scraped, `no scrape config reaches ${name}:${port}`).toBe(true);
    }
  });

  it('loads the rules from the directory compose mounts', () => {
    expect(config.rule_files ?? []).toContain('/etc/prometheus/rules/*.yml');
    for (const pattern of config.rule_files ?? []) {
      expect(hostPath(prometheus, pattern), `rule_files ${pattern} is not under a mount of the prometheus service`).toBeDefined();
    }
  });

  it('passes `promtool check config`, rules included', () => {
    promtoolVersion(); // fails with the install hint when promtool is missing
    // rule_files name container paths; promtool resolves them here. Check a copy whose rule
    // paths point at the mounted host directories instead.
    const patterns = (config.rule_files ?? []).map((pattern) => hostPath(prometheus, pattern) ?? pattern);
    const present = patterns.filter((pattern) => existsSync(path.dirname(pattern)));
    if (present.length < patterns.length) {
      // Only while the rules directory is not written yet; the bind-mount test fails then too.
      console.warn(`promtool: no rules directory for ${patterns.filter((p) => !present.includes(p)).join(', ')}; checking the rest`);
    }
    const copy = path.join(scratch, 'prometheus.yml');
    writeFileSync(copy, stringify({ ...config, rule_files: present }));

    const result = spawnSync('promtool', ['check', 'config', copy], { encoding: 'utf8', timeout: 60_000 });
    const output = result.stdout + result.stderr;
    expect(result.status, output).toBe(0);
    const files = present.flatMap(globFiles).filter((file) => statSync(file).isFile());
    if (present.length > 0) {
      expect(files.length, `no rule file matches ${present.join(', ')}`).toBeGreaterThan(0);
      expect(output).toContain(`SUCCESS: ${files.length} rule files found`);
    }
  });
});

describe('deploy/grafana', () => {
  const grafana = service('grafana');
  const datasources = loadYaml(path.join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yml')) as {
    apiVersion: number;
    datasources: { name: string; uid?: string; type: string; url: string; isDefault?: boolean }[];
  };
  const providers = loadYaml(path.join(ROOT, 'deploy/grafana/provisioning/dashboards/ordo.yml')) as {
    apiVersion: number;
    providers: { name: string; type: string; options: { path: string } }[];
  };

  it('mounts the provisioning directory where Grafana reads it', () => {
    expect(hostPath(grafana, '/etc/grafana/provisioning/datasources/prometheus.yml')).toBe(path.join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yml'));
    expect(hostPath(grafana, '/etc/grafana/provisioning/dashboards/ordo.yml')).toBe(path.join(ROOT, 'deploy/grafana/provisioning/dashboards/ordo.yml'));
  });

  it('provisions the compose Prometheus as the default datasource', () => {
    expect(datasources.apiVersion).toBe(1);
    const prometheusSources = datasources.datasources.filter((ds) => ds.type === 'prometheus');
    expect(prometheusSources).toHaveLength(1);
    const source = prometheusSources[0]!;
    expect(source.isDefault).toBe(true);
    const url = new URL(source.url);
    expect(services[url.hostname], `datasource url ${source.url} names no compose service`).toBeDefined();
    expect(url.port).toBe('9090');
  });

  it('provisions Ordo\'s dashboards from deploy/grafana/dashboards', () => {
    expect(providers.apiVersion).toBe(1);
    expect(providers.providers).toHaveLength(1);
    const provider = providers.providers[0]!;
    expect(provider.type).toBe('file');
    expect(provider.options.path).toBe('/var/lib/grafana/dashboards');
    const dir = hostPath(grafana, provider.options.path);
    expect(dir).toBe(path.join(ROOT, 'deploy/grafana/dashboards'));
    const home = environment(grafana).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    if (home !== undefined) expect(existsSync(hostPath(grafana, home) ?? ''), `home dashboard ${home} is not in a mounted directory`).toBe(true);

    // Every dashboard parses, and each datasource it names is the provisioned one or a
    // datasource variable of its own: file provisioning does not resolve `__inputs`.
    const files = readdirSync(dir!).filter((name) => name.endsWith('.json'));
    expect(files.length, `no dashboard in ${dir}`).toBeGreaterThan(0);
    const uids = new Set(datasources.datasources.map((ds) => ds.uid));
    for (const file of files) {
      const dashboard = JSON.parse(readFileSync(path.join(dir!, file), 'utf8')) as { templating?: { list?: { name: string; type: string }[] } };
      const variables = new Set((dashboard.templating?.list ?? []).filter((v) => v.type === 'datasource').map((v) => v.name));
      const refs: string[] = [];
      const walk = (node: unknown): void => {
        if (Array.isArray(node)) node.forEach(walk);
        else if (node !== null && typeof node === 'object') {
          const record = node as Record<string, unknown>;
          const ds = record.datasource;
          if (typeof ds === 'string') refs.push(ds);
          else if (ds !== null && typeof ds === 'object' && typeof (ds as { uid?: unknown }).uid === 'string') refs.push((ds as { uid: string }).uid);
          Object.values(record).forEach(walk);
        }
      };
      walk(dashboard);
      for (const ref of refs) {
        const variable = /^\$\{?(\w+)/.exec(ref)?.[1];
        // Grafana's own pseudo-datasources: annotations ("-- Grafana --"), mixed panels, expressions.
        const builtIn = ref.startsWith('-- ') || ref === 'grafana' || ref === '__expr__';
        const known = variable !== undefined ? variables.has(variable) : builtIn || uids.has(ref) || datasources.datasources.some((ds) => ds.name === ref);
        expect(known, `${file}: datasource "${ref}" is neither provisioned nor a datasource variable`).toBe(true);
      }
    }
  });
});
