import { describe, expect, it } from 'vitest';
import {
  createFeedbackBudget,
  MAX_FEEDBACK_BYTES,
  MAX_FEEDBACK_ERRORS,
  MAX_FEEDBACK_REJECTIONS,
  toFeedback,
} from '../../src/ingest/feedback.js';
import type { Rejection } from '../../src/ingest/record.js';

const at = new Date('2026-11-22T10:00:00.123Z');
const topic = 'lab/odense/pulse-oximeter/ox-0001/telemetry';
const bad = (index: number, errors = 1): Rejection => ({
  reason: 'schema',
  errors: Array.from({ length: errors }, (_, i) => ({ path: `/f${i}`, message: 'is required' })),
  readingIndex: index,
  schema: 'pulse-oximeter@1',
});

describe('toFeedback', () => {
  it('answers one rejection with exactly the message docs/architecture.md documents', () => {
    expect(toFeedback(topic, at, [bad(0)])).toEqual({
      receivedAt: '2026-11-22T10:00:00.123Z',
      topic,
      reason: 'schema',
      errors: [{ path: '/f0', message: 'is required' }],
      readingIndex: 0,
      schema: 'pulse-oximeter@1',
    });
  });

  it('answers 1,000 rejections with one message listing the first 20, each with at most 5 errors', () => {
    const all = Array.from({ length: 1000 }, (_, i) => bad(i, 8));
    const msg = toFeedback(topic, at, all);
    expect(msg).toMatchObject({ reason: 'schema', readingIndex: 0, rejectionCount: 1000 });
    expect(msg.errors).toHaveLength(8);
    expect(msg.rejections).toHaveLength(MAX_FEEDBACK_REJECTIONS);
    expect(msg.rejectionsOmitted).toBe(1000 - MAX_FEEDBACK_REJECTIONS);
    expect(msg.rejections?.[19]).toEqual({
      reason: 'schema',
      readingIndex: 19,
      errors: all[19]?.errors.slice(0, MAX_FEEDBACK_ERRORS),
      errorsOmitted: 8 - MAX_FEEDBACK_ERRORS,
    });
    expect(JSON.stringify(msg).length).toBeLessThan(8192);
  });

  it('keeps the worst batch under MAX_FEEDBACK_BYTES by listing fewer rejections, then fewer errors', () => {
    // 20 errors a reading (validate's cap), each with a 200-character path and a 120-character value.
    const long = (index: number): Rejection => ({
      reason: 'schema',
      errors: Array.from({ length: 20 }, (_, i) => ({
        path: `/${'p'.repeat(198)}${i}`,
        message: 'is not a property of this device type',
        value: 'v'.repeat(120),
      })),
      readingIndex: index,
      schema: 'pulse-oximeter@1',
    });
    const batch = toFeedback(
      topic,
      at,
      Array.from({ length: 1000 }, (_, i) => long(i)),
    );
    expect(Buffer.byteLength(JSON.stringify(batch))).toBeLessThanOrEqual(MAX_FEEDBACK_BYTES);
    expect(batch.rejectionCount).toBe(1000);
    expect((batch.rejections?.length ?? 0) + (batch.rejectionsOmitted ?? 0)).toBe(1000);
    expect(batch.errors.length + (batch.errorsOmitted ?? 0)).toBe(20);
    const single = toFeedback(topic, at, [long(0)]);
    expect(Buffer.byteLength(JSON.stringify(single))).toBeLessThanOrEqual(MAX_FEEDBACK_BYTES);
    expect(single.errors.length + (single.errorsOmitted ?? 0)).toBe(20);
  });
});

describe('createFeedbackBudget', () => {
  it('lets a burst through, then one message per 1/rate, and counts the rest as "rate"', () => {
    let now = 0;
    const budget = createFeedbackBudget({ perMinute: 60, burst: 3, isBackedUp: () => false, now: () => now });
    expect([1, 2, 3, 4].map(() => budget.take('ox-1'))).toEqual([true, true, true, false]);
    // Another device has its own bucket.
    expect(budget.take('ox-2')).toBe(true);
    now += 1000;
    expect([budget.take('ox-1'), budget.take('ox-1')]).toEqual([true, false]);
    expect(budget.stats).toEqual({ sent: 5, dropped: { rate: 2, backlog: 0 } });
  });

  it('drops feedback for a backed-up connection as "backlog" without spending the budget', () => {
    let backedUp = true;
    const budget = createFeedbackBudget({
      perMinute: 60,
      burst: 1,
      isBackedUp: () => backedUp,
      now: () => 0,
    });
    expect(budget.take('ox-1')).toBe(false);
    backedUp = false;
    expect(budget.take('ox-1')).toBe(true);
    expect(budget.stats.dropped).toEqual({ rate: 0, backlog: 1 });
  });
});
