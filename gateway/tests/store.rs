//! The `Store` trait's contract, run against both backends.

mod common;

use backyard::store::{HomeKind, Recording, RecordingStatus, RefreshUse, Role, Seat, StoreError};
use common::{Backend, TestApp};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(
    users_are_unique_by_email,
    refresh_tokens_are_single_use_even_under_concurrency,
    expired_refresh_tokens_are_invalid,
    participants_join_leave_and_restart_cleanup,
    a_seat_moves_to_the_node_its_session_reconnects_to,
    invite_revocation_returns_its_guest_sessions,
    invite_tokens_are_stored_hashed_and_plain_rows_from_before_are_hashed_at_start,
    deleting_a_broadcast_cascades,
    a_node_with_a_stale_home_token_writes_no_recording_rows,
);

async fn users_are_unique_by_email(b: Backend) {
    let t = TestApp::new(b).await;
    let s = &t.state.store;
    let u = s.create_user("a@example.com", "phc", "A", true).await.unwrap();
    assert!(u.is_admin);
    assert!(matches!(
        s.create_user("a@example.com", "phc", "B", false).await,
        Err(backyard::store::StoreError::Conflict(_))
    ));
    assert_eq!(s.count_users().await.unwrap(), 1);
    assert_eq!(s.user_by_email("a@example.com").await.unwrap().unwrap().id, u.id);
    assert!(s.user_by_id(Uuid::new_v4()).await.unwrap().is_none());
}

async fn refresh_tokens_are_single_use_even_under_concurrency(b: Backend) {
    let t = TestApp::new(b).await;
    let s = t.state.store.clone();
    let u = s.create_user("a@example.com", "phc", "A", true).await.unwrap();
    let session = s.create_session(u.id).await.unwrap();
    let hash = vec![7u8; 32];
    s.insert_refresh(&hash, session.id, u.id, OffsetDateTime::now_utc() + Duration::days(1)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        let h = hash.clone();
        tasks.push(tokio::spawn(async move { s.use_refresh(&h).await.unwrap() }));
    }
    let mut valid = 0;
    for task in tasks {
        match task.await.unwrap() {
            RefreshUse::Valid { family_id, .. } => {
                assert_eq!(family_id, session.id);
                valid += 1
            }
            RefreshUse::Reused { .. } => {}
            RefreshUse::Invalid => panic!("a known token is never invalid here"),
        }
    }
    assert_eq!(valid, 1, "exactly one concurrent use wins");
    assert!(matches!(s.use_refresh(&[1u8; 32]).await.unwrap(), RefreshUse::Invalid));
}

async fn expired_refresh_tokens_are_invalid(b: Backend) {
    let t = TestApp::new(b).await;
    let s = &t.state.store;
    let u = s.create_user("a@example.com", "phc", "A", true).await.unwrap();
    let session = s.create_session(u.id).await.unwrap();
    s.insert_refresh(&[3u8; 32], session.id, u.id, OffsetDateTime::now_utc() - Duration::minutes(1)).await.unwrap();
    assert_eq!(s.use_refresh(&[3u8; 32]).await.unwrap(), RefreshUse::Invalid);
}

