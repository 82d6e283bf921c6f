//! Fuzz target for what an RTMP client sends the ingest after the handshake: chunks, AMF commands, FLV tag
//! bodies, through the sans-IO [`Session`] the server runs per connection. Property: nothing panics; a refused
//! input is an `IngestError` (the connection closes), whatever the bytes. Every publish asked for is accepted,
//! so media parsing is reached. Inputs are fed in pieces of a size the input's first byte chooses, as TCP would
//! split them. See `fuzz_support` for how the runs work (`cargo xtask fuzz rtmp-ingest` runs it for minutes).

mod fuzz_support;

use backyard_core::ingest::{Event, IngestError, Session};
use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ClientSession, ClientSessionConfig, ClientSessionResult, PublishRequestType, StreamMetadata};
use rml_rtmp::time::RtmpTimestamp;

const DICT: &[&str] = &[
    "\x02\0\0\0\0\0\x04\x01\0\0\0\0",
    "\x03\0\0\0\0\0\0\x14\0\0\0\0",
    "\x02\0\x07connect",
    "\x02\0\x07publish",
    "\x02\0\x0ccreateStream",
    "\x02\0\x0cdeleteStream",
    "\x02\0\x04play",
    "\x02\0\x0d@setDataFrame",
    "\x02\0\x0aonMetaData",
    "\x17\0\0\0\0",
    "\x17\x01\0\0\0",
    "\x27\x01\0\0\x21",
    "hvc1",
    "Opus",
    "\x01\x64\0\x1f",
    "\0\0\x09",
    "\x05",
    "\x06",
];

fn handshaken() -> Session {
    handshaken_with_greeting().0
}

/// A session past the handshake, and what it sent right after (chunk size, window, stream begin).
fn handshaken_with_greeting() -> (Session, Vec<u8>) {
    let mut client = Handshake::new(PeerType::Client);
    let mut session = Session::new();
    let c0c1 = client.generate_outbound_p0_and_p1().unwrap();
    session.feed(&c0c1).unwrap();
    let s = session.take_output();
    let HandshakeProcessResult::Completed { response_bytes, .. } = client.process_bytes(&s).unwrap() else {
        panic!("the client's handshake completes")
    };
    session.feed(&response_bytes).unwrap();
    let greeting = session.take_output();
    (session, greeting)
}

fn classify(e: &IngestError) -> String {
    let text = e.to_string();
    let kind = text.split([':', '(']).next().unwrap_or("");
    kind.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).take(48).collect()
}

fn feed(input: &[u8]) -> String {
    let mut session = handshaken();
    let piece = usize::from(input.first().copied().unwrap_or(0)).max(1) * 16;
    let mut published = false;
    let mut media = 0;
    for part in input.chunks(piece) {
        match session.feed(part) {
            Ok(events) => {
                for event in events {
                    match event {
                        Event::PublishRequested { request, .. } => {
                            if let Err(e) = session.accept(request) {
                                return format!("accept: {}", classify(&e));
                            }
                            published = true;
                        }
                        Event::Video { .. } | Event::Audio { .. } => media += 1,
                        _ => {}
                    }
                }
                let _ = session.take_output();
            }
            Err(e) => return format!("error: {}", classify(&e)),
        }
    }
    format!("ok published={published} media={}", media.min(3))
}

#[test]
fn rtmp_ingest_sessions_never_panic() {
    let seed = fuzz_support::corpus_dir("rtmp-ingest").join("encoder.bin");
    if !seed.exists() {
        // The seed is kept in the repository; this writes it where it went missing.
        std::fs::create_dir_all(seed.parent().unwrap()).unwrap();
        std::fs::write(&seed, encoder_stream()).unwrap();
    }
    fuzz_support::run("rtmp-ingest", DICT, feed);
}

/// What an encoder sends after the handshake: connect, publish, metadata, an H.264 configuration and a
/// keyframe, an AAC configuration and a frame (the corpus' seed).
fn encoder_stream() -> Vec<u8> {
    // The client only sends media once the server accepted; drive one against the real session.
    let (mut session, greeting) = handshaken_with_greeting();
    let mut out = Vec::new();
    let mut to_server = Vec::new();
    let (mut c2, first) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    for r in c2.handle_input(&greeting).unwrap() {
        if let ClientSessionResult::OutboundResponse(p) = r {
            to_server.extend_from_slice(&p.bytes);
        }
    }
    for r in first {
        if let ClientSessionResult::OutboundResponse(p) = r {
            to_server.extend_from_slice(&p.bytes);
        }
    }
    let pump = |c: &mut ClientSession, s: &mut Session, bytes: Vec<u8>, out: &mut Vec<u8>| {
        out.extend_from_slice(&bytes);
        let mut pending = bytes;
        for _ in 0..8 {
            if pending.is_empty() {
                break;
            }
            for e in s.feed(&pending).unwrap() {
                if let Event::PublishRequested { request, .. } = e {
                    s.accept(request).unwrap();
                }
            }
            pending = Vec::new();
            let reply = s.take_output();
            for r in c.handle_input(&reply).unwrap() {
                if let ClientSessionResult::OutboundResponse(p) = r {
                    pending.extend_from_slice(&p.bytes);
                }
            }
            out.extend_from_slice(&pending);
        }
    };
    let connect = c2.request_connection("live".into()).unwrap();
    let ClientSessionResult::OutboundResponse(p) = connect else { panic!("connect is a packet") };
    to_server.extend_from_slice(&p.bytes);
    pump(&mut c2, &mut session, to_server, &mut out);
    let ClientSessionResult::OutboundResponse(p) =
        c2.request_publishing("by_key".into(), PublishRequestType::Live).unwrap()
    else {
        panic!("publish is a packet")
    };
    pump(&mut c2, &mut session, p.bytes, &mut out);
    let mut meta = StreamMetadata::new();
    meta.video_width = Some(1280);
    meta.audio_codec_id = Some(10);
    let mut media = Vec::new();
    let mut add = |r: ClientSessionResult| {
        if let ClientSessionResult::OutboundResponse(p) = r {
            media.extend_from_slice(&p.bytes);
        }
    };
    add(c2.publish_metadata(&meta).unwrap());
    let mut avc = vec![0x17, 0, 0, 0, 0];
    avc.extend_from_slice(&[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb,
        0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60, 0x01, 0x00,
        0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
    ]);
    add(c2.publish_video_data(Bytes::from(avc), RtmpTimestamp::new(0), false).unwrap());
    add(c2
        .publish_video_data(
            Bytes::from_static(&[0x17, 1, 0, 0, 0x42, 0, 0, 0, 2, 0x65, 0x88]),
            RtmpTimestamp::new(0),
            false,
        )
        .unwrap());
    add(c2.publish_audio_data(Bytes::from_static(&[0xaf, 0, 0x11, 0x90]), RtmpTimestamp::new(0), false).unwrap());
    add(c2
        .publish_audio_data(Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04]), RtmpTimestamp::new(21), false)
        .unwrap());
    out.extend_from_slice(&media);
    out
}
