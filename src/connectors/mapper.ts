import type { ConnectorDescriptor } from './descriptor.js';
import { type ConnectorCloudEvent, mapPayload } from './map-payload.js';

/** One payload of a request that does not fit its connector. */
export interface PayloadError {
  index: number;
  path: string;
  message: string;
}

export type MappedPayloads = { ok: true; events: ConnectorCloudEvent[] } | { ok: false; errors: PayloadError[] };

/**
 * The ingest role's view of the loaded connectors (`POST /v1/connectors/<name>`): a request's
 * payloads to CloudEvents, all or nothing, every misfit reported with its index; undefined
 * when there is no connector of that name.
 */
export function connectorMapper(connectors: ReadonlyMap<string, ConnectorDescriptor>): (name: string, payloads: readonly unknown[]) => MappedPayloads | undefined {
  return (name, payloads) => {
    const descriptor = connectors.get(name);
    if (!descriptor) return undefined;
    const events: ConnectorCloudEvent[] = [];
    const errors: PayloadError[] = [];
    payloads.forEach((payload, index) => {
      const result = mapPayload(descriptor, payload);
      if (result.ok) events.push(result.event);
      else errors.push({ index, path: result.path, message: result.message });
    });
    return errors.length === 0 ? { ok: true, events } : { ok: false, errors };
  };
}