async fn participants_join_leave_and_restart_cleanup(b: Backend) {
    let t = TestApp::new(b).await;
    let s = &t.state.store;
    let u = s.create_user("a@example.com", "phc", "A", true).await.unwrap();
    let bc = s.create_broadcast(u.id, "t", "", serde_json::json!({})).await.unwrap();
    let seat = |user_id, name, role, video, node| Seat {
        broadcast_id: bc.id,
        user_id,
        name,
        role,
        audio: true,
        video,
        node,
        session: Uuid::new_v4(),
    };
    let p1 = s.participant_joined(seat(Some(u.id), "A", Role::Host, true, "node-1")).await.unwrap();
    let p2 = s.participant_joined(seat(None, "G", Role::Guest, false, "node-1")).await.unwrap();
    // Someone in the same room through another node.
    let p3 = s.participant_joined(seat(None, "H", Role::Guest, true, "node-2")).await.unwrap();
    assert_eq!(p3.node, "node-2");
    assert_eq!(s.active_participants(bc.id).await.unwrap().len(), 3);
    s.participant_status(p2.id, false, false, "Guest").await.unwrap();
    assert!(!s.participant_left(p1.id, "node-2").await.unwrap(), "only the node holding the seat closes it");
    assert!(s.participant_left(p1.id, "node-1").await.unwrap());
    assert!(!s.participant_left(p1.id, "node-1").await.unwrap(), "only the first close counts");
    let elsewhere = s.participants_elsewhere("node-1").await.unwrap();
    assert_eq!(elsewhere.iter().map(|p| p.id).collect::<Vec<_>>(), [p3.id]);
    let active = s.active_participants(bc.id).await.unwrap();
    assert_eq!(active.len(), 2);
    assert_eq!(active[0].name, "Guest");
    assert!(!active[0].audio_enabled);
    // After node-1 restarts nobody is connected to it; node-2's studio goes on.
    assert_eq!(s.close_all_participants(Some("node-1")).await.unwrap(), 1);
    let active = s.active_participants(bc.id).await.unwrap();
    assert_eq!(active.iter().map(|p| p.id).collect::<Vec<_>>(), [p3.id]);
    // One node alone closes every row, whichever node wrote it.
    assert_eq!(s.close_all_participants(None).await.unwrap(), 1);
    assert!(s.active_participants(bc.id).await.unwrap().is_empty());
}

async fn a_seat_moves_to_the_node_its_session_reconnects_to(b: Backend) {
    let t = TestApp::new(b).await;
    let s = &t.state.store;
    let u = s.create_user("a@example.com", "phc", "A", true).await.unwrap();
    let bc = s.create_broadcast(u.id, "t", "", serde_json::json!({})).await.unwrap();
    let (guest, other) = (Uuid::new_v4(), Uuid::new_v4());
    let seat = |node, session| guest_seat(bc.id, node, session);
    let p = s.participant_joined(seat("node-1", guest)).await.unwrap();
    let q = s.participant_joined(seat("node-1", other)).await.unwrap();
    // Only the session holding a seat takes it, and not on the node that holds it already.
    assert!(s.take_seat(bc.id, p.id, other, "node-2").await.unwrap().is_none(), "another session's seat");
    assert!(s.take_seat(bc.id, q.id, guest, "node-2").await.unwrap().is_none(), "another session's seat");
    assert!(s.take_seat(bc.id, p.id, guest, "node-1").await.unwrap().is_none());
    let (moved, from) = s.take_seat(bc.id, p.id, guest, "node-2").await.unwrap().expect("the seat moves");
    assert_eq!((moved.id, moved.node.as_str(), from.as_str()), (p.id, "node-2", "node-1"));
    // The node it left cannot close it any more; the node holding it can.
    assert!(!s.participant_left(p.id, "node-1").await.unwrap());
    assert!(s.participant_left(p.id, "node-2").await.unwrap());
    assert!(s.take_seat(bc.id, p.id, guest, "node-3").await.unwrap().is_none(), "a closed seat is not taken");
}

async fn invite_revocation_returns_its_guest_sessions(b: Backend) {
    let t = TestApp::new(b).await;
    let s = &t.state.store;
    let u = s.create_user("a@example.com", "phc", "A", true).await.unwrap();
    let bc = s.create_broadcast(u.id, "t", "", serde_json::json!({})).await.unwrap();
    let inv =
        s.create_invite(bc.id, "tok", Role::Guest, u.id, OffsetDateTime::now_utc() + Duration::hours(1)).await.unwrap();
    let g =
        s.create_guest_session(&[1u8; 32], &inv, "G", OffsetDateTime::now_utc() + Duration::hours(1)).await.unwrap();
    assert_eq!(s.guest_session_by_hash(&[1u8; 32]).await.unwrap().unwrap().id, g.id);
    assert_eq!(s.revoke_invite(bc.id, inv.id).await.unwrap(), Some(vec![g.id]));
    assert!(s.guest_session_by_hash(&[1u8; 32]).await.unwrap().unwrap().revoked_at.is_some());
    assert_eq!(s.revoke_invite(bc.id, inv.id).await.unwrap(), None, "already revoked");
    assert!(s.invites(bc.id).await.unwrap().is_empty());
}

