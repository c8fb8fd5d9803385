// Writes a private JWK set for scripts/oidc/provider.mjs: `node keys.mjs FILE` creates one
// RSA key, `node keys.mjs FILE rotate` puts a new key first and keeps the previous one
// (published for tokens it signed; only the first key signs).
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const [file, mode] = process.argv.slice(2);
const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const fresh = { ...key, kid: randomUUID(), use: 'sig', alg: 'RS256' };
const old = mode === 'rotate' && existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).keys : [];
writeFileSync(file, JSON.stringify({ keys: [fresh, ...old.slice(0, 1)] }), { mode: 0o600 });
console.log(fresh.kid);
