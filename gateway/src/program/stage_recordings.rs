//! Participants' own recordings while a program is on air: everyone on stage is recorded as they publish
//! (core's `SourceRecording`: their camera and microphone, or their screen share, not decoded or encoded again)
//! into a file of their own beside the program's recording, on its timeline. A stint on stage is one file and
//! one recording row (`participant_id`, `participant_name`); coming back on stage starts another.
//!
//! A task per program on air follows its stage every [`FOLLOW_EVERY`]; it stops with the outputs, and then
//! finalises its rows under the home's fence (or, when the home was lost, leaves them to the node that took
//! the show over, as the program's recording is).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backyard_core::compositor::Program;
use backyard_core::director::CLIP_SOURCE;
use backyard_core::egress::SourceRecordingReport;
use backyard_core::rtc::MediaNode;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::state::AppState;
use crate::store::{Recording, RecordingStatus};

/// How often the stage is compared with what is recorded.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The recordings of one program on air.
pub(super) struct StageRecordings {
    /// Told to stop, and whether to write the rows.
    stop: oneshot::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl StageRecordings {
    /// Starts following `program`'s stage; `part` is the program's recording these stand beside, written under
    /// `fence`.
    pub(super) fn start(
        state: &AppState,
        media: &MediaNode,
        program: Arc<Program>,
        part: Recording,
        fence: i64,
    ) -> StageRecordings {
        let (stop, stopped) = oneshot::channel();
        let follower = Follower {
            state: state.clone(),
            media: media.clone(),
            program,
            part,
            fence,
            room: String::new(),
            recording: HashMap::new(),
        };
        let task = tokio::spawn(follower.run(stopped));
        StageRecordings { stop, task }
    }

    /// Stops every recording (its file closed) and, when `write_rows`, finalises their rows.
    pub(super) async fn stop(self, write_rows: bool) {
        let _ = self.stop.send(write_rows);
        let _ = self.task.await;
    }
}

struct Follower {
    state: AppState,
    media: MediaNode,
    program: Arc<Program>,
    part: Recording,
    fence: i64,
    room: String,
    /// Recording rows by the source recorded.
    recording: HashMap<String, Uuid>,
}

impl Follower {
    async fn run(mut self, mut stopped: oneshot::Receiver<bool>) {
        self.room = self.part.broadcast_id.to_string();
        let mut every = tokio::time::interval(FOLLOW_EVERY);
        let write_rows = loop {
            tokio::select! {
                verdict = &mut stopped => break verdict.unwrap_or(false),
                _ = every.tick() => self.follow().await,
            }
        };
        let sources: Vec<String> = self.recording.keys().cloned().collect();
        for source in sources {
            self.stop_recording(&source, write_rows).await;
        }
    }

    /// Starts recording whoever came on stage and stops whoever left it.
    async fn follow(&mut self) {
        let on_stage: Vec<String> = self
            .program
            .on_stage()
            .into_iter()
            .filter(|s| s != CLIP_SOURCE && Uuid::parse_str(participant(s)).is_ok())
            .collect();
        let left: Vec<String> = self.recording.keys().filter(|s| !on_stage.contains(s)).cloned().collect();
        for source in left {
            self.stop_recording(&source, true).await;
        }
        for source in on_stage {
            if !self.recording.contains_key(&source) {
                self.start_recording(source).await;
            }
        }
    }

    async fn start_recording(&mut self, source: String) {
        let id = participant(&source).to_owned();
        let screen = source.contains(':');
        let name = self.name_of(&id).await;
        let name = if screen { format!("{name} (screen)") } else { name };
        let row = match self.state.store.create_participant_recording(&self.part, &id, &name, self.fence).await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(broadcast = %self.room, participant = %id, "cannot record a participant: {e}");
                // Not asked again for every tick: the stint goes unrecorded.
                self.recording.insert(source, Uuid::nil());
                return;
            }
        };
        let stem = self.state.cfg.recordings_dir().join(row.id.to_string());
        if let Err(e) = self.program.start_recording(&source, stem, !screen) {
            tracing::warn!(broadcast = %self.room, participant = %id, "cannot record a participant: {e}");
            let _ = self.state.store.finish_recording(row.id, RecordingStatus::Failed, 0.0, 0, self.fence).await;
            self.recording.insert(source, Uuid::nil());
            return;
        }
        self.media.set_recorded(&self.room, &id, true);
        tracing::info!(broadcast = %self.room, participant = %id, recording = %row.id, "recording a participant");
        self.recording.insert(source, row.id);
    }

    async fn stop_recording(&mut self, source: &str, write_rows: bool) {
        let Some(row) = self.recording.remove(source) else { return };
        let id = participant(source).to_owned();
        if !self.recording.keys().any(|s| participant(s) == id) {
            self.media.set_recorded(&self.room, &id, false);
        }
        let program = self.program.clone();
        let owned = source.to_owned();
        let report = tokio::task::spawn_blocking(move || program.stop_recording(&owned)).await.ok().flatten();
        if row.is_nil() || !write_rows {
            return;
        }
        if report.as_ref().is_some_and(|r| r.path.is_none() && r.error.is_none()) {
            // Nothing of theirs ever came (on stage for a moment, a camera that never sent, or an encoder in the
            // studio, which reaches the program by another path): no recording to list.
            let _ = self.state.store.delete_recording(row).await;
            return;
        }
        let (status, duration, size) = finished(report.as_ref());
        match self.state.store.finish_recording(row, status, duration, size, self.fence).await {
            Ok(()) => {
                tracing::info!(broadcast = %self.room, recording = %row, %status, duration, size, "participant's recording finalised")
            }
            Err(e) => tracing::warn!(broadcast = %self.room, recording = %row, "{e}"),
        }
    }

    /// The participant's display name, from whoever is in the room.
    async fn name_of(&self, id: &str) -> String {
        let Some(hub) = crate::signaling::Hub::running(&self.state) else { return id.to_owned() };
        hub.roster(&self.state, self.part.broadcast_id)
            .await
            .into_iter()
            .find(|p| p.id.to_string() == id)
            .map_or_else(|| id.to_owned(), |p| p.name)
    }
}

/// The participant a program source belongs to (`<id>` or `<id>:screen`).
fn participant(source: &str) -> &str {
    source.split(':').next().unwrap_or(source)
}

/// A finished recording's row: `ready` with its length and size when it holds media, else `failed`.
fn finished(report: Option<&SourceRecordingReport>) -> (RecordingStatus, f64, i64) {
    match report {
        Some(r) if r.size_bytes > 0 && r.path.is_some() => {
            (RecordingStatus::Ready, (r.end_secs - r.start_secs).max(0.0), r.size_bytes as i64)
        }
        _ => (RecordingStatus::Failed, 0.0, 0),
    }
}
