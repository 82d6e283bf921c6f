//! Test harness for egress: real nginx-rtmp servers (optionally behind nginx `stream` TLS with a CA made
//! at test time), and ffprobe to see what arrived. Every process started here is killed in `Drop`.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// Held by each real-time test of a binary so they run one at a time: on a 2-core machine, parallel
/// 720p encodes would starve each other and turn timing checks into noise.
pub fn serial() -> parking_lot::MutexGuard<'static, ()> {
    static SERIAL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    SERIAL.lock()
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "backyard-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("BACKYARD_KEEP_TEST_FILES").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    // unwrap: binding port 0 on loopback only fails if the machine has no loopback.
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}")
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, made with the openssl CLI.
pub struct TestCa {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl TestCa {
    pub fn create(dir: &Path) -> Result<TestCa> {
        let run = |args: &[&str]| -> Result<()> {
            let out = Command::new("openssl").args(args).current_dir(dir).output().context("run openssl")?;
            ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            Ok(())
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Backyard Test CA"],
        ]
        .concat())?;
        run(&[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat())?;
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ])?;
        Ok(TestCa { ca_pem: dir.join("ca.pem"), cert_pem: dir.join("server.pem"), key_pem: dir.join("server.key") })
    }
}

/// Options of one nginx-rtmp server.
#[derive(Default)]
pub struct NginxOptions {
    /// Put nginx `stream` TLS in front of RTMP with this certificate.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Refuse every publish (a "wrong stream key").
    pub deny_publish: bool,
}

/// One nginx process (`daemon off; master_process off;`) with its own prefix in a temp dir. It records
/// every publish to `<dir>/rec/<key>-<unix time>.flv` so tests can ffprobe what arrived.
pub struct Nginx {
    child: Option<Child>,
    dir: TempDir,
    pub rtmp_port: u16,
    pub tls_port: Option<u16>,
    stopped: bool,
}

impl Nginx {
    pub fn start(options: NginxOptions) -> Result<Nginx> {
        let dir = TempDir::new("nginx")?;
        std::fs::create_dir_all(dir.path().join("rec"))?;
        std::fs::create_dir_all(dir.path().join("logs"))?;
        let rtmp_port = free_port();
        let tls_port = options.tls.as_ref().map(|_| free_port());
        let p = dir.path().display();
        let stream_module =
            if tls_port.is_some() { "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" } else { "" };
        let deny = if options.deny_publish { "deny publish all;" } else { "" };
        let stream_block = match (&options.tls, tls_port) {
            (Some((cert, key)), Some(port)) => format!(
                "stream {{ server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {}; ssl_certificate_key {}; proxy_pass 127.0.0.1:{rtmp_port}; }} }}",
                cert.display(),
                key.display()
            ),
            _ => String::new(),
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {p}/logs/error.log info;\npid {p}/nginx.pid;\n\
             load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n{stream_module}\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{rtmp_port}; chunk_size 4096;\n\
               application live {{ live on; {deny} record all; record_path {p}/rec; record_unique on; }} }} }}\n\
             {stream_block}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf)?;
        let mut nginx = Nginx { child: None, dir, rtmp_port, tls_port, stopped: false };
        nginx.spawn()?;
        Ok(nginx)
    }

    fn spawn(&mut self) -> Result<()> {
        let p = self.dir.path();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(p)
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn nginx")?;
        self.child = Some(child);
        let ready = wait_for_port(self.rtmp_port, Duration::from_secs(10))
            .and_then(|_| self.tls_port.map_or(Ok(()), |p| wait_for_port(p, Duration::from_secs(10))));
        if let Err(e) = ready {
            let log = std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default();
            bail!("{e}; nginx log:\n{log}");
        }
        Ok(())
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.rtmp_port)
    }

    /// RTMPS through the TLS front; the certificate is for `localhost`.
    pub fn rtmps_url(&self, key: &str) -> String {
        format!("rtmps://localhost:{}/live/{key}", self.tls_port.expect("nginx started without TLS"))
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL (the server vanishes; its ports refuse connections until [`Nginx::restart`]).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stopped = false;
    }

    /// Starts the same server again (same ports, same config).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// SIGSTOP: the kernel still accepts connections but nginx reads nothing.
    pub fn freeze(&mut self) -> Result<()> {
        let pid = self.pid().context("not running")?;
        ensure!(Command::new("kill").args(["-STOP", &pid.to_string()]).status()?.success(), "kill -STOP failed");
        self.stopped = true;
        Ok(())
    }

    /// SIGCONT.
    pub fn thaw(&mut self) -> Result<()> {
        let pid = self.pid().context("not running")?;
        ensure!(Command::new("kill").args(["-CONT", &pid.to_string()]).status()?.success(), "kill -CONT failed");
        self.stopped = false;
        Ok(())
    }

    /// Number of publishes nginx accepted so far (from its log).
    pub fn publish_count(&self) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains("publish: name=")).count()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// The FLV files nginx recorded of the stream published with `key`, oldest first.
    pub fn recordings_of(&self, key: &str) -> Vec<PathBuf> {
        let prefix = format!("{key}-");
        self.recordings()
            .into_iter()
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
            .collect()
    }

    /// The FLV files nginx recorded, oldest first.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("rec"))
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "flv")).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.created().or_else(|_| m.modified())).ok());
        files
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.stopped {
            let _ = self.thaw();
        }
        self.kill();
    }
}

