//! An RTMP encoder publishing with a `source` key: a participant in the studio, named after the key, whose
//! camera and microphone every browser receives and the host puts on stage like anyone's (core's
//! [`StudioSource`]: passed through, or transcoded for the browsers when the encoder sends B-frames; the program
//! decodes the encoder's own stream). One encoder per key: a second is refused while the first sends, and one
//! silent for [`super::STALE`] is replaced. A host removing the participant ends the encoder's connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backyard_core::compositor::{EncodedMedia, VideoCodec};
use backyard_core::ingest::{Accepted, Event, ProgramInput, ProgramMedia, PublishSink, StudioSource, Verdict};
use backyard_core::rtc::TrackSource;
use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use super::IngestStatus;
use crate::signaling::whip::{announce_joined, leave_seat, take_seat};
use crate::signaling::{Control, Hub};
use crate::state::AppState;
use crate::store::{Broadcast, IngestKeyRow};

/// How often the studio is told what the source costs while it transcodes.
const COST_EVERY: Duration = Duration::from_secs(5);

/// Seats the encoder publishing with `key` in `broadcast`'s studio.
pub(super) async fn publish(state: &AppState, broadcast: &Broadcast, key: &IngestKeyRow) -> Verdict {
    let ingest = &state.ingest;
    ingest.make_way(|k, _| *k == key.id, "this key already has a live encoder")?;
    let hub = Hub::get(state).await.map_err(|e| format!("the studio cannot take a source now: {e}"))?;
    let (participant, mut control) =
        take_seat(state, &hub, broadcast.id, &key.label).await.map_err(|e| e.to_string())?;
    let id = participant.id;
    let room = broadcast.id.to_string();
    let publisher =
        match hub.media.publish_source(&room, &id.to_string(), &[TrackSource::Camera, TrackSource::Microphone]) {
            Ok(p) => p,
            Err(e) => {
                leave_seat(state, &hub, broadcast.id, id, "left").await;
                return Err(format!("the studio cannot take a source now: {e}"));
            }
        };
    let source = match StudioSource::start(publisher, program_input(&hub, broadcast.id, id)) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            leave_seat(state, &hub, broadcast.id, id, "left").await;
            return Err(format!("the studio cannot take a source now: {e}"));
        }
    };
    announce_joined(state, broadcast.id, participant).await;
    let (stop, last_data) = ingest.publishing(state, broadcast.id, key.id).await;
    tracing::info!(broadcast = %broadcast.id, key = %key.id, participant = %id, "rtmp ingest: a source in the studio");
    // A host removing the participant ends the encoder's connection.
    let removed = stop.clone();
    tokio::spawn(async move {
        while let Some(ctl) = control.recv().await {
            if let Control::Moderated { action: crate::signaling::protocol::ModerateAction::Remove, .. } = ctl {
                removed.notify_one();
                return;
            }
        }
    });
    let sink = SourceSink {
        state: state.clone(),
        hub,
        key: key.id,
        broadcast: broadcast.id,
        participant: id,
        source,
        last_data,
        stop: stop.clone(),
        video: None,
        audio: None,
        told: None,
    };
    Ok(Accepted { sink: Box::new(sink), stop })
}

/// Hands the source's media to the broadcast's program, while one runs and has the source on stage.
fn program_input(hub: &Arc<Hub>, broadcast: Uuid, participant: Uuid) -> ProgramInput {
    let hub = hub.clone();
    let id: Arc<str> = participant.to_string().into();
    Arc::new(move |media: ProgramMedia| {
        let Some(live) = hub.programs.get(broadcast) else { return };
        let program = &live.program;
        if !program.wants(&id) {
            return;
        }
        match media {
            ProgramMedia::Video { annex_b, at } => {
                program.push_encoded(&id, EncodedMedia::Video { codec: VideoCodec::H264, data: annex_b }, at)
            }
            ProgramMedia::Audio { samples, at } => program.push_samples(&id, samples, at),
        }
    })
}

struct SourceSink {
    state: AppState,
    hub: Arc<Hub>,
    key: Uuid,
    broadcast: Uuid,
    participant: Uuid,
    source: Arc<StudioSource>,
    last_data: Arc<Mutex<Instant>>,
    stop: Arc<Notify>,
    video: Option<backyard_core::ingest::AvcConfig>,
    audio: Option<backyard_core::ingest::AacConfig>,
    /// What the studio was told last, and when.
    told: Option<(String, Instant)>,
}

impl SourceSink {
    /// Tells the studio what arrives, and what transcoding it for the browsers costs.
    fn tell(&mut self) {
        // Once a configuration arrives, then at most every few seconds (the cost changes).
        if self.told.as_ref().is_some_and(|(_, at)| at.elapsed() < COST_EVERY) {
            return;
        }
        let Some(video) = &self.video else { return };
        let Some(mut stream) = super::describe(video, self.audio.as_ref()) else { return };
        if self.source.transcoding() {
            stream.push_str(&format!(" · B-frames: transcoded for the studio ({:.2} cores)", self.source.cpu()));
        }
        if self.told.as_ref().is_some_and(|(s, _)| *s == stream) {
            self.told = Some((stream, Instant::now()));
            return;
        }
        self.told = Some((stream.clone(), Instant::now()));
        let status = IngestStatus { state: "live".into(), stream: Some(stream), message: None };
        self.state.ingest.set_status(&self.state, self.broadcast, self.key, status);
    }
}

impl PublishSink for SourceSink {
    fn event(&mut self, event: Event) {
        *self.last_data.lock() = Instant::now();
        match &event {
            Event::VideoConfig(c) => {
                self.video = Some(c.clone());
                self.told = None;
            }
            Event::AudioConfig(c) => {
                self.audio = Some(c.clone());
                self.told = None;
            }
            _ => {}
        }
        self.tell();
        // A source that cannot keep up loses media, never memory.
        self.source.push(event);
    }

    fn ended(self: Box<Self>, error: Option<String>) {
        self.state.ingest.publisher_ended(&self.state, self.broadcast, self.key, &self.stop, error.as_deref());
        let (state, hub, broadcast, participant) =
            (self.state.clone(), self.hub.clone(), self.broadcast, self.participant);
        let source = self.source;
        tokio::spawn(async move {
            // The source's thread is joined off the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || drop(source)).await;
            leave_seat(&state, &hub, broadcast, participant, "left").await;
        });
    }
}
