// Segment files: their names, the file seam every segment and folder handle goes through (tests
// inject disk faults there), and the in-memory view of one segment. Never decides what a segment
// holds (record.ts) or when one may go (index.ts).

export const SEGMENT_NAME = /^(\d{20})\.seg$/;

/** The part of node:fs/promises FileHandle the spool uses. */
export interface SpoolFile {
  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  truncate(length: number): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export type OpenFile = (path: string, flags: number | string, mode?: number) => Promise<SpoolFile>;

export interface Segment {
  id: number;
  path: string;
  /** Bytes of whole records counted in it: nothing past this is ever read or kept. */
  size: number;
}

export const segmentName = (id: number) => `${String(id).padStart(20, '0')}.seg`;
export const segmentId = (name: string) => Number(SEGMENT_NAME.exec(name)?.[1]);
export const errText = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;
