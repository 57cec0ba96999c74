// The OpenAPI 3.1 description of the research API, served at /openapi.json, and a small readable
// docs page at /docs generated from it (no external assets: labs may run without internet).
export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'Living Lab Gateway research API',
    version: '1',
    description:
      'Readings of a research project: only consenting subjects (from their consent date; withdrawn subjects never), only the project device types, released fields and period, every subject as its per-project pseudonym. Every export is audited.',
  },
  components: {
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'A token from `livinglab tokens issue`' },
    },
    schemas: {
      Error: { type: 'object', properties: { error: { type: 'string' } }, required: ['error'] },
    },
  },
  security: [{ bearer: [] }],
  paths: {
    '/api/v1/dictionary': {
      get: {
        summary:
          'Data dictionary: measurements, fields, units, descriptions, device types and schema versions',
        security: [],
        responses: { '200': { description: 'The dictionary', content: { 'application/json': {} } } },
      },
    },
    '/api/v1/projects/{id}/subjects': {
      get: {
        summary: 'Pseudonyms of the consenting subjects, with their consent date',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '200': { description: 'Subjects' },
          '401': { description: 'Missing, unknown, expired or revoked token' },
          '403': { description: 'Token of another project' },
        },
      },
    },
    '/api/v1/projects/{id}/devices': {
      get: {
        summary: 'Device types per pseudonym (no device ids)',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '200': { description: 'Devices' },
          '401': { description: 'Bad token' },
          '403': { description: 'Token of another project' },
        },
      },
    },
    '/api/v1/projects/{id}/readings': {
      get: {
        summary: 'Readings, raw or aggregated, streamed',
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
          {
            name: 'type',
            in: 'query',
            required: true,
            schema: { type: 'string' },
            description: 'A device type of the project',
          },
          {
            name: 'fields',
            in: 'query',
            schema: { type: 'string' },
            description: 'Comma-separated released fields (default: all released)',
          },
          {
            name: 'from',
            in: 'query',
            schema: { type: 'string', format: 'date-time' },
            description: 'Start (clipped to the project period)',
          },
          {
            name: 'to',
            in: 'query',
            schema: { type: 'string', format: 'date-time' },
            description: 'End, exclusive (clipped to the project period)',
          },
          {
            name: 'every',
            in: 'query',
            schema: { type: 'string', pattern: '^[1-9][0-9]{0,3}(m|h|d)$' },
            description: 'Aggregation window, with fn',
          },
          {
            name: 'fn',
            in: 'query',
            schema: { enum: ['mean', 'min', 'max', 'count', 'last'] },
            description: 'Aggregate, with every',
          },
          {
            name: 'format',
            in: 'query',
            schema: { enum: ['csv', 'ndjson', 'json', 'arrow'], default: 'csv' },
          },
        ],
        responses: {
          '200': {
            description:
              'Rows: time (RFC 3339 UTC), subject (pseudonym), then the fields; ordered by time, then pseudonym',
            headers: {
              'X-Livinglab-Export': {
                description: "This export's id in the audit log",
                schema: { type: 'string' },
              },
            },
            content: {
              'text/csv': {},
              'application/x-ndjson': {},
              'application/json': {},
              'application/vnd.apache.arrow.stream': {},
            },
          },
          '400': {
            description: 'A bad parameter, with a readable message',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
          '401': { description: 'Missing, unknown, expired or revoked token' },
          '403': { description: 'Token of another project' },
        },
      },
    },
  },
} as const;

const esc = (s: string) =>
  s.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c] as string);

export function renderDocsPage(): string {
  const sections = Object.entries(OPENAPI.paths).map(([path, ops]) => {
    const op = ops.get as {
      summary: string;
      parameters?: readonly { name: string; in: string; description?: string; required?: boolean }[];
    };
    const params = (op.parameters ?? [])
      .map(
        (p) =>
          `<li><code>${esc(p.name)}</code> (${p.in}${p.required ? ', required' : ''})${p.description ? `: ${esc(p.description)}` : ''}</li>`,
      )
      .join('');
    return `<h2><code>GET ${esc(path)}</code></h2><p>${esc(op.summary)}</p>${params ? `<ul>${params}</ul>` : ''}`;
  });
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(OPENAPI.info.title)}</title>
<style>body{font-family:sans-serif;max-width:50rem;margin:2rem auto;line-height:1.5}code{background:#f3f3f3;padding:0 .2em}</style></head>
<body><h1>${esc(OPENAPI.info.title)}</h1><p>${esc(OPENAPI.info.description)}</p>
<p>Send <code>Authorization: Bearer TOKEN</code>. Machine-readable description: <a href="/openapi.json">/openapi.json</a>.</p>
${sections.join('\n')}</body></html>
`;
}
