//! The local targets: `file://` appends one event JSON per line (and refuses a missing
//! directory permanently), `console://` prints a readable block per event.

mod support;

use std::sync::{Arc, Mutex};
use support::*;
use vast_supervisor::config::model::TargetUrl;
use vast_supervisor::event::Event;
use vast_supervisor::notify::{Notifier, SendError};

#[tokio::test]
async fn file_appends_one_json_line_per_event() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut n = notifier(TargetUrl::File { path: path.clone() });
        n.send(&[rental_end()]).await.expect("first write");
        let burst = offline_burst(3);
        let delivered = n.send(&burst).await.expect("batch write");
        assert_eq!(delivered.messages, 3);

        let content = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = content.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(content.ends_with('\n'));
        let parsed: Vec<Event> = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("each line is one event"))
            .collect();
        assert_eq!(parsed[0], rental_end());
        assert_eq!(&parsed[1..], &burst[..]);
    })
    .await;
}

#[tokio::test]
async fn file_in_a_missing_directory_is_permanent() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("events.jsonl");
        let mut n = notifier(TargetUrl::File { path: path.clone() });
        match n.send(&[rental_end()]).await {
            Err(SendError::Permanent { reason, detail }) => {
                assert_eq!(reason, "not_found");
                assert!(detail.contains("directory does not exist"), "{detail}");
            }
            other => panic!("expected a permanent failure, got {other:?}"),
        }
        assert!(
            !path.parent().unwrap().exists(),
            "the directory is not created"
        );
    })
    .await;
}

#[tokio::test]
async fn console_prints_a_compact_block_per_event() {
    bounded(async {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let mut n = Notifier::console_into("screen", buffer.clone());
        n.send(&[machine_offline()]).await.expect("printed");
        n.send(&[rental_end()]).await.expect("printed");
        let out = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "[2026-11-22 19:10:26 UTC] CRITICAL machine_offline alice rig_02 (23456): rig_02 is offline"
        );
        assert!(lines[1].starts_with("    No heartbeat"));
        assert!(lines[3].starts_with("[2026-11-22 19:10:26 UTC] INFO rental_end alice rig-01 (12345)"));
        assert_eq!(lines.len(), 6);
        assert_eq!(n.service(), "console");
    })
    .await;
}
