// Per-project pseudonyms: HMAC-SHA256 of the subject code with the project's secret. Stable within
// a project, unlinkable across projects (different keys), and not reversible without the key.
// Devices get their own (devicePseudonym), so a researcher can tell two devices apart without ids.
import { createHmac } from 'node:crypto';
import { GatewayError } from '../errors.js';

export function pseudonym(projectSecretHex: string, subject: string): string {
  // A project whose key was lost from the secrets file has '': an HMAC with an empty key would hand
  // out pseudonyms unlike every earlier export. Access refuses such a project first (query/access.ts).
  if (!projectSecretHex)
    throw new GatewayError('LL_SECRET_MISSING', 'no pseudonymisation secret for this project');
  return `s-${createHmac('sha256', Buffer.from(projectSecretHex, 'hex')).update(subject, 'utf8').digest('hex').slice(0, 20)}`;
}

/**
 * Per-project device pseudonyms, so a researcher can tell two devices of one subject apart without
 * learning device ids. Same key as the subjects', but a separate input space (`device:`), so a
 * device id equal to a participant code never shares its pseudonym.
 */
export function devicePseudonym(projectSecretHex: string, deviceId: string): string {
  if (!projectSecretHex)
    throw new GatewayError('LL_SECRET_MISSING', 'no pseudonymisation secret for this project');
  return `d-${createHmac('sha256', Buffer.from(projectSecretHex, 'hex')).update(`device:${deviceId}`, 'utf8').digest('hex').slice(0, 20)}`;
}
