// Several backyard nodes behind Debian's nginx, as an operator runs them (docs/cluster.md): one PostgreSQL
// database and one Redis prefix of their own (dropped and deleted afterwards), a shared cluster secret, JWT key
// and stream-key key, and nginx as the HTTP/WebSocket load balancer in front. A browser is pinned to a node with
// the `backyard_node` cookie (nginx's `map`); a pinned node that is down hands its requests to the others.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, SHOTS } from './harness.mjs';
import { freePort } from './rtmp.mjs';

const run = promisify(execFile);

/** How long a node may take to answer `/healthz`: a debug build compiles every plugin at start, three at once here. */
const START_MS = 180000;

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this suite through \`cargo xtask e2e\`, which sets it`);
  return v;
}

async function healthy(url) {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function waitHealthy(url, proc, what, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`${what} exited during start-up (${proc.exitCode})`);
    if (await healthy(url)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not answer ${url}/healthz within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One backyard process of the cluster. */
class Node {
  constructor({ id, port, proc, log }) {
    this.id = id;
    this.port = port;
    this.proc = proc;
    this.log = log;
    this.exited = new Promise((resolve) => proc.once('exit', resolve));
  }

  /** Its own address, not through nginx. */
  get direct() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** `kill -9`: no goodbye to Redis, the database or its peers. */
  async kill() {
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const stopped = await Promise.race([this.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10000))]);
    if (!stopped) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** nginx's HTTP load balancer: round robin over every node, or the node a `backyard_node` cookie names, first. */
function nginxConfig(dir, logs, port, nodes) {
  const server = (n, backup) => `    server 127.0.0.1:${n.port} max_fails=1 fail_timeout=10s${backup ? ' backup' : ''};`;
  const pinned = nodes
    .map((n) => [`  upstream backyard_${n.id} {`, server(n, false), ...nodes.filter((o) => o !== n).map((o) => server(o, true)), '  }'].join('\n'))
    .join('\n');
  return `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${logs}/nginx-error.log info;
events { worker_connections 1024; }
http {
  log_format upstream '$time_iso8601 $request $status via $upstream_addr ($upstream_status) node=$cookie_backyard_node $request_time s';
  access_log ${logs}/nginx-access.log upstream;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream backyard {
    least_conn;
${nodes.map((n) => server(n, false)).join('\n')}
  }
${pinned}
  map $cookie_backyard_node $backyard_pool {
    default backyard;
${nodes.map((n) => `    ${n.id} backyard_${n.id};`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 11m;
    location / {
      proxy_pass http://$backyard_pool;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
      proxy_buffering off;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout;
    }
  }
}
`;
}

/**
 * Starts `ids.length` nodes (`['a', 'b', 'c']`) and nginx in front of them. Returns `{ url, nodes, database,
 * stop() }`: `url` is nginx's (every node's `public_url`), `nodes` maps each id to its `Node`.
 */
export async function startCluster(ids) {
  const bin = required('BACKYARD_E2E_BIN');
  const pgAdmin = required('BACKYARD_E2E_PG_URL');
  const redisUrl = required('BACKYARD_E2E_REDIS_URL');
  const tag = `${process.pid}_${Date.now()}`;
  const database = `backyard_e2e_cluster_${tag}`;
  const prefix = `backyard-e2e-cluster-${tag}:`;
  const dir = await mkdtemp(path.join(tmpdir(), 'backyard-cluster-'));
  const logs = path.join(SHOTS, 'cluster');
  await rm(logs, { recursive: true, force: true });
  await mkdir(logs, { recursive: true });
  await run('psql', [pgAdmin, '-q', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${database}`]);
  const dbUrl = pgAdmin.replace(/\/[^/]*$/, `/${database}`);
  const nginxPort = await freePort();
  const url = `http://127.0.0.1:${nginxPort}`;
  const secrets = { jwt: randomBytes(32).toString('base64'), k1: randomBytes(32).toString('base64') };
  const nodes = {};
  let nginx;
  const cluster = {
    url,
    nodes,
    database,
    async stop() {
      for (const n of Object.values(nodes)) await n.stop();
      if (nginx && nginx.exitCode === null) {
        nginx.kill('SIGTERM');
        await new Promise((r) => nginx.once('exit', r));
      }
      await run('psql', [pgAdmin, '-q', '-c', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`]).catch((e) => console.error(`dropping ${database}: ${e.message}`));
      await deleteKeys(redisUrl, prefix);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const id of ids) {
      const port = await freePort();
      const data = path.join(dir, id);
      await mkdir(data);
      const config = path.join(data, 'backyard.toml');
      await writeFile(
        config,
        `public_url = ${JSON.stringify(url)}
[server]
bind = "127.0.0.1:${port}"
trust_proxy = true
studio_dir = ${JSON.stringify(path.join(ROOT, 'studio'))}
[database]
url = ${JSON.stringify(dbUrl)}
[redis]
url = ${JSON.stringify(redisUrl)}
prefix = ${JSON.stringify(prefix)}
[secrets]
jwt_key = ${JSON.stringify(secrets.jwt)}
stream_key_active = "k1"
[secrets.stream_key_keys]
k1 = ${JSON.stringify(secrets.k1)}
[media]
port = ${await freePort()}
[cluster]
node_id = ${JSON.stringify(id)}
advertise_url = "http://127.0.0.1:${port}"
secret = "the e2e cluster's shared secret"
[limits]
auth_per_minute = 600
# Three nodes, three browsers and a program on two cores: a smaller program leaves the nodes and the browsers
# CPU enough to carry a node's death on time. The relay and the studio are what is under test here.
[program]
width = 640
height = 360
fps = 15
video_kbps = 1000
[destinations.rtmp]
allow-private-hosts = true
`,
      );
      const log = path.join(logs, `node-${id}.log`);
      const out = createWriteStream(log);
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BACKYARD_')));
      env.RUST_LOG = process.env.BACKYARD_E2E_RUST_LOG ?? 'info';
      const proc = spawn(bin, ['--config', config, '--data-dir', data, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout.pipe(out);
      proc.stderr.pipe(out);
      nodes[id] = new Node({ id, port, proc, log });
    }
    await Promise.all(Object.values(nodes).map((n) => waitHealthy(n.direct, n.proc, `node ${n.id} (log: ${n.log})`, START_MS)));
    const nginxDir = path.join(dir, 'nginx');
    await mkdir(nginxDir);
    const conf = path.join(nginxDir, 'nginx.conf');
    await writeFile(conf, nginxConfig(nginxDir, logs, nginxPort, Object.values(nodes)));
    nginx = spawn('nginx', ['-p', nginxDir, '-c', conf], { stdio: 'ignore' });
    await waitHealthy(url, nginx, `nginx (log: ${logs}/nginx-error.log)`, 10000);
    return cluster;
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}

/** Deletes every key under `prefix` in the Redis at `url`. */
async function deleteKeys(url, prefix) {
  try {
    const { stdout } = await run('redis-cli', ['-u', url, '--scan', '--pattern', `${prefix}*`]);
    const keys = stdout.split('\n').filter(Boolean);
    for (let i = 0; i < keys.length; i += 100) await run('redis-cli', ['-u', url, 'DEL', ...keys.slice(i, i + 100)]);
  } catch (e) {
    console.error(`deleting Redis keys under ${prefix}: ${e.message}`);
  }
}
