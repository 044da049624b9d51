// Validates docs/asyncapi.yaml with the reference AsyncAPI parser (run by .ci/run).
// Usage: node docs/validate-asyncapi.mjs <node_modules dir with @asyncapi/parser>
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';

const modules = process.argv[2];
const require = createRequire(resolve(modules, 'noop.js'));
const { Parser, fromFile } = require('@asyncapi/parser');

const parser = new Parser();
const file = resolve('docs/asyncapi.yaml');
const { document, diagnostics } = await fromFile(parser, file).parse();
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  console.log(`${['error', 'warning', 'info', 'hint'][d.severity]}: ${d.message} at ${d.path.join('.')}`);
}
if (!document || errors.length > 0) {
  console.error(`asyncapi: ${errors.length} error(s) in ${file}`);
  process.exit(1);
}
console.log(`asyncapi: ${file} is valid (${document.messages().length} messages, ${document.channels().length} channels)`);
