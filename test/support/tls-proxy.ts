// A real TLS-terminating reverse proxy (Debian's nginx) in front of a test daemon: HTTPS on a free
// loopback port, plain HTTP to privdav with the Host nginx uses by default (the backend's own),
// as proxies in front of WebDAV servers are commonly set up.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from './daemon';
import { tryConnect } from './cli';
import { makeSelfSignedPair } from './certificate';

export interface TlsProxy {
  port: number;
  /** The name the certificate is for; clients reach it with curl --resolve NAME:PORT:127.0.0.1. */
  name: string;
  stop(): Promise<void>;
}

export async function startTlsProxy(backendPort: number, name: string): Promise<TlsProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-nginx-'));
  const port = await freePort();
  const certificate = makeSelfSignedPair(dir, 'proxy', { commonName: name, key: 'rsa' });
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${name};
    ssl_certificate ${certificate.cert};
    ssl_certificate_key ${certificate.key};
    location / {
      proxy_pass http://127.0.0.1:${backendPort};
      proxy_request_buffering off;
      proxy_buffering off;
    }
  }
}
`,
  );
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    if ((await tryConnect(port)) === 'connected') break;
    if (attempt > 100) throw new Error(`nginx did not listen on ${port}: ${stderr}`);
    await sleep(50);
  }
  return {
    port,
    name,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
