//! Several `backyard` processes sharing one PostgreSQL database and one Redis, with a real nginx-rtmp as the
//! destination: a live show's home node killed with `kill -9` or frozen with `SIGSTOP`, and another node
//! carrying the show on. Timings are printed.

mod common;
#[path = "../../core/tests/common/mod.rs"]
mod media;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use common::process::{request, start_server};
use common::rtc::Endpoint;
use common::ws::{self, expect, expect_within, send, whip};
use common::{Backend, TestApp};
use serde_json::{Value, json};

/// The bound on a take-over the cluster promises: a lapsed home (5 s) plus a node's next look (1 s) and the
/// program's start, with room to spare.
const TAKE_OVER: Duration = Duration::from_secs(10);

/// One `backyard` node of the test's cluster, killed when dropped.
struct Node {
    name: &'static str,
    child: Child,
    addr: String,
    /// Where its RTMP ingest listens.
    rtmp: String,
    _data: media::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts a node on the test app's database, Redis prefix and secrets.
    fn start(t: &TestApp, name: &'static str) -> anyhow::Result<Node> {
        Node::start_with(t, name, None)
    }

    /// As [`Node::start`], writing recordings to `recordings` (a folder the nodes share) instead of its own.
    fn start_with(t: &TestApp, name: &'static str, recordings: Option<&std::path::Path>) -> anyhow::Result<Node> {
        let data = media::TempDir::new(name)?;
        let cfg = &t.state.cfg;
        let rtmp = format!("127.0.0.1:{}", media::free_port());
        let shared =
            recordings.map(|r| format!("recordings_dir = {:?}\n", r.display().to_string())).unwrap_or_default();
        let config = format!(
            "{shared}[database]\nurl = {db:?}\n[redis]\nurl = {redis:?}\nprefix = {prefix:?}\n\
             [secrets]\njwt_key = {jwt:?}\nstream_key_active = \"k1\"\n[secrets.stream_key_keys]\nk1 = {k1:?}\n\
             [media]\nport = {port}\n[cluster]\nnode_id = {name:?}\nsecret = \"a cluster secret for tests\"\n\
             [destinations.rtmp]\nallow-private-hosts = true\n[ingest]\nrtmp_bind = {rtmp:?}\n",
            db = cfg.database.url,
            redis = cfg.redis.url.clone().context("Redis")?,
            prefix = cfg.redis.prefix,
            jwt = cfg.secrets.jwt_key.clone().context("a JWT key")?,
            k1 = cfg.secrets.stream_key_keys.get("k1").context("a stream key key")?,
            port = media::free_port(),
        );
        let path = data.path().join("backyard.toml");
        std::fs::write(&path, config)?;
        let (child, addr) = start_server(data.path(), Some(&path))?;
        Ok(Node { name, child, addr, rtmp, _data: data })
    }

    /// `GET path` with `cookie` (empty for none): the status and the body's bytes, whatever they are.
    fn get_bytes(&self, path: &str, cookie: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut req = ureq::get(&format!("http://{}{path}", self.addr));
        if !cookie.is_empty() {
            req = req.set("Cookie", cookie);
        }
        let res = match req.call() {
            Ok(res) | Err(ureq::Error::Status(_, res)) => res,
            Err(e) => anyhow::bail!("GET {path}: {e}"),
        };
        let status = res.status();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut res.into_reader(), &mut body)?;
        Ok((status, body))
    }

    fn call(&self, method: &str, path: &str, cookie: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let (status, _, json) = request(&self.addr, method, path, cookie, body)?;
        Ok((status, json))
    }

    /// Registers a host (`<tag>@example.com`) through this node and creates a broadcast called `title`; returns the
    /// host's cookie and the broadcast's id.
    fn host_with_broadcast(&self, tag: &str, title: &str) -> anyhow::Result<(String, String)> {
        let (status, cookies, _) = request(
            &self.addr,
            "POST",
            "/api/auth/register",
            "",
            Some(json!({"email": format!("{tag}@example.com"), "password": "a long enough password", "name": "Host"})),
        )?;
        ensure!(status == 201 || status == 200, "register: {status}");
        let cookie = cookies.join("; ");
        let (status, broadcast) = self.call("POST", "/api/broadcasts", &cookie, Some(json!({"title": title})))?;
        ensure!(status == 201, "create: {status} {broadcast}");
        let id = broadcast["id"].as_str().context("an id")?.to_owned();
        Ok((cookie, id))
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        ensure!(Command::new("kill").args([signal, &self.child.id().to_string()]).status()?.success(), "kill {signal}");
        Ok(())
    }

    /// The broadcasts this node runs a program for, as its directory entry says (seen from `via`); `None`
    /// while it has no current entry.
    fn programs_seen_from(&self, via: &Node, cookie: &str) -> anyhow::Result<Option<Vec<String>>> {
        let (status, view) = via.call("GET", "/api/cluster", cookie, None)?;
        ensure!(status == 200, "cluster view: {status} {view}");
        let entry = view["nodes"].as_array().into_iter().flatten().find(|n| n["id"] == self.name);
        Ok(entry.map(|n| {
            n["programs"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)).collect()
        }))
    }
}

