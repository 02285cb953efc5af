// Renders the Kustomize base and the KEDA overlay with `kubectl kustomize` (offline), checks
// every object against the Kubernetes OpenAPI schemas and the CRD schemas of the Prometheus
// Operator and KEDA (kubernetes-models), rejecting unknown fields as `kubectl apply` would, and
// then checks the rules the manifests' comments promise.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import type { IScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import type { IPrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { Secret } from 'kubernetes-models/v1/Secret';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import type { IService } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseTokensFile } from '../../src/auth/tokens-file.js';
import { type OrdoConfig, loadConfig } from '../../src/config/config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILDS = { base: 'k8s/base', keda: 'k8s/overlays/keda', secured: 'k8s/overlays/secured' } as const;
type BuildName = keyof typeof BUILDS;
const ROLES = ['pipeline', 'api', 'merge', 'ingest', 'deliver'] as const;
type Role = (typeof ROLES)[number];
/** The roles that serve HTTP to clients: the port and host their configuration listens on. */
const HTTP_ROLES = {
  api: (config: OrdoConfig) => ({ port: config.apiPort, host: config.apiHost }),
  ingest: (config: OrdoConfig) => ({ port: config.ingest.port, host: config.ingest.host }),
  deliver: (config: OrdoConfig) => ({ port: config.deliver.port, host: config.deliver.host }),
} as const;

// Defaults from docs/configuration.md, for settings the ConfigMap leaves out.
const DEFAULTS: Record<string, string> = {
  ORDO_METRICS_PORT: '9464',
  ORDO_SHUTDOWN_GRACE_MS: '30000',
  ORDO_TOPIC_PARTITIONS: '6',
  ORDO_GROUP_ID: 'ordo-pipeline',
  ORDO_INPUT_TOPIC: 'usage-events',
};

/** What the downward API gives a pod's env for these fields (a sample pod). */
const FIELD_SAMPLES: Record<string, string> = { 'metadata.name': 'ordo-role-5d8c7b9f4-x2x7q', 'status.podIP': '10.244.1.17' };

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; labels?: Record<string, string> };
}
type LabelSelector = NonNullable<NonNullable<IPodDisruptionBudget['spec']>['selector']>;

// ---- rendering ----

