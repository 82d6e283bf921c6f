//! An RTMP publisher driven by hand (rml_rtmp's client session over a blocking socket), for what ffmpeg cannot
//! send (HEVC over Enhanced RTMP) and for the latency bench, which must know when each packet left; and ffmpeg
//! as an encoder (OBS's defaults), for the rest.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;

/// A connection publishing to `rtmp://<addr>/<app>/<key>`.
pub struct Publisher {
    socket: TcpStream,
    client: ClientSession,
}

fn failed(e: impl std::fmt::Debug) -> std::io::Error {
    std::io::Error::other(format!("{e:?}"))
}

impl Publisher {
    /// Handshakes, connects to `app` and asks to publish `key`; returns once the server accepted.
    pub fn connect(addr: SocketAddr, app: &str, key: &str) -> std::io::Result<Publisher> {
        let mut socket = TcpStream::connect(addr)?;
        socket.set_read_timeout(Some(Duration::from_secs(15)))?;
        socket.set_nodelay(true)?;
        let mut hs = Handshake::new(PeerType::Client);
        socket.write_all(&hs.generate_outbound_p0_and_p1().map_err(failed)?)?;
        let mut buf = vec![0u8; 8192];
        let leftover = loop {
            let n = socket.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            match hs.process_bytes(&buf[..n]).map_err(failed)? {
                HandshakeProcessResult::InProgress { response_bytes } => socket.write_all(&response_bytes)?,
                HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                    socket.write_all(&response_bytes)?;
                    break remaining_bytes;
                }
            }
        };
        let (client, first) = ClientSession::new(ClientSessionConfig::new()).map_err(failed)?;
        let mut publisher = Publisher { socket, client };
        publisher.send(first)?;
        let mut incoming = leftover;
        let connect = publisher.client.request_connection(app.into()).map_err(failed)?;
        publisher.send(vec![connect])?;
        publisher.wait_for(&mut incoming, |e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))?;
        let publish = publisher.client.request_publishing(key.into(), PublishRequestType::Live).map_err(failed)?;
        publisher.send(vec![publish])?;
        publisher.wait_for(&mut incoming, |e| matches!(e, ClientSessionEvent::PublishRequestAccepted))?;
        Ok(publisher)
    }

    fn send(&mut self, results: Vec<ClientSessionResult>) -> std::io::Result<Vec<ClientSessionEvent>> {
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => self.socket.write_all(&p.bytes)?,
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    fn wait_for(&mut self, incoming: &mut Vec<u8>, want: fn(&ClientSessionEvent) -> bool) -> std::io::Result<()> {
        let mut buf = vec![0u8; 8192];
        loop {
            let results = self.client.handle_input(incoming).map_err(failed)?;
            incoming.clear();
            if self.send(results)?.iter().any(want) {
                return Ok(());
            }
            let n = self.socket.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            incoming.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends one FLV video tag body at `ms` on the stream's clock.
    pub fn video(&mut self, ms: u32, body: &[u8]) -> std::io::Result<()> {
        let r = self
            .client
            .publish_video_data(bytes::Bytes::copy_from_slice(body), RtmpTimestamp::new(ms), false)
            .map_err(failed)?;
        self.send(vec![r]).map(drop)
    }

    /// Sends one FLV audio tag body at `ms` on the stream's clock.
    pub fn audio(&mut self, ms: u32, body: &[u8]) -> std::io::Result<()> {
        let r = self
            .client
            .publish_audio_data(bytes::Bytes::copy_from_slice(body), RtmpTimestamp::new(ms), false)
            .map_err(failed)?;
        self.send(vec![r]).map(drop)
    }

    /// True when the server closes the connection (EOF or reset) within the read timeout.
    pub fn closed_by_server(mut self) -> bool {
        closed_by_server(&mut self.socket)
    }
}

/// True when the server closed the connection (EOF or reset) within the socket's read timeout.
pub fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// One tag of an FLV file: audio (8) or video (9), its time in ms and its body.
pub struct FlvTag {
    pub kind: u8,
    pub ms: u32,
    pub body: Vec<u8>,
}

/// The audio and video tags of an FLV file, in file order.
pub fn read_flv(data: &[u8]) -> std::io::Result<Vec<FlvTag>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    if data.len() < 13 || &data[..3] != b"FLV" {
        return Err(bad("not FLV"));
    }
    let mut at = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let mut tags = Vec::new();
    while at + 11 <= data.len() {
        let kind = data[at];
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let ms = u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        let body = data.get(at + 11..at + 11 + size).ok_or_else(|| bad("truncated FLV tag"))?;
        if kind == 8 || kind == 9 {
            tags.push(FlvTag { kind, ms, body: body.to_vec() });
        }
        at += 11 + size + 4;
    }
    Ok(tags)
}

/// A 1280×720 clip encoded as OBS does by default: x264 High profile with 2 B-frames, 2 s keyframes, AAC.
pub fn obs_like_clip(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("obs.flv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=s=1280x720:r=30:d={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={seconds}"))
        .args(["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "2", "-g", "60"])
        .args(["-b:v", "2500k", "-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "160k", "-f", "flv"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg made the clip");
    path
}

/// An encoder process, killed (and reaped) if a test ends before it does.
pub struct Encoder(pub Child);

impl Drop for Encoder {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// ffmpeg publishing `clip` in real time, packets copied (as an encoder would send them).
pub fn publish(clip: &Path, url: &str) -> Encoder {
    Encoder(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "flv", url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ffmpeg"),
    )
}

/// Waits for the encoder to finish: whether it succeeded, and what it said.
pub fn stderr_of(mut child: Encoder) -> (bool, String) {
    let status = child.0.wait().expect("ffmpeg exits");
    let mut err = String::new();
    if let Some(mut s) = child.0.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (status.success(), err)
}

/// Waits for an encoder to exit within `timeout` (it is killed otherwise). True when it exited by itself.
pub fn exits_within(mut child: Encoder, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.0.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