/// A show live from node A to nginx: the test app (database, Redis prefix, cleanup), the two nodes, nginx,
/// the host's cookie and the broadcast's id.
struct Show {
    // Dropped in this order: the nodes, nginx, the shared recordings folder, then the database and Redis keys.
    a: Node,
    b: Node,
    nginx: media::Nginx,
    cookie: String,
    id: String,
    /// The recordings folder the nodes share, when they share one.
    recordings: Option<media::TempDir>,
    _t: TestApp,
}

/// How a test's two nodes are set up.
#[derive(Default)]
struct Setup {
    /// A Redis other than the machine's.
    redis: Option<String>,
    /// One recordings folder for both nodes (as on a network file system).
    shared_recordings: bool,
    /// Viewers may watch the show (`settings.watch` unlisted).
    watch: bool,
}

/// A Redis of the test's own (no persistence), which it can restart.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> anyhow::Result<PrivateRedis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("start redis-server")?;
        let up =
            media::wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        up.context("redis-server did not come up")?;
        Ok(PrivateRedis { child, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Killed and started again on the same port, empty.
    fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_secs(1));
        *self = PrivateRedis::start(self.port)?;
        Ok(())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn live_show_on_node_a(rt: &tokio::runtime::Runtime, tag: &str) -> anyhow::Result<Show> {
    live_show_on_node_a_with(rt, tag, Setup::default())
}

/// As [`live_show_on_node_a`], set up as `setup` says.
fn live_show_on_node_a_with(rt: &tokio::runtime::Runtime, tag: &str, setup: Setup) -> anyhow::Result<Show> {
    let t = rt.block_on(TestApp::with(Backend::Postgres, |cfg| {
        if let Some(url) = setup.redis {
            cfg.redis.url = Some(url);
        }
    }));
    let nginx = media::Nginx::start(media::NginxOptions::default())?;
    let recordings = if setup.shared_recordings { Some(media::TempDir::new("recordings")?) } else { None };
    let a = Node::start_with(&t, "node-a", recordings.as_ref().map(|r| r.path()))?;
    let b = Node::start_with(&t, "node-b", recordings.as_ref().map(|r| r.path()))?;
    let (cookie, id) = a.host_with_broadcast(tag, "Two nodes")?;
    let server = format!("rtmp://127.0.0.1:{}/live", nginx.rtmp_port);
    let dest = json!({"platform": "rtmp", "name": "nginx", "rtmpUrl": server, "streamKey": "show"});
    let (status, body) = a.call("POST", &format!("/api/broadcasts/{id}/destinations"), &cookie, Some(dest))?;
    ensure!(status == 201, "destination: {status} {body}");
    if setup.watch {
        let settings = json!({"settings": {"watch": "unlisted"}});
        let (status, body) = a.call("PATCH", &format!("/api/broadcasts/{id}"), &cookie, Some(settings))?;
        ensure!(status == 200, "watch settings: {status} {body}");
    }
    let (status, live) = a.call("POST", &format!("/api/broadcasts/{id}/start"), &cookie, None)?;
    ensure!(status == 200 && live["status"] == "live", "start on node A: {status} {live}");
    media::wait_until(Duration::from_secs(20), || accepted_publishes(&nginx) == 1)
        .with_context(|| format!("node A never published:\n{}", nginx.log()))?;
    // Another node answers for the same show: it is A's (going live again from B is refused, naming A).
    let (status, again) = b.call("POST", &format!("/api/broadcasts/{id}/start"), &cookie, None)?;
    ensure!(status == 409, "start again through node B: {status} {again}");
    media::wait_until(Duration::from_secs(10), || {
        a.programs_seen_from(&b, &cookie).is_ok_and(|p| p == Some(vec![id.clone()]))
    })
    .with_context(|| {
        format!("node A's entry never listed the show: {:?}", b.call("GET", "/api/cluster", &cookie, None))
    })?;
    Ok(Show { a, b, nginx, cookie, id, recordings, _t: t })
}

/// Publishes nginx accepted (it refuses a second publisher of a stream while the first is connected).
fn accepted_publishes(nginx: &media::Nginx) -> usize {
    let log = nginx.log();
    nginx.publish_count() - log.lines().filter(|l| l.contains("already publishing")).count()
}

/// The show's recording rows, oldest first: (status, duration).
fn recordings(node: &Node, cookie: &str, broadcast: &str) -> anyhow::Result<Vec<(String, f64)>> {
    Ok(recording_parts(node, cookie, broadcast)?.into_iter().map(|(_, s, d)| (s, d)).collect())
}

/// The show's recording rows, oldest first: (id, status, duration).
fn recording_parts(node: &Node, cookie: &str, broadcast: &str) -> anyhow::Result<Vec<(String, String, f64)>> {
    let (status, page) = node.call("GET", "/api/recordings?limit=100", cookie, None)?;
    ensure!(status == 200, "recordings: {status} {page}");
    let mut rows: Vec<(String, String, String, f64)> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["broadcastId"] == broadcast)
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (text("createdAt"), text("id"), text("status"), r["duration"].as_f64().unwrap_or(0.0))
        })
        .collect();
    rows.sort_by(|x, y| x.0.cmp(&y.0));
    Ok(rows.into_iter().map(|(_, id, s, d)| (id, s, d)).collect())
}

