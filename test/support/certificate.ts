// Self-signed certificate pairs made by openssl, as an admin (or certbot) would put them in place,
// for the TLS tests and the TLS-terminating proxy.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface CertificateFiles {
  cert: string;
  key: string;
}

/**
 * Writes `name.crt` and `name.key` in `dir`. `key: 'rsa'` where static-RSA suites must be possible
 * (a cipher-policy test that refuses them proves nothing with an EC key); EC P-256 otherwise (fast).
 */
export function makeSelfSignedPair(
  dir: string,
  name: string,
  options: { commonName?: string; days?: number; key?: 'ec' | 'rsa' } = {},
): CertificateFiles {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const keyArgs =
    options.key === 'rsa'
      ? ['-newkey', 'rsa:2048']
      : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      ...keyArgs,
      '-nodes',
      '-days',
      String(options.days ?? 1),
      '-subj',
      `/CN=${options.commonName ?? name}`,
      '-keyout',
      files.key,
      '-out',
      files.cert,
    ],
    { stdio: 'ignore' },
  );
  return files;
}
