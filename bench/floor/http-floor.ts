// The floor of a 4 KiB GET in one Node process, without privilege separation, authentication or a
// log (bench/floor/run.sh): mode "memory" answers a constant body; mode "file" does the GET's file
// work itself per request (open, fstat, read, close) on the file given.
import * as fs from 'node:fs';
import * as http from 'node:http';

const [mode, port, file] = process.argv.slice(2) as [string, string, string];
const body = Buffer.alloc(4096, 'p');
const buffer = Buffer.alloc(4096);
http
  .createServer((_req, res) => {
    if (mode === 'memory') {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
      res.end(body);
      return;
    }
    const fd = fs.openSync(file, 'r');
    const stat = fs.fstatSync(fd);
    const length = fs.readSync(fd, buffer, 0, buffer.length, 0);
    fs.closeSync(fd);
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': length,
      ETag: `"${stat.ino}-${stat.size}"`,
      'Last-Modified': stat.mtime.toUTCString(),
    });
    res.end(buffer.subarray(0, length));
  })
  .listen(Number(port), '127.0.0.1');