/// Runs the tests of this file one at a time: each starts two or three nodes (each compiling the plugins at
/// start) and measures take-overs against time bounds, which a machine busy starting another test's nodes would
/// stretch.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

#[test]
fn the_directory_lists_the_nodes_whose_lease_is_current() -> anyhow::Result<()> {
    use backyard::cluster::{Load, NodeInfo};
    let rt = runtime()?;
    rt.block_on(async {
        let t = TestApp::with(Backend::Postgres, |_| {}).await;
        let d = &t.state.cluster.directory;
        let entry = |id: &str| NodeInfo {
            id: id.into(),
            http: format!("http://{id}.test"),
            started_at: "2026-01-01T00:00:00Z".into(),
            version: "test".into(),
            load: Load::default(),
            programs: Vec::new(),
            relay: None,
        };
        ensure!(!d.register(&entry("node-x")).await?, "a first entry is new");
        ensure!(!d.register(&entry("node-y")).await?, "a first entry is new");
        ensure!(d.register(&entry("node-x")).await?, "a second one renews");
        let ids = || async { anyhow::Ok(d.nodes().await?.into_iter().map(|n| n.id).collect::<Vec<_>>()) };
        let listed = ids().await?;
        ensure!(listed.contains(&"node-x".into()) && listed.contains(&"node-y".into()), "{listed:?}");

        // node-y's lease runs out (its entry expires with it; Redis's clock passes its score in the index).
        let prefix = &t.state.cfg.redis.prefix;
        let mut redis = redis::Client::open(common::redis_url())?.get_multiplexed_async_connection().await?;
        let index = format!("{prefix}cluster:nodes");
        redis::cmd("DEL").arg(format!("{prefix}cluster:node:node-y")).query_async::<()>(&mut redis).await?;
        redis::cmd("ZADD").arg(&index).arg(1).arg("node-y").query_async::<()>(&mut redis).await?;
        let listed = ids().await?;
        ensure!(listed.contains(&"node-x".into()) && !listed.contains(&"node-y".into()), "{listed:?}");
        let score: Option<f64> = redis::cmd("ZSCORE").arg(&index).arg("node-y").query_async(&mut redis).await?;
        ensure!(score.is_none(), "an expired member leaves the index when the nodes are listed");
        // An entry that expired before its index member did is not listed either.
        redis::cmd("DEL").arg(format!("{prefix}cluster:node:node-x")).query_async::<()>(&mut redis).await?;
        ensure!(!ids().await?.contains(&"node-x".into()));
        anyhow::Ok(())
    })
}

#[test]
fn a_killed_home_node_s_show_is_taken_over_by_another_node() -> anyhow::Result<()> {
    let _alone = alone();
    let rt = runtime()?;
    let show = live_show_on_node_a_with(&rt, "killed", Setup { shared_recordings: true, ..Setup::default() })?;
    std::thread::sleep(Duration::from_secs(3));

    show.a.signal("-KILL")?;
    let killed = Instant::now();
    let took = media::wait_until(TAKE_OVER + Duration::from_secs(20), || accepted_publishes(&show.nginx) == 2)
        .with_context(|| format!("nobody published again after node A died:\n{}", show.nginx.log()))?;
    println!("kill -9 of the home node → another node's publish at the destination: {:.1} s", took.as_secs_f64());
    ensure!(took <= TAKE_OVER, "the show was taken over after {:.1} s", took.as_secs_f64());
    ensure!(killed.elapsed() >= Duration::from_secs(4), "taken over before node A's lease could lapse");
    // Node B lists the show in its next heartbeat.
    media::wait_until(Duration::from_secs(5), || {
        show.b.programs_seen_from(&show.b, &show.cookie).is_ok_and(|p| p == Some(vec![show.id.clone()]))
    })
    .context("node B does not list the show as its own")?;

    // The nodes share their recordings folder: node B finalised the part node A left (playable up to its last
    // fragment) when it took over, and writes the second.
    let rows = recording_parts(&show.b, &show.cookie, &show.id)?;
    ensure!(rows.len() == 2, "{rows:?}");
    ensure!(rows[0].1 == "ready" && rows[0].2 > 1.0, "node A's part, finalised by node B: {rows:?}");
    ensure!(rows[1].1 == "recording", "node B's part: {rows:?}");
    std::thread::sleep(Duration::from_secs(3));
    let (status, ended) = show.b.call("POST", &format!("/api/broadcasts/{}/end", show.id), &show.cookie, None)?;
    ensure!(status == 200 && ended["status"] == "ended", "end: {status} {ended}");
    let rows = recording_parts(&show.b, &show.cookie, &show.id)?;
    ensure!(rows[1].1 == "ready" && rows[1].2 > 2.0, "the second part is final: {rows:?}");
    println!("recording parts: node A's {:.1} s (finalised by node B), node B's {:.1} s", rows[0].2, rows[1].2);
    // Both parts are served by the surviving node and play.
    let folder = show.recordings.as_ref().context("the shared recordings folder")?;
    for (id, _, duration) in &rows {
        let (status, _) = show.b.call("HEAD", &format!("/api/recordings/{id}/file"), &show.cookie, None)?;
        ensure!(status == 200, "part {id} through node B: {status}");
        let p = media::probe(&folder.path().join(format!("{id}.mp4")))?;
        ensure!(p.video_codec == "h264" && p.duration > 1.0, "part {id}: {p:?}");
        ensure!((p.duration - duration).abs() < 1.5, "part {id}: listed {duration:.1} s, plays {:.1} s", p.duration);
    }
    // nginx received both publishes, each a playable stream.
    let files = show.nginx.recordings();
    ensure!(files.len() == 2, "{files:?}");
    for f in &files {
        let p = media::probe(f)?;
        ensure!(p.video_codec == "h264" && p.duration > 1.0, "{}: {p:?}", f.display());
    }
    Ok(())
}

