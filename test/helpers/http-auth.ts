// Staff tokens for tests of the HTTP views that need one: issued through the same registry edit the
// CLI uses, and waited for until the running gateway has reloaded them. It never sends a request.
import { issueStaffToken } from '../../src/registry/staff-tokens.js';
import type { TestGateway } from './gateway.js';
import { eventually } from './mqtt.js';

/** Issues a staff token named `name` (valid a day) and resolves its clear form once the gateway knows it. */
export async function issueStaff(gw: TestGateway, name: string): Promise<string> {
  let token = '';
  await gw.editRegistry((data) => {
    const issued = issueStaffToken(data, { name, expires: new Date(Date.now() + 86_400_000) });
    token = issued.token;
    return issued.data;
  });
  await eventually(
    async () => gw.app.registry.current().data.staffTokens.some((t) => token.startsWith(`ll_${t.id}_`)),
    (known) => known,
  );
  return token;
}