async fn invite_tokens_are_stored_hashed_and_plain_rows_from_before_are_hashed_at_start(b: Backend) {
    let t = TestApp::new(b).await;
    let s = &t.state.store;
    let u = s.create_user("a@example.com", "phc", "A", true).await.unwrap();
    let bc = s.create_broadcast(u.id, "t", "", serde_json::json!({})).await.unwrap();
    let later = OffsetDateTime::now_utc() + Duration::hours(1);
    let token = "Zm9yIHRlc3RzIG9ubHksIDMyIGJ5dGVzIG9mIHRva2VuIQ";
    let inv = s.create_invite(bc.id, token, Role::Guest, u.id, later).await.unwrap();
    assert_ne!(inv.token_sha256, token);
    assert_eq!(t.raw.count(&format!("SELECT COUNT(*) FROM invites WHERE token_sha256 = '{token}'")).await, 0);
    assert_eq!(s.invite_by_token(token).await.unwrap().unwrap().id, inv.id);
    assert!(s.invite_by_token("Zm9yIHRlc3RzIG9ubHksIDMyIGJ5dGVzIG9mIHRva2VuIg").await.unwrap().is_none());

    // A row as a server before hashing wrote it: the token itself in the column.
    let old = "b2xkIGxpbmsgZnJvbSBiZWZvcmUgaGFzaGluZyBsYW5kZWQ";
    let old_inv = s.create_invite(bc.id, "placeholder", Role::Guest, u.id, later).await.unwrap();
    t.raw
        .execute(&format!("UPDATE invites SET token_sha256 = '{old}' WHERE token_sha256 = '{}'", old_inv.token_sha256))
        .await;
    let url = match b {
        Backend::Sqlite => format!("sqlite://{}", t.data_dir.join("backyard.db").display()),
        Backend::Postgres => t.state.cfg.database.url.clone(),
    };
    let restarted = backyard::store::connect(&url, 1).await.unwrap();
    assert_eq!(restarted.invite_by_token(old).await.unwrap().unwrap().id, old_inv.id, "the old link still works");
    assert_eq!(t.raw.count(&format!("SELECT COUNT(*) FROM invites WHERE token_sha256 = '{old}'")).await, 0);
    assert_eq!(restarted.invite_by_token(token).await.unwrap().unwrap().id, inv.id, "hashed rows are left alone");
}

async fn deleting_a_broadcast_cascades(b: Backend) {
    let t = TestApp::new(b).await;
    let s = &t.state.store;
    let u = s.create_user("a@example.com", "phc", "A", true).await.unwrap();
    let bc = s.create_broadcast(u.id, "t", "", serde_json::json!({})).await.unwrap();
    let seat = guest_seat(bc.id, "n", Uuid::new_v4());
    s.participant_joined(seat).await.unwrap();
    let rec = s.create_recording(bc.id, u.id, "r", 0, "").await.unwrap();
    assert!(s.delete_broadcast(bc.id).await.unwrap());
    assert!(s.broadcast(bc.id).await.unwrap().is_none());
    assert!(s.recording(rec.id).await.unwrap().is_none());
    assert!(!s.delete_broadcast(bc.id).await.unwrap());
}

