import assert from 'node:assert/strict';
import { isSecretName, REDACTED, redactEnv } from '../../../runner/src/records/reproduction';

describe('redactEnv', () => {
  it('hides the values of secret-looking names and keeps the others', () => {
    const env = {
      HF_TOKEN: 'hf_abc',
      WANDB_API_KEY: 'k1',
      AWS_SECRET_ACCESS_KEY: 'k2',
      AWS_ACCESS_KEY_ID: 'AKIA',
      CUDA_VISIBLE_DEVICES: '0,1',
      PATH: '/usr/bin',
      LR: '0.1',
    };
    assert.deepEqual(redactEnv(env), {
      HF_TOKEN: REDACTED,
      WANDB_API_KEY: REDACTED,
      AWS_SECRET_ACCESS_KEY: REDACTED,
      AWS_ACCESS_KEY_ID: REDACTED,
      CUDA_VISIBLE_DEVICES: '0,1',
      PATH: '/usr/bin',
      LR: '0.1',
    });
    assert.equal(env.HF_TOKEN, 'hf_abc', 'the input is not changed');
  });

  it('matches every documented pattern, in any case', () => {
    for (const name of [
      'GITHUB_TOKEN', 'GH_TOKEN', 'NPM_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'token', 'Refresh_Token', 'MYTOKEN',
      'CLIENT_SECRET', 'secret', 'DB_PASSWORD', 'PGPASSWORD', 'MYSQL_PASSWD', 'GPG_PASSPHRASE',
      'OPENAI_API_KEY', 'APIKEY', 'api_key', 'MINIO_ACCESS_KEY', 'SSH_PRIVATE_KEY', 'GOOGLE_APPLICATION_CREDENTIALS',
      'AZURE_CREDENTIAL', 'AUTH', 'BASIC_AUTH', 'OAUTH_CLIENT', 'HTTP_AUTHORIZATION', 'AUTHENTICATION', 'STRIPE_KEY',
      'SSH_KEY', 'ENCRYPTION_KEYS', 'KEY', 'signing.key', 'deploy-key',
    ]) {
      assert.ok(isSecretName(name), `${name} should be redacted`);
    }
  });

  it('keeps common harmless settings that merely contain a pattern word', () => {
    for (const name of [
      'TOKENIZERS_PARALLELISM', 'GIT_AUTHOR_NAME', 'GIT_AUTHOR_EMAIL', 'CERT_AUTHORITY', 'KEY_PATH', 'KEYBOARD',
      'MONKEY', 'CUDA_VISIBLE_DEVICES', 'PYTHONHASHSEED', 'OMP_NUM_THREADS', 'HOME', 'PWD',
    ]) {
      assert.ok(!isSecretName(name), `${name} should be kept`);
    }
  });

  it('copies odd names as plain data', () => {
    const env = JSON.parse('{"__proto__": "x", "constructor": "y"}') as Record<string, string>;
    const redacted = redactEnv(env);
    assert.deepEqual(Object.keys(redacted), ['__proto__', 'constructor']);
    assert.equal(Object.getPrototypeOf(redacted), Object.prototype);
    assert.equal(redacted['constructor'], 'y');
  });

  it('redacts empty values too, and handles an empty env', () => {
    assert.deepEqual(redactEnv({ API_KEY: '' }), { API_KEY: REDACTED });
    assert.deepEqual(redactEnv({}), {});
  });
});
