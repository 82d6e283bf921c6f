//! One RTMP publisher's connection, sans-IO: bytes in ([`Session::feed`]), events out, bytes to send back
//! ([`Session::take_output`]). The protocol (handshake, chunk stream, AMF commands) is `rml_rtmp`'s; this
//! adds the ingest's rules on top: only publishing (no playback), one stream per connection, the publish
//! waiting for the caller's verdict on the key ([`Session::accept`] / [`Session::reject`]), bounded chunk
//! sizes, and tag bodies read into typed media ([`super::flv`]) that refuse what the program cannot use.

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};

use super::flv::{self, AacConfig, AudioTag, AvcConfig, TagError, VideoTag};

/// The largest chunk size a publisher may announce. Encoders use 4 KiB to 64 KiB; a message is at most
/// 16 MiB, so a larger chunk means nothing but a broken or hostile client.
pub const MAX_CHUNK_SIZE: u32 = 1 << 24;

/// Why a connection ends with an error.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The bytes are not RTMP (bad handshake, chunk stream or AMF).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A chunk size of zero or beyond [`MAX_CHUNK_SIZE`].
    #[error("chunk size {0} is out of range")]
    ChunkSize(u32),
    /// The client asked for something the ingest does not do (playback, a second stream).
    #[error("{0}")]
    NotAllowed(&'static str),
    /// Media in a codec the program cannot take.
    #[error(transparent)]
    Unsupported(#[from] flv::Unsupported),
    /// A tag for a supported codec could not be read.
    #[error("{0}")]
    Malformed(&'static str),
}

impl From<TagError> for IngestError {
    fn from(e: TagError) -> Self {
        match e {
            TagError::Unsupported(u) => IngestError::Unsupported(u),
            TagError::Malformed(what) => IngestError::Malformed(what),
        }
    }
}

/// What the session saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The client asks to publish `key` under application `app`: answer with [`Session::accept`] or
    /// [`Session::reject`]. Media is not read before that.
    PublishRequested { request: u32, app: String, key: String },
    /// The video decoder configuration (again when the encoder restarts).
    VideoConfig(AvcConfig),
    /// The audio decoder configuration.
    AudioConfig(AacConfig),
    /// Stream metadata (`onMetaData`): whether the encoder says it sends audio.
    Metadata { has_audio: bool },
    /// One video access unit; `dts` in milliseconds from the publisher's clock.
    Video { dts: u32, cts: i32, keyframe: bool, data: Bytes },
    /// One AAC frame; `ts` in milliseconds.
    Audio { ts: u32, data: Bytes },
    /// The client stopped publishing (`deleteStream` / `FCUnpublish`); the connection may close next.
    Finished,
}

enum Stage {
    Handshake(Box<Handshake>),
    Rtmp(Box<ServerSession>),
}

/// The server side of one RTMP connection.
pub struct Session {
    stage: Stage,
    out: Vec<u8>,
    /// Watches the same chunk stream for `Set Chunk Size`, which the session applies without telling.
    shadow: ChunkDeserializer,
    /// `Some` once the publish was asked for; `true` once accepted.
    publish: Option<bool>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

fn protocol(e: impl std::fmt::Display) -> IngestError {
    IngestError::Protocol(e.to_string())
}

/// Runs a call into `rml_rtmp`, whose AMF0 reader panics on some malformed input (it indexes past the end of a
/// short value): such input ends the connection as any other protocol error does. The session is not used
/// after an error.
fn guarded<T>(call: impl FnOnce() -> Result<T, IngestError>) -> Result<T, IngestError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(IngestError::Protocol("malformed message".into())))
}

impl Session {
    pub fn new() -> Session {
        Session {
            stage: Stage::Handshake(Box::new(Handshake::new(PeerType::Server))),
            out: Vec::new(),
            shadow: ChunkDeserializer::new(),
            publish: None,
        }
    }

    /// The bytes to send to the client, in order.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// True once the handshake is done.
    pub fn handshake_done(&self) -> bool {
        matches!(self.stage, Stage::Rtmp(_))
    }

    /// True once a publish was accepted.
    pub fn publishing(&self) -> bool {
        self.publish == Some(true)
    }