/// Two nodes and one broadcast's home: the directory gives it to one node at a time under a growing token,
/// and the database takes recording rows only from the newest token, so a node that lost its home while
/// frozen writes nothing when it wakes. In embedded mode the directory is the process's; with PostgreSQL it
/// is Redis.
async fn a_node_with_a_stale_home_token_writes_no_recording_rows(b: Backend) {
    let t = TestApp::new(b).await;
    let (s, d) = (&t.state.store, &t.state.cluster.directory);
    let u = s.create_user("home@example.com", "phc", "A", true).await.unwrap();
    let bc = s.create_broadcast(u.id, "t", "", serde_json::json!({})).await.unwrap();

    let a = d.take_home(bc.id, "node-a", bc.home_fence).await.unwrap().expect("free");
    assert_eq!(d.take_home(bc.id, "node-b", 0).await.unwrap(), None, "one home at a time");
    assert!(s.claim_home(bc.id, a.token, HomeKind::Program).await.unwrap());
    let part1 = s.create_recording(bc.id, u.id, "part 1", a.token, "").await.unwrap();

    // node-a's lease ends (as when it is frozen past it) and node-b takes the show over.
    d.release(&a).await.unwrap();
    let b2 = d.take_home(bc.id, "node-b", 0).await.unwrap().expect("free again");
    assert!(b2.token > a.token, "{} after {}", b2.token, a.token);
    assert!(s.claim_home(bc.id, b2.token, HomeKind::Program).await.unwrap());

    // node-a wakes with its old token: its renewal is refused, and so is every row it tries to write.
    assert!(!d.renew(&a, true).await.unwrap());
    assert!(!s.claim_home(bc.id, a.token, HomeKind::Program).await.unwrap());
    let stale = s.create_recording(bc.id, u.id, "stale part", a.token, "").await;
    assert!(matches!(stale, Err(StoreError::Fenced { .. })), "{stale:?}");
    let stale = s.finish_recording(part1.id, RecordingStatus::Ready, 9.0, 9, a.token).await;
    assert!(matches!(stale, Err(StoreError::Fenced { .. })), "{stale:?}");
    assert_eq!(s.recording(part1.id).await.unwrap().unwrap().status, RecordingStatus::Recording);

    // node-b, the home now, finishes the first part and starts the second.
    s.finish_recording(part1.id, RecordingStatus::Ready, 9.0, 9, b2.token).await.unwrap();
    let part2 = s.create_recording(bc.id, u.id, "part 2", b2.token, "").await.unwrap();
    assert_eq!(part2.broadcast_id, bc.id);
    // The parts still being written, of this show only or of every show.
    let other = s.create_broadcast(u.id, "other", "", serde_json::json!({})).await.unwrap();
    let elsewhere = s.create_recording(other.id, u.id, "other show", backyard::store::UNFENCED, "").await.unwrap();
    let ids = |rs: Vec<Recording>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.unfinished_recordings(Some(bc.id)).await.unwrap()), [part2.id]);
    let all = ids(s.unfinished_recordings(None).await.unwrap());
    assert!(all.contains(&part2.id) && all.contains(&elsewhere.id) && !all.contains(&part1.id), "{all:?}");

    // The directory forgets its counter (Redis restarted without persistence): tokens still grow past what
    // the database has seen.
    d.release(&b2).await.unwrap();
    if let Some(url) = &t.state.cfg.redis.url {
        let mut conn = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let key = format!("{}cluster:token:{}", t.state.cfg.redis.prefix, bc.id);
        redis::cmd("DEL").arg(key).query_async::<i64>(&mut conn).await.unwrap();
    }
    let floor = s.broadcast(bc.id).await.unwrap().unwrap().home_fence;
    assert_eq!(floor, b2.token);
    let next = d.take_home(bc.id, "node-c", floor).await.unwrap().expect("free");
    assert!(next.token > floor, "{} after {floor}", next.token);
    assert_eq!(s.home_kind(bc.id).await.unwrap(), Some(HomeKind::Program));
    // An encoder's relay claims the home the same way, and says what it runs there.
    assert!(s.claim_home(bc.id, next.token, HomeKind::Relay).await.unwrap());
    assert_eq!(s.home_kind(bc.id).await.unwrap(), Some(HomeKind::Relay));
    assert_eq!(s.home_kind(Uuid::new_v4()).await.unwrap(), None);
}

/// A guest called "G" in `broadcast_id`'s room through `node`, for `session`.
fn guest_seat(broadcast_id: Uuid, node: &str, session: Uuid) -> Seat<'_> {
    Seat { broadcast_id, user_id: None, name: "G", role: Role::Guest, audio: true, video: true, node, session }
}
