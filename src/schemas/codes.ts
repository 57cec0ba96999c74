// Clinical codes of a schema field (`x-loinc`, `x-mdc`, `x-npu`) and its UCUM unit: the form each
// code system publishes, checked when the schemas load, so a typo is a start-up error naming the
// file rather than a FHIR export that a health system files under the wrong quantity. It checks the
// form (LOINC check digit, MDC partition and term, NPU number), never whether a code exists: that
// is the schema author's job, with the tables cited in docs/clinical-codes.md. Pure.

/** Code system URIs as FHIR R4 names them (docs/clinical-codes.md cites each). */
export const CODE_SYSTEMS = {
  loinc: 'http://loinc.org',
  mdc: 'urn:iso:std:iso:11073:10101',
  npu: 'urn:oid:1.2.208.176.2.1',
  ucum: 'http://unitsofmeasure.org',
} as const;

/** The codes of one field; `loinc[0]` is the primary code (DK Core requires one). */
export interface FieldCodes {
  readonly loinc: readonly string[];
  readonly mdc?: string;
  readonly npu?: string;
}

/**
 * UCUM codes the schemas use, with the human-readable unit FHIR's Quantity.unit carries. A coded
 * field must have one of these as its `x-unit`: a unit outside the table cannot be checked here.
 */
export const UCUM_UNITS: Readonly<Record<string, string>> = {
  '%': '%',
  '/min': '/min',
  'mm[Hg]': 'mmHg',
  kg: 'kg',
  g: 'g',
  Cel: '°C',
  s: 's',
  lx: 'lx',
  '[ppm]': 'ppm',
  '1': '1',
  cm: 'cm',
  'kg/m2': 'kg/m²',
  'mmol/L': 'mmol/L',
  'mg/dL': 'mg/dL',
};

const LOINC = /^([1-9]\d{0,6})-(\d)$/;
const NPU = /^(NPU|DNK)\d{5}$/;
const MDC = /^[1-9]\d{0,9}$/;

/**
 * The LOINC check digit (mod 10, as LOINC's users' guide gives it): the digits in odd positions
 * from the right, read as a number and doubled, written before those in even positions; the digits
 * of that are summed, and the check digit takes the sum up to the next multiple of ten.
 */
export function loincCheckDigit(num: string): number {
  const rev = [...num].reverse();
  const odd = rev.filter((_, i) => i % 2 === 0).join('');
  const even = rev.filter((_, i) => i % 2 === 1).join('');
  const digits = `${even}${String(Number(odd) * 2)}`;
  const sum = [...digits].reduce((a, d) => a + Number(d), 0);
  return (10 - (sum % 10)) % 10;
}

/** Why a LOINC code is malformed, or undefined when it is well-formed. */
export function checkLoinc(code: string): string | undefined {
  const m = LOINC.exec(code);
  if (!m) return `LOINC code "${code}" must look like 8867-4 (number, dash, check digit)`;
  const expected = loincCheckDigit(m[1] as string);
  if (expected !== Number(m[2]))
    return `LOINC code "${code}" has a wrong check digit (expected ${m[1]}-${expected}): a typo?`;
  return undefined;
}

/**
 * Why an MDC code is malformed. MDC codes are written as the 32-bit code, partition × 65536 + term
 * code (150456 = partition 2, term 19384 = MDC_PULS_OXIM_SAT_O2), as the PHD guide and DK Core do.
 */
export function checkMdc(code: string): string | undefined {
  if (!MDC.test(code)) return `MDC code "${code}" must be the 32-bit code in decimal, e.g. "150456"`;
  const n = Number(code);
  const partition = Math.floor(n / 65536);
  if (n > 0xffffffff || partition === 0 || n % 65536 === 0)
    return `MDC code "${code}" is not partition × 65536 + term code (e.g. 150456 = 2 × 65536 + 19384)`;
  return undefined;
}

export function checkNpu(code: string): string | undefined {
  return NPU.test(code) ? undefined : `NPU code "${code}" must look like NPU03011 (or DNK05472)`;
}

/**
 * Reads and checks the codes of one (resolved) property schema: undefined when it has none, the
 * codes when they are well-formed, a message otherwise. `kind` and `unit` are the field's.
 */
export function readFieldCodes(
  prop: Record<string, unknown>,
  kind: string,
  unit: string | undefined,
): FieldCodes | string | undefined {
  const loinc = prop['x-loinc'];
  const mdc = prop['x-mdc'];
  const npu = prop['x-npu'];
  if (loinc === undefined && mdc === undefined && npu === undefined) return undefined;
  if (loinc === undefined)
    return 'x-mdc and x-npu need an x-loinc next to them: DK Core Basic Observation requires a LOINC code';
  const loincs = Array.isArray(loinc) ? loinc : [loinc];
  if (loincs.length === 0 || loincs.some((c) => typeof c !== 'string'))
    return 'x-loinc must be a LOINC code or a non-empty list of them';
  for (const c of loincs as string[]) {
    const why = checkLoinc(c);
    if (why) return why;
  }
  if (mdc !== undefined && (typeof mdc !== 'string' || checkMdc(mdc)))
    return typeof mdc === 'string' ? (checkMdc(mdc) as string) : 'x-mdc must be a string, e.g. "150456"';
  if (npu !== undefined && (typeof npu !== 'string' || checkNpu(npu)))
    return typeof npu === 'string' ? (checkNpu(npu) as string) : 'x-npu must be a string, e.g. "NPU03011"';
  if (kind !== 'integer' && kind !== 'float')
    return 'only numeric fields can carry codes (a FHIR valueQuantity is a number)';
  if (unit === undefined || UCUM_UNITS[unit] === undefined)
    return `a coded field needs an x-unit in UCUM that the gateway knows (${Object.keys(UCUM_UNITS).join(', ')})`;
  return {
    loinc: loincs as string[],
    ...(typeof mdc === 'string' ? { mdc } : {}),
    ...(typeof npu === 'string' ? { npu } : {}),
  };
}
