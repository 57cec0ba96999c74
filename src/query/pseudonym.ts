// Per-project pseudonyms: HMAC-SHA256 of the subject code with the project's secret. Stable within
// a project, unlinkable across projects (different keys), and not reversible without the key.
import { createHmac } from 'node:crypto';

export function pseudonym(projectSecretHex: string, subject: string): string {
  return `s-${createHmac('sha256', Buffer.from(projectSecretHex, 'hex')).update(subject, 'utf8').digest('hex').slice(0, 20)}`;
}
