//! Stream keys never reach the logs, even at TRACE.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::{Backend, TestApp};
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

async fn scenario(b: Backend) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // Installed for the whole process (this test binary has one test), so tasks on every thread are captured.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    tracing::trace!("canary-3f9c: trace capture works");

    let t = TestApp::new(b).await;
    let host = t.user("h@example.com").await;
    let id = t.broadcast(&host, "x").await;
    let key = "FB-1234567890-0-AbCdEfGhIjKlMnOp";
    let created = t
        .post(&format!("/api/broadcasts/{id}/destinations"))
        .cookies(&host)
        .json(json!({"platform": "facebook", "streamKey": key}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let dest = created.body["id"].as_str().unwrap();
    let test = t.post(&format!("/api/broadcasts/{id}/destinations/{dest}/test")).cookies(&host).send().await;
    assert_eq!(test.status, StatusCode::OK);
    t.req(axum::http::Method::PATCH, &format!("/api/broadcasts/{id}/destinations/{dest}"))
        .cookies(&host)
        .json(json!({"streamKey": format!("{key}-2")}))
        .send()
        .await;
    t.get(&format!("/api/broadcasts/{id}/destinations")).cookies(&host).send().await;
    // A bad key that echoes back in an error must not be logged either.
    t.post(&format!("/api/broadcasts/{id}/destinations"))
        .cookies(&host)
        .json(json!({"platform": "facebook", "streamKey": format!("{key} with spaces")}))
        .send()
        .await;
    drop(t);

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("canary-3f9c"), "log capture is not working");
    assert!(logs.contains("destination added"), "the handlers' own log lines were captured");
    assert!(logs.lines().count() > 20, "TRACE logging produced lines");
    use base64::Engine as _;
    for form in [key.to_owned(), hex::encode(key), base64::engine::general_purpose::STANDARD.encode(key)] {
        assert!(!logs.contains(&form), "the stream key appears in the logs as {form}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_keys_never_appear_in_trace_logs() {
    scenario(Backend::Sqlite).await;
}
