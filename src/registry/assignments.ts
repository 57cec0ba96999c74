// Who had a device when: a device's subject assignments, each from a start (none: since the device
// was registered) to an end (none: still assigned). A reading belongs to the assignment that covers
// its own timestamp, never to the device's assignment when the message arrives, so a device that
// flushes a buffer after a move cannot hand one resident's readings to the next (issue 13 #4).
// Assignments never overlap; moving a device closes the open one and opens the next, and never
// rewrites a recorded period.
import type { Assignment, Device } from './types.js';

// RFC 3339 date-time with an explicit offset: an assignment time must not depend on the lab's zone.
export const ASSIGNMENT_TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/i;

/** Milliseconds since the epoch, or undefined when the text is not an RFC 3339 date-time. */
export function parseAssignmentTime(text: string): number | undefined {
  if (!ASSIGNMENT_TIME_RE.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

interface Span {
  readonly subject: string;
  readonly fromMs: number;
  readonly toMs: number;
}

const toSpan = (a: Assignment): Span => ({
  subject: a.subject,
  fromMs: a.from === undefined ? Number.NEGATIVE_INFINITY : (parseAssignmentTime(a.from) ?? Number.NaN),
  toMs: a.to === undefined ? Number.POSITIVE_INFINITY : (parseAssignmentTime(a.to) ?? Number.NaN),
});

// Parsed once per Device object; a registry reload replaces the objects, and old entries are collected.
const spans = new WeakMap<Device, readonly Span[]>();

/**
 * The participant code of the assignment covering `ms` (start inclusive, end exclusive), or
 * undefined when the device was unassigned then. Runs for every reading: no allocation once parsed.
 */
export function subjectAt(device: Device, ms: number): string | undefined {
  let list = spans.get(device);
  if (!list) {
    list = device.assignments.map(toSpan);
    spans.set(device, list);
  }
  for (const s of list) if (ms >= s.fromMs && ms < s.toMs) return s.subject;
  return undefined;
}

/** A problem with one assignment of a list: its index and what a technician should know. */
export interface AssignmentProblem {
  readonly index: number;
  readonly message: string;
}

const describeAssignment = (a: Assignment) => `${a.subject} (${a.from ?? 'no start'} – ${a.to ?? 'open'})`;

/** Checks a device's assignments: valid times, start before end, no two periods overlapping. */
export function checkAssignments(list: readonly Assignment[]): AssignmentProblem | undefined {
  const parsed = list.map(toSpan);
  for (const [index, s] of parsed.entries()) {
    const a = list[index] as Assignment;
    if (Number.isNaN(s.fromMs) || Number.isNaN(s.toMs))
      return {
        index,
        message: `${a.subject}: from and to must be RFC 3339 times such as 2026-03-01T12:00:00Z`,
      };
    if (s.fromMs >= s.toMs)
      return { index, message: `${a.subject}: from ${a.from} is not before to ${a.to}` };
    for (let j = 0; j < index; j++) {
      const o = parsed[j] as Span;
      if (s.fromMs < o.toMs && o.fromMs < s.toMs) {
        return {
          index,
          message: `assignment ${describeAssignment(a)} overlaps ${describeAssignment(list[j] as Assignment)}; a device has one subject at a time`,
        };
      }
    }
  }
  return undefined;
}

/** The assignment still open (no end), if any. */
export function openAssignment(device: Device): Assignment | undefined {
  return device.assignments.find((a) => a.to === undefined);
}