function kustomize(dir: string): string {
  const result = spawnSync('kubectl', ['kustomize', dir], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (result.error && 'code' in result.error && result.error.code === 'ENOENT') {
    throw new Error(
      'kubectl is not installed (needed for `kubectl kustomize`): run `bash scripts/install-tools.sh`, which installs it from Debian',
    );
  }
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${result.stderr}`);
  return result.stdout;
}

function parseObjects(text: string): KubeObject[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('\n'));
    const value = doc.toJS() as unknown;
    return value === null || value === undefined ? [] : [value as KubeObject];
  });
}

class Build {
  constructor(readonly objects: KubeObject[]) {}

  all<T>(kind: string): T[] {
    return this.objects.filter((o) => o.kind === kind) as T[];
  }

  get<T>(kind: string, name: string): T {
    const found = this.objects.find((o) => o.kind === kind && o.metadata?.name === name);
    if (!found) throw new Error(`no ${kind} ${name}`);
    return found as T;
  }

  deployment(role: Role): IDeployment {
    return this.get<IDeployment>('Deployment', `ordo-${role}`);
  }

  /** The environment a container sees: its envFrom ConfigMaps, then its env entries. */
  env(container: IContainer): Map<string, string | undefined> {
    const env = new Map<string, string | undefined>();
    for (const source of container.envFrom ?? []) {
      const ref = source.configMapRef;
      if (!ref?.name) continue;
      const configMap = this.objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === ref.name) as IConfigMap | undefined;
      if (!configMap) {
        if (ref.optional === true) continue;
        throw new Error(`container ${container.name}: envFrom ConfigMap ${ref.name} does not exist`);
      }
      for (const [key, value] of Object.entries(configMap.data ?? {})) env.set(`${source.prefix ?? ''}${key}`, value);
    }
    for (const entry of container.env ?? []) {
      const field = entry.valueFrom?.fieldRef?.fieldPath;
      const value = entry.value ?? (field === undefined ? undefined : FIELD_SAMPLES[field]);
      // As the kubelet does: $(NAME) expands to a variable defined before this one, else stays as written.
      env.set(entry.name, value?.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (text, ref: string) => env.get(ref) ?? text));
    }
    return env;
  }

  setting(container: IContainer, name: string): string {
    const value = this.env(container).get(name) ?? DEFAULTS[name];
    if (value === undefined) throw new Error(`container ${container.name}: ${name} is not set`);
    return value;
  }

  /** The configuration `role` starts with: its container's environment through Ordo's own validation. */
  config(role: Role): OrdoConfig {
    const deployment = this.deployment(role);
    const container = containers(deployment)[0]!;
    const env = Object.fromEntries([...this.env(container)].filter(([, v]) => v !== undefined)) as Record<string, string>;
    return loadConfig(withSecretFiles(this, deployment, env));
  }

  /** The lowest replica count a Deployment runs at: a ScaledObject's minimum, or spec.replicas. */
  minReplicas(deployment: IDeployment): number {
    const scaler = this.all<IScaledObject>('ScaledObject').find((s) => targets(s, deployment));
    if (scaler) return scaler.spec.minReplicaCount ?? 0;
    return deployment.spec?.replicas ?? 1;
  }
}

function targets(scaler: IScaledObject, deployment: IDeployment): boolean {
  const ref = scaler.spec.scaleTargetRef;
  return (ref.kind ?? 'Deployment') === 'Deployment' && ref.name === deployment.metadata?.name;
}

// ---- schema validation ----

// The schema of every apiVersion/kind the manifests may contain. An object of another kind
// fails the test until its model is added here.
const MODELS = new Map<string, { prototype: { validate(): void } }>([
  ['v1/ConfigMap', ConfigMap],
  ['v1/Service', Service],
  ['v1/Secret', Secret],
  ['apps/v1/Deployment', Deployment],
  ['policy/v1/PodDisruptionBudget', PodDisruptionBudget],
  ['monitoring.coreos.com/v1/ServiceMonitor', ServiceMonitor],
  ['monitoring.coreos.com/v1/PrometheusRule', PrometheusRule],
  ['keda.sh/v1alpha1/ScaledObject', ScaledObject],
]);

interface Visited {
  path: string;
  keys: string[];
  read: Set<string>;
  enumerated: boolean;
}

/**
 * A deep copy of `value` whose objects record which keys the schema validator looks at. The
 * compiled validators look up every property their schema names and enumerate the keys of
 * maps (labels, ConfigMap data), so a key never looked up in an object with known properties
 * is a field the schema doesn't have: the unknown-field check of `kubectl apply`.
 */
function track(value: unknown, path: string, visited: Visited[]): unknown {
  if (Array.isArray(value)) return value.map((item, i) => track(item, `${path}[${i}]`, visited));
  if (value === null || typeof value !== 'object') return value;
  const node: Visited = { path, keys: Object.keys(value), read: new Set(), enumerated: false };
  visited.push(node);
  const copy: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) copy[key] = track(child, path === '' ? key : `${path}.${key}`, visited);
  return new Proxy(copy, {
    get(target, key, receiver) {
      if (typeof key === 'string') node.read.add(key);
      return Reflect.get(target, key, receiver) as unknown;
    },
    has(target, key) {
      if (typeof key === 'string') node.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      node.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

function schemaErrors(object: KubeObject): string[] {
  const model = MODELS.get(`${object.apiVersion}/${object.kind}`);
  if (!model) return [`no schema for ${object.apiVersion} ${object.kind}: add its model to MODELS`];
  const visited: Visited[] = [];
  try {
    model.prototype.validate.call(track(object, '', visited));
  } catch (error) {
    return [error instanceof Error ? error.message : String(error)];
  }
  // An object whose schema names no properties (free-form) is looked into by nothing.
  return visited
    .filter((node) => !node.enumerated && node.read.size > 0)
    .flatMap((node) => node.keys.filter((key) => !node.read.has(key)).map((key) => `unknown field ${node.path === '' ? key : `${node.path}.${key}`}`));
}

// ---- helpers ----

/**
 * loadConfig reads the credential files a *_FILE variable names: write each mounted Secret's
 * value to a temporary file and point the variable there. PEM files (CAs, certificates, keys)
 * are left out: the examples hold placeholders, not certificates.
 */
function withSecretFiles(b: Build, deployment: IDeployment, env: Record<string, string>): Record<string, string> {
  const out = { ...env };
  const container = containers(deployment)[0];
  const volumes = deployment.spec?.template.spec?.volumes ?? [];
  const dir = mkdtempSync(path.join(tmpdir(), 'ordo-k8s-secrets-'));
  for (const [name, file] of Object.entries(env)) {
    if (!/^(KAFKA|SCHEMA_REGISTRY)_.*_FILE$/.test(name)) continue;
    if (/_(CA|CERT|KEY)_FILE$/.test(name)) {
      delete out[name];
      continue;
    }
    const mount = container?.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
    const secret = b.get<ISecret>('Secret', volumes.find((v) => v.name === mount?.name)?.secret?.secretName ?? '');
    const key = file.slice(`${mount?.mountPath}/`.length);
    const value = secret.stringData?.[key] ?? Buffer.from(secret.data?.[key] ?? '', 'base64').toString();
    out[name] = path.join(dir, name);
    writeFileSync(out[name], value);
  }
  return out;
}

function selects(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const have = labels ?? {};
  const expressions = selector.matchExpressions ?? [];
  if (Object.keys(selector.matchLabels ?? {}).length === 0 && expressions.length === 0) return false;
  return (
    Object.entries(selector.matchLabels ?? {}).every(([key, value]) => have[key] === value) &&
    expressions.every(({ key, operator, values = [] }) => {
      switch (operator) {
        case 'In':
          return key in have && values.includes(have[key]!);
        case 'NotIn':
          return !(key in have) || !values.includes(have[key]!);
        case 'Exists':
          return key in have;
        case 'DoesNotExist':
          return !(key in have);
        default:
          throw new Error(`unknown selector operator ${operator}`);
      }
    })
  );
}

function podLabels(deployment: IDeployment): Record<string, string> {
  return deployment.spec?.template.metadata?.labels ?? {};
}

function containers(deployment: IDeployment): IContainer[] {
  return deployment.spec?.template.spec?.containers ?? [];
}

/** The container port number a probe or Service targets, by name or number. */
function resolvePort(container: IContainer, port: string | number): number | undefined {
  const ports = container.ports ?? [];
  const found = typeof port === 'number' ? ports.find((p) => p.containerPort === port) : ports.find((p) => p.name === port);
  return found?.containerPort;
}

const QUANTITY_SUFFIXES: Record<string, number> = { m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };

function quantity(value: string | number | undefined): number {
  const match = /^([0-9.]+)(m|k|M|G|Ki|Mi|Gi)?$/.exec(String(value));
  if (!match) throw new Error(`unsupported quantity ${String(value)}`);
  return Number(match[1]) * QUANTITY_SUFFIXES[match[2] ?? '']!;
}

/** How many of `replicas` pods a PodDisruptionBudget lets an eviction take down. */
function disruptionsAllowed(pdb: IPodDisruptionBudget, replicas: number): number {
  const { maxUnavailable, minAvailable } = pdb.spec ?? {};
  const count = (value: string | number, roundUp: boolean): number => {
    if (typeof value === 'number') return value;
    const percent = /^(\d+)%$/.exec(value);
    if (!percent) throw new Error(`bad PodDisruptionBudget value ${value}`);
    const exact = (Number(percent[1]) * replicas) / 100;
    return roundUp ? Math.ceil(exact) : Math.floor(exact);
  };
  if (maxUnavailable !== undefined) return Math.min(replicas, count(maxUnavailable, true));
  if (minAvailable !== undefined) return Math.max(0, replicas - count(minAvailable, true));
  return replicas;
}

// ---- the tests ----

// Rendered once per build, on first use: without kubectl every test fails with the hint.
const builds = new Map<BuildName, Build | Error>();

function build(name: BuildName): Build {
  let found = builds.get(name);
  if (found === undefined) {
    try {
      found = new Build(parseObjects(kustomize(BUILDS[name])));
    } catch (error) {
      found = error instanceof Error ? error : new Error(String(error));
    }
    builds.set(name, found);
  }
  if (found instanceof Error) throw found;
  return found;
}

describe.each(Object.keys(BUILDS) as BuildName[])('k8s %s', (name) => {
  it('renders only objects that match their Kubernetes schema, without unknown fields', () => {
    const objects = build(name).objects;
    expect(objects.length).toBeGreaterThan(0);
    const problems = objects.flatMap((o) => schemaErrors(o).map((error) => `${o.kind} ${o.metadata?.name ?? '?'}: ${error}`));
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('has one Deployment per role running that role, all from the same tagged image', () => {
    const b = build(name);
    const images = new Set<string>();
    for (const role of ROLES) {
      const [container, ...others] = containers(b.deployment(role));
      expect(others, `ordo-${role} runs one container`).toEqual([]);
      expect(container?.args, `ordo-${role} args`).toEqual([role]);
      images.add(container?.image ?? '');
    }
    expect(images.size, `images: ${[...images].join(', ')}`).toBe(1);
    expect([...images][0]).toMatch(/^[^:@]+(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/);
    expect([...images][0]).not.toMatch(/:latest$/);
  });

  it('gives every container CPU and memory requests and limits, with the V8 heap inside the limit', () => {
    const b = build(name);
    for (const deployment of b.all<IDeployment>('Deployment')) {
      for (const container of containers(deployment)) {
        const where = `${deployment.metadata?.name}/${container.name}`;
        const { requests, limits } = container.resources ?? {};
        for (const resource of ['cpu', 'memory']) {
          expect(requests?.[resource], `${where} requests.${resource}`).toBeDefined();
          expect(limits?.[resource], `${where} limits.${resource}`).toBeDefined();
          expect(quantity(requests?.[resource]), `${where} ${resource} request <= limit`).toBeLessThanOrEqual(quantity(limits?.[resource]));
        }
        const heap = /--max-old-space-size=(\d+)/.exec(b.env(container).get('NODE_OPTIONS') ?? '');
        if (heap) expect(Number(heap[1]) * 2 ** 20, `${where} heap`).toBeLessThan(quantity(limits?.memory));
      }
    }
  });

  it('probes /healthz (liveness) and /readyz (readiness) on the metrics port', () => {
    const b = build(name);
    for (const deployment of b.all<IDeployment>('Deployment')) {
      for (const container of containers(deployment)) {
        const where = `${deployment.metadata?.name}/${container.name}`;
        const metricsPort = Number(b.setting(container, 'ORDO_METRICS_PORT'));
        expect(resolvePort(container, 'metrics'), `${where} containerPort "metrics"`).toBe(metricsPort);
        for (const [probe, path] of [
          [container.livenessProbe, '/healthz'],
          [container.readinessProbe, '/readyz'],
        ] as const) {
          expect(probe?.httpGet?.path, `${where} probe path`).toBe(path);
          expect(resolvePort(container, probe?.httpGet?.port ?? -1), `${where} ${path} port`).toBe(metricsPort);
        }
      }
    }
  });

  it('sets ORDO_NODE_ID to the pod name', () => {
    const b = build(name);
    for (const deployment of b.all<IDeployment>('Deployment')) {
      for (const container of containers(deployment)) {
        const entry = container.env?.find((e) => e.name === 'ORDO_NODE_ID');
        expect(entry?.valueFrom?.fieldRef?.fieldPath, `${deployment.metadata?.name}/${container.name}`).toBe('metadata.name');
      }
    }
  });

  it('waits longer than a preStop sleep plus ORDO_SHUTDOWN_GRACE_MS before killing a pod', () => {
    const b = build(name);
    for (const deployment of b.all<IDeployment>('Deployment')) {
      const seconds = deployment.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
      for (const container of containers(deployment)) {
        // The kill deadline runs from the start of the preStop hook; SIGTERM (the drain) follows it.
        const preStop = container.lifecycle?.preStop;
        expect(preStop?.exec ?? preStop?.httpGet ?? preStop?.tcpSocket, `${deployment.metadata?.name}: a preStop hook other than sleep`).toBeUndefined();
        const sleepMs = (preStop?.sleep?.seconds ?? 0) * 1000;
        const graceMs = Number(b.setting(container, 'ORDO_SHUTDOWN_GRACE_MS'));
        expect(seconds * 1000, `${deployment.metadata?.name} terminationGracePeriodSeconds vs preStop sleep + ORDO_SHUTDOWN_GRACE_MS`).toBeGreaterThan(sleepMs + graceMs);
      }
    }
  });

  it('gives the pipeline a writable volume of its own at ORDO_STATE_DIR (persistent task state, docs/state.md)', () => {
    const b = build(name);
    const pipeline = b.deployment('pipeline');
    const container = containers(pipeline)[0]!;
    const dir = b.env(container).get('ORDO_STATE_DIR');
    expect(dir).toBeDefined();
    const mount = container.volumeMounts?.find((m) => m.mountPath === dir);
    expect(mount?.readOnly ?? false).toBe(false);
    // emptyDir: one per pod (a shared directory would let two workers open one task's state).
    const volume = pipeline.spec?.template.spec?.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.emptyDir).toBeDefined();
  });

  it('gives the api a writable emptyDir at ORDO_API_STORE_DIR and advertises its pod IP on its http port', () => {
    const b = build(name);
    const api = b.deployment('api');
    const container = containers(api)[0]!;
    const env = b.env(container);
    const dir = env.get('ORDO_API_STORE_DIR');
    expect(dir).toBeDefined();
    const mount = container.volumeMounts?.find((m) => m.mountPath === dir);
    expect(mount?.readOnly ?? false).toBe(false);
    // One per pod: two replicas must never open one store; a cache of the topic needs no PVC.
    const volume = api.spec?.template.spec?.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.emptyDir).toBeDefined();
    // Other replicas forward queries there: the pod's own IP (defined before it is referenced), the port the api listens on.
    const advertised = new URL(env.get('ORDO_API_ADVERTISED_URL') ?? '');
    expect(advertised.hostname).toBe(FIELD_SAMPLES['status.podIP']);
    const apiPort = b.config('api').apiPort;
    expect(Number(advertised.port)).toBe(apiPort);
    expect(resolvePort(container, 'http')).toBe(apiPort);
  });

  it('mounts the meters file ORDO_METERS_FILE names, from the ConfigMap that mirrors docs/meters.example.yaml', () => {
    const b = build(name);
    for (const deployment of b.all<IDeployment>('Deployment')) {
      const volumes = deployment.spec?.template.spec?.volumes ?? [];
      for (const volume of volumes) {
        if (volume.configMap) expect(() => b.get('ConfigMap', volume.configMap!.name!), `volume ${volume.name}`).not.toThrow();
      }
      for (const container of containers(deployment)) {
        const file = b.env(container).get('ORDO_METERS_FILE');
        if (!file) continue;
        const mount = container.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
        const source = volumes.find((v) => v.name === mount?.name)?.configMap;
        const configMap = b.get<IConfigMap>('ConfigMap', source?.name ?? '');
        expect(Object.keys(configMap.data ?? {}), `${deployment.metadata?.name}: ${file}`).toContain(file.slice(`${mount?.mountPath}/`.length));
      }
    }
    const meters = b.get<IConfigMap>('ConfigMap', 'ordo-meters').data?.['meters.yaml'];
    expect(meters).toBe(readFileSync(`${ROOT}docs/meters.example.yaml`, 'utf8'));
  });

  it.each(Object.keys(HTTP_ROLES))('mounts the tokens file ORDO_API_TOKENS_FILE names into %s from a Secret, as a directory so updates reach the pod', (role) => {
    const b = build(name);
    const deployment = b.deployment(role as Role);
    const container = deployment.spec!.template.spec!.containers[0]!;
    expect(b.setting(container, 'ORDO_API_AUTH')).toBe('token');
    const file = b.setting(container, 'ORDO_API_TOKENS_FILE');
    const mount = container.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
    expect(mount, file).toBeDefined();
    expect(mount?.subPath).toBeUndefined();
    expect(mount?.readOnly).toBe(true);
    const source = deployment.spec!.template.spec!.volumes?.find((v) => v.name === mount?.name)?.secret;
    const secret = b.get<ISecret>('Secret', source?.secretName ?? '');
    const content = secret.stringData?.[file.slice(`${mount!.mountPath}/`.length)];
    expect(content).toBeDefined();
    expect(() => parseTokensFile(content ?? '')).not.toThrow();
  });

  it('gives api, ingest and deliver one tokens file, so a token with several scopes works on each', () => {
    const b = build(name);
    const source = (role: Role) => {
      const deployment = b.deployment(role);
      const container = containers(deployment)[0]!;
      const file = b.setting(container, 'ORDO_API_TOKENS_FILE');
      const mount = container.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
      const secretName = deployment.spec?.template.spec?.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName;
      return { secretName, key: file.slice(`${mount?.mountPath}/`.length) };
    };
    expect(source('ingest')).toEqual(source('api'));
    expect(source('deliver')).toEqual(source('api'));
  });

  it.each(Object.entries(HTTP_ROLES))('serves the %s HTTP port its configuration names, behind a Service', (role, listen) => {
    const b = build(name);
    const deployment = b.deployment(role as Role);
    const container = containers(deployment)[0]!;
    const { port, host } = listen(b.config(role as Role));
    expect(resolvePort(container, 'http'), `ordo-${role}: containerPort "http"`).toBe(port);
    // The kubelet's probes and the Service reach the pod's own address, not its loopback.
    expect(['127.0.0.1', '::1', 'localhost']).not.toContain(host);
    const routed = b
      .all<IService>('Service')
      .filter((s) => s.spec?.clusterIP !== 'None' && selects({ matchLabels: s.spec?.selector }, podLabels(deployment)))
      .filter((s) => (s.spec?.ports ?? []).some((p) => resolvePort(container, p.targetPort ?? p.port) === port));
    expect(routed.map((s) => s.metadata?.name), `Service of ordo-${role}`).toEqual([`ordo-${role}`]);
  });

  // Two pods with one node id: ingest transactional ids are <group>-ingest-<node>-<n>, so they
  // would fence each other; a deliver session id names its owner node and forwarded requests
  // are keyed by node, so both would answer for the same sessions.
  it.each(['ingest', 'deliver'] as const)('runs %s as several replicas, each its own node, rolled without losing capacity', (role) => {
    const b = build(name);
    const deployment = b.deployment(role);
    expect(b.minReplicas(deployment)).toBeGreaterThanOrEqual(2);
    expect(deployment.spec?.strategy?.type ?? 'RollingUpdate').toBe('RollingUpdate');
    expect(deployment.spec?.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
    // The pod name (checked for every role above) is unique per pod.
    expect(containers(deployment)[0]?.env?.find((e) => e.name === 'ORDO_NODE_ID')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    // Two replicas on one node would both go with it.
    const spread = deployment.spec?.template.spec?.topologySpreadConstraints ?? [];
    expect(spread.some((c) => c.topologyKey === 'kubernetes.io/hostname' && selects(c.labelSelector, podLabels(deployment)))).toBe(true);
  });

  it('keeps the deliver\'s worst case (every stream\'s buffer full) and its heap inside its memory limit', () => {
    const b = build(name);
    const container = containers(b.deployment('deliver'))[0]!;
    const { maxStreams, bufferBytes } = b.config('deliver').deliver;
    const heap = /--max-old-space-size=(\d+)/.exec(b.env(container).get('NODE_OPTIONS') ?? '');
    expect(heap, 'ordo-deliver NODE_OPTIONS sets the heap').not.toBeNull();
    const limit = quantity(container.resources?.limits?.memory);
    // A client that does not read is cut off past bufferBytes (an `overflow` event): socket
    // buffers outside the V8 heap never exceed maxStreams x bufferBytes.
    expect(Number(heap![1]) * 2 ** 20 + maxStreams * bufferBytes, `ORDO_DELIVER_MAX_STREAMS x ORDO_DELIVER_BUFFER_BYTES + heap vs limit ${limit}`).toBeLessThan(limit);
  });

  it('gives the deliver longer to drain than a long poll waits after the preStop sleep', () => {
    const b = build(name);
    const deliver = b.deployment('deliver');
    const container = containers(deliver)[0]!;
    const seconds = deliver.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
    const sleepMs = (container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
    // A session read that began just before SIGTERM may wait ORDO_DELIVER_MAX_WAIT_MS for records.
    expect(seconds * 1000).toBeGreaterThan(sleepMs + b.config('deliver').deliver.maxWaitMs);
  });

  it('gives every role an environment its configuration accepts', () => {
    const b = build(name);
    for (const role of ROLES) expect(() => b.config(role), role).not.toThrow();
  });

  it('runs merge as a single replica that is never two at once', () => {
    const b = build(name);
    const merge = b.deployment('merge');
    expect(merge.spec?.replicas).toBe(1);
    expect(merge.spec?.strategy?.type).toBe('Recreate');
    expect(b.all<IScaledObject>('ScaledObject').filter((s) => targets(s, merge))).toEqual([]);
    expect(b.setting(containers(merge)[0]!, 'ORDO_GLOBAL_TOPIC')).toBe('usage-events-global');
  });

  it('covers every Deployment with exactly one PodDisruptionBudget that still lets a drain evict a pod', () => {
    const b = build(name);
    for (const deployment of b.all<IDeployment>('Deployment')) {
      const pdbs = b.all<IPodDisruptionBudget>('PodDisruptionBudget').filter((p) => selects(p.spec?.selector, podLabels(deployment)));
      expect(pdbs.length, `${deployment.metadata?.name}: PodDisruptionBudgets`).toBe(1);
      const replicas = b.minReplicas(deployment);
      expect(disruptionsAllowed(pdbs[0]!, replicas), `${deployment.metadata?.name} at ${replicas} replicas`).toBeGreaterThanOrEqual(1);
    }
  });

  it('points every Service at pods and ports that exist', () => {
    const b = build(name);
    for (const service of b.all<IService>('Service')) {
      const selected = b.all<IDeployment>('Deployment').filter((d) => selects({ matchLabels: service.spec?.selector }, podLabels(d)));
      expect(selected.length, `Service ${service.metadata?.name} selects pods`).toBeGreaterThan(0);
      for (const port of service.spec?.ports ?? []) {
        for (const deployment of selected) {
          const found = containers(deployment).some((c) => resolvePort(c, port.targetPort ?? port.port) !== undefined);
          expect(found, `Service ${service.metadata?.name} port ${port.name} -> ${deployment.metadata?.name}`).toBe(true);
        }
      }
    }
  });

  it('scrapes every role through a metrics Service the ServiceMonitor selects', () => {
    const b = build(name);
    const [monitor, ...others] = b.all<IServiceMonitor>('ServiceMonitor');
    expect(others).toEqual([]);
    expect(monitor).toBeDefined();
    const scraped = b.all<IService>('Service').filter((s) => selects(monitor!.spec.selector, s.metadata?.labels));
    for (const service of scraped) {
      for (const endpoint of monitor!.spec.endpoints) {
        expect(endpoint.port, `ServiceMonitor endpoints name a Service port`).toBeDefined();
        expect(service.spec?.ports?.map((p) => p.name), `Service ${service.metadata?.name} port ${endpoint.port}`).toContain(endpoint.port);
      }
    }
    for (const role of ROLES) {
      const deployment = b.deployment(role);
      const container = containers(deployment)[0]!;
      const metricsPort = Number(b.setting(container, 'ORDO_METRICS_PORT'));
      const covering = scraped.filter(
        (s) =>
          selects({ matchLabels: s.spec?.selector }, podLabels(deployment)) &&
          (s.spec?.ports ?? []).some((p) => monitor!.spec.endpoints.some((e) => e.port === p.name) && resolvePort(container, p.targetPort ?? p.port) === metricsPort),
      );
      expect(covering.map((s) => s.metadata?.name), `metrics Service of ${role}`).toHaveLength(1);
    }
  });
});

describe('k8s alert rules', () => {
  it('ships exactly deploy/prometheus/rules/ordo.rules.yml as a PrometheusRule', () => {
    const [rule, ...others] = build('base').all<IPrometheusRule>('PrometheusRule');
    expect(others).toEqual([]);
    const file = parse(readFileSync(`${ROOT}deploy/prometheus/rules/ordo.rules.yml`, 'utf8')) as { groups: unknown };
    expect(rule?.spec?.groups, 'regenerate with: npx tsx scripts/k8s-prometheus-rule.ts').toEqual(file.groups);
  });
});

describe('k8s keda overlay', () => {
  it('autoscales ordo-pipeline between 1 and ORDO_TOPIC_PARTITIONS replicas and leaves it the replica count', () => {
    const b = build('keda');
    const [scaler, ...others] = b.all<IScaledObject>('ScaledObject');
    expect(others).toEqual([]);
    const pipeline = b.deployment('pipeline');
    expect(targets(scaler!, pipeline)).toBe(true);
    const { minReplicaCount, maxReplicaCount, fallback } = scaler!.spec;
    const partitions = Number(b.setting(containers(pipeline)[0]!, 'ORDO_TOPIC_PARTITIONS'));
    expect(minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(maxReplicaCount).toBeDefined();
    expect(maxReplicaCount).toBeLessThanOrEqual(partitions);
    expect(minReplicaCount).toBeLessThanOrEqual(maxReplicaCount!);
    if (fallback) {
      expect(fallback.replicas).toBeGreaterThanOrEqual(minReplicaCount!);
      expect(fallback.replicas).toBeLessThanOrEqual(maxReplicaCount!);
    }
    // A replica count in the manifest would fight the HorizontalPodAutoscaler on every apply.
    expect(pipeline.spec?.replicas).toBeUndefined();
  });

  it("measures the lag of the workers' own consumer group and input topic", () => {
    const b = build('keda');
    const scaler = b.all<IScaledObject>('ScaledObject')[0]!;
    const pipeline = b.deployment('pipeline');
    const sourceName = scaler.spec.scaleTargetRef.envSourceContainerName;
    const source = containers(pipeline).find((c) => sourceName === undefined || c.name === sourceName);
    expect(source, `envSourceContainerName ${sourceName}`).toBeDefined();
    const env = b.env(source!);
    const group = b.setting(source!, 'ORDO_GROUP_ID');
    expect(scaler.spec.triggers.length).toBeGreaterThan(0);
    for (const trigger of scaler.spec.triggers) {
      const metadata = trigger.metadata as Record<string, string>;
      // *FromEnv parameters name variables of the target container.
      for (const [key, variable] of Object.entries(metadata)) {
        if (key.endsWith('FromEnv')) expect(env.get(variable), `${key}: ${variable}`).toBeTruthy();
      }
      const param = (key: string): string | undefined => {
        const variable = metadata[`${key}FromEnv`];
        return metadata[key] ?? (variable === undefined ? undefined : env.get(variable));
      };
      if (trigger.type === 'kafka') {
        expect(param('consumerGroup')).toBe(group);
        expect(param('topic')).toBe(b.setting(source!, 'ORDO_INPUT_TOPIC'));
        expect(metadata.allowIdleConsumers ?? 'false').toBe('false');
      } else if (trigger.type === 'prometheus') {
        expect(metadata.query).toContain(`group="${group}"`);
      } else {
        throw new Error(`unexpected trigger type ${trigger.type}`);
      }
    }
  });
});

describe('k8s secured overlay', () => {
  it('gives every role its credentials as files from mounted Secrets, and no secret in the environment', () => {
    const b = build('secured');
    for (const role of ROLES) {
      const deployment = b.deployment(role);
      const volumes = deployment.spec?.template.spec?.volumes ?? [];
      for (const container of containers(deployment)) {
        const env = b.env(container);
        expect(env.get('KAFKA_SECURITY_PROTOCOL'), role).toBe('SASL_SSL');
        // Inline secrets would be readable by anyone who can read the ConfigMap or the pod spec.
        for (const name of ['KAFKA_SASL_PASSWORD', 'KAFKA_SSL_KEY_PASSPHRASE', 'KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET', 'SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO', 'SCHEMA_REGISTRY_BEARER_TOKEN']) {
          expect(env.has(name), `${role}: ${name} inline`).toBe(false);
        }
        const files = [...env].filter(([name]) => name.endsWith('_FILE') && /^(KAFKA|SCHEMA_REGISTRY)_/.test(name)).map(([name, value]) => [name, value ?? ''] as const);
        expect(files.map(([name]) => name).sort()).toEqual(['KAFKA_SASL_PASSWORD_FILE', 'KAFKA_SSL_CA_FILE', 'SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE', 'SCHEMA_REGISTRY_CA_FILE']);
        for (const [name, file] of files) {
          const mount = container.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
          expect(mount?.readOnly, `${role}: ${name} mounted read-only`).toBe(true);
          const secretName = volumes.find((v) => v.name === mount?.name)?.secret?.secretName;
          const secret = b.get<ISecret>('Secret', secretName ?? '');
          expect(Object.keys({ ...secret.data, ...secret.stringData }), `${role}: ${name}`).toContain(file.slice(`${mount?.mountPath}/`.length));
        }
      }
      // The image runs as uid/gid 1000: the group-readable Secret files must belong to its group.
      expect(deployment.spec?.template.spec?.securityContext?.fsGroup).toBe(1000);
    }
  });
});