#[test]
fn a_show_s_viewers_and_recording_are_served_through_any_node() -> anyhow::Result<()> {
    let _alone = alone();
    let rt = runtime()?;
    let show = live_show_on_node_a_with(&rt, "viewers", Setup { watch: true, ..Setup::default() })?;
    let (a, b, id) = (&show.a, &show.b, show.id.as_str());
    let get = |node: &Node, path: &str| node.get_bytes(path, "");

    // HLS through node B, which runs no program: the home's playlist, and its segments byte for byte.
    let playlist = format!("/api/watch/{id}/hls/index.m3u8");
    media::wait_until(Duration::from_secs(20), || {
        get(b, &playlist).is_ok_and(|(s, body)| s == 200 && String::from_utf8_lossy(&body).contains("seg-"))
    })
    .with_context(|| format!("no playlist through node B: {:?}", get(b, &playlist).map(|(s, _)| s)))?;
    let (_, listed) = get(b, &playlist)?;
    let listed = String::from_utf8(listed)?;
    let segment = listed.lines().find(|l| l.starts_with("seg-")).context("a segment")?;
    let (status, through_b) = get(b, &format!("/api/watch/{id}/hls/{segment}"))?;
    let (_, from_a) = get(a, &format!("/api/watch/{id}/hls/{segment}"))?;
    ensure!(
        status == 200 && !through_b.is_empty() && through_b == from_a,
        "segment {segment} through node B: {status}"
    );
    let (status, init) = get(b, &format!("/api/watch/{id}/hls/init.mp4"))?;
    ensure!(status == 200 && init.len() > 100, "init segment through node B: {status}");

    // WHEP through node B: the program's H.264 arrives from node A, and the session ends through node B too.
    rt.block_on(async {
        use str0m::media::{Direction, MediaKind};
        let mut viewer = common::rtc::Endpoint::new().await?;
        let mut api = viewer.rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().context("an offer")?;
        let whep = format!("http://{}/api/watch/{id}/whep", b.addr);
        let (status, location, answer) = whip("POST", whep, None, "application/sdp", offer.to_sdp_string()).await;
        ensure!(status == 201, "WHEP through node B: {status} {answer}");
        ensure!(location.starts_with(&format!("/api/watch/{id}/whep/")), "{location}");
        viewer.rtc.sdp_api().accept_answer(pending, str0m::change::SdpAnswer::from_sdp_string(&answer)?)?;
        let started = Instant::now();
        let mut keyframe = None;
        while keyframe.is_none() {
            ensure!(started.elapsed() < Duration::from_secs(20), "no H.264 keyframe through node B in 20 s");
            let (wake, events) = viewer.drive().await?;
            for e in events {
                if let str0m::Event::MediaData(d) = e
                    && d.params.spec().codec == str0m::format::Codec::H264
                    && d.is_keyframe()
                {
                    keyframe = Some(started.elapsed());
                }
            }
            viewer.receive(wake.saturating_duration_since(Instant::now()).min(Duration::from_millis(20))).await?;
        }
        println!(
            "WHEP through a node that is not the show's home: first keyframe after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let (status, _, body) =
            whip("DELETE", format!("http://{}{location}", b.addr), None, "application/sdp", String::new()).await;
        ensure!(status == 200, "ending the WHEP session through node B: {status} {body}");
        anyhow::Ok(())
    })?;

    // A show nobody may watch is no more visible through node B than through node A.
    let (status, _) = get(b, &format!("/api/watch/{}/hls/index.m3u8", uuid::Uuid::new_v4()))?;
    ensure!(status == 404, "an unknown show through node B: {status}");

    // The recording part, in node A's own folder, is downloaded and deleted through node B.
    let (status, ended) = b.call("POST", &format!("/api/broadcasts/{id}/end"), &show.cookie, None)?;
    ensure!(status == 200 && ended["status"] == "ended", "end: {status} {ended}");
    media::wait_until(Duration::from_secs(10), || {
        recording_parts(b, &show.cookie, id).is_ok_and(|rows| rows.len() == 1 && rows[0].1 == "ready")
    })
    .context("the part is not final")?;
    let part = recording_parts(b, &show.cookie, id)?.remove(0).0;
    let file = format!("/api/recordings/{part}/file");
    let download = |node: &Node| node.get_bytes(&file, &show.cookie);
    let (status, through_b) = download(b)?;
    let (_, from_a) = download(a)?;
    ensure!(status == 200 && through_b.len() > 1000 && through_b == from_a, "the part through node B: {status}");
    // (Without an Origin: these nodes each have a public URL of their own, where a cluster shares one.)
    let delete = ureq::delete(&format!("http://{}/api/recordings/{part}", b.addr)).set("Cookie", &show.cookie).call();
    let status = match delete {
        Ok(res) | Err(ureq::Error::Status(_, res)) => res.status(),
        Err(e) => anyhow::bail!("DELETE through node B: {e}"),
    };
    ensure!(status == 204, "deleting the part through node B: {status}");
    ensure!(download(a)?.0 == 404, "node A still serves the deleted part");
    ensure!(recording_parts(a, &show.cookie, id)?.is_empty(), "its row is gone");
    Ok(())
}

#[test]
fn an_encoder_s_show_has_one_home_and_goes_on_where_the_encoder_reconnects() -> anyhow::Result<()> {
    let _alone = alone();
    let rt = runtime()?;
    let t = rt.block_on(TestApp::with(Backend::Postgres, |_| {}));
    let nginx = media::Nginx::start(media::NginxOptions::default())?;
    let shared = media::TempDir::new("recordings")?;
    let a = Node::start_with(&t, "node-a", Some(shared.path()))?;
    let b = Node::start_with(&t, "node-b", Some(shared.path()))?;
    let (cookie, id) = a.host_with_broadcast("encoder", "Encoder show")?;
    let server = format!("rtmp://127.0.0.1:{}/live", nginx.rtmp_port);
    let dest = json!({"platform": "rtmp", "name": "nginx", "rtmpUrl": server, "streamKey": "show"});
    let (status, body) = a.call("POST", &format!("/api/broadcasts/{id}/destinations"), &cookie, Some(dest))?;
    ensure!(status == 201, "destination: {status} {body}");
    let relay_key = json!({"label": "OBS", "mode": "relay"});
    let (status, body) = a.call("POST", &format!("/api/broadcasts/{id}/ingest-keys"), &cookie, Some(relay_key))?;
    ensure!(status == 201, "ingest key: {status} {body}");
    let key = body["key"].as_str().context("the key")?.to_owned();
    let clip = common::rtmp::obs_like_clip(shared.path(), 40);
    let home = || -> anyhow::Result<Option<String>> {
        let mut redis = redis::Client::open(common::redis_url())?.get_connection()?;
        let held: Option<String> =
            redis::cmd("GET").arg(format!("{}cluster:home:{id}", t.state.cfg.redis.prefix)).query(&mut redis)?;
        Ok(held.and_then(|h| h.split(' ').next().map(str::to_owned)))
    };

    // The encoder reaches node A: node A is the show's home and relays it.
    let first = common::rtmp::publish(&clip, &format!("rtmp://{}/live/{key}", a.rtmp));
    media::wait_until(Duration::from_secs(20), || accepted_publishes(&nginx) == 1)
        .with_context(|| format!("node A never relayed:\n{}", nginx.log()))?;
    ensure!(home()?.as_deref() == Some("node-a"), "home: {:?}", home()?);

    // A second encoder with the same show's key at node B is turned away (after waiting out a lease, in case node
    // A were gone), and nginx never hears from it.
    let second = common::rtmp::publish(&clip, &format!("rtmp://{}/live/{key}", b.rtmp));
    ensure!(common::rtmp::exits_within(second, Duration::from_secs(20)), "node B kept the second encoder");
    ensure!(accepted_publishes(&nginx) == 1, "a second publisher reached the destination:\n{}", nginx.log());
    ensure!(home()?.as_deref() == Some("node-a"), "home: {:?}", home()?);

    // Node A dies; the encoder, reconnecting, reaches node B, which carries the show on (as a relay: no program).
    std::thread::sleep(Duration::from_secs(2));
    a.signal("-KILL")?;
    let killed = Instant::now();
    drop(first);
    let again = common::rtmp::publish(&clip, &format!("rtmp://{}/live/{key}", b.rtmp));
    let took = media::wait_until(TAKE_OVER + Duration::from_secs(20), || accepted_publishes(&nginx) == 2)
        .with_context(|| format!("node B never relayed:\n{}", nginx.log()))?;
    println!(
        "kill -9 of an encoder's node → the reconnecting encoder relayed by another node: {:.1} s",
        took.as_secs_f64()
    );
    ensure!(killed.elapsed() <= TAKE_OVER + Duration::from_secs(5), "{:.1} s", killed.elapsed().as_secs_f64());
    ensure!(home()?.as_deref() == Some("node-b"), "home: {:?}", home()?);
    std::thread::sleep(Duration::from_secs(3));
    ensure!(b.programs_seen_from(&b, &cookie)? == Some(vec![]), "node B took the show over as a program");

    // Ended through node B: the relay ends, both parts are final (node B finalised node A's from the shared
    // folder) and the encoder is let go.
    let (status, ended) = b.call("POST", &format!("/api/broadcasts/{id}/end"), &cookie, None)?;
    ensure!(status == 200 && ended["status"] == "ended", "end: {status} {ended}");
    ensure!(common::rtmp::exits_within(again, Duration::from_secs(10)), "the encoder was not let go");
    let rows = recordings(&b, &cookie, &id)?;
    ensure!(rows.len() == 2 && rows.iter().all(|(s, d)| s == "ready" && *d > 1.0), "{rows:?}");
    ensure!(home()?.is_none(), "the home was given up: {:?}", home()?);
    Ok(())
}

#[test]
fn a_frozen_home_node_stops_its_outputs_when_it_wakes_to_find_its_show_taken_over() -> anyhow::Result<()> {
    let _alone = alone();
    let rt = runtime()?;
    let show = live_show_on_node_a(&rt, "frozen")?;
    let (a, b, cookie, id) = (&show.a, &show.b, show.cookie.as_str(), show.id.as_str());

    a.signal("-STOP")?;
    let frozen = Instant::now();
    let took = media::wait_until(TAKE_OVER + Duration::from_secs(20), || {
        b.programs_seen_from(b, cookie).is_ok_and(|p| p == Some(vec![id.to_owned()]))
    })
    .context("node B never took the show over")?;
    println!("SIGSTOP of the home node → another node is home: {:.1} s", took.as_secs_f64());
    ensure!(took <= TAKE_OVER, "the show was taken over after {:.1} s", took.as_secs_f64());
    // The frozen node still holds its connection to nginx, which refuses node B's publishes meanwhile.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(frozen.elapsed()));
    ensure!(accepted_publishes(&show.nginx) == 1, "two publishers at once:\n{}", show.nginx.log());

    a.signal("-CONT")?;
    let woke = Instant::now();
    let stopped =
        media::wait_until(Duration::from_secs(10), || a.programs_seen_from(b, cookie).is_ok_and(|p| p == Some(vec![])))
            .context("node A kept its program after waking")?;
    println!("SIGCONT → node A has stopped its program (seen in its next heartbeat): {:.1} s", stopped.as_secs_f64());
    media::wait_until(Duration::from_secs(30), || accepted_publishes(&show.nginx) == 2)
        .with_context(|| format!("node B never got its publish in:\n{}", show.nginx.log()))?;
    println!("SIGCONT → node B publishing at the destination: {:.1} s", woke.elapsed().as_secs_f64());
    ensure!(b.programs_seen_from(b, cookie)? == Some(vec![id.to_owned()]), "node B is still the home");

    // Any node serves the API: ending the show through node A ends it on node B, its home.
    let (status, ended) = a.call("POST", &format!("/api/broadcasts/{id}/end"), cookie, None)?;
    ensure!(status == 200 && ended["status"] == "ended", "end through node A: {status} {ended}");
    let done = media::wait_until(Duration::from_secs(15), || {
        recordings(b, cookie, id).is_ok_and(|r| r.len() == 2 && r[1].0 == "ready")
    });
    let rows = recordings(b, cookie, id)?;
    ensure!(done.is_some(), "node B did not finish its part: {rows:?}");
    ensure!(rows[0].0 == "recording", "node A wrote nothing after waking: {rows:?}");
    Ok(())
}

#[test]
fn redis_restarting_without_its_data_stops_no_live_show() -> anyhow::Result<()> {
    let _alone = alone();
    let rt = runtime()?;
    let mut redis = PrivateRedis::start(media::free_port())?;
    let show = live_show_on_node_a_with(&rt, "redis", Setup { redis: Some(redis.url()), ..Setup::default() })?;
    let (a, b, id) = (&show.a, &show.b, show.id.as_str());

    redis.restart()?;
    let restarted = Instant::now();
    // Sessions lived in that Redis: sign in again, once the node's connection to Redis is back (a request
    // that meets the broken connection fails while it reconnects).
    let mut cookie = String::new();
    let signed_in = media::wait_until(Duration::from_secs(10), || {
        let login = json!({"email": "redis@example.com", "password": "a long enough password"});
        match request(&b.addr, "POST", "/api/auth/login", "", Some(login)) {
            Ok((200, cookies, _)) => {
                cookie = cookies.join("; ");
                true
            }
            _ => false,
        }
    })
    .context("could not sign in again after Redis restarted")?;
    println!("Redis restarted empty → signed in again: {:.1} s", signed_in.as_secs_f64());
    // Both nodes are back in the directory and node A is still the show's home.
    let back = media::wait_until(Duration::from_secs(10), || {
        a.programs_seen_from(b, &cookie).is_ok_and(|p| p == Some(vec![id.to_owned()]))
            && b.programs_seen_from(b, &cookie).is_ok_and(|p| p == Some(vec![]))
    })
    .with_context(|| format!("the directory did not come back: {:?}", b.call("GET", "/api/cluster", &cookie, None)))?;
    println!("Redis restarted empty → both nodes listed again, node A still home: {:.1} s", back.as_secs_f64());
    // Nothing moved for a while after: no take-over, no second publish, still live.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(restarted.elapsed()));
    ensure!(a.programs_seen_from(b, &cookie)? == Some(vec![id.to_owned()]), "node A lost the show");
    ensure!(b.programs_seen_from(b, &cookie)? == Some(vec![]), "node B took the show");
    ensure!(accepted_publishes(&show.nginx) == 1, "the destination saw a new publish:\n{}", show.nginx.log());
    let (status, broadcast) = b.call("GET", &format!("/api/broadcasts/{id}"), &cookie, None)?;
    ensure!(status == 200 && broadcast["status"] == "live", "{status} {broadcast}");
    Ok(())
}

#[test]
fn people_on_two_nodes_share_one_studio_over_the_relay() -> anyhow::Result<()> {
    let _alone = alone();
    let rt = runtime()?;
    let t = rt.block_on(TestApp::new(Backend::Postgres));
    let a = Node::start(&t, "node-a")?;
    let b = Node::start(&t, "node-b")?;
    let (cookie, id) = b.host_with_broadcast("span", "Across nodes")?;
    let keys = format!("/api/broadcasts/{id}/ingest-keys");
    let (status, key) = b.call("POST", &keys, &cookie, Some(json!({"label": "Phone on node A", "mode": "source"})))?;
    ensure!(status == 201, "ingest key: {status} {key}");
    let key = key["key"].as_str().context("a key")?.to_owned();
    // Both nodes announce their relay in the directory.
    media::wait_until(Duration::from_secs(10), || {
        b.call("GET", "/api/cluster", &cookie, None).is_ok_and(|(_, v)| {
            let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
            ["node-a", "node-b"].iter().all(|id| nodes.iter().any(|n| n["id"] == *id && n["relay"].is_string()))
        })
    })
    .with_context(|| {
        format!("both nodes listed with a relay address: {:?}", b.call("GET", "/api/cluster", &cookie, None))
    })?;

    rt.block_on(async {
        // The host is in the studio on node B.
        let mut host = ws::connect(&b.addr, "cookie", &cookie).await?;
        send(&mut host, "join-broadcast", json!({"broadcastId": id, "audioEnabled": false, "videoEnabled": false}))
            .await?;
        expect(&mut host, "joined").await?;
        let mut studio = Endpoint::new().await?;
        let mut api = studio.rtc.sdp_api();
        api.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().context("an offer")?;
        send(&mut host, "webrtc-offer", json!({"sdp": offer.to_sdp_string()})).await?;
        let answer = expect(&mut host, "webrtc-answer").await?;
        let answer = str0m::change::SdpAnswer::from_sdp_string(answer["sdp"].as_str().context("sdp")?)?;
        studio.rtc.sdp_api().accept_answer(pending, answer)?;
        // A host watches the program preview: the server offers it at once.
        let offer = expect(&mut host, "webrtc-offer").await?;
        let offer = str0m::change::SdpOffer::from_sdp_string(offer["sdp"].as_str().context("sdp")?)?;
        let answer = studio.rtc.sdp_api().accept_offer(offer)?;
        send(&mut host, "webrtc-answer", json!({"sdp": answer.to_sdp_string()})).await?;

        // A camera publishes into the same studio through node A (WHIP).
        let mut publisher = Endpoint::new().await?;
        let mut api = publisher.rtc.sdp_api();
        api.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::SendOnly, None, None, None);
        let cam = api.add_media(str0m::media::MediaKind::Video, str0m::media::Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().context("an offer")?;
        let endpoint = format!("http://{}/api/whip", a.addr);
        let (status, _, answer) =
            whip("POST", endpoint, Some(key.clone()), "application/sdp", offer.to_sdp_string()).await;
        ensure!(status == 201, "WHIP on node A: {status} {answer}");
        let published = Instant::now();
        publisher.rtc.sdp_api().accept_answer(pending, str0m::change::SdpAnswer::from_sdp_string(&answer)?)?;
        // The host on node B is told (over the bus) ...
        let (joined, _) = expect_within(&mut host, "participant-joined", Duration::from_secs(10)).await?;
        ensure!(joined["participant"]["name"] == "Phone on node A", "{joined}");
        let participant = joined["participant"]["id"].as_str().context("id")?.to_owned();

        // ... and gets its camera (over the relay): frames naming the publisher on a track whose stream is its id.
        let before_pump = published.elapsed();
        let pumped = ws::pump(&mut publisher, cam, &mut studio, &mut host, &participant, 30, Duration::from_secs(20))
            .await
            .context("node A's camera at the host on node B")?;
        println!(
            "node A's WHIP camera at the host on node B: first frame {:.0} ms after the publish, 30 frames of {} sent",
            (before_pump + pumped.first).as_secs_f64() * 1000.0,
            pumped.sent
        );

        // Someone joining the studio on node B later is told who is there through node A.
        let mut second = ws::connect(&b.addr, "cookie", &cookie).await?;
        send(&mut second, "join-broadcast", json!({"broadcastId": id, "audioEnabled": false, "videoEnabled": false}))
            .await?;
        let joined = expect(&mut second, "joined").await?;
        let names: Vec<_> =
            joined["participants"].as_array().into_iter().flatten().map(|p| p["name"].clone()).collect();
        ensure!(names.contains(&json!("Phone on node A")), "the studio's list on node B: {names:?}");

        // The host on node B mutes the camera in node A's studio: node A stops it, and everyone is told.
        send(&mut host, "moderate", json!({"participantId": participant, "action": "mute-video"})).await?;
        let muted = Instant::now();
        loop {
            let (status, _) = expect_within(&mut host, "participant-status-updated", Duration::from_secs(10)).await?;
            if status["participant"]["id"] == participant.as_str() && status["participant"]["videoEnabled"] == false {
                break;
            }
        }
        println!("muted through the other node in {:.0} ms", muted.elapsed().as_secs_f64() * 1000.0);

        // Node A dies: node B sees it gone from the directory and tells the room its people left.
        a.signal("-KILL")?;
        let killed = Instant::now();
        let (left, _) = expect_within(&mut host, "participant-left", TAKE_OVER + Duration::from_secs(5)).await?;
        ensure!(left["participantId"] == participant.as_str() && left["reason"] == "node-lost", "{left}");
        println!("node A killed: its camera left the studio on node B {:.1} s later", killed.elapsed().as_secs_f64());
        Ok::<_, anyhow::Error>(())
    })?;
    drop((a, b));
    Ok(())
}

/// One `kill -9` of a live show's home node, timed from the kill: when its home lease was seen gone from the
/// directory, when another node claimed the show (the database's home fence rose), when nginx accepted that
/// node's publish, and when the dead node's entry left the directory.
struct Failover {
    lease_gone: Duration,
    claimed: Duration,
    published: Duration,
    entry_gone: Duration,
}

fn time_one_failover(rt: &tokio::runtime::Runtime, run: usize) -> anyhow::Result<Failover> {
    let show = live_show_on_node_a(rt, &format!("failover{run}"))?;
    let id: uuid::Uuid = show.id.parse()?;
    let state = &show._t.state;
    let fence =
        || -> anyhow::Result<i64> { Ok(rt.block_on(state.store.broadcast(id))?.context("the broadcast")?.home_fence) };
    std::thread::sleep(Duration::from_secs(2));
    let before = fence()?;
    show.a.signal("-KILL")?;
    let killed = Instant::now();
    let (mut lease_gone, mut claimed, mut published, mut entry_gone) = (None, None, None, None);
    while killed.elapsed() < TAKE_OVER + Duration::from_secs(20) {
        let now = Some(killed.elapsed());
        if lease_gone.is_none()
            && rt.block_on(state.cluster.directory.home(id))?.is_none_or(|(node, _)| node != "node-a")
        {
            lease_gone = now;
        }
        if claimed.is_none() && fence()? > before {
            claimed = now;
        }
        if published.is_none() && accepted_publishes(&show.nginx) == 2 {
            published = now;
        }
        if entry_gone.is_none() && !rt.block_on(state.cluster.directory.nodes())?.iter().any(|n| n.id == "node-a") {
            entry_gone = now;
        }
        if [lease_gone, claimed, published, entry_gone].iter().all(Option::is_some) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let missing = |what: &str| format!("run {run}: {what} within {:?}:\n{}", killed.elapsed(), show.nginx.log());
    Ok(Failover {
        lease_gone: lease_gone.with_context(|| missing("node A's home lease never lapsed"))?,
        claimed: claimed.with_context(|| missing("no node claimed the show"))?,
        published: published.with_context(|| missing("no new publish reached nginx"))?,
        entry_gone: entry_gone.with_context(|| missing("node A's entry never left the directory"))?,
    })
}

/// The failover timings `cargo xtask bench cluster` reports (not part of the suite): five `kill -9`s of a live
/// show's home node (two nodes, PostgreSQL, Redis, nginx-rtmp), each phase's median and worst. Prints a table
/// and writes `target/bench/failover.json`.
#[test]
#[ignore = "a benchmark: `cargo xtask bench cluster` runs it"]
fn bench_failover_after_kill_9() -> anyhow::Result<()> {
    let _alone = alone();
    let rt = runtime()?;
    const RUNS: usize = 5;
    let mut runs = Vec::new();
    for run in 1..=RUNS {
        let f = time_one_failover(&rt, run)?;
        println!(
            "run {run}: lease gone {:.2} s, claimed {:.2} s, new publish at nginx {:.2} s, entry gone {:.2} s",
            f.lease_gone.as_secs_f64(),
            f.claimed.as_secs_f64(),
            f.published.as_secs_f64(),
            f.entry_gone.as_secs_f64()
        );
        runs.push(f);
    }
    type Phase = (&'static str, fn(&Failover) -> Duration);
    let phases: [Phase; 4] = [
        ("home lease lapsed (seen in Redis)", |f| f.lease_gone),
        ("another node claimed the show", |f| f.claimed),
        ("its publish accepted by nginx", |f| f.published),
        ("dead node's entry left the directory", |f| f.entry_gone),
    ];
    println!("\nbench failover: kill -9 of a live show's home node, {RUNS} runs, seconds after the kill (bound 10 s)");
    println!("{:<40} {:>8} {:>8} {:>8}", "phase", "median", "worst", "best");
    let mut json = Vec::new();
    for (name, of) in phases {
        let mut secs: Vec<f64> = runs.iter().map(|r| of(r).as_secs_f64()).collect();
        secs.sort_by(f64::total_cmp);
        let (median, worst, best) = (secs[secs.len() / 2], secs[secs.len() - 1], secs[0]);
        println!("{name:<40} {median:>8.2} {worst:>8.2} {best:>8.2}");
        json.push(json!({"phase": name, "median_s": median, "worst_s": worst, "best_s": best, "runs_s": secs}));
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    let report = json!({"bench": "failover", "runs": RUNS, "bound_s": TAKE_OVER.as_secs_f64(), "phases": json});
    std::fs::write(out.join("failover.json"), serde_json::to_string_pretty(&report)?)?;
    println!("wrote target/bench/failover.json");
    Ok(())
}
