import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { load } from 'js-yaml';
import { resolveSchema, specSchema, type JsonSchema } from '../../../common/spec';

const ROOT = join(__dirname, '../../../..');
const EXAMPLES = ['train.drover.yaml', 'nightly.drover.yaml', 'gpu-sweep.drover.yaml'];

describe('the published JSON Schema', () => {
  it('is the file package.json contributes to YAML tools', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { contributes: { yamlValidation: { fileMatch: string[]; url: string }[] } };
    const [contribution] = manifest.contributes.yamlValidation;
    assert.deepEqual(contribution!.fileMatch, ['*.drover.yaml', '*.drover.yml', 'drover.yaml']);
    assert.deepEqual(JSON.parse(readFileSync(join(ROOT, contribution!.url), 'utf8')), specSchema);
  });

  it('documents every field with a description and examples, which hover and completion show', () => {
    const undocumented: string[] = [];
    const visit = (schema: JsonSchema, path: string): void => {
      for (const [name, raw] of Object.entries(schema.properties ?? {})) {
        const field = resolveSchema(raw);
        if (!field.description) undocumented.push(`${path}.${name}: description`);
        if (!field.examples && !field.enum) undocumented.push(`${path}.${name}: examples`);
        visit(field, `${path}.${name}`);
      }
      if (typeof schema.additionalProperties === 'object') visit(resolveSchema(schema.additionalProperties), `${path}.*`);
      for (const alternative of schema.oneOf ?? []) visit(resolveSchema(alternative), path);
    };
    for (const [name, definition] of Object.entries((specSchema as { definitions: Record<string, JsonSchema> }).definitions)) visit(definition, name);
    assert.deepEqual(undocumented, []);
  });

  it('validates Drover files with a standard JSON Schema validator (Ajv)', () => {
    const validate = new Ajv({ strict: false, allErrors: true }).compile(specSchema);
    for (const file of EXAMPLES) {
      const spec = load(readFileSync(join(ROOT, 'examples', file), 'utf8'));
      assert.ok(validate(spec), `${file}: ${JSON.stringify(validate.errors)}`);
    }
    assert.equal(validate({ run: 'x', resurces: { gpus: 1 } }), false);
    assert.equal(validate({ run: 'x', resources: { memory: '16 bananas' } }), false);
    assert.equal(validate({ run: 'x', resources: { gpus: 'A100:2' }, timeout: '1h30m' }), true);
    assert.equal(validate({ jobs: { a: { run: 'x', needs: ['b'] }, b: { run: 'y' } } }), true);
    assert.equal(validate({ jobs: { a: { run: 'x', bogus: 1 } } }), false);
  });
});
