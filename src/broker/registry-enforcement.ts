// Keeps live connections in step with the registry: a device disabled, removed, moved or given a
// new password loses its connection, and the rest carry their updated identity. It applies the
// same rule authorizePublish applies to each publish (acl.ts recheckIdentity), never its own.
import type { Client } from 'aedes';
import type { Logger } from '../log.js';
import { recheckIdentity } from '../registry/acl.js';
import type { RegistrySnapshot } from '../registry/registry.js';
import type { Hooks } from './hooks.js';

export function enforceRegistry(
  clients: Iterable<Client>,
  next: RegistrySnapshot,
  hooks: Pick<Hooks, 'identityOf' | 'setIdentity'>,
  log: Logger,
): void {
  for (const client of clients) {
    const identity = hooks.identityOf(client);
    if (!identity) continue;
    const current = recheckIdentity(next, identity);
    if (current.allow) {
      hooks.setIdentity(client, current.identity);
    } else {
      log.info(
        { clientId: client.id, reason: current.reason },
        'disconnecting client: registry no longer allows it',
      );
      client.close();
    }
  }
}
