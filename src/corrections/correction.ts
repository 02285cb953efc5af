import type { HeaderValue, Headers } from '../model/records.js';

/** The headers that make an event a correction, on input and on the ordered output alike. */
export const CORRECTION_HEADER = {
  kind: 'ordo-correction',
  source: 'ordo-corrects-source',
  id: 'ordo-corrects-id',
} as const;

export const CORRECTION_KINDS = ['void', 'amend'] as const;
export type CorrectionKind = (typeof CORRECTION_KINDS)[number];

/** What a correction names: its kind and the original `(source, id)`. */
export interface CorrectionTarget {
  kind: CorrectionKind;
  source: string;
  id: string;
}

/** Longest original source or id a correction may name (the api refuses longer path parameters too). */
export const MAX_TARGET_BYTES = 1024;

/**
 * Reads the correction headers: undefined for a plain event, the target for a well-formed
 * correction, or why the headers are malformed (the event is dead-lettered
 * `invalid-correction`). A correction of itself is malformed: it has no original.
 */
export function readCorrection(headers: Headers, own: { source: string; id: string }): CorrectionTarget | string | undefined {
  const kind = headerText(headers[CORRECTION_HEADER.kind]);
  const source = headerText(headers[CORRECTION_HEADER.source]);
  const id = headerText(headers[CORRECTION_HEADER.id]);
  if (kind === undefined && source === undefined && id === undefined) return undefined;
  if (kind === undefined) return `${CORRECTION_HEADER.source}/${CORRECTION_HEADER.id} without ${CORRECTION_HEADER.kind}: a correction says whether it voids or amends`;
  if (!(CORRECTION_KINDS as readonly string[]).includes(kind)) return `${CORRECTION_HEADER.kind} is ${JSON.stringify(kind.slice(0, 40))}, not one of ${CORRECTION_KINDS.join(', ')}`;
  for (const [name, value] of [[CORRECTION_HEADER.source, source], [CORRECTION_HEADER.id, id]] as const) {
    if (value === undefined || value === '') return `a ${kind} needs ${name}: the (source, id) of the event it corrects`;
    if (Buffer.byteLength(value) > MAX_TARGET_BYTES) return `${name} is longer than ${MAX_TARGET_BYTES} bytes`;
  }
  if (source === own.source && id === own.id) return `a ${kind} names itself (${CORRECTION_HEADER.source}/${CORRECTION_HEADER.id} equal its own source and id)`;
  return { kind: kind as CorrectionKind, source: source!, id: id! };
}

/** A header's (last) value as text. */
export function headerText(value: HeaderValue): string | undefined {
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  return last === undefined ? undefined : last.toString();
}
