// The readings parameters' schema and its 400 messages: what a researcher reads for each kind of
// mistake, and that the time syntax the API always took is still taken.
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { describeParamError, type ParamError, READINGS_PARAMS } from '../../src/query/readings-params.js';
import { addProject } from '../../src/registry/research.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';

const project = addProject(EMPTY_REGISTRY, {
  id: 'sleep',
  from: '2026-01-01',
  to: '2026-12-31',
  types: ['bed-sensor', 'pulse-oximeter'],
}).projects[0];
const validate = new Ajv({ useDefaults: true, removeAdditional: false }).compile(READINGS_PARAMS);
const messageFor = (params: Record<string, unknown>) => {
  if (!project) throw new Error('no project');
  return validate({ ...params })
    ? undefined
    : describeParamError(validate.errors?.[0] as ParamError, project);
};

describe('readings parameters', () => {
  it.each([
    [{}, 'type is required: one of bed-sensor, pulse-oximeter'],
    [{ type: ['bed-sensor', 'bed-sensor'] }, 'type must be given once'],
    [{ type: 'bed-sensor', format: 'constructor' }, 'format must be one of csv, ndjson, json, arrow, fhir'],
    [{ type: 'bed-sensor', fn: 'sum' }, 'fn must be one of mean, min, max, count, last'],
    [{ type: 'bed-sensor', every: '1h); DROP' }, 'every must look like 15m, 1h or 1d'],
    [
      { type: 'bed-sensor', from: '2026-03-01' },
      'from must be an RFC 3339 time such as 2026-03-01T00:00:00Z',
    ],
    [{ type: 'bed-sensor', to: 'yesterday' }, 'to must be an RFC 3339 time such as 2026-03-01T00:00:00Z'],
    [
      { type: 'bed-sensor', limit: '10' },
      'unknown parameter "limit"; allowed: type, fields, tags, from, to, every, fn, order, precision, include, format',
    ],
    [{ type: 'bed-sensor', order: 'device' }, 'order must be one of time, subject'],
    [{ type: 'bed-sensor', precision: 'ps' }, 'precision must be one of s, ms, us, ns'],
    [{ type: 'bed-sensor', include: 'everything' }, 'include must be one of simulated'],
  ])('answers %j with "%s"', (params, message) => {
    expect(messageFor(params)).toBe(message);
  });

  it('takes times with or without seconds and an offset, and fills in format=csv', () => {
    const params: Record<string, unknown> = {
      type: 'bed-sensor',
      from: '2026-03-01T00:00Z',
      to: '2026-03-02T00:00:00.123456789+02:00',
    };
    expect(messageFor(params)).toBeUndefined();
    expect(validate(params) && params.format).toBe('csv');
  });
});
