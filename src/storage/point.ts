// The Point: one InfluxDB row as the gateway builds it from a device schema. Field values carry
// their kind, so an integer is always written as an integer and a float always as a float,
// whatever the JSON number looked like (docs/architecture.md, Pitfalls: node-influx writes every
// number as a float).

export type FieldValue =
  | { readonly kind: 'integer'; readonly value: number }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'boolean'; readonly value: boolean }
  | { readonly kind: 'string'; readonly value: string };

export interface Point {
  readonly measurement: string;
  /** Tag name → value; values are never empty and never contain control characters. */
  readonly tags: Readonly<Record<string, string>>;
  readonly fields: Readonly<Record<string, FieldValue>>;
  /** Nanoseconds since the Unix epoch, as a decimal string (beyond Number's exact range). */
  readonly timestampNs: string;
}
