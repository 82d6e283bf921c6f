// A backyard of a suite's own (`BACKYARD_E2E_BIN`, embedded state in a fresh data folder), for suites that kill
// it, start it again, or need settings of their own.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, SHOTS, eventually } from './harness.mjs';
import { freePort } from './rtmp.mjs';

/**
 * A backyard in `dir` (its data in `dir/data`), logging to `target/e2e/<name>-server.log`; `limits` are extra
 * lines of its `[limits]` table. `kill()` sends SIGKILL, `start()` starts it again on the same data.
 */
export class OwnServer {
  constructor(dir, name, { limits = '' } = {}) {
    this.dir = dir;
    this.name = name;
    this.limits = limits;
    this.data = path.join(dir, 'data');
  }

  async start() {
    if (!this.port) {
      this.port = await freePort();
      await mkdir(this.data, { recursive: true });
      this.config = path.join(this.dir, 'backyard.toml');
      await writeFile(
        this.config,
        `public_url = "http://127.0.0.1:${this.port}"
[server]
bind = "127.0.0.1:${this.port}"
studio_dir = ${JSON.stringify(path.join(ROOT, 'studio'))}
[media]
port = ${await freePort()}
[ingest]
rtmp_bind = "127.0.0.1:${await freePort()}"
[limits]
auth_per_minute = 600
${this.limits}
`,
      );
    }
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BACKYARD_')));
    env.RUST_LOG = process.env.BACKYARD_E2E_RUST_LOG ?? 'info';
    const bin = process.env.BACKYARD_E2E_BIN;
    if (!bin) throw new Error(`BACKYARD_E2E_BIN is not set: run this suite through \`cargo xtask e2e ${this.name}\``);
    await mkdir(SHOTS, { recursive: true });
    const log = createWriteStream(path.join(SHOTS, `${this.name}-server.log`), { flags: 'a' });
    this.proc = spawn(bin, ['--config', this.config, '--data-dir', this.data, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.pipe(log);
    this.proc.stderr.pipe(log);
    await eventually('the server answers', async () => (await fetch(`${this.url}/healthz`).catch(() => null))?.ok, 60000, 200);
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async kill() {
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await exited;
  }

  /** Stops it if it runs. */
  async stop() {
    if (this.proc?.exitCode === null) await this.kill();
  }
}
