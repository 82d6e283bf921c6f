//! Connection quality: what a participant's link looks like from the server, and one word for it.
//!
//! The peer gathers str0m's statistics once a second (round-trip time, loss each way, jitter of what it receives,
//! the estimate of the bandwidth towards the client); [`grade`] turns them into `good`, `fair` or `poor`, the
//! studio's indicator on each tile.

use std::time::Duration;

/// One participant's link, as the server measures it.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionQuality {
    /// `good`, `fair` or `poor` ([`grade`]).
    pub grade: Grade,
    /// Round-trip time, milliseconds.
    pub rtt_ms: Option<u32>,
    /// Share of the packets sent to the client that were lost (0–1).
    pub downlink_loss: Option<f32>,
    /// Share of the client's packets that were lost on the way in (0–1).
    pub uplink_loss: Option<f32>,
    /// Interarrival jitter of what the client sends, milliseconds (the worst of its streams).
    pub jitter_ms: Option<u32>,
    /// The estimate of the bandwidth towards the client, kbit/s.
    pub downlink_kbps: Option<u32>,
    /// Simulcast layers of the client's camera that are sending now, and how many it offered.
    pub layers: Option<(u8, u8)>,
}

/// One word for a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    #[default]
    Good,
    Fair,
    Poor,
}

/// `poor` when a tenth of the packets are lost either way, the round trip takes over 400 ms, or less than
/// 150 kbit/s reaches the client (not even two low layers and sound); `fair` from 2 % loss, a 150 ms round trip,
/// 30 ms of jitter or below 400 kbit/s; `good` otherwise. (How many layers the camera sends is reported, not
/// graded: a browser also drops layers when its own CPU is short.)
pub fn grade(q: &ConnectionQuality) -> Grade {
    let loss = q.downlink_loss.unwrap_or(0.0).max(q.uplink_loss.unwrap_or(0.0));
    let rtt = q.rtt_ms.unwrap_or(0);
    let kbps = q.downlink_kbps.unwrap_or(u32::MAX);
    if loss >= 0.10 || rtt > 400 || kbps < 150 {
        return Grade::Poor;
    }
    if loss >= 0.02 || rtt > 150 || q.jitter_ms.unwrap_or(0) > 30 || kbps < 400 {
        return Grade::Fair;
    }
    Grade::Good
}

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(loss: f32, rtt: u32, kbps: u32) -> ConnectionQuality {
        ConnectionQuality {
            downlink_loss: Some(loss),
            rtt_ms: Some(rtt),
            downlink_kbps: Some(kbps),
            ..ConnectionQuality::default()
        }
    }

    #[test]
    fn links_get_one_word() {
        assert_eq!(grade(&q(0.0, 20, 5000)), Grade::Good);
        assert_eq!(grade(&ConnectionQuality::default()), Grade::Good, "nothing measured yet");
        assert_eq!(grade(&q(0.03, 20, 5000)), Grade::Fair, "3 % loss");
        assert_eq!(grade(&q(0.0, 20, 300)), Grade::Fair, "a 300 kbit/s downlink");
        assert_eq!(grade(&q(0.0, 200, 5000)), Grade::Fair);
        assert_eq!(grade(&q(0.15, 20, 5000)), Grade::Poor, "15 % loss");
        assert_eq!(grade(&q(0.0, 500, 5000)), Grade::Poor);
        assert_eq!(grade(&q(0.0, 20, 100)), Grade::Poor);
        let uplink = ConnectionQuality { uplink_loss: Some(0.12), ..q(0.0, 20, 5000) };
        assert_eq!(grade(&uplink), Grade::Poor, "loss on the way in counts too");
        let fewer = ConnectionQuality { layers: Some((2, 3)), ..q(0.0, 20, 5000) };
        assert_eq!(grade(&fewer), Grade::Good, "layers are reported, not graded");
        let jittery = ConnectionQuality { jitter_ms: Some(60), ..q(0.0, 20, 5000) };
        assert_eq!(grade(&jittery), Grade::Fair);
    }
}