    /// Reads bytes from the client. An error means the connection must close (after sending what
    /// [`Session::take_output`] holds, if anything).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, IngestError> {
        let mut events = Vec::new();
        let rest = match &mut self.stage {
            Stage::Handshake(handshake) => match guarded(|| handshake.process_bytes(bytes).map_err(protocol))? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    return Ok(events);
                }
                HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    let (session, results) = ServerSession::new(ServerSessionConfig::new()).map_err(protocol)?;
                    self.stage = Stage::Rtmp(Box::new(session));
                    self.results(results, &mut events)?;
                    remaining_bytes
                }
            },
            Stage::Rtmp(_) => bytes.to_vec(),
        };
        if rest.is_empty() {
            return Ok(events);
        }
        self.watch_chunk_size(&rest)?;
        let Stage::Rtmp(session) = &mut self.stage else { unreachable!("the handshake completed above") };
        let results = guarded(|| session.handle_input(&rest).map_err(protocol))?;
        self.results(results, &mut events)?;
        Ok(events)
    }

    fn watch_chunk_size(&mut self, bytes: &[u8]) -> Result<(), IngestError> {
        let mut input = bytes;
        while let Some(message) = guarded(|| self.shadow.get_next_message(input).map_err(protocol))? {
            input = &[];
            // Message type 1: Set Chunk Size, a 31-bit size.
            if message.type_id == 1 {
                let raw = message.data.get(..4).ok_or_else(|| protocol("short Set Chunk Size"))?;
                let size = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) & 0x7fff_ffff;
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(IngestError::ChunkSize(size));
                }
                self.shadow.set_max_chunk_size(size as usize).map_err(protocol)?;
            }
        }
        Ok(())
    }

    /// Lets the publish go ahead: media is read from now on.
    pub fn accept(&mut self, request: u32) -> Result<(), IngestError> {
        let Stage::Rtmp(session) = &mut self.stage else { return Err(IngestError::NotAllowed("no publish asked")) };
        let results = session.accept_request(request).map_err(protocol)?;
        self.publish = Some(true);
        let mut events = Vec::new();
        self.results(results, &mut events)
    }

    /// Refuses the publish with an RTMP error status (`NetStream.Publish.BadName` and `description`, which
    /// the encoder shows its user). The connection should close after the output is sent.
    pub fn reject(&mut self, request: u32, description: &str) -> Result<(), IngestError> {
        let Stage::Rtmp(session) = &mut self.stage else { return Err(IngestError::NotAllowed("no publish asked")) };
        let results = session.reject_request(request, "NetStream.Publish.BadName", description).map_err(protocol)?;
        let mut events = Vec::new();
        self.results(results, &mut events)
    }

    fn results(&mut self, results: Vec<ServerSessionResult>, events: &mut Vec<Event>) -> Result<(), IngestError> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.out.extend_from_slice(&packet.bytes),
                ServerSessionResult::RaisedEvent(event) => self.event(event, events)?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn event(&mut self, event: ServerSessionEvent, events: &mut Vec<Event>) -> Result<(), IngestError> {
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                let Stage::Rtmp(session) = &mut self.stage else { return Ok(()) };
                let results = session.accept_request(request_id).map_err(protocol)?;
                self.results(results, events)?;
            }
            ServerSessionEvent::PublishStreamRequested { request_id, app_name, stream_key, .. } => {
                if self.publish.is_some() {
                    return Err(IngestError::NotAllowed("one stream per connection"));
                }
                self.publish = Some(false);
                events.push(Event::PublishRequested { request: request_id, app: app_name, key: stream_key });
            }
            ServerSessionEvent::PlayStreamRequested { .. } => {
                return Err(IngestError::NotAllowed("this server takes streams; it does not play them"));
            }
            ServerSessionEvent::PublishStreamFinished { .. } => events.push(Event::Finished),
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } if self.publishing() => {
                events.push(Event::Metadata { has_audio: metadata.audio_codec_id.is_some() });
            }
            ServerSessionEvent::VideoDataReceived { data, timestamp, .. } if self.publishing() => {
                match flv::video(&data)? {
                    VideoTag::Config(c) => events.push(Event::VideoConfig(c)),
                    VideoTag::Frame { keyframe, cts, data } => {
                        events.push(Event::Video { dts: timestamp.value, cts, keyframe, data })
                    }
                    VideoTag::Skip => {}
                }
            }
            ServerSessionEvent::AudioDataReceived { data, timestamp, .. } if self.publishing() => {
                match flv::audio(&data)? {
                    AudioTag::Config(c) => events.push(Event::AudioConfig(c)),
                    AudioTag::Frame(data) => events.push(Event::Audio { ts: timestamp.value, data }),
                    AudioTag::Skip => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::sessions::{ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult};
    use rml_rtmp::sessions::{PublishRequestType, StreamMetadata};
    use rml_rtmp::time::RtmpTimestamp;

    /// A client and a server session talking over memory.
    struct Pair {
        client: ClientSession,
        server: Session,
        events: Vec<Event>,
        client_events: Vec<ClientSessionEvent>,
    }

    impl Pair {
        fn new() -> Pair {
            let mut client_handshake = Handshake::new(PeerType::Client);
            let mut server = Session::new();
            let c0c1 = client_handshake.generate_outbound_p0_and_p1().unwrap();
            assert!(server.feed(&c0c1).unwrap().is_empty());
            let s = server.take_output();
            let HandshakeProcessResult::Completed { response_bytes: c2, .. } =
                client_handshake.process_bytes(&s).unwrap()
            else {
                panic!("client handshake not done")
            };
            assert!(server.feed(&c2).unwrap().is_empty());
            assert!(server.handshake_done());
            let (client, first) = ClientSession::new(ClientSessionConfig::new()).unwrap();
            let mut pair = Pair { client, server, events: Vec::new(), client_events: Vec::new() };
            pair.send_results(first).unwrap();
            pair
        }

        fn send_results(&mut self, results: Vec<ClientSessionResult>) -> Result<(), IngestError> {
            for r in results {
                if let ClientSessionResult::OutboundResponse(p) = r {
                    self.send_raw(&p.bytes)?;
                }
            }
            Ok(())
        }

        fn send_raw(&mut self, bytes: &[u8]) -> Result<(), IngestError> {
            let events = self.server.feed(bytes)?;
            self.events.extend(events);
            self.pump()
        }

        /// Delivers what the server sent to the client, and the client's answers back.
        fn pump(&mut self) -> Result<(), IngestError> {
            let bytes = self.server.take_output();
            if bytes.is_empty() {
                return Ok(());
            }
            let results = self.client.handle_input(&bytes).unwrap();
            let mut outbound = Vec::new();
            for r in results {
                match r {
                    ClientSessionResult::OutboundResponse(p) => outbound.extend_from_slice(&p.bytes),
                    ClientSessionResult::RaisedEvent(e) => self.client_events.push(e),
                    ClientSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
            if outbound.is_empty() { Ok(()) } else { self.send_raw(&outbound) }
        }

        fn publish(&mut self, key: &str) -> u32 {
            let connect = self.client.request_connection("live".into()).unwrap();
            self.send_results(vec![connect]).unwrap();
            let publish = self.client.request_publishing(key.into(), PublishRequestType::Live).unwrap();
            self.send_results(vec![publish]).unwrap();
            let Some(Event::PublishRequested { request, app, key: asked }) = self.events.pop() else {
                panic!("no publish request: {:?}", self.events)
            };
            assert_eq!((app.as_str(), asked.as_str()), ("live", key));
            request
        }
    }

    fn avc_sequence_header() -> Bytes {
        let mut v = vec![0x17, 0, 0, 0, 0];
        v.extend_from_slice(&flv::tests::AVCC_720P_HIGH);
        Bytes::from(v)
    }

    #[test]
    fn a_publish_waits_for_the_verdict_then_media_flows() {
        let mut pair = Pair::new();
        let request = pair.publish("by_live_key");
        pair.server.accept(request).unwrap();
        pair.pump().unwrap();
        assert!(
            pair.client_events.iter().any(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted)),
            "{:?}",
            pair.client_events
        );
        let mut meta = StreamMetadata::new();
        meta.audio_codec_id = Some(10);
        let m = pair.client.publish_metadata(&meta).unwrap();
        let v = pair.client.publish_video_data(avc_sequence_header(), RtmpTimestamp::new(0), false).unwrap();
        let f = pair
            .client
            .publish_video_data(
                Bytes::from_static(&[0x27, 1, 0, 0, 0x21, 0, 0, 0, 1, 0x41]),
                RtmpTimestamp::new(33),
                true,
            )
            .unwrap();
        let a =
            pair.client.publish_audio_data(Bytes::from_static(&[0xaf, 1, 0x21, 0x10]), RtmpTimestamp::new(40), true);
        pair.send_results(vec![m, v, f, a.unwrap()]).unwrap();
        assert!(matches!(&pair.events[0], Event::Metadata { has_audio: true }), "{:?}", pair.events);
        assert!(matches!(&pair.events[1], Event::VideoConfig(c) if c.width == 1280));
        assert!(matches!(&pair.events[2], Event::Video { dts: 33, cts: 33, keyframe: false, .. }));
        assert!(matches!(&pair.events[3], Event::Audio { ts: 40, .. }));
    }

    #[test]
    fn a_refused_publish_tells_the_client_why() {
        let mut pair = Pair::new();
        let request = pair.publish("wrong");
        pair.server.reject(request, "unknown or revoked stream key").unwrap();
        pair.pump().unwrap();
        assert!(
            pair.client_events.iter().all(|e| !matches!(e, ClientSessionEvent::PublishRequestAccepted)),
            "{:?}",
            pair.client_events
        );
    }

    #[test]
    fn playback_and_a_second_publish_are_refused() {
        let mut pair = Pair::new();
        let connect = pair.client.request_connection("live".into()).unwrap();
        pair.send_results(vec![connect]).unwrap();
        let play = pair.client.request_playback("anything".into()).unwrap();
        assert!(matches!(pair.send_results(vec![play]), Err(IngestError::NotAllowed(_))));

        let mut pair = Pair::new();
        let request = pair.publish("one");
        pair.server.accept(request).unwrap();
        pair.pump().unwrap();
        let again = pair.client.request_publishing("two".into(), PublishRequestType::Live);
        if let Ok(again) = again {
            assert!(matches!(pair.send_results(vec![again]), Err(IngestError::NotAllowed(_))));
        }
    }

    #[test]
    fn absurd_chunk_sizes_end_the_connection() {
        for size in [0u32, MAX_CHUNK_SIZE + 1, 0x7fff_ffff] {
            let mut pair = Pair::new();
            // Set Chunk Size on chunk stream 2, message stream 0, type 1, length 4.
            let mut chunk = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
            chunk.extend_from_slice(&size.to_be_bytes());
            assert!(matches!(pair.send_raw(&chunk), Err(IngestError::ChunkSize(_))), "size {size}");
        }
    }

    #[test]
    fn hevc_over_enhanced_rtmp_is_refused_by_name() {
        let mut pair = Pair::new();
        let request = pair.publish("key");
        pair.server.accept(request).unwrap();
        pair.pump().unwrap();
        let v = pair.client.publish_video_data(Bytes::from_static(b"\x90hvc1\0\0\0"), RtmpTimestamp::new(0), false);
        let err = pair.send_results(vec![v.unwrap()]).unwrap_err();
        assert!(err.to_string().contains("HEVC (Enhanced RTMP)"), "{err}");
    }

    #[test]
    fn garbage_instead_of_a_handshake_is_an_error() {
        let mut server = Session::new();
        let mut garbage = vec![0x47u8; 1537];
        garbage[0] = 0x16; // a TLS ClientHello's first byte
        let result = server.feed(&garbage).and_then(|_| server.feed(&garbage));
        assert!(result.is_err());
    }

    #[test]
    fn malformed_amf_ends_the_connection() {
        let mut pair = Pair::new();
        // An AMF0 command (type 20) whose body is not AMF0.
        let mut chunk = vec![0x03, 0, 0, 0, 0, 0, 6, 20, 0, 0, 0, 0];
        chunk.extend_from_slice(&[0x02, 0xff, 0xff, b'c', 0x0b, 0x0b]);
        assert!(matches!(pair.send_raw(&chunk), Err(IngestError::Protocol(_))));
    }
}
