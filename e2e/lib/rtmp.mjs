// A real RTMP server for the browser tests: Debian's nginx with libnginx-mod-rtmp on a free loopback port,
// started with its own config and folder, plus helpers to pull a frame of what arrived with ffmpeg.

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts nginx-rtmp accepting publishes on rtmp://127.0.0.1:<port>/live/<key>. */
export async function startRtmpServer() {
  const dir = await mkdtemp(path.join(tmpdir(), 'backyard-nginx-'));
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
rtmp {
  server {
    listen 127.0.0.1:${port};
    chunk_size 4096;
    application live { live on; record off; }
  }
}
`,
  );
  const proc = spawn('nginx', ['-p', dir, '-c', conf], { stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  await Promise.race([waitForPort(port, 10000), exited.then((code) => Promise.reject(new Error(`nginx exited (${code}); see ${dir}/error.log`)))]);
  return {
    port,
    url: `rtmp://127.0.0.1:${port}/live`,
    async stop() {
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Pulls the live stream and returns one decoded frame (after `skipSeconds`) as RGB24 at width×height,
 * with the stream's codec names from ffprobe.
 */
export async function grabFrame(url, { width = 320, height = 180, skipSeconds = 2 } = {}) {
  const { stdout: probe } = await run('ffprobe', ['-v', 'error', '-rw_timeout', '10000000', '-show_entries', 'stream=codec_type,codec_name,width,height,bit_rate', '-of', 'json', url], { timeout: 20000 });
  const streams = JSON.parse(probe).streams ?? [];
  const { stdout } = await run(
    'ffmpeg',
    ['-v', 'error', '-rw_timeout', '10000000', '-i', url, '-ss', String(skipSeconds), '-frames:v', '1', '-vf', `scale=${width}:${height}`, '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-'],
    { encoding: 'buffer', timeout: 30000, maxBuffer: width * height * 3 + 1024 },
  );
  if (stdout.length !== width * height * 3) throw new Error(`expected ${width * height * 3} bytes of RGB, got ${stdout.length}`);
  return { width, height, rgb: stdout, streams };
}

/** Where pixels within `tol` of `want` are: their count and the mean x position (0..1), or null if none. */
export function findColour(frame, want, tol) {
  let count = 0;
  let sumX = 0;
  const { width, rgb } = frame;
  for (let i = 0; i < rgb.length; i += 3) {
    if (Math.abs(rgb[i] - want[0]) <= tol && Math.abs(rgb[i + 1] - want[1]) <= tol && Math.abs(rgb[i + 2] - want[2]) <= tol) {
      count++;
      sumX += ((i / 3) % width) / width;
    }
  }
  return count ? { count, share: count / (rgb.length / 3), meanX: sumX / count } : null;
}

/**
 * The loudest sample of `seconds` of the live stream's audio, in dBFS (ffmpeg's volumedetect; digital silence
 * reads about -91).
 */
export async function peakVolume(url, seconds = 4) {
  const { stderr } = await run(
    'ffmpeg',
    ['-hide_banner', '-nostats', '-rw_timeout', '10000000', '-i', url, '-t', String(seconds), '-vn', '-af', 'volumedetect', '-f', 'null', '-'],
    { timeout: 30000 },
  );
  const m = /max_volume:\s*(-?[\d.]+|-inf) dB/.exec(stderr);
  if (!m) throw new Error(`no volume measured: ${stderr.slice(-400)}`);
  return m[1] === '-inf' ? -Infinity : Number(m[1]);
}

/** The video bitrate of `seconds` of the live stream, kb/s, from the sizes and times of its packets (ffprobe). */
export async function measuredVideoKbps(url, seconds = 4) {
  const { stdout } = await run(
    'ffprobe',
    ['-v', 'error', '-rw_timeout', '10000000', '-select_streams', 'v:0', '-read_intervals', `%+${seconds}`, '-show_entries', 'packet=size,pts_time', '-of', 'json', url],
    { timeout: 30000, maxBuffer: 32 * 1024 * 1024 },
  );
  const packets = (JSON.parse(stdout).packets ?? []).filter((p) => Number.isFinite(Number(p.pts_time)));
  if (packets.length < 2) throw new Error(`${packets.length} video packets in ${seconds} s`);
  const times = packets.map((p) => Number(p.pts_time));
  const span = Math.max(...times) - Math.min(...times);
  const bytes = packets.reduce((sum, p) => sum + Number(p.size), 0);
  return (bytes * 8) / span / 1000;
}