/// What ffprobe says about a file.
#[derive(Debug)]
pub struct Probe {
    pub video_codec: String,
    pub audio_codec: String,
    pub width: u32,
    pub height: u32,
    pub duration: f64,
    /// Video packet timestamps (seconds), in file order.
    pub video_times: Vec<f64>,
    /// Audio packet timestamps (seconds).
    pub audio_times: Vec<f64>,
    /// Bytes of video packets in the file.
    pub video_bytes: u64,
}

impl Probe {
    /// Frames per second over the file.
    pub fn fps(&self) -> f64 {
        let (Some(first), Some(last)) = (self.video_times.first(), self.video_times.last()) else {
            return 0.0;
        };
        if last <= first {
            return 0.0;
        }
        (self.video_times.len() - 1) as f64 / (last - first)
    }

    /// Largest jump between consecutive video timestamps.
    pub fn max_video_gap(&self) -> f64 {
        let mut t = self.video_times.clone();
        t.sort_by(f64::total_cmp);
        t.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
    }

    /// Mean video bitrate over the video's timestamps, kb/s.
    pub fn video_kbps(&self) -> f64 {
        let span = self.video_times.iter().copied().fold(f64::MIN, f64::max)
            - self.video_times.iter().copied().fold(f64::MAX, f64::min);
        if span <= 0.0 {
            return 0.0;
        }
        self.video_bytes as f64 * 8.0 / 1000.0 / span
    }
}

fn ffprobe(args: &[&str], path: &Path) -> Result<String> {
    let out = Command::new("ffprobe").args(["-v", "error"]).args(args).arg(path).output().context("run ffprobe")?;
    ensure!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn probe(path: &Path) -> Result<Probe> {
    let streams = ffprobe(&["-show_entries", "stream=codec_type,codec_name,width,height", "-of", "csv=p=0"], path)?;
    let mut p = Probe {
        video_codec: String::new(),
        audio_codec: String::new(),
        width: 0,
        height: 0,
        duration: 0.0,
        video_times: Vec::new(),
        audio_times: Vec::new(),
        video_bytes: 0,
    };
    for line in streams.lines() {
        let f: Vec<&str> = line.split(',').collect();
        match f.as_slice() {
            [name, "video", w, h, ..] => {
                p.video_codec = name.to_string();
                p.width = w.parse().unwrap_or(0);
                p.height = h.parse().unwrap_or(0);
            }
            [name, "audio", ..] => p.audio_codec = name.to_string(),
            _ => {}
        }
    }
    let format = ffprobe(&["-show_entries", "format=duration", "-of", "csv=p=0"], path)?;
    p.duration = format.trim().parse().unwrap_or(0.0);
    let packets = ffprobe(&["-show_entries", "packet=codec_type,pts_time,size", "-of", "csv=p=0"], path)?;
    for line in packets.lines() {
        let mut f = line.split(',');
        let (Some(kind), Some(t)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(t) = t.parse::<f64>() else { continue };
        let size: u64 = f.next().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        match kind {
            "video" => {
                p.video_times.push(t);
                p.video_bytes += size;
            }
            "audio" => p.audio_times.push(t),
            _ => {}
        }
    }
    Ok(p)
}

/// CPU time (user + system) this process used so far.
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Polls `check` until it returns true or `timeout` passes; returns how long it took.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// (per video frame: its time and 16×9 luma means), the first audio sample's time, mono samples.
pub type DecodedAv = (Vec<(f64, [f64; 144])>, f64, Vec<f32>);

/// Decoded luma means per video frame (16×9 cells, row-major) with their timestamps, and mono audio samples
/// with the timestamp of the first one.
pub fn decode_av(path: &Path) -> Result<DecodedAv> {
    let p = probe(path)?;
    let mut times = p.video_times.clone();
    times.sort_by(f64::total_cmp);
    let video = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-an", "-fps_mode", "passthrough", "-vf", "scale=16:9", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()?;
    ensure!(video.status.success(), "{}", String::from_utf8_lossy(&video.stderr));
    let cells: Vec<[f64; 144]> = video
        .stdout
        .chunks_exact(144)
        .map(|f| {
            let mut c = [0.0; 144];
            for (o, &v) in c.iter_mut().zip(f) {
                *o = v as f64;
            }
            c
        })
        .collect();
    ensure!(cells.len() == times.len(), "{} frames decoded, {} packets", cells.len(), times.len());
    let audio = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-f", "f32le", "-"])
        .output()?;
    ensure!(audio.status.success(), "{}", String::from_utf8_lossy(&audio.stderr));
    let samples = audio.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let audio_start = p.audio_times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok((times.into_iter().zip(cells).collect(), audio_start, samples))
}

/// Times of white flashes (mean luma of the given 16×9 columns, or the whole frame, crossing 150) and of
/// beeps (audio above 0.3 after 50 ms of quiet) in a recording.
pub fn flashes_and_beeps(path: &Path, columns: Option<std::ops::Range<usize>>) -> Result<(Vec<f64>, Vec<f64>)> {
    let (frames, audio_start, samples) = decode_av(path)?;
    let cols = columns.unwrap_or(0..16);
    let luma = |c: &[f64; 144]| {
        let picked: Vec<f64> = (0..9).flat_map(|row| cols.clone().map(move |col| c[row * 16 + col])).collect();
        picked.iter().sum::<f64>() / picked.len().max(1) as f64
    };
    let flashes =
        frames.windows(2).filter(|w| luma(&w[1].1) > 150.0 && luma(&w[0].1) <= 150.0).map(|w| w[1].0).collect();
    let mut beeps = Vec::new();
    let mut quiet = 0usize;
    for (i, s) in samples.iter().enumerate() {
        if s.abs() > 0.3 {
            if quiet > 2400 {
                beeps.push(audio_start + i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    Ok((flashes, beeps))
}
