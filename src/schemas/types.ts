// What a loaded device schema looks like to the rest of the gateway.
import type { ValidateFunction } from 'ajv';
import type { ReadingChannel } from '../registry/topics.js';
import type { FieldCodes } from './codes.js';

export type FieldKind = 'integer' | 'float' | 'boolean' | 'string';
/** The topic channels that carry readings, so the ones a schema can name (registry/topics.ts owns the list). */
export type { ReadingChannel };

export interface FieldSpec {
  readonly name: string;
  readonly kind: FieldKind;
  readonly unit?: string;
  readonly description?: string;
  /** Clinical codes (`x-loinc`, `x-mdc`, `x-npu`); a field without them stays out of FHIR exports. */
  readonly codes?: FieldCodes;
}

export interface TimeseriesMapping {
  readonly measurement: string;
  readonly time: string;
  readonly tags: readonly string[];
  readonly fields: readonly FieldSpec[];
}

export interface DeviceSchema {
  /** `pulse-oximeter@1`, as reported in rejection feedback. */
  readonly key: string;
  readonly type: string;
  readonly version: number;
  readonly file: string;
  readonly title: string;
  readonly description: string;
  /** The topic channel this schema's messages arrive on. */
  readonly channel: ReadingChannel;
  readonly timeseries: TimeseriesMapping;
  readonly validate: ValidateFunction;
  readonly examples: readonly unknown[];
}

export interface SchemaSet {
  readonly dir: string;
  /** `get('pulse-oximeter', 1)` */
  get(type: string, version: number): DeviceSchema | undefined;
  latest(type: string): DeviceSchema | undefined;
  all(): readonly DeviceSchema[];
}
